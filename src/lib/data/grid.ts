// A labelled grid of images (28x28 grey, or any size, grey or RGB): one row per label, the label's
// number drawn at its row's left.
import { greyLevel } from './png';

// 3x5 bitmaps of the digits 0-9, one string of 15 pixels each, row by row.
const DIGITS = [
  '111101101101111', '010110010010111', '111001111100111', '111001111001111', '101101111001001',
  '111100111001111', '111100111101111', '111001001010010', '111101111101111', '111101111001111',
];

export interface GridOptions {
  scale?: number; // each pixel drawn as scale x scale (default 2)
  gap?: number; // pixels between images (default 2)
  size?: number; // each image's height and width (default 28)
  channels?: 1 | 3; // grey or RGB (default 1)
}

/**
 * Draws images ([N, H, W, C] row-major in [-1, 1], H = W = size, C = channels) grouped by label:
 * one row per distinct label in order of first appearance, up to the longest group's length
 * across. Returns the grid's pixels ([height, width, C] row-major, 0..255), size and C.
 */
export function labelledGrid(images: Float32Array, labels: readonly number[],
  opts: GridOptions = {}) {
  const size = opts.size ?? 28;
  const channels = opts.channels ?? 1;
  const px = size * size * channels;
  if (images.length !== labels.length * px) {
    throw new Error(`received ${images.length / px} images for ${labels.length} labels`);
  }
  const scale = opts.scale ?? 2;
  const gap = opts.gap ?? 2;
  const rows = [...new Set(labels)].map((label) => ({
    label, items: labels.flatMap((l, i) => (l === label ? [i] : [])),
  }));
  const cols = Math.max(...rows.map((r) => r.items.length));
  const cell = size * scale;
  const digits = Math.max(...rows.map((r) => String(r.label).length));
  const margin = (digits * 4 + 1) * scale; // room for the label's digits
  const width = margin + cols * (cell + gap) + gap;
  const height = rows.length * (cell + gap) + gap;
  const pixels = new Uint8Array(width * height * channels).fill(64); // dark grey background
  rows.forEach(({ label, items }, r) => {
    const top = gap + r * (cell + gap);
    const mid = Math.round(top + cell / 2 - 2.5 * scale);
    drawNumber(pixels, { width, channels, scale }, label, scale, mid);
    items.forEach((i, col) => {
      const left = margin + gap + col * (cell + gap);
      for (let y = 0; y < cell; y++) {
        for (let x = 0; x < cell; x++) {
          const from = i * px + (Math.floor(y / scale) * size + Math.floor(x / scale)) * channels;
          const to = ((top + y) * width + left + x) * channels;
          for (let c = 0; c < channels; c++) pixels[to + c] = greyLevel(images[from + c]);
        }
      }
    });
  });
  return { pixels, width, height, channels };
}

/** Draws n's digits in white, their top left corner at (left, top). */
function drawNumber(pixels: Uint8Array, g: { width: number; channels: number; scale: number },
  n: number, left: number, top: number) {
  const { width, channels, scale } = g;
  [...String(n)].forEach((ch, k) => {
    const glyph = DIGITS[Number(ch)] ?? '';
    for (let i = 0; i < glyph.length; i++) {
      if (glyph[i] !== '1') continue;
      const [gx, gy] = [left + (k * 4 + (i % 3)) * scale, top + Math.floor(i / 3) * scale];
      for (let dy = 0; dy < scale; dy++) {
        const at = ((gy + dy) * width + gx) * channels;
        pixels.fill(255, at, at + scale * channels); // one row of a glyph pixel, every channel
      }
    }
  });
}
