// Each equation of the library on tensors (wasm backend), at non-default settings.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ddimSample, ddimStep, ddpmSample, ddpmStep, epsTheta, guide, guidedEps, initParams, makeSchedule,
  plainEps, posterior, predictX0, qSample, randn, rngFromSeed, timestepEmbedding, upsample2x,
  groupNorm, type UNetConfig,
} from '../src/lib/diffusion';
import { backend, maxAbsDiff } from './helpers/backend';

beforeAll(() => backend('wasm'));

const data = async (t: tf.Tensor) => Array.from(await t.data());

describe('forward process q(x_t | x_0)', () => {
  it('empirical mean and variance match sqrt(alphaBar) x0 and 1 - alphaBar (cosine, T = 50, t = 31)', async () => {
    const s = makeSchedule('cosine', 50);
    const n = 40000;
    const x0 = tf.fill([n, 1, 1, 1], 0.7) as tf.Tensor4D;
    const eps = randn<tf.Rank.R4>([n, 1, 1, 1], rngFromSeed(3));
    const xt = qSample(s, x0, Array(n).fill(31), eps);
    const { mean, variance } = tf.moments(xt);
    const [m, v] = [(await mean.data())[0], (await variance.data())[0]];
    expect(m).toBeCloseTo(Math.sqrt(s.alphaBar[31]) * 0.7, 2);
    expect(Math.abs(v / (1 - s.alphaBar[31]) - 1)).toBeLessThan(0.03);
    tf.dispose([x0, eps, xt, mean, variance]);
  });
  it('uses each batch item\'s own timestep', async () => {
    const s = makeSchedule('paper-linear', 40);
    const x0 = tf.ones([2, 4, 4, 1]) as tf.Tensor4D;
    const eps = tf.zeros([2, 4, 4, 1]) as tf.Tensor4D;
    const xt = await data(qSample(s, x0, [0, 39], eps));
    expect(xt[0]).toBeCloseTo(Math.sqrt(s.alphaBar[0]), 6);
    expect(xt[16]).toBeCloseTo(Math.sqrt(s.alphaBar[39]), 6);
  });
  it('rejects a timestep outside 0..T-1', () => {
    const s = makeSchedule('ddpm-linear', 20);
    const x = tf.zeros([1, 4, 4, 1]) as tf.Tensor4D;
    expect(() => qSample(s, x, [20], x)).toThrow(/timestep 20 is out of range: expected an integer in 0..19/);
    expect(() => qSample(s, x, [1.5], x)).toThrow(/timestep 1.5 is out of range/);
  });
});

describe('reverse process', () => {
  const s = makeSchedule('ddpm-linear', 40);
  it('predictX0 inverts qSample when given the true noise (unclipped)', async () => {
    const x0 = tf.randomUniform([3, 4, 4, 1], -1, 1, 'float32', 1) as tf.Tensor4D;
    const eps = randn<tf.Rank.R4>([3, 4, 4, 1], rngFromSeed(9));
    const t = [0, 17, 39];
    const back = predictX0(s, { xt: qSample(s, x0, t, eps), t, eps, clip: false });
    expect(maxAbsDiff(await data(back), await data(x0))).toBeLessThan(1e-4);
  });
  it('predictX0 clips to [-1, 1] when asked', async () => {
    const xt = tf.fill([1, 4, 4, 1], 3) as tf.Tensor4D;
    const eps = tf.zeros([1, 4, 4, 1]) as tf.Tensor4D;
    expect(Math.max(...(await data(predictX0(s, { xt, t: [5], eps, clip: true }))))).toBe(1);
    const unclipped = predictX0(s, { xt, t: [5], eps, clip: false });
    expect(Math.max(...(await data(unclipped)))).toBeGreaterThan(3);
  });
  it('posterior mean is coefX0 x0 + coefXt xt; variance is betaTilde', async () => {
    const x0 = tf.fill([1, 2, 2, 1], 0.5) as tf.Tensor4D;
    const xt = tf.fill([1, 2, 2, 1], -0.25) as tf.Tensor4D;
    const { mean, variance, logVariance } = posterior(s, x0, xt, [12]);
    expect((await data(mean))[0]).toBeCloseTo(0.5 * s.posteriorCoefX0[12] - 0.25 * s.posteriorCoefXt[12], 6);
    expect(variance[0]).toBe(s.betaTilde[12]);
    expect(logVariance[0]).toBe(s.logBetaTilde[12]);
  });
  it('a DDPM step adds sqrt(betaTilde) z except at t = 0', async () => {
    const xt = tf.fill([1, 2, 2, 1], 0.3) as tf.Tensor4D;
    const eps = tf.fill([1, 2, 2, 1], 0.1) as tf.Tensor4D;
    const z = tf.ones([1, 2, 2, 1]) as tf.Tensor4D;
    const zero = tf.zeros([1, 2, 2, 1]) as tf.Tensor4D;
    for (const t of [0, 23]) {
      const withZ = await data(ddpmStep(s, { xt, t, eps, z }).x);
      const noZ = await data(ddpmStep(s, { xt, t, eps, z: zero }).x);
      expect(withZ[0] - noZ[0]).toBeCloseTo(t === 0 ? 0 : Math.sqrt(s.betaTilde[t]), 5);
    }
  });
  it('a DDIM step with eta = 1 and tPrev = t - 1 has the DDPM step\'s noise scale', async () => {
    const xt = tf.fill([1, 2, 2, 1], 0.3) as tf.Tensor4D;
    const eps = tf.fill([1, 2, 2, 1], 0.1) as tf.Tensor4D;
    const z = tf.ones([1, 2, 2, 1]) as tf.Tensor4D;
    const zero = tf.zeros([1, 2, 2, 1]) as tf.Tensor4D;
    const step = (noise: tf.Tensor4D) =>
      ddimStep(s, { xt, t: 23, tPrev: 22, eps, eta: 1, z: noise }).x;
    const d = (await data(step(z)))[0] - (await data(step(zero)))[0];
    expect(d).toBeCloseTo(Math.sqrt(s.betaTilde[23]), 5);
  });
  it('DDIM with eta = 0 maps x_t at the true noise exactly back along the noise direction', async () => {
    // x_t = sqrt(a_t) x0 + sqrt(1-a_t) eps  ->  x_prev = sqrt(a_prev) x0 + sqrt(1-a_prev) eps
    const x0 = tf.fill([1, 2, 2, 1], 0.4) as tf.Tensor4D;
    const eps = tf.fill([1, 2, 2, 1], -0.7) as tf.Tensor4D;
    const xt = qSample(s, x0, [30], eps);
    const got = (await data(ddimStep(s, { xt, t: 30, tPrev: 10, eps, eta: 0 }).x))[0];
    expect(got).toBeCloseTo(Math.sqrt(s.alphaBar[10]) * 0.4 - Math.sqrt(1 - s.alphaBar[10]) * 0.7, 5);
  });
  it('with recomputeEps, DDIM moves along the noise that the clipped x_0 implies; without clipping that is the network\'s eps', async () => {
    // x_t from x0 = 1.8 (outside [-1, 1]): x0_hat clips to 1, and the implied noise is (x_t - sqrt(a_t)) / sqrt(1 - a_t)
    const eps = tf.fill([1, 2, 2, 1], 0.2) as tf.Tensor4D;
    const xt = qSample(s, tf.fill([1, 2, 2, 1], 1.8) as tf.Tensor4D, [30], eps);
    const implied = ((await data(xt))[0] - Math.sqrt(s.alphaBar[30])) / Math.sqrt(1 - s.alphaBar[30]);
    const [a10, expectPaper] = [s.alphaBar[10], Math.sqrt(s.alphaBar[10]) + Math.sqrt(1 - s.alphaBar[10]) * 0.2];
    const at30 = { xt, t: 30, tPrev: 10, eps, eta: 0 };
    expect((await data(ddimStep(s, at30).x))[0]).toBeCloseTo(expectPaper, 5);
    const recomputedX = ddimStep(s, { ...at30, clip: true, recomputeEps: true }).x;
    const expectRecomputed = Math.sqrt(a10) + Math.sqrt(1 - a10) * implied;
    expect((await data(recomputedX))[0]).toBeCloseTo(expectRecomputed, 5);
    expect(implied).toBeGreaterThan(0.5); // so the two differ
    const inside = qSample(s, tf.fill([1, 2, 2, 1], 0.4) as tf.Tensor4D, [30], eps);
    const step = { xt: inside, t: 30, tPrev: 10, eps, eta: 0 };
    const paper = ddimStep(s, step);
    const recomputed = ddimStep(s, { ...step, clip: true, recomputeEps: true });
    expect((await data(recomputed.x))[0]).toBeCloseTo((await data(paper.x))[0], 5);
  });
});

describe('classifier-free guidance', () => {
  const config: UNetConfig = { imageChannels: 1, channels: 32, classes: 10 };
  let params: ReturnType<typeof initParams>;
  beforeAll(() => { params = initParams(config, 4); });
  it('w = 0 is the unconditional and w = 1 the conditional prediction', async () => {
    const u = tf.randomNormal([2, 4, 4, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
    const c = tf.randomNormal([2, 4, 4, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
    expect(maxAbsDiff(await data(guide(u, c, 0)), await data(u))).toBeLessThan(1e-6);
    expect(maxAbsDiff(await data(guide(u, c, 1)), await data(c))).toBeLessThan(1e-6);
    const g = await data(guide(u, c, 3.5));
    const [ud, cd] = [await data(u), await data(c)];
    expect(g[5]).toBeCloseTo(ud[5] + 3.5 * (cd[5] - ud[5]), 5);
  });
  it('the batched guided pass equals two separate passes', async () => {
    const xt = randn<tf.Rank.R4>([2, 28, 28, 1], rngFromSeed(5));
    const y = [3, 8];
    const epsC = epsTheta(params, config, xt, [40, 40], y);
    const epsU = epsTheta(params, config, xt, [40, 40]);
    const want = await data(guide(epsU, epsC, 2.5));
    const got = await data(guidedEps(params, config, y, 2.5)(xt, 40));
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
  });
  it('plainEps is the network once; guidedEps at w = 1 or without labels is plainEps', async () => {
    const xt = randn<tf.Rank.R4>([2, 28, 28, 1], rngFromSeed(7));
    const y = [4, 9];
    const direct = await data(epsTheta(params, config, xt, [33, 33], y));
    expect(maxAbsDiff(await data(plainEps(params, config, y)(xt, 33)), direct)).toBe(0);
    expect(maxAbsDiff(await data(guidedEps(params, config, y, 1)(xt, 33)), direct)).toBe(0);
    const none = await data(epsTheta(params, config, xt, [33, 33]));
    expect(maxAbsDiff(await data(guidedEps(params, config, undefined, 3)(xt, 33)), none)).toBe(0);
  });
  it('a null label leaves the class embedding out for that image only', async () => {
    const xt = randn<tf.Rank.R4>([2, 28, 28, 1], rngFromSeed(6));
    const mixed = await data(epsTheta(params, config, xt, [7, 7], [null, 2]));
    const none = await data(epsTheta(params, config, xt, [7, 7]));
    const both = await data(epsTheta(params, config, xt, [7, 7], [2, 2]));
    expect(maxAbsDiff(mixed.slice(0, 784), none.slice(0, 784))).toBeLessThan(1e-6);
    expect(maxAbsDiff(mixed.slice(784), both.slice(784))).toBeLessThan(1e-6);
    expect(maxAbsDiff(mixed.slice(784), none.slice(784))).toBeGreaterThan(1e-4);
  });
  it('labels out of range or on a model without classes are rejected with the expected range', () => {
    const xt = tf.zeros([1, 28, 28, 1]) as tf.Tensor4D;
    expect(() => epsTheta(params, config, xt, [1], [10])).toThrow(/label 10 is out of range: expected an integer in 0..9/);
    const plain = { ...config, classes: null };
    expect(() => epsTheta(initParams(plain, 1), plain, xt, [1], [1])).toThrow(/no class embedding/);
  });
});

describe('network pieces', () => {
  it('timestep embedding is [cos(t f), sin(t f)] with f_i = 10000^(-i/(dim/2))', async () => {
    const e = await data(timestepEmbedding([0, 123], 64));
    expect(e.slice(0, 32).every((v) => v === 1)).toBe(true);
    const f5 = 10000 ** (-5 / 32);
    expect(e[64 + 5]).toBeCloseTo(Math.cos(123 * f5), 4);
    expect(e[64 + 32 + 5]).toBeCloseTo(Math.sin(123 * f5), 4);
  });
  it('nearest 2x upsampling copies each pixel into a 2x2 block', async () => {
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]);
    const up = await data(upsample2x(x));
    // channel 0 is 1 2 / 5 7 in [H, W] order: pixels (0,0)=1,(0,1)=3,(1,0)=5,(1,1)=7
    const ch0 = up.filter((_, i) => i % 2 === 0);
    expect(ch0).toEqual([1, 1, 3, 3, 1, 1, 3, 3, 5, 5, 7, 7, 5, 5, 7, 7]);
  });
  it('GroupNorm normalises each group of channels over H, W to mean 0, variance 1', async () => {
    const x = tf.randomNormal([2, 5, 5, 64], 3, 2, 'float32', 8) as tf.Tensor4D;
    const g = tf.reshape(groupNorm(x), [2, 25, 32, 2]);
    const { mean, variance } = tf.moments(g, [1, 3]);
    expect(Math.max(...(await data(mean)).map(Math.abs))).toBeLessThan(1e-4);
    expect(Math.max(...(await data(variance)).map((v) => Math.abs(v - 1)))).toBeLessThan(1e-3);
  });
});

describe('samplers', () => {
  const config: UNetConfig = { imageChannels: 1, channels: 32, classes: 10 };
  const s = makeSchedule('cosine', 12);
  let params: ReturnType<typeof initParams>;
  beforeAll(() => { params = initParams(config, 11); });
  const eps = () => guidedEps(params, config, [1, 2], 2);

  it('are reproducible from the seed, and a different seed gives different samples', async () => {
    const a = await data(await ddimSample(eps(), s, [2, 28, 28, 1], { steps: 3, eta: 0.5, seed: 42 }));
    const b = await data(await ddimSample(eps(), s, [2, 28, 28, 1], { steps: 3, eta: 0.5, seed: 42 }));
    const c = await data(await ddimSample(eps(), s, [2, 28, 28, 1], { steps: 3, eta: 0.5, seed: 43 }));
    expect(a).toEqual(b);
    expect(maxAbsDiff(a, c)).toBeGreaterThan(0.01);
  });
  it('report every step with x_t and the x0 estimate, and leak no tensors', async () => {
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    const x = await ddpmSample(eps(), s, [2, 28, 28, 1], {
      seed: 1,
      onStep: async ({ step, steps, t, xt, x0 }) => {
        expect(steps).toBe(12);
        expect(xt.shape).toEqual([2, 28, 28, 1]);
        expect(Math.max(...(await x0.data()))).toBeLessThanOrEqual(1);
        seen.push(t);
        expect(step).toBe(seen.length);
      },
    });
    expect(seen).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    x.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
  it('stop on an AbortSignal with an AbortError and free their tensors', async () => {
    const before = tf.memory().numTensors;
    const ctl = new AbortController();
    const run = ddimSample(eps(), s, [2, 28, 28, 1], {
      steps: 6, seed: 1, signal: ctl.signal, onStep: ({ step }) => { if (step === 2) ctl.abort(); },
    });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect(tf.memory().numTensors).toBe(before);
  });
  it('start from a given xT, which the caller keeps; the z after it are the seed\'s', async () => {
    const shape: [number, number, number, number] = [2, 28, 28, 1];
    const xT = randn<tf.Rank.R4>(shape, rngFromSeed(42)); // the seed's first draw, as samplers do
    const opts = { steps: 3, eta: 0.5, seed: 42 };
    const drawn = await data(await ddimSample(eps(), s, shape, opts));
    const given = await data(await ddimSample(eps(), s, shape, { ...opts, xT }));
    expect(given).toEqual(drawn);
    const ddpmDrawn = await data(await ddpmSample(eps(), s, shape, { seed: 42 }));
    expect(await data(await ddpmSample(eps(), s, shape, { seed: 42, xT }))).toEqual(ddpmDrawn);
    expect(xT.isDisposed).toBe(false);
    const zeros = tf.zerosLike(xT);
    const other = await data(await ddimSample(eps(), s, shape, { ...opts, xT: zeros }));
    expect(maxAbsDiff(other, drawn)).toBeGreaterThan(0.01);
    expect(() => ddimSample(eps(), s, [1, 28, 28, 1], { steps: 3, seed: 1, xT }))
      .toThrow(/xT has shape \[2,28,28,1\]; expected the sample shape \[1,28,28,1\]/);
  });
  it('reject an eta outside [0, 1]', () => {
    expect(() => ddimSample(eps(), s, [1, 28, 28, 1], { steps: 3, eta: 1.5, seed: 1 })).toThrow(/eta must be in \[0, 1\], received 1.5/);
  });
});
