// The reverse process p(x_{t-1} | x_t) and DDPM ancestral sampling (Algorithm 2).
import * as tf from '@tensorflow/tfjs-core';
import { perSample, type Schedule } from './schedule';
import { randn, rngFromSeed } from './random';
import { runSampler, startNoise, type EpsFn, type Shape4D, type SamplerOptions } from './sampler';

/** x_t, a timestep per image, the noise in x_t; and whether to clip x_0, true unless told. */
export interface X0Inputs { xt: tf.Tensor4D; t: number[]; eps: tf.Tensor4D; clip?: boolean }

// #region predict-x0
/** x_0 = sqrt(1/alphaBar_t) x_t - sqrt(1/alphaBar_t - 1) eps, the inverse of qSample;
 *  clipped to [-1, 1] unless `clip` is false. */
export function predictX0(s: Schedule, { xt, t, eps, clip = true }: X0Inputs): tf.Tensor4D {
  return tf.tidy(() => {
    const x0 = tf.sub(tf.mul(perSample(s.sqrtRecipAlphaBar, t), xt),
      tf.mul(perSample(s.sqrtRecipAlphaBarMinusOne, t), eps));
    return (clip ? tf.clipByValue(x0, -1, 1) : x0) as tf.Tensor4D;
  });
}
// #endregion

// #region posterior
/** q(x_{t-1} | x_t, x_0): mean coefX0 x_0 + coefXt x_t, variance betaTilde_t and its clipped log
 *  (DDPM eq. 7). */
export function posterior(s: Schedule, x0: tf.Tensor4D, xt: tf.Tensor4D, t: readonly number[]) {
  const mean = tf.tidy(() => tf.add(tf.mul(perSample(s.posteriorCoefX0, t), x0),
    tf.mul(perSample(s.posteriorCoefXt, t), xt)) as tf.Tensor4D);
  const variance = t.map((i) => s.betaTilde[i]);
  return { mean, variance, logVariance: t.map((i) => s.logBetaTilde[i]) };
}
// #endregion

/** One DDPM step from x_t at t; z, the noise of sigma z (unused at t = 0); clip as predictX0. */
export interface DdpmStepInputs extends Omit<X0Inputs, 't'> { t: number; z: tf.Tensor4D }

// #region ddpm-step
/** x_{t-1} = mu(x_t, x_0) + sqrt(betaTilde_t) z, with no noise at t = 0 (Algorithm 2, line 4). */
export function ddpmStep(s: Schedule, { xt, t, eps, z, clip = true }: DdpmStepInputs) {
  return tf.tidy(() => {
    const ts = Array<number>(xt.shape[0]).fill(t);
    const x0 = predictX0(s, { xt, t: ts, eps, clip });
    const { mean } = posterior(s, x0, xt, ts);
    const sigma = t > 0 ? Math.exp(0.5 * s.logBetaTilde[t]) : 0;
    return { x: tf.add(mean, tf.mul(sigma, z)) as tf.Tensor4D, x0 };
  });
}
// #endregion

// #region ddpm-sample
/** Algorithm 2: from x_T ~ N(0, I) (or the given xT) take all T steps t = T-1, ..., 0.
 *  The seed draws x_T first, then one z per step. */
export function ddpmSample(epsFn: EpsFn, s: Schedule, shape: Shape4D, opts: SamplerOptions) {
  const rng = rngFromSeed(opts.seed);
  const ts = Array.from({ length: s.T }, (_, i) => s.T - 1 - i);
  return runSampler(startNoise(shape, rng, opts.xT), ts, opts, (xt, t) => tf.tidy(() =>
    ddpmStep(s, { xt, t, eps: epsFn(xt, t), z: randn(shape, rng), clip: opts.clipX0 })));
}
// #endregion
