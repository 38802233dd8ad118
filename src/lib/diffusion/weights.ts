// Weights in safetensors, with the paper's PyTorch state_dict names and layouts, so that
// `safetensors.torch.save_file(model.state_dict(), path)` loads unchanged.
// Format: u64 little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
import * as tf from '@tensorflow/tfjs-core';
import { toTfLayout, toTorchLayout, torchShapes, type Params, type UNetConfig } from './unet';

export interface HostTensor { shape: number[]; data: Float32Array }
type Entry = { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/**
 * Parses a safetensors file; F16 and BF16 are upcast to float32. Throws one clear error on any
 * defect. `bytes` may be a view into a larger buffer (a Node Buffer is one): offsets are its own.
 */
export function readSafetensors(bytes: Uint8Array) {
  if (bytes.length < 8) throw new Error(
    `not a safetensors file: ${bytes.length} bytes is shorter than the 8-byte header length`);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > bytes.length) throw new Error(`header length ${n} runs past the end of the file `
    + `(${bytes.length} bytes): truncated or not safetensors`);
  let header: Record<string, Entry>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  } catch {
    throw new Error('the safetensors header is not valid JSON');
  }
  if (!header || typeof header !== 'object' || Array.isArray(header))
    throw new Error('the safetensors header is not a JSON object');
  const { __metadata__: metadata = {}, ...entries } = header as Record<string, never>;
  const tensors = new Map<string, HostTensor>(Object.entries(entries as Record<string, Entry>)
    .map(([name, entry]) => [name, readTensor(name, entry, bytes.subarray(8 + n))]));
  return { tensors, metadata: metadata as Record<string, string> };
}

/** One tensor of the data section, checked against its header entry; a 4-byte aligned copy. */
function readTensor(name: string, { dtype, shape, data_offsets }: Entry, body: Uint8Array) {
  if (typeof dtype !== 'string' || !(dtype in BYTES))
    throw new Error(`tensor "${name}" has dtype ${dtype}; expected F32, F16 or BF16`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new Error(`tensor "${name}" has an invalid shape`);
  const [begin, end] = Array.isArray(data_offsets) ? data_offsets : [];
  const size = shape.reduce((a: number, b: number) => a * b, 1) * BYTES[dtype]; // in bytes
  const inside = [begin, end].every(Number.isInteger) && begin >= 0 && end <= body.length;
  if (!inside || end - begin !== size) throw new Error(`tensor "${name}" has data offsets `
    + `${JSON.stringify(data_offsets)} outside the ${body.length}-byte data section or not `
    + `matching its ${dtype} shape [${shape}]`);
  return { shape, data: toFloat32(new Uint8Array(body.subarray(begin, end)), dtype) };
}

/** F32, F16 or BF16 bytes (little-endian, a copy of their own) as float32 values. */
export function toFloat32(raw: Uint8Array, dtype: string): Float32Array {
  if (dtype === 'F32') return new Float32Array(raw.buffer, 0, raw.length / 4);
  const half = new Uint16Array(raw.buffer, 0, raw.length / 2);
  if (dtype === 'BF16') return new Float32Array(Uint32Array.from(half, (h) => h << 16).buffer);
  return Float32Array.from(half, (h) => {
    const [sign, exp, frac] = [h & 0x8000 ? -1 : 1, (h >> 10) & 0x1f, h & 0x3ff];
    if (exp === 0) return sign * frac * 2 ** -24;
    return exp === 31 ? (frac ? NaN : sign * Infinity) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  });
}

/** Serialises float32 tensors as safetensors (names sorted, data 8-byte aligned). */
export function writeSafetensors(tensors: Record<string, HostTensor>,
  metadata: Record<string, string> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const offsets = [0];
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  names.forEach((name, i) => {
    offsets.push(offsets[i] + tensors[name].data.byteLength);
    const data_offsets = [offsets[i], offsets[i + 1]];
    header[name] = { dtype: 'F32', shape: tensors[name].shape, data_offsets };
  });
  const json = JSON.stringify(header); // padded with spaces so that the data is 8-byte aligned
  const headerBytes = new TextEncoder().encode(json.padEnd(Math.ceil(json.length / 8) * 8));
  const start = 8 + headerBytes.length;
  const out = new Uint8Array(start + offsets[names.length]);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  names.forEach((name, i) => {
    const { data } = tensors[name];
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), start + offsets[i]);
  });
  return out;
}

/** The UNet's config, read from the shapes in a checkpoint of the paper's model. */
export function inferConfig(tensors: Map<string, HostTensor>): UNetConfig {
  const first = tensors.get('down_block1.weight')?.shape;
  if (!first || first.length !== 4)
    throw new Error('missing tensor "down_block1.weight": not a checkpoint of the paper\'s UNet');
  const classes = tensors.get('class_emb.weight')?.shape[0] ?? null;
  return { channels: first[0], imageChannels: first[1], classes };
}

/** Checks names, shapes and values of a checkpoint against the UNet it should hold. */
function checkTensors(tensors: Map<string, HostTensor>, shapes: Record<string, number[]>) {
  const list = (names: string[]) =>
    `tensor${names.length > 1 ? 's' : ''} ${names.map((m) => `"${m}"`).join(', ')}`;
  const missing = Object.keys(shapes).filter((name) => !tensors.has(name));
  if (missing.length) throw new Error(`missing ${list(missing)}`);
  const extra = [...tensors.keys()].filter((name) => !(name in shapes));
  if (extra.length) throw new Error(`unexpected ${list(extra)} for this UNet`);
  for (const [name, shape] of Object.entries(shapes)) {
    const { shape: got, data } = tensors.get(name)!;
    if (got.join() !== shape.join())
      throw new Error(`tensor "${name}" has shape [${got}]; expected [${shape}]`);
    if (!data.every(Number.isFinite))
      throw new Error(`tensor "${name}" contains NaN or infinite values`);
  }
}

// #region load-unet
/** Loads a UNet from safetensors bytes (the paper's state_dict names), checked, in tfjs layouts;
 *  with the file's metadata ({} if none). */
export function loadUNet(bytes: Uint8Array, expected?: UNetConfig) {
  const { tensors, metadata } = readSafetensors(bytes);
  const config = expected ?? inferConfig(tensors);
  checkTensors(tensors, torchShapes(config));
  const params: Params = Object.fromEntries([...tensors].map(([name, { shape, data }]) =>
    [name, tf.tidy(() => toTfLayout(name, tf.tensor(data, shape)))]));
  return { config, params, metadata };
}
// #endregion

/** Saves a UNet as safetensors in the PyTorch layout. */
export async function saveUNet(params: Params, metadata: Record<string, string> = {}) {
  const host: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(params)) {
    const torch = toTorchLayout(name, t);
    host[name] = { shape: torch.shape, data: (await torch.data()) as Float32Array };
    torch.dispose();
  }
  return writeSafetensors(host, metadata);
}
