// The wasm conv gradients (src/lib/runtime/wasm-conv-grad.ts) against the cpu backend's kernels.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { useNodeBackend } from '../src/lib/runtime/node';
import { maxAbsDiff } from './helpers/backend';

type Shape4 = [number, number, number, number];
type Case = { x: Shape4; f: Shape4; stride: number; pad: 'same' | 'valid' | number };
const cases: [string, Case][] = [
  ['3x3, stride 1, pad 1 (the UNet convs)', { x: [2, 9, 9, 3], f: [3, 3, 3, 4], stride: 1, pad: 1 }],
  ['3x3, stride 2, pad 1, even size (the UNet down convs)', { x: [3, 8, 8, 2], f: [3, 3, 2, 5], stride: 2, pad: 1 }],
  ['3x3, stride 2, pad 1, even non-square size, more channels (the phase path)',
    { x: [2, 6, 10, 16], f: [3, 3, 16, 24], stride: 2, pad: 1 }],
  ['3x3, stride 2, pad 1, odd size', { x: [2, 7, 7, 3], f: [3, 3, 3, 2], stride: 2, pad: 1 }],
  ['5x3, stride 2, same padding, non-square', { x: [1, 10, 7, 2], f: [5, 3, 2, 3], stride: 2, pad: 'same' }],
  ['2x2, stride 1, valid padding', { x: [2, 5, 6, 1], f: [2, 2, 1, 3], stride: 1, pad: 'valid' }],
];

/** d(sum(conv(x, f) * g)) / dx and / df, on the current backend. */
async function grads({ x, f, stride, pad }: Case) {
  const xs = tf.randomNormal(x, 0, 1, 'float32', 1) as tf.Tensor4D;
  const fs = tf.randomNormal(f, 0, 1, 'float32', 2) as tf.Tensor4D;
  const y = tf.conv2d(xs, fs, stride, pad);
  const g = tf.randomNormal(y.shape, 0, 1, 'float32', 3);
  const [dx, df] = tf.grads((...[a, b]: tf.Tensor[]) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), g)))([xs, fs]);
  const out = { dx: await dx.data(), df: await df.data(), dxShape: dx.shape, dfShape: df.shape };
  tf.dispose([xs, fs, y, g, dx, df]);
  return out;
}

describe.each(cases)('wasm conv gradients: %s', async (_, c) => {
  await useNodeBackend('cpu');
  const want = await grads(c);
  await useNodeBackend('wasm');
  const before = tf.memory().numTensors;
  const got = await grads(c);
  it('the filter gradient matches the cpu kernel', () => {
    expect(got.dfShape).toEqual(want.dfShape);
    expect(maxAbsDiff(got.df, want.df)).toBeLessThan(1e-4);
  });
  it('the input gradient matches the cpu kernel', () => {
    expect(got.dxShape).toEqual(want.dxShape);
    expect(maxAbsDiff(got.dx, want.dx)).toBeLessThan(1e-4);
  });
  it('leaves no tensors behind', () => expect(tf.memory().numTensors).toBe(before));
});
