// Winograd F(2x2, 3x3) convs on wasm (src/lib/runtime/wasm-winograd.ts, WebAssembly SIMD from
// src/lib/runtime/wasm-simd/winograd.wat) against tf.fused.conv2d: values, the three gradients,
// when it is taken, no tensors left behind, the fused UNet through it (tf.memory() over 50 steps,
// 1 and 2 threads). Its eps and gradients against epsTheta: tests/wasm-group-norm.test.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { fullyFusedTrainStep } from '../src/lib/runtime/fused-unet';
import { useNodeBackend } from '../src/lib/runtime/node';
import {
  WINOGRAD_CONV, WINOGRAD_FILTER_GRAD, winogradConv, winogradFits,
} from '../src/lib/runtime/wasm-winograd';
import { maxAbsDiff } from './helpers/backend';
import { checkMemoryFlat } from './helpers/fused';
import { npmRun, tempDir } from './helpers/tiny-datasets';

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

describe('the fused UNet at 64 channels on wasm, through Winograd', () => {
  it('a training step runs the Winograd kernels; tf.memory() is flat over 50 training steps and '
    + '50 guided sampling steps', async () => {
    await useNodeBackend('wasm', { threads: 1 });
    await checkMemoryFlat(64, [12, 12, 1], async (tr, x0) => {
      const profile = await tf.profile(() => fullyFusedTrainStep(tr, x0, [0, 1]));
      const runs = (name: string) => profile.kernels.filter((k) => k.name === name).length;
      expect(runs(WINOGRAD_CONV)).toBeGreaterThanOrEqual(4 + 4); // 4 convs forward, 4 dX
      expect(runs(WINOGRAD_FILTER_GRAD)).toBe(4);
    });
  }, 120_000);

  it('npm run sample with mnist-64 draws the same samples on 2 threads as on 1 (within 1e-5)',
    () => {
      const work = tempDir('winograd-threads-');
      const [one, two] = [1, 2].map((threads) => {
        const out = join(work, `t${threads}.json`);
        const r = npmRun('sample', ['--model', 'mnist-64', '--labels', '0,1,2,3', '--steps', '3',
          '--guidance', '3', '--seed', '5', '--threads', String(threads), '--out', out]);
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(readFileSync(out, 'utf8')).images as number[];
      });
      expect(one).toHaveLength(4 * 784);
      expect(one.some((v) => v !== one[0])).toBe(true);
      expect(maxAbsDiff(one, two)).toBeLessThan(1e-5);
    }, 120_000);
});
