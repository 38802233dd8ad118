// The reverse process p(x_{t-1} | x_t) and DDPM ancestral sampling (Algorithm 2).
import * as tf from '@tensorflow/tfjs-core';
import { perSample, type Schedule } from './schedule';
import { randn, rngFromSeed } from './random';
import { runSampler, type SamplerOptions, type EpsFn } from './sampler';

// #region predict-x0
/** x_0 = sqrt(1/alphaBar_t) x_t - sqrt(1/alphaBar_t - 1) eps, the inverse of q_sample; clipped to [-1, 1] if asked. */
export function predictX0(s: Schedule, xt: tf.Tensor4D, t: number[], eps: tf.Tensor4D, clip = true): tf.Tensor4D {
  return tf.tidy(() => {
    const x0 = tf.sub(tf.mul(perSample(s.sqrtRecipAlphaBar, t), xt), tf.mul(perSample(s.sqrtRecipAlphaBarMinusOne, t), eps));
    return (clip ? tf.clipByValue(x0, -1, 1) : x0) as tf.Tensor4D;
  });
}
// #endregion

// #region posterior
/** q(x_{t-1} | x_t, x_0): mean coefX0 x_0 + coefXt x_t, variance betaTilde_t and its clipped log (DDPM eq. 7). */
export function posterior(s: Schedule, x0: tf.Tensor4D, xt: tf.Tensor4D, t: number[]) {
  const mean = tf.tidy(() => tf.add(tf.mul(perSample(s.posteriorCoefX0, t), x0), tf.mul(perSample(s.posteriorCoefXt, t), xt)));
  return { mean: mean as tf.Tensor4D, variance: t.map((ti) => s.betaTilde[ti]), logVariance: t.map((ti) => s.logBetaTilde[ti]) };
}
// #endregion

// #region ddpm-step
/** x_{t-1} = mu(x_t, x_0) + sqrt(betaTilde_t) z, with no noise at t = 0 (Algorithm 2, line 4). */
export function ddpmStep(s: Schedule, xt: tf.Tensor4D, t: number, eps: tf.Tensor4D, z: tf.Tensor4D, clip = true) {
  return tf.tidy(() => {
    const ts = Array<number>(xt.shape[0]).fill(t);
    const x0 = predictX0(s, xt, ts, eps, clip);
    const { mean } = posterior(s, x0, xt, ts);
    const sigma = t > 0 ? Math.exp(0.5 * s.logBetaTilde[t]) : 0;
    return { x: tf.add(mean, tf.mul(sigma, z)) as tf.Tensor4D, x0 };
  });
}
// #endregion

// #region ddpm-sample
/** Algorithm 2: start from x_T ~ N(0, I) and take all T steps t = T-1, ..., 0. */
export function ddpmSample(epsFn: EpsFn, s: Schedule, shape: [number, number, number, number], opts: SamplerOptions) {
  const rng = rngFromSeed(opts.seed);
  const ts = Array.from({ length: s.T }, (_, i) => s.T - 1 - i);
  return runSampler(randn(shape, rng), ts, opts, (x, t) =>
    tf.tidy(() => ddpmStep(s, x, t, epsFn(x, t), randn(shape, rng), opts.clipX0 ?? true)));
}
// #endregion
