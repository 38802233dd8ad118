// The fused UNet (src/lib/runtime/fused-unet.ts with the WebGPU programs of
// src/lib/runtime/webgpu/group-norm.ts and condition.ts) against the core's plain ops, on webgpu in
// Node (Dawn on a software Vulkan driver): values and gradients, the PyTorch parity fixture, the
// trainer and the sampler, and tf.memory() over 50 steps.
import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  condition, createTrainer, ddimSample, epsTheta, guidedEps, initParams, makeSchedule, trainStep,
  type Labels, type Params, type UNetConfig,
} from '../src/lib/diffusion';
import { useNodeBackend } from '../src/lib/runtime/node';
import {
  fullyFusedTrainStep, fusedCondition, fusedEpsTheta, fusedGuidedEps, hasFusedKernels,
} from '../src/lib/runtime/fused-unet';
import { maxAbsDiff } from './helpers/backend';
import {
  checkFusedEps, checkFusedParity, checkGroupNormCase, expectSame, GROUP_NORM_CASES, TOLERANCE,
} from './helpers/fused';

beforeAll(() => useNodeBackend('webgpu'));

const unet = (channels: number): UNetConfig => ({ imageChannels: 1, channels, classes: 10 });

describe('groupNormRelu: one WebGPU kernel against the core ops', () => {
  for (const [name, shape, o] of GROUP_NORM_CASES) {
    it(`${name} [${shape}]: values and gradients within 1e-4`, async () => {
      expect(hasFusedKernels()).toBe(true);
      const errors = await checkGroupNormCase(shape, o);
      console.log(`groupNormRelu ${name}: max |fused - plain| ${errors.map((e) => e.toExponential(1))}`);
    });
  }
});

describe('the condition: one WebGPU kernel against the core', () => {
  it('values and gradients within 1e-4, with and without labels', async () => {
    const c = unet(64);
    const p = initParams(c, 4);
    const names = ['noise_embedding.weight', 'noise_embedding.bias', 'class_emb.weight'];
    const t = [0, 17, 299];
    for (const y of [[3, null, 9], [null, null, null]] as Labels[]) {
      // without labels the core does not read class_emb: no gradient to compare there
      const used = names.slice(0, y.some((l) => l !== null) ? 3 : 2);
      const withWeights = (f: typeof condition) => (...ws: tf.Tensor[]) =>
        f({ ...p, ...Object.fromEntries(used.map((n, i) => [n, ws[i]])) }, c, t, y);
      await expectSame(withWeights(fusedCondition), withWeights(condition), used.map((n) => p[n]));
    }
    tf.dispose(Object.values(p));
  });
});

describe('fusedEpsTheta against epsTheta', () => {
  for (const [channels, B] of [[32, 1], [32, 3], [64, 2]]) {
    it(`${channels} channels, batch ${B}: eps and every weight's gradient within 1e-4`, async () => {
      const errors = await checkFusedEps(channels, B);
      console.log(`fusedEpsTheta ${channels} ch, B = ${B}: eps ${errors[0].toExponential(1)}, `
        + `gradients ${Math.max(...errors.slice(1)).toExponential(1)}`);
    });
  }
  it('128 channels, batch 2: eps within 1e-4', async () => {
    const c = unet(128);
    const p = initParams(c, 9);
    const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 6) as tf.Tensor4D;
    const [a, b] = [epsTheta(p, c, x, [5, 250], [1, 8]), fusedEpsTheta(p, c, x, [5, 250], [1, 8])];
    expect(maxAbsDiff(await a.data(), await b.data())).toBeLessThan(TOLERANCE);
    tf.dispose([a, b, x, ...Object.values(p)]);
  });
});

describe('the fused path in the trainer and the sampler', () => {
  const schedule = makeSchedule('paper-linear', 300);
  // Losses, not weights: Adam divides by sqrt(v), so where a gradient is near 0 its float noise
  // moves a weight by up to lr either way (the gradients themselves are compared above).
  it('fullyFusedTrainStep follows trainStep: the same loss over 5 steps (within 1e-4)', async () => {
    const c = unet(32);
    const p: Params = initParams(c, 3);
    const x0 = tf.randomUniform([3, 28, 28, 1], -1, 1, 'float32', 8) as tf.Tensor4D;
    const [plain, fast] = [0, 1].map(() => createTrainer(p, c, schedule, { seed: 5, lr: 1e-3 }));
    for (let i = 0; i < 5; i++) {
      const [a, b] = [trainStep(plain, x0, [1, 2, 3]), fullyFusedTrainStep(fast, x0, [1, 2, 3])];
      expect(Math.abs((await a.data())[0] - (await b.data())[0])).toBeLessThan(TOLERANCE);
      tf.dispose([a, b]);
    }
    tf.dispose([x0, ...Object.values(p)]);
    for (const tr of [plain, fast]) tf.dispose([...Object.values(tr.params), ...Object.values(tr.ema!)]);
  });

  it('guided DDIM draws the same images as the plain path (within 1e-4)', async () => {
    const c = unet(32);
    const p = initParams(c, 12);
    const draw = async (guided: typeof guidedEps) => {
      const x = await ddimSample(guided(p, c, [4, 7], 3), schedule, [2, 28, 28, 1],
        { steps: 5, seed: 3, eta: 0.5 });
      const values = await x.data();
      x.dispose();
      return values;
    };
    expect(maxAbsDiff(await draw(fusedGuidedEps), await draw(guidedEps))).toBeLessThan(TOLERANCE);
    tf.dispose(Object.values(p));
  });

  it('tf.memory() is flat over 50 fused training steps and 50 guided sampling steps', async () => {
    const c = unet(32);
    const p = initParams(c, 13);
    const tr = createTrainer(p, c, schedule, { seed: 1 });
    const x0 = tf.randomUniform([2, 28, 28, 1], -1, 1, 'float32', 9) as tf.Tensor4D;
    tf.dispose(fullyFusedTrainStep(tr, x0, [0, 1])); // Adam's moments exist from here
    const before = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) {
      const loss = fullyFusedTrainStep(tr, x0, [0, 1]);
      await loss.data();
      loss.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    const x = await ddimSample(fusedGuidedEps(p, c, [2, 5], 2), schedule, [2, 28, 28, 1],
      { steps: 50, seed: 1 });
    await x.data();
    x.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x0, ...Object.values(p), ...Object.values(tr.params), ...Object.values(tr.ema!)]);
  });
});

describe('npm run parity --backend webgpu --fused on the PyTorch fixture', () => {
  it('eps, one DDIM step and the posterior within 1e-4; the DDIM loop within 5e-3', () => {
    const errors = checkFusedParity('webgpu');
    console.log('fused parity on webgpu:', JSON.stringify(errors));
  }, 120_000);
});

describe('npm run bench --case kernels on webgpu', () => {
  // issue 15's targets: forward <= 40, training step <= 200, guided DDIM step <= 45
  for (const channels of [32, 64]) {
    it(`${channels} channels: the fused path meets the kernel targets, far below the plain core`,
      () => {
        const out = execFileSync('npm', ['run', '-s', 'bench', '--', '--case', 'kernels',
          '--backend', 'webgpu', '--channels', String(channels), '--json'],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        const line = JSON.parse(out.trim().split('\n').pop()!);
        console.log(`kernels at ${channels} channels:`, JSON.stringify(line));
        expect(line.forward_kernels).toBeLessThanOrEqual(40);
        expect(line.train_step_kernels).toBeLessThanOrEqual(200);
        expect(line.sample_step_kernels).toBeLessThanOrEqual(45);
        expect(line.plain_forward_kernels).toBeGreaterThan(2 * line.forward_kernels);
      }, 180_000);
  }
});
