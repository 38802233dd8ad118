// Winograd F(2x2, 3x3) convs on wasm (src/lib/runtime/wasm-winograd.ts, WebAssembly SIMD from
// src/lib/runtime/wasm-simd/winograd.wat) against tf.fused.conv2d: values, the three gradients,
// when it is taken, and no tensors left behind. The UNet through it: tests/wasm-group-norm.test.ts.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { useNodeBackend } from '../src/lib/runtime/node';
import { winogradConv, winogradFits } from '../src/lib/runtime/wasm-winograd';
import { maxAbsDiff } from './helpers/backend';

type Shape4 = [number, number, number, number];
const cases: [string, Shape4, number][] = [
  ['even, 64 -> 64 channels (the UNet)', [2, 8, 8, 64], 64],
  ['even, non-square, 128 -> 64 channels', [1, 6, 10, 128], 64],
  ['odd sizes, 8 -> 12 channels (cropped tiles)', [3, 7, 5, 8], 12],
];

/** y = conv(x, w) + b and the gradients of sum(y * g) by `conv`. */
async function run(conv: (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D) => tf.Tensor4D,
  shape: Shape4, Co: number) {
  const x = tf.randomNormal(shape, 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, shape[3], Co], 0, 0.1, 'float32', 2) as tf.Tensor4D;
  const b = tf.randomNormal([Co], 0, 1, 'float32', 3) as tf.Tensor1D;
  const g = tf.randomNormal([...shape.slice(0, 3), Co], 0, 1, 'float32', 4);
  const y = conv(x, w, b);
  const grads = tf.grads((...[a, f, c]: tf.Tensor[]) =>
    tf.sum(tf.mul(conv(a as tf.Tensor4D, f as tf.Tensor4D, c as tf.Tensor1D), g)))([x, w, b]);
  const out = await Promise.all([y, ...grads].map(async (t) => await t.data()));
  tf.dispose([x, w, b, g, y, ...grads]);
  return out;
}

const plain = (x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D) =>
  tf.fused.conv2d({ x, filter, bias, strides: 1, pad: 1 });

describe('winogradConv on wasm against tf.fused.conv2d', async () => {
  await useNodeBackend('wasm', { threads: 1 });
  for (const [name, shape, Co] of cases) {
    it(`${name}: values and gradients within 1e-5 of their scale`, async () => {
      const want = await run(plain, shape, Co);
      const before = tf.memory().numTensors;
      const got = await run(winogradConv, shape, Co);
      expect(tf.memory().numTensors).toBe(before);
      const errors = want.map((w, i) => {
        const scale = Math.max(...Array.from(w, Math.abs));
        return maxAbsDiff(got[i], w) / scale;
      });
      console.log(`winograd ${name}: y, dx, dw, db relative errors ${
        errors.map((e) => e.toExponential(1))}`);
      for (const e of errors) expect(e).toBeLessThan(1e-5);
    });
  }

  it('is taken for even sizes with 64 channels and more, on wasm only', async () => {
    const fits = (shape: Shape4, f: Shape4) =>
      tf.tidy(() => winogradFits(tf.zeros(shape) as tf.Tensor4D, tf.zeros(f) as tf.Tensor4D));
    expect(fits([1, 8, 8, 64], [3, 3, 64, 128])).toBe(true);
    expect(fits([1, 8, 8, 32], [3, 3, 32, 32])).toBe(false); // slower there
    expect(fits([1, 7, 7, 128], [3, 3, 128, 128])).toBe(false); // odd
    expect(fits([1, 8, 8, 64], [5, 5, 64, 64])).toBe(false);
    await useNodeBackend('cpu');
    expect(fits([1, 8, 8, 64], [3, 3, 64, 128])).toBe(false);
    await useNodeBackend('wasm', { threads: 1 });
  });
});
