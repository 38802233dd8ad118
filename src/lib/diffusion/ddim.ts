// DDIM (Song et al. 2021): a non-Markovian reverse process that can skip timesteps.
import * as tf from '@tensorflow/tfjs-core';
import type { Schedule } from './schedule';
import { predictX0, type X0Inputs } from './ddpm';
import { randn, rngFromSeed } from './random';
import { runSampler, startNoise, type EpsFn, type Shape4D, type SamplerOptions } from './sampler';

export type Spacing = 'paper' | 'even';

// #region ddim-timesteps
/**
 * The S timesteps DDIM visits, and the step each one goes to.
 * 'paper': range(0, T, T // S) + 1, going to 0 from the first (the paper's code).
 * 'even': round((i + 1) T / S) - 1, ending at T - 1; the first goes to x_0 itself (-1, alphaBar 1).
 */
export function ddimTimesteps(T: number, S: number, spacing: Spacing = 'paper') {
  const max = spacing === 'paper' ? T - 1 : T;
  if (!Number.isInteger(S) || S < 1 || S > max) throw new Error(
    `DDIM steps must be an integer in 1..${max} for T = ${T} (${spacing} spacing), received ${S}`);
  const c = Math.floor(T / S);
  const timesteps = Array.from({ length: S }, (_, i) =>
    (spacing === 'paper' ? i * c + 1 : Math.round(((i + 1) * T) / S) - 1));
  return { timesteps, prev: [spacing === 'paper' ? 0 : -1, ...timesteps.slice(0, -1)] };
}
// #endregion

// #region ddim-sigma
/** sigma_t(eta) = eta sqrt((1 - alphaBar_prev) / (1 - alphaBar_t))
 *                     sqrt(1 - alphaBar_t / alphaBar_prev)   (DDIM eq. 16) */
export function ddimSigma(s: Schedule, t: number, tPrev: number, eta: number): number {
  const [a, aPrev] = [s.alphaBar[t], tPrev < 0 ? 1 : s.alphaBar[tPrev]];
  return eta * Math.sqrt((1 - aPrev) / (1 - a)) * Math.sqrt(1 - a / aPrev);
}
// #endregion

/**
 * One DDIM step from x_t at t to tPrev (-1: to x_0 itself). eta: 0 unless told (deterministic);
 * z: the noise of sigma z, none at eta = 0; clip: clip x_0 to [-1, 1], true unless told;
 * recomputeEps: after clipping, use the eps that x_t and x_0 imply, false unless told.
 */
export interface DdimStepInputs extends Omit<X0Inputs, 't'> {
  t: number; tPrev: number; eta?: number; z?: tf.Tensor4D; recomputeEps?: boolean;
}

// #region ddim-step
/** x_prev = sqrt(alphaBar_prev) x_0 + sqrt(1 - alphaBar_prev - sigma^2) eps + sigma z
 *  (DDIM eq. 12) */
export function ddimStep(s: Schedule, { xt, t, tPrev, eps, eta = 0, z, clip = true,
  recomputeEps = false }: DdimStepInputs) {
  return tf.tidy(() => {
    const x0 = predictX0(s, { xt, t: Array<number>(xt.shape[0]).fill(t), eps, clip });
    const [a, aPrev] = [s.alphaBar[t], tPrev < 0 ? 1 : s.alphaBar[tPrev]];
    // the paper keeps the network's eps; recomputeEps takes the one x_t and the clipped x_0 imply
    if (recomputeEps) eps = tf.div(tf.sub(xt, tf.mul(Math.sqrt(a), x0)), Math.sqrt(1 - a));
    const sigma = ddimSigma(s, t, tPrev, eta);
    let x = tf.add(tf.mul(Math.sqrt(aPrev), x0),
      tf.mul(Math.sqrt(Math.max(1 - aPrev - sigma ** 2, 0)), eps));
    if (sigma > 0 && z) x = tf.add(x, tf.mul(sigma, z));
    return { x: x as tf.Tensor4D, x0 };
  });
}
// #endregion

export type DdimOptions = SamplerOptions &
  { steps: number; eta?: number; spacing?: Spacing; recomputeEps?: boolean }; // as in ddimStep

// #region ddim-sample
/** DDIM over S of the T timesteps from x_T ~ N(0, I) (or the given xT); eta = 0 is
 *  deterministic, eta = 1 DDPM-like. The seed draws x_T first, then one z per step. */
export function ddimSample(epsFn: EpsFn, s: Schedule, shape: Shape4D, opts: DdimOptions) {
  const { timesteps, prev } = ddimTimesteps(s.T, opts.steps, opts.spacing);
  const { eta = 0, clipX0: clip, recomputeEps } = opts;
  if (!(eta >= 0 && eta <= 1)) throw new Error(`eta must be in [0, 1], received ${eta}`);
  const rng = rngFromSeed(opts.seed);
  const [ts, tPrevs] = [[...timesteps].reverse(), [...prev].reverse()]; // i = S-1 .. 0
  return runSampler(startNoise(shape, rng, opts.xT), ts, opts, (xt, t, k) => tf.tidy(() => {
    const z = randn<tf.Rank.R4>(shape, rng);
    return ddimStep(s, { xt, t, tPrev: tPrevs[k], eps: epsFn(xt, t), z, eta, clip, recomputeEps });
  }));
}
// #endregion
