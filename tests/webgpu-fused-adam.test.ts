// The fused optimizer update (src/lib/runtime/webgpu/fused-adam.ts) against the library's
// applyGradients, both on webgpu in Node (Dawn on a software Vulkan driver).
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  applyGradients, createTrainer, initParams, makeSchedule, trainStep, type Params, type Trainer,
  type TrainOptions, type UNetConfig,
} from '../src/lib/diffusion';
import { useNodeBackend } from '../src/lib/runtime/node';
import {
  ADAM_EMA_KERNEL, fusedApplyGradients, fusedTrainStep, type FusedOptions,
} from '../src/lib/runtime/webgpu/fused-adam';

beforeAll(() => useNodeBackend('webgpu'));

const schedule = makeSchedule('paper-linear', 50);
const unet = (channels: number): UNetConfig => ({ imageChannels: 1, channels, classes: 10 });

/** Weights of odd sizes: one element, around a workgroup (256), a 4-d kernel. */
function oddParams(): Params {
  const shapes: Record<string, number[]> = {
    one: [1], three: [3], below: [255], above: [257], kernel: [3, 3, 5, 7], wide: [10, 100],
  };
  return Object.fromEntries(Object.entries(shapes).map(([name, shape], i) =>
    [name, tf.randomNormal(shape, 0, 1, 'float32', 100 + i)]));
}

/** Step `step`'s gradients, keyed by variable name; the same numbers for any trainer built from
 *  the same parameters. `skip`: a weight the batch did not use (no gradient). */
function gradsFor(tr: Trainer, step: number, skip?: string): tf.NamedTensorMap {
  const seed = (i: number) => 1000 * step + i + 1; // seed 0 would draw from Math.random
  return Object.fromEntries(Object.entries(tr.params).filter(([name]) => name !== skip)
    .map(([, v], i) => [v.name, tf.randomNormal(v.shape, 0, 0.1, 'float32', seed(i))]));
}

type Apply = (tr: Trainer, grads: tf.NamedTensorMap) => void;

/** Two trainers from the same weights, `steps` updates each: plain applyGradients and fused. */
function twoTrainers(params: Params, options: Partial<TrainOptions>, steps: number,
  fused: FusedOptions = {}) {
  const opts = { seed: 1, lr: 1e-2, ...options };
  const plain = createTrainer(params, unet(32), schedule, opts);
  const fast = createTrainer(params, unet(32), schedule, opts);
  const skip = Object.keys(params)[1];
  const run = (tr: Trainer, apply: Apply) => {
    for (let step = 0; step < steps; step++) apply(tr, gradsFor(tr, step, skip));
  };
  run(plain, applyGradients);
  run(fast, (tr, grads) => fusedApplyGradients(tr, grads, fused));
  return { plain, fast };
}

/** Largest absolute and relative differences over the weights, moments and EMA; `within`: every
 *  element within 1e-6 absolute or 1e-5 relative. */
async function compare(plain: Trainer, fast: Trainer) {
  const sets = (tr: Trainer) =>
    ({ theta: tr.params, m: tr.adam.m, v: tr.adam.v, ema: tr.ema ?? {} });
  const [a, b] = [sets(plain), sets(fast)];
  let [abs, rel, within] = [0, 0, true];
  for (const set of ['theta', 'm', 'v', 'ema'] as const) {
    for (const name of Object.keys(a[set])) {
      const [x, y] = [await a[set][name].data(), await b[set][name].data()];
      for (let i = 0; i < x.length; i++) {
        const d = Math.abs(x[i] - y[i]);
        abs = Math.max(abs, d);
        rel = Math.max(rel, d / Math.max(Math.abs(x[i]), 1e-30));
        within &&= d <= 1e-6 || d <= 1e-5 * Math.abs(x[i]);
      }
    }
  }
  return { abs, rel, within };
}

function dispose(...trainers: Trainer[]) {
  for (const tr of trainers) {
    tf.dispose([...Object.values(tr.params), ...Object.values(tr.ema ?? {})]);
    tf.dispose([...Object.values(tr.adam.m), ...Object.values(tr.adam.v)]);
  }
}

describe('fusedApplyGradients equals applyGradients on webgpu', () => {
  it('really runs on webgpu', () => {
    expect(tf.getBackend()).toBe('webgpu');
  });

  it.each([32, 64])('a %i-channel UNet, 3 steps: weights, m, v, EMA within 1e-5', async (c) => {
    const params = initParams(unet(c), 3);
    const { plain, fast } = twoTrainers(params, {}, 3);
    const diff = await compare(plain, fast);
    console.log(`UNet ${c} channels, 3 steps:`, diff);
    expect(diff.within).toBe(true);
    expect(fast.step).toBe(3);
    expect(fast.adam.beta1Power).toBe(plain.adam.beta1Power);
    dispose(plain, fast);
    tf.dispose(Object.values(params));
  });

  it('odd sizes (1, 3, 255, 257, ...), a missing gradient, 5 steps, in chunks', async () => {
    const params = oddParams();
    for (const fused of [{}, { chunkElements: 1000 }]) { // 1000: two dispatches a step
      const { plain, fast } = twoTrainers(params, { emaDecay: 0.9 }, 5, fused);
      const diff = await compare(plain, fast);
      console.log('odd sizes, 5 steps', fused, diff);
      expect(diff.within).toBe(true);
      dispose(plain, fast);
    }
    tf.dispose(Object.values(params));
  });

  it('fusedTrainStep: two steps of a 32-channel UNet as trainStep takes them', async () => {
    const params = initParams(unet(32), 4);
    const [plain, fast] = [0, 1].map(() => createTrainer(params, unet(32), schedule, { seed: 2 }));
    const x0 = tf.randomNormal([3, 28, 28, 1], 0, 1, 'float32', 8) as tf.Tensor4D; // odd batch
    const losses = async (tr: Trainer, step: typeof trainStep) => {
      const values: number[] = [];
      for (let i = 0; i < 2; i++) {
        const loss = step(tr, x0, [1, 2, 3]);
        values.push((await loss.data())[0]);
        loss.dispose();
      }
      return values;
    };
    expect(await losses(fast, fusedTrainStep)).toEqual(await losses(plain, trainStep));
    const diff = await compare(plain, fast);
    console.log('UNet 32 channels, 2 training steps:', diff);
    expect(diff.within).toBe(true);
    dispose(plain, fast);
    tf.dispose([x0, ...Object.values(params)]);
  });

  it('without an EMA (emaDecay null)', async () => {
    const params = oddParams();
    const { plain, fast } = twoTrainers(params, { emaDecay: null }, 3);
    expect(fast.ema).toBeNull();
    expect((await compare(plain, fast)).within).toBe(true);
    dispose(plain, fast);
    tf.dispose(Object.values(params));
  });
});

type GpuMemory = tf.MemoryInfo & { numBytesInGPU: number };

describe('the fused update on webgpu', () => {
  it('keeps tf.memory() flat over 50 steps', async () => {
    const params = initParams(unet(32), 5);
    const tr = createTrainer(params, unet(32), schedule, { seed: 1 });
    fusedApplyGradients(tr, gradsFor(tr, 0));
    const before = tf.memory() as GpuMemory;
    for (let step = 1; step <= 50; step++) fusedApplyGradients(tr, gradsFor(tr, step));
    await tr.params[Object.keys(params)[0]].data();
    const after = tf.memory() as GpuMemory;
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
    expect(after.numBytesInGPU).toBe(before.numBytesInGPU); // scratch buffers go back
    dispose(tr);
    tf.dispose(Object.values(params));
  });

  it('is one kernel a step, against about 17 a weight on the plain path', async () => {
    const params = initParams(unet(32), 5);
    const [plain, fast] = [0, 1].map(() => createTrainer(params, unet(32), schedule, { seed: 1 }));
    const count = async (tr: Trainer, apply: Apply) => {
      const grads = gradsFor(tr, 0);
      const { kernels } = await tf.profile(() => apply(tr, grads));
      return kernels.map((k) => k.name);
    };
    const plainKernels = await count(plain, applyGradients);
    const fusedKernels = await count(fast, fusedApplyGradients);
    const weights = Object.keys(params).length;
    const ms = async (tr: Trainer, apply: Apply) => { // per step, over 5 steps
      const grads = Array.from({ length: 5 }, (_, step) => gradsFor(tr, step + 1));
      await Promise.all(grads.flatMap((g) => Object.values(g).map((t) => t.data())));
      const start = performance.now();
      grads.forEach((g) => apply(tr, g));
      await tr.params[Object.keys(params)[0]].data();
      return (performance.now() - start) / 5;
    };
    let [plainMs, fusedMs] = [Infinity, Infinity]; // the best of 3, alternating: a shared machine
    for (let round = 0; round < 3; round++) {
      plainMs = Math.min(plainMs, await ms(plain, applyGradients));
      fusedMs = Math.min(fusedMs, await ms(fast, fusedApplyGradients));
    }
    console.log(`optimizer + EMA, ${weights} weights: plain ${plainKernels.length} kernels ` +
      `${plainMs.toFixed(1)} ms a step, fused ${fusedKernels.length} ${fusedMs.toFixed(1)} ms`);
    expect(fusedKernels).toEqual([ADAM_EMA_KERNEL]);
    expect(plainKernels.length).toBeGreaterThan(10 * weights);
    dispose(plain, fast);
    tf.dispose(Object.values(params));
  });
});

describe('fusedApplyGradients at the edges', () => {
  it('a weight over the binding limit: an error, and the trainer unchanged', () => {
    const params = oddParams();
    const tr = createTrainer(params, unet(32), schedule, { seed: 1 });
    const grads = gradsFor(tr, 0);
    expect(() => fusedApplyGradients(tr, grads, { chunkElements: 500 }))
      .toThrow(/a weight of 1000 elements: expected at most 500/);
    expect([tr.step, tr.adam.beta1Power, tr.adam.beta2Power]).toEqual([0, 1, 1]);
    tf.dispose(Object.values(grads));
    dispose(tr);
    tf.dispose(Object.values(params));
  });

  it('on another backend it is applyGradients', async () => {
    await useNodeBackend('cpu');
    const params = oddParams();
    const { plain, fast } = twoTrainers(params, {}, 2);
    expect((await compare(plain, fast)).abs).toBe(0);
    dispose(plain, fast);
    tf.dispose(Object.values(params));
    await useNodeBackend('webgpu');
  });
});
