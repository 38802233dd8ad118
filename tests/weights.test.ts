// safetensors in and out: PyTorch names and layouts, F16/BF16 upcast, and one clear error per defect.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { epsTheta, initParams, loadUNet, readSafetensors, saveUNet, torchShapes, writeSafetensors, type HostTensor } from '../src/lib/diffusion';
import { backend, maxAbsDiff } from './helpers/backend';

beforeAll(() => backend('wasm'));

const FIXTURE = readFileSync(join(__dirname, 'fixtures/pytorch-parity/weights.safetensors'));

/** A safetensors file from a raw header object and data bytes, for crafting bad files. */
function craft(header: unknown, body = new Uint8Array(0), headerText = JSON.stringify(header)): Uint8Array {
  const h = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + h.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(body, 8 + h.length);
  return out;
}

/** The fixture's tensors, optionally edited, written back. */
function edited(edit: (t: Record<string, HostTensor>) => void): Uint8Array {
  const { tensors } = readSafetensors(new Uint8Array(FIXTURE));
  const record = Object.fromEntries(tensors);
  edit(record);
  return writeSafetensors(record);
}

describe('reading the paper checkpoint', () => {
  it('infers the config from the tensor shapes', () => {
    const { config, params } = loadUNet(new Uint8Array(FIXTURE));
    expect(config).toEqual({ imageChannels: 1, channels: 32, classes: 10 });
    expect(params['down_block1.weight'].shape).toEqual([3, 3, 1, 32]); // OIHW -> HWIO
    expect(params['noise_embedding.weight'].shape).toEqual([32, 64]); // [out, in] -> [in, out]
    expect(params['class_emb.weight'].shape).toEqual([10, 64]); // embeddings keep their layout
  });
  it('returns the file\'s metadata with the weights', async () => {
    const { params } = loadUNet(new Uint8Array(FIXTURE));
    const bytes = await saveUNet(params, { schedule: 'cosine', T: '400' });
    expect(loadUNet(bytes).metadata).toEqual({ schedule: 'cosine', T: '400' });
    expect(loadUNet(new Uint8Array(FIXTURE)).metadata).toEqual(readSafetensors(FIXTURE).metadata);
  });
  it('round-trips through saveUNet byte-for-byte in values and layouts', async () => {
    const { params } = loadUNet(new Uint8Array(FIXTURE));
    const again = readSafetensors(await saveUNet(params)).tensors;
    const orig = readSafetensors(new Uint8Array(FIXTURE)).tensors;
    expect([...again.keys()].sort()).toEqual([...orig.keys()].sort());
    for (const [name, t] of orig) {
      expect(again.get(name)!.shape).toEqual(t.shape);
      expect(maxAbsDiff(again.get(name)!.data, t.data)).toBe(0);
    }
  });
  it('reads a Node Buffer (a view into a larger pool) without shifting any tensor', () => {
    const bytes = writeSafetensors({ a: { shape: [2], data: new Float32Array([1, 2]) }, b: { shape: [2], data: new Float32Array([3, 4]) } });
    const pooled = Buffer.concat([Buffer.alloc(3), Buffer.from(bytes)]).subarray(3); // byteOffset 3, not aligned
    const { tensors } = readSafetensors(pooled);
    expect(Array.from(tensors.get('a')!.data)).toEqual([1, 2]);
    expect(Array.from(tensors.get('b')!.data)).toEqual([3, 4]);
    expect(loadUNet(FIXTURE).config.channels).toBe(32);
  });
  it('F16 and BF16 tensors are upcast to float32', () => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x0001, 0x7c00]); // 1, -2, ~0.33325, 2^-24, inf
    const bf16 = new Uint16Array([0x3f80, 0xc040]); // 1, -3
    const body = new Uint8Array(14);
    body.set(new Uint8Array(f16.buffer), 0);
    body.set(new Uint8Array(bf16.buffer), 10);
    const { tensors } = readSafetensors(craft({
      a: { dtype: 'F16', shape: [5], data_offsets: [0, 10] },
      b: { dtype: 'BF16', shape: [2], data_offsets: [10, 14] },
    }, body));
    expect(Array.from(tensors.get('a')!.data)).toEqual([1, -2, Math.fround(0.33325195), 2 ** -24, Infinity]);
    expect(Array.from(tensors.get('b')!.data)).toEqual([1, -3]);
  });
  it('a model saved in F16 loads and predicts within F16 precision', async () => {
    const config = { imageChannels: 1, channels: 32, classes: null };
    const params = initParams(config, 2);
    const f32 = readSafetensors(await saveUNet(params)).tensors;
    // re-encode every tensor as F16 by hand
    const header: Record<string, unknown> = {};
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const [name, t] of f32) {
      const half = new Uint16Array(t.data.length);
      const halfOf = (v: number) => { const f = new Float32Array([v]); const u = new Uint32Array(f.buffer)[0]; const s = (u >> 16) & 0x8000; const e = ((u >> 23) & 0xff) - 127 + 15; const m = (u >> 13) & 0x3ff; return e <= 0 ? s : s | (e << 10) | m; };
      t.data.forEach((v, i) => (half[i] = halfOf(v)));
      header[name] = { dtype: 'F16', shape: t.shape, data_offsets: [offset, offset + half.byteLength] };
      chunks.push(new Uint8Array(half.buffer));
      offset += half.byteLength;
    }
    const body = new Uint8Array(offset);
    chunks.reduce((at, c) => (body.set(c, at), at + c.length), 0);
    const loaded = loadUNet(craft(header, body)).params;
    const x = tf.randomNormal([1, 28, 28, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
    const a = await epsTheta(params, config, x, [5]).data();
    const b = await epsTheta(loaded, config, x, [5]).data();
    expect(maxAbsDiff(a, b)).toBeLessThan(2e-2);
  });
});

describe('bad files: one clear error each', () => {
  const cases: [string, () => Uint8Array, RegExp][] = [
    ['an empty file', () => new Uint8Array(0), /not a safetensors file: 0 bytes/],
    ['a truncated file', () => new Uint8Array(FIXTURE.subarray(0, FIXTURE.length - 100)), /data offsets .* outside the \d+-byte data section/],
    ['a header length past the end', () => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 1000n, true); return b; }, /header length 1000 runs past the end of the file \(16 bytes\)/],
    ['a huge header length', () => { const b = new Uint8Array(16); new DataView(b.buffer).setBigUint64(0, 2n ** 62n, true); return b; }, /runs past the end of the file/],
    ['a non-JSON header', () => craft(null, undefined, '{"a": [1, 2'), /header is not valid JSON/],
    ['a JSON array header', () => craft([1, 2]), /header is not a JSON object/],
    ['an unknown dtype', () => craft({ w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor "w" has dtype I64; expected F32, F16 or BF16/],
    ['offsets out of range', () => craft({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)), /tensor "w" has data offsets \[0,8\] outside the 4-byte data section/],
    ['offsets that disagree with the shape', () => craft({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /not matching its F32 shape \[3\]/],
    ['a negative shape', () => craft({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }), /tensor "w" has an invalid shape/],
    ['a missing tensor', () => edited((t) => delete t['up_block4.bias']), /missing tensor "up_block4.bias"/],
    ['an extra tensor', () => edited((t) => (t['mystery.weight'] = { shape: [1], data: new Float32Array(1) })), /unexpected tensor "mystery.weight"/],
    ['a wrong shape', () => edited((t) => (t['up_block2.bias'] = { shape: [31], data: new Float32Array(31) })), /tensor "up_block2.bias" has shape \[31\]; expected \[32\]/],
    ['NaN weights', () => edited((t) => (t['middle_block.conv1.bias'].data[3] = NaN)), /tensor "middle_block.conv1.bias" contains NaN or infinite values/],
    ['infinite weights', () => edited((t) => (t['down_block1.weight'].data[0] = -Infinity)), /tensor "down_block1.weight" contains NaN or infinite values/],
    ['a file that is not the paper UNet', () => craft({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /missing tensor "down_block1.weight": not a checkpoint of the paper's UNet/],
    ['a width that is not a multiple of 32', () => edited((t) => (t['down_block1.weight'] = { shape: [48, 1, 3, 3], data: new Float32Array(48 * 9) })), /channels must be a positive multiple of 32.*received 48/],
  ];
  for (const [what, make, message] of cases) {
    it(what, () => {
      const before = tf.memory().numTensors;
      expect(() => loadUNet(make())).toThrow(message);
      expect(tf.memory().numTensors).toBe(before);
    });
  }
  it('a config that disagrees with the file names the first mismatch', () => {
    expect(() => loadUNet(new Uint8Array(FIXTURE), { imageChannels: 1, channels: 64, classes: 10 }))
      .toThrow(/tensor "class_emb.weight" has shape \[10,64\]; expected \[10,128\]|has shape \[32,1,3,3\]; expected \[64,1,3,3\]/);
  });
  it('the shapes it checks are the PyTorch ones', () => {
    expect(torchShapes({ imageChannels: 3, channels: 64, classes: null })['up_block4.weight']).toEqual([3, 64, 3, 3]);
  });
});
