// The one PNG helper: 8-bit grey or RGB images (PNG spec: signature, IHDR, IDAT, IEND), with
// node:zlib, and images in [-1, 1] as grey levels or as a data: URL for a page built at build time.
import { deflateSync } from 'node:zlib';

export const PNG_SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** CRC-32 (IEEE 802.3) of a chunk's type and data, as the PNG spec asks. */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** Encodes `pixels` ([height, width] row-major, 0..255) as a greyscale PNG. */
export function encodeGreyPng(pixels: Uint8Array, width: number, height: number): Uint8Array {
  return encodePng(pixels, width, height, 1);
}

/**
 * Encodes `pixels` ([height, width, channels] row-major, 0..255) as a PNG: greyscale for 1
 * channel, RGB (colour type 2) for 3.
 */
export function encodePng(pixels: Uint8Array, width: number, height: number,
  channels: 1 | 3): Uint8Array {
  if (channels !== 1 && channels !== 3) {
    throw new Error(`a PNG here has 1 (grey) or 3 (RGB) channels, received ${channels}`);
  }
  const sized = Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0;
  if (!sized || pixels.length !== width * height * channels) {
    const count = width * height;
    const needs = channels === 1 ? `${count} pixels` : `${count * 3} values (${count} RGB pixels)`;
    throw new Error(`a ${width}x${height} PNG needs ${needs}, received ${pixels.length}`);
  }
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  // bit depth 8, colour type 0 (grey) or 2 (RGB), deflate, adaptive filtering, no interlace
  ihdr.set([8, channels === 1 ? 0 : 2, 0, 0, 0], 8);
  // each row: filter byte 0 (none), then the pixels' values
  const row = width * channels;
  const raw = new Uint8Array(height * (row + 1));
  for (let y = 0; y < height; y++) {
    raw.set(pixels.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  }
  const idat = new Uint8Array(deflateSync(raw));
  const parts = [
    PNG_SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/** An image value in [-1, 1] (clipped) as a grey level 0..255. */
export const greyLevel = (v: number) => Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);

/**
 * Image `index` of a batch of `width` x `height` grey images in [-1, 1] (row-major, one after
 * another) as a data: URL of a PNG, for an <img> in a page built at build time.
 */
export function pngDataUrl(values: ArrayLike<number>, width: number, height: number, index = 0) {
  const size = width * height;
  const pixels = Uint8Array.from({ length: size }, (_, p) => greyLevel(values[index * size + p]));
  const png = Buffer.from(encodeGreyPng(pixels, width, height));
  return `data:image/png;base64,${png.toString('base64')}`;
}
