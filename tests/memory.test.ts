// tfjs discipline: every public function returns only what the caller owns and leaks nothing inside.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import * as D from '../src/lib/diffusion';
import { backend } from './helpers/backend';

beforeAll(() => backend('wasm'));

/** Runs f, disposes what it returns, and reports how many tensors were left behind. */
async function leaked(f: () => unknown): Promise<number> {
  const before = tf.memory().numTensors;
  const out = await f();
  tf.dispose(out as tf.TensorContainer);
  return tf.memory().numTensors - before;
}

describe('no public function leaks tensors', () => {
  const config: D.UNetConfig = { imageChannels: 1, channels: 32, classes: 10 };
  const s = D.makeSchedule('paper-linear', 40);
  let p: D.Params;
  let x: tf.Tensor4D;
  beforeAll(() => {
    p = D.initParams(config, 1);
    x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
  });

  const cases: [string, () => unknown][] = [
    ['qSample', () => D.qSample(s, x, [1, 2], x)],
    ['epsTheta', () => D.epsTheta(p, config, x, [1, 2], [3, null])],
    ['timestepEmbedding', () => D.timestepEmbedding([1, 2], 32)],
    ['groupNorm', () => {
      const wide = tf.tile(x, [1, 1, 1, 32]) as tf.Tensor4D;
      const out = D.groupNorm(wide);
      wide.dispose();
      return out;
    }],
    ['upsample2x', () => D.upsample2x(x)],
    ['predictX0', () => D.predictX0(s, { xt: x, t: [1, 2], eps: x })],
    ['posterior', () => D.posterior(s, x, x, [1, 2]).mean],
    ['ddpmStep', () => D.ddpmStep(s, { xt: x, t: 3, eps: x, z: x })],
    ['ddimStep', () => D.ddimStep(s, { xt: x, t: 30, tPrev: 10, eps: x, eta: 0.5, z: x })],
    ['guide', () => D.guide(x, x, 2)],
    ['guidedEps', () => D.guidedEps(p, config, [1, 2], 3)(x, 5)],
    ['randn', () => D.randn([2, 3], D.rngFromSeed(1))],
    ['ddimSample', () => D.ddimSample(D.guidedEps(p, config, [1, 2], 2), s, [2, 28, 28, 1], { steps: 2, seed: 1 })],
    ['ddpmSample', () => D.ddpmSample(D.plainEps(p, config), D.makeSchedule('cosine', 3),
      [1, 28, 28, 1], { seed: 1 })],
    ['saveUNet + loadUNet', async () => D.loadUNet(await D.saveUNet(p)).params],
    ['initParams', () => D.initParams(config, 3)],
  ];
  for (const [name, f] of cases) it(name, async () => expect(await leaked(f)).toBe(0));

  it('createTrainer holds only its variables (weights, EMA, Adam), which dispose cleanly', () => {
    const before = tf.memory().numTensors;
    const trainer = D.createTrainer(p, config, s, { seed: 1 });
    // weights, EMA, and Adam's two moments per weight (beta^n are numbers)
    expect(tf.memory().numTensors - before).toBe(4 * Object.keys(p).length);
    tf.dispose([...Object.values(trainer.params), ...Object.values(trainer.ema!)]);
    D.disposeAdam(trainer.adam);
    expect(tf.memory().numTensors).toBe(before);
  });
  it('a trainer updates its own copy: the weights it was made from stay as they were', async () => {
    const before = await p['up_block4.bias'].data();
    const trainer = D.createTrainer(p, config, s, { seed: 2 });
    tf.dispose(D.trainStep(trainer, x, [1, 2]));
    expect(Array.from(await p['up_block4.bias'].data())).toEqual(Array.from(before));
    expect(Array.from(await trainer.params['up_block4.bias'].data())).not.toEqual(Array.from(before));
  });
  it('trainStep: the count stays flat from the first step', async () => {
    const trainer = D.createTrainer(p, config, s, { seed: 1 });
    // Adam's moments exist from createTrainer on
    expect(await leaked(() => D.trainStep(trainer, x, [1, 2]))).toBe(0);
    for (let i = 0; i < 3; i++) expect(await leaked(() => D.trainStep(trainer, x, [1, 2]))).toBe(0);
  });
});
