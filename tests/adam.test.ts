// The library's Adam (src/lib/diffusion/adam.ts) against tfjs's tf.train.adam, and its state.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { adamStep, createAdam, disposeAdam } from '../src/lib/diffusion';
import { backend, maxAbsDiff } from './helpers/backend';

beforeAll(() => backend('wasm'));

const values = (seed: number) => ({
  w: tf.randomNormal([3, 4], 0, 1, 'float32', seed),
  b: tf.randomNormal([4], 0, 1, 'float32', seed + 1),
});

describe('adamStep', () => {
  it('equals tf.train.adam over 3 steps within 1e-6 (lr 0.01, beta2 0.99)', async () => {
    const init = values(1);
    const ours = { w: tf.variable(init.w), b: tf.variable(init.b) };
    const theirs = { w: tf.variable(init.w), b: tf.variable(init.b) };
    const adam = createAdam(ours, { lr: 0.01, beta2: 0.99 });
    const reference = tf.train.adam(0.01, 0.9, 0.99);
    for (let step = 0; step < 3; step++) {
      const grads = values(10 + 2 * step);
      adamStep(adam, ours, grads);
      reference.applyGradients([
        { name: theirs.w.name, tensor: grads.w }, { name: theirs.b.name, tensor: grads.b },
      ]);
      tf.dispose(Object.values(grads));
    }
    for (const name of ['w', 'b'] as const) {
      const diff = maxAbsDiff(await ours[name].data(), await theirs[name].data());
      expect(diff, name).toBeLessThan(1e-6);
    }
    // beta^n as float32 running products, as tfjs keeps them
    expect(adam.beta1Power).toBeCloseTo(0.9 ** 3, 6);
    expect(adam.beta2Power).toBeCloseTo(0.99 ** 3, 6);
    expect(adam.epsilon).toBe(tf.backend().epsilon());
    disposeAdam(adam);
    reference.dispose();
  });

  it('counts a missing gradient as 0: the moments decay and the weight keeps moving', async () => {
    const theta = { w: tf.variable(tf.ones([2])) };
    const adam = createAdam(theta, { lr: 0.1 });
    const g = { w: tf.ones([2]) };
    adamStep(adam, theta, g);
    const after1 = (await theta.w.data())[0];
    adamStep(adam, theta, {});
    const after2 = (await theta.w.data())[0];
    expect(after1).toBeCloseTo(1 - 0.1, 5); // the first step moves by lr: m_hat / sqrt(v_hat) = 1
    // m = 0.9 * 0.1, v = 0.999 * 0.001: the step is lr (0.09 / 0.19) / sqrt(0.000999 / 0.001999)
    const m = 0.09 / (1 - 0.81);
    const v = 0.000999 / (1 - 0.999 ** 2);
    expect(after2).toBeCloseTo(after1 - (0.1 * m) / Math.sqrt(v), 5);
    expect((await adam.m.w.data())[0]).toBeCloseTo(0.09, 6);
    tf.dispose(g.w);
    disposeAdam(adam);
  });

  it('holds two moments per parameter and frees them; the parameters stay', () => {
    const theta = { w: tf.variable(tf.ones([2])), b: tf.variable(tf.zeros([1])) };
    const before = tf.memory().numTensors;
    const adam = createAdam(theta, { lr: 1e-3 });
    expect(tf.memory().numTensors - before).toBe(4);
    expect(Object.keys(adam.m)).toEqual(['w', 'b']);
    disposeAdam(adam);
    expect(tf.memory().numTensors).toBe(before);
    expect(theta.w.isDisposed).toBe(false);
  });
});
