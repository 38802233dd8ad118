// The IDX format of MNIST and Fashion-MNIST (yann.lecun.com/exdb/mnist): a 4-byte magic number
// 0x00 0x00 <type> <rank>, then <rank> big-endian uint32 dimensions, then the values, row-major.
import { gunzipSync } from 'node:zlib';

export interface IdxArray { dims: number[]; data: Uint8Array }

const UNSIGNED_BYTE = 0x08;

/** Parses an IDX file of unsigned bytes (gzipped or not). Throws one clear error on any defect. */
export function parseIdx(bytes: Uint8Array, what = 'IDX file'): IdxArray {
  const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? new Uint8Array(gunzipSync(bytes)) : bytes;
  if (raw.length < 4 || raw[0] !== 0 || raw[1] !== 0) {
    throw new Error(`${what} is not an IDX file: expected the magic bytes 00 00 at the start`);
  }
  if (raw[2] !== UNSIGNED_BYTE) {
    const type = raw[2].toString(16);
    throw new Error(`${what} holds IDX type 0x${type}; expected 0x08 (unsigned bytes)`);
  }
  const rank = raw[3];
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (raw.length < 4 + 4 * rank) throw new Error(`${what} is truncated inside its header`);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const size = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (raw.length !== start + size) {
    const got = raw.length - start;
    throw new Error(`${what} has ${got} data bytes; its header [${dims}] expects ${size}`);
  }
  return { dims, data: raw.subarray(start) };
}

/** Serialises unsigned bytes as IDX (used by tests to make small data sets). */
export function writeIdx(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out.set([0, 0, UNSIGNED_BYTE, dims.length]);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
