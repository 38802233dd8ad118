// Classifier-free guidance (Ho & Salimans 2022).
import * as tf from '@tensorflow/tfjs-core';
import { epsTheta, type Labels, type Params, type UNetConfig } from './unet';
import type { EpsFn } from './sampler';

// #region guide
/**
 * eps = eps_u + w (eps_c - eps_u): w = 0 is unconditional, w = 1 conditional, w > 1 guided.
 * Ho & Salimans write (1 + w') eps_c - w' eps_u; that is this formula with w = 1 + w'.
 */
export function guide(epsU: tf.Tensor4D, epsC: tf.Tensor4D, w: number): tf.Tensor4D {
  return tf.tidy(() => tf.add(epsU, tf.mul(w, tf.sub(epsC, epsU))));
}
// #endregion

// #region guided-eps
/** eps_theta for the samplers; both branches run as one batch of 2B. Without labels, plain eps_theta. */
export function guidedEps(p: Params, c: UNetConfig, labels?: Labels, w = 1): EpsFn {
  return (xt, t) => tf.tidy(() => {
    const ts = Array<number>(xt.shape[0]).fill(t);
    if (!labels || w === 1) return epsTheta(p, c, xt, ts, labels);
    const both = epsTheta(p, c, tf.concat([xt, xt]), [...ts, ...ts], [...labels, ...labels.map(() => null)]);
    const [epsC, epsU] = tf.split(both, 2) as [tf.Tensor4D, tf.Tensor4D];
    return guide(epsU, epsC, w);
  });
}
// #endregion
