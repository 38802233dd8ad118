// DDIM (Song et al. 2021): a non-Markovian reverse process that can skip timesteps.
import * as tf from '@tensorflow/tfjs-core';
import type { Schedule } from './schedule';
import { predictX0 } from './ddpm';
import { randn, rngFromSeed } from './random';
import { runSampler, type EpsFn, type SamplerOptions } from './sampler';

export type Spacing = 'paper' | 'even';

// #region ddim-timesteps
/**
 * The S timesteps DDIM visits, and the step each one goes to.
 * 'paper': range(0, T, T // S) + 1, going to 0 from the first (the paper's code).
 * 'even': round((i + 1) T / S) - 1, ending at T - 1 and going to x_0 itself (-1, alphaBar = 1) from the first.
 */
export function ddimTimesteps(T: number, S: number, spacing: Spacing = 'paper') {
  const max = spacing === 'paper' ? T - 1 : T;
  if (!Number.isInteger(S) || S < 1 || S > max) throw new Error(`DDIM steps must be an integer in 1..${max} for T = ${T} with ${spacing} spacing, received ${S}`);
  const c = Math.floor(T / S);
  const timesteps = Array.from({ length: S }, (_, i) => (spacing === 'paper' ? i * c + 1 : Math.round(((i + 1) * T) / S) - 1));
  return { timesteps, prev: [spacing === 'paper' ? 0 : -1, ...timesteps.slice(0, -1)] };
}
// #endregion

// #region ddim-sigma
/** sigma_t(eta) = eta sqrt((1 - alphaBar_prev) / (1 - alphaBar_t)) sqrt(1 - alphaBar_t / alphaBar_prev)   (DDIM eq. 16) */
export function ddimSigma(s: Schedule, t: number, tPrev: number, eta: number): number {
  const [a, aPrev] = [s.alphaBar[t], tPrev < 0 ? 1 : s.alphaBar[tPrev]];
  return eta * Math.sqrt((1 - aPrev) / (1 - a)) * Math.sqrt(1 - a / aPrev);
}
// #endregion

// #region ddim-step
/** x_prev = sqrt(alphaBar_prev) x_0 + sqrt(1 - alphaBar_prev - sigma^2) eps + sigma z   (DDIM eq. 12) */
export function ddimStep(s: Schedule, xt: tf.Tensor4D, t: number, tPrev: number, eps: tf.Tensor4D, eta = 0, z?: tf.Tensor4D, clip = true,
  recomputeEps = false) {
  return tf.tidy(() => {
    const x0 = predictX0(s, xt, Array<number>(xt.shape[0]).fill(t), eps, clip);
    // the paper keeps the network's eps; recomputing it from the clipped x_0 makes
    // x_t = sqrt(alphaBar_t) x_0 + sqrt(1 - alphaBar_t) eps hold again
    if (recomputeEps) eps = tf.div(tf.sub(xt, tf.mul(Math.sqrt(s.alphaBar[t]), x0)), Math.sqrt(1 - s.alphaBar[t]));
    const [aPrev, sigma] = [tPrev < 0 ? 1 : s.alphaBar[tPrev], ddimSigma(s, t, tPrev, eta)];
    let x = tf.add(tf.mul(Math.sqrt(aPrev), x0), tf.mul(Math.sqrt(Math.max(1 - aPrev - sigma ** 2, 0)), eps));
    if (sigma > 0 && z) x = tf.add(x, tf.mul(sigma, z));
    return { x: x as tf.Tensor4D, x0 };
  });
}
// #endregion

// #region ddim-sample
/** DDIM sampling over S of the T timesteps; eta = 0 is deterministic, eta = 1 is DDPM-like; recomputeEps as in ddimStep. */
export function ddimSample(epsFn: EpsFn, s: Schedule, shape: [number, number, number, number],
  opts: SamplerOptions & { steps: number; eta?: number; spacing?: Spacing; recomputeEps?: boolean }) {
  const { timesteps, prev } = ddimTimesteps(s.T, opts.steps, opts.spacing);
  const eta = opts.eta ?? 0;
  if (!(eta >= 0 && eta <= 1)) throw new Error(`eta must be in [0, 1], received ${eta}`);
  const rng = rngFromSeed(opts.seed);
  const order = timesteps.map((_, i) => timesteps.length - 1 - i); // i = S-1 .. 0
  return runSampler(randn(shape, rng), order.map((i) => timesteps[i]), opts, (x, t, k) =>
    tf.tidy(() => ddimStep(s, x, t, prev[order[k]], epsFn(x, t), eta, randn(shape, rng), opts.clipX0 ?? true, opts.recomputeEps)));
}
// #endregion
