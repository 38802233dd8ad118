// Shared by the fused-kernel tests (webgpu and wasm): the plain reference of groupNormRelu and a
// value-and-gradient comparison.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import {
  createTrainer, ddimSample, epsTheta, initParams, makeSchedule, type Trainer,
} from '../../src/lib/diffusion';
import {
  fullyFusedTrainStep, fusedEpsTheta, fusedGuidedEps, groupNormRelu, plainGroupNormRelu,
  type GroupNormReluOptions,
} from '../../src/lib/runtime/fused-unet';
import { maxAbsDiff } from './backend';

export const TOLERANCE = 1e-4;

export type Fn = (...xs: tf.Tensor[]) => tf.Tensor;

/** f's value and its gradients of mean(f * r) (r fixed and random) with respect to `xs`: a loss
 *  of the training loss's scale (a mean), so that gradients are O(1) and 1e-4 is a tight bound. */
async function valueAndGrads(f: Fn, xs: tf.Tensor[]) {
  const value = f(...xs);
  const r = tf.randomNormal(value.shape, 0, 1, 'float32', 77);
  const grads = tf.grads((...ys: tf.Tensor[]) => tf.mean(tf.mul(f(...ys), r)))(xs);
  const out = { value: await value.data(), grads: await Promise.all(grads.map((g) => g.data())) };
  tf.dispose([value, r, ...grads]);
  return out;
}

/** Expects f and g to agree within 1e-4 in value and gradients; returns the differences. */
export async function expectSame(f: Fn, g: Fn, xs: tf.Tensor[]) {
  const [a, b] = [await valueAndGrads(f, xs), await valueAndGrads(g, xs)];
  const errors = [maxAbsDiff(a.value, b.value), ...a.grads.map((ga, i) => maxAbsDiff(ga, b.grads[i]))];
  expect(Math.max(...errors)).toBeLessThan(TOLERANCE);
  return errors;
}

type Case = { skip?: boolean; cond?: boolean; twice?: boolean; upsample?: boolean };
/** Every epilogue the UNet uses, at several widths and batch sizes (odd ones too). */
export const GROUP_NORM_CASES: [string, number[], Case][] = [
  ['plain, 32 ch', [2, 28, 28, 32], {}],
  ['skip, odd batch', [3, 14, 14, 64], { skip: true }],
  ['skip and upsample, 1 image', [1, 14, 14, 32], { skip: true, upsample: true }],
  ['the middle block: skip, cond, twice, upsample', [3, 7, 7, 128],
    { skip: true, cond: true, twice: true, upsample: true }],
];

/** groupNormRelu against the plain ops on one case: values, gradients, no tensor left over. */
export async function checkGroupNormCase(shape: number[], o: Case): Promise<number[]> {
  const [B, , , C] = shape;
  const x = tf.randomNormal(shape, 0.3, 2, 'float32', 1);
  const skip = tf.randomNormal(shape, 0, 1, 'float32', 2);
  const cond = tf.randomNormal([B, 1, 1, C], 0, 1, 'float32', 3);
  const xs = [x, ...(o.skip ? [skip] : []), ...(o.cond ? [cond] : [])];
  const options = (ys: tf.Tensor[]): GroupNormReluOptions => ({
    skip: o.skip ? ys[1] as tf.Tensor4D : undefined,
    cond: o.cond ? ys[2] as tf.Tensor4D : undefined, twice: o.twice, upsample: o.upsample,
  });
  const before = tf.memory().numTensors;
  const errors = await expectSame((...ys) => groupNormRelu(ys[0] as tf.Tensor4D, options(ys)),
    (...ys) => plainGroupNormRelu(ys[0] as tf.Tensor4D, options(ys)), xs);
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([x, skip, cond]);
  return errors;
}

/** fusedEpsTheta against epsTheta: eps and every weight's gradient, a null label among them. */
export async function checkFusedEps(channels: number, B: number): Promise<number[]> {
  const c = { imageChannels: 1, channels, classes: 10 };
  const p = initParams(c, channels + B);
  const names = Object.keys(p);
  const x = tf.randomNormal([B, 28, 28, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
  const t = Array.from({ length: B }, (_, i) => 7 + 100 * i);
  const y = Array.from({ length: B }, (_, i) => (i === 1 ? null : i + 2));
  const net = (f: typeof epsTheta) => (...ws: tf.Tensor[]) =>
    f(Object.fromEntries(names.map((n, i) => [n, ws[i]])), c, x, t, y);
  const errors = await expectSame(net(fusedEpsTheta), net(epsTheta), names.map((n) => p[n]));
  tf.dispose([x, ...Object.values(p)]);
  return errors;
}

/** npm run parity --fused on `backend` against the PyTorch fixture: eps, one DDIM step and the
 *  posterior mean within 1e-4, the whole DDIM loop within 5e-3; returns the four errors. */
export function checkFusedParity(backend: string) {
  const FIXTURE = join(__dirname, '../fixtures/pytorch-parity');
  const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flat(Infinity) : [v]) as number[];
  const out = join(mkdtempSync(join(tmpdir(), 'parity-fused-')), 'out.json');
  execFileSync('npm', ['run', '-s', 'parity', '--', '--fixture', FIXTURE, '--out', out,
    '--backend', backend, '--fused'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const got = JSON.parse(readFileSync(out, 'utf8'));
  const want = JSON.parse(readFileSync(join(FIXTURE, 'case.json'), 'utf8'));
  const err = (section: string, field: string) =>
    maxAbsDiff(flat(got[section][field]), flat(want[section][field]));
  const errors = { eps: err('eps', 'eps'), ddimStep: err('ddim_step', 'x_prev'),
    posteriorMean: err('p_mean_variance', 'mean'), ddimLoop: err('ddim', 'x0') };
  expect(errors.eps).toBeLessThan(1e-4);
  expect(errors.ddimStep).toBeLessThan(1e-4);
  expect(errors.posteriorMean).toBeLessThan(1e-4);
  expect(errors.ddimLoop).toBeLessThan(5e-3);
  return errors;
}

/** Asserts tf.memory() flat over 50 fused training steps and 50 guided DDIM steps of a model of
 *  `channels` on images of `shape` (batch 2); `first` sees the trainer and its batch first. */
export async function checkMemoryFlat(channels: number, shape: [number, number, number],
  first?: (tr: Trainer, x0: tf.Tensor4D) => Promise<void>) {
  const c = { imageChannels: shape[2], channels, classes: 10 };
  const p = initParams(c, 13);
  const schedule = makeSchedule('paper-linear', 300);
  const tr = createTrainer(p, c, schedule, { seed: 1 });
  const x0 = tf.randomUniform([2, ...shape], -1, 1, 'float32', 9) as tf.Tensor4D;
  tf.dispose(fullyFusedTrainStep(tr, x0, [0, 1])); // Adam's moments exist from here
  await first?.(tr, x0);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 50; i++) tf.dispose(fullyFusedTrainStep(tr, x0, [0, 1]));
  expect(tf.memory().numTensors).toBe(before);
  const x = await ddimSample(fusedGuidedEps(p, c, [2, 5], 2), schedule, [2, ...shape],
    { steps: 50, seed: 1 });
  x.dispose();
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([x0, ...Object.values(p), ...Object.values(tr.params), ...Object.values(tr.ema!)]);
}
