// The real WebGPU backend in Node (Dawn via the `webgpu` package, on a software Vulkan driver) against wasm.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  createTrainer, ddimSample, ddpmSample, epsTheta, guidedEps, initParams, makeSchedule, plainEps,
  trainStep, type Params, type UNetConfig,
} from '../src/lib/diffusion';
import { nodeGpuName, useNodeBackend } from '../src/lib/runtime/node';
import { maxAbsDiff } from './helpers/backend';

const config: UNetConfig = { imageChannels: 1, channels: 32, classes: 10 };
const s = makeSchedule('paper-linear', 50);

/** Everything compared, computed on one backend from the same seeds. */
async function run() {
  const params: Params = initParams(config, 7);
  const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
  const eps = await epsTheta(params, config, x, [3, 41], [4, null]).data();
  const guided = await guidedEps(params, config, [1, 9], 3)(x, 20).data();
  const ddim = await (await ddimSample(guidedEps(params, config, [2, 5], 2), s, [2, 28, 28, 1], { steps: 3, eta: 0.3, seed: 9 })).data();
  const ddpmSteps: number[] = [];
  const shortSchedule = makeSchedule('cosine', 4);
  const ddpm = await (await ddpmSample(plainEps(params, config), shortSchedule, [1, 28, 28, 1], {
    seed: 3, onStep: ({ t }) => { ddpmSteps.push(t); },
  })).data();
  const trainer = createTrainer(params, config, s, { seed: 11, lr: 1e-3 });
  const losses: number[] = [];
  for (let i = 0; i < 2; i++) {
    const loss = trainStep(trainer, x, [3, 7]);
    losses.push((await loss.data())[0]);
    loss.dispose();
  }
  const trained = await trainer.params['up_block2.weight'].data();
  const ema = await trainer.ema!['down_block3.weight'].data();
  return { eps, guided, ddim, ddpm, ddpmSteps, losses, trained, ema, backend: tf.getBackend() };
}

describe('webgpu in Node agrees with wasm', async () => {
  await useNodeBackend('wasm');
  const wasm = await run();
  await useNodeBackend('webgpu');
  const gpu = await run();

  it('really ran on webgpu', () => {
    expect(wasm.backend).toBe('wasm');
    expect(gpu.backend).toBe('webgpu');
  });
  it('names the adapter that it ran on (model cards and the bench report it)', () => {
    expect(nodeGpuName()).toMatch(/\w/);
  });
  it('a UNet forward pass, with and without labels, within 1e-4', () => {
    expect(maxAbsDiff(gpu.eps, wasm.eps)).toBeLessThan(1e-4);
    expect(maxAbsDiff(gpu.guided, wasm.guided)).toBeLessThan(1e-4);
  });
  it('a few DDIM and DDPM sampler steps within 1e-4', () => {
    expect(maxAbsDiff(gpu.ddim, wasm.ddim)).toBeLessThan(1e-4);
    expect(gpu.ddpmSteps).toEqual([3, 2, 1, 0]);
    expect(maxAbsDiff(gpu.ddpm, wasm.ddpm)).toBeLessThan(1e-4);
  });
  it('two train steps: the same losses, weights and EMA within 1e-4', () => {
    expect(maxAbsDiff(gpu.losses, wasm.losses)).toBeLessThan(1e-4);
    expect(maxAbsDiff(gpu.trained, wasm.trained)).toBeLessThan(1e-4);
    expect(maxAbsDiff(gpu.ema, wasm.ema)).toBeLessThan(1e-4);
    expect(wasm.losses[1]).not.toBe(wasm.losses[0]);
  });
});
