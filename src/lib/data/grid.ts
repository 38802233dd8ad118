// A labelled grid of 28x28 images: one row per label, the label's number drawn at its row's left.
import { IMAGE_SIZE } from './datasets';
import { greyLevel } from './png';

// 3x5 bitmaps of the digits 0-9, one string of 15 pixels each, row by row.
const DIGITS = [
  '111101101101111', '010110010010111', '111001111100111', '111001111001111', '101101111001001',
  '111100111001111', '111100111101111', '111001001010010', '111101111101111', '111101111001111',
];

export interface GridOptions {
  scale?: number; // each pixel drawn as scale x scale (default 2)
  gap?: number; // pixels between images (default 2)
}

/**
 * Draws images ([N, 28, 28] row-major in [-1, 1]) grouped by label: one row per distinct label in
 * order of first appearance, up to the longest group's length across. Returns grey pixels and the
 * grid's size.
 */
export function labelledGrid(images: Float32Array, labels: readonly number[],
  opts: GridOptions = {}) {
  const px = IMAGE_SIZE * IMAGE_SIZE;
  if (images.length !== labels.length * px) {
    throw new Error(`received ${images.length / px} images for ${labels.length} labels`);
  }
  const scale = opts.scale ?? 2;
  const gap = opts.gap ?? 2;
  const rows = [...new Set(labels)].map((label) => ({
    label, items: labels.flatMap((l, i) => (l === label ? [i] : [])),
  }));
  const cols = Math.max(...rows.map((r) => r.items.length));
  const cell = IMAGE_SIZE * scale;
  const digits = Math.max(...rows.map((r) => String(r.label).length));
  const margin = (digits * 4 + 1) * scale; // room for the label's digits
  const width = margin + cols * (cell + gap) + gap;
  const height = rows.length * (cell + gap) + gap;
  const pixels = new Uint8Array(width * height).fill(64); // dark grey background
  rows.forEach(({ label, items }, r) => {
    const top = gap + r * (cell + gap);
    drawNumber(pixels, width, label, scale, Math.round(top + cell / 2 - 2.5 * scale), scale);
    items.forEach((i, c) => {
      const left = margin + gap + c * (cell + gap);
      for (let y = 0; y < cell; y++) {
        for (let x = 0; x < cell; x++) {
          const v = images[i * px + Math.floor(y / scale) * IMAGE_SIZE + Math.floor(x / scale)];
          pixels[(top + y) * width + left + x] = greyLevel(v);
        }
      }
    });
  });
  return { pixels, width, height };
}

function drawNumber(pixels: Uint8Array, width: number, n: number, left: number, top: number,
  scale: number) {
  [...String(n)].forEach((ch, k) => {
    const glyph = DIGITS[Number(ch)] ?? '';
    for (let i = 0; i < glyph.length; i++) {
      if (glyph[i] !== '1') continue;
      const [gx, gy] = [left + (k * 4 + (i % 3)) * scale, top + Math.floor(i / 3) * scale];
      for (let dy = 0; dy < scale; dy++) {
        for (let dx = 0; dx < scale; dx++) pixels[(gy + dy) * width + gx + dx] = 255;
      }
    }
  });
}
