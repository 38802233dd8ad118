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
/** eps_theta(x_t, t, y) for the samplers: the network once; unconditional without labels. */
export function plainEps(p: Params, c: UNetConfig, labels?: Labels): EpsFn {
  return (xt, t) => epsTheta(p, c, xt, Array<number>(xt.shape[0]).fill(t), labels);
}

/** Guided eps for the samplers, both branches in one batch of 2B; plainEps if w = 1 or no labels */
export function guidedEps(p: Params, c: UNetConfig, labels: Labels | undefined, w: number): EpsFn {
  if (!labels || w === 1) return plainEps(p, c, labels);
  const both = [...labels, ...labels.map(() => null)]; // y, then no label
  return (xt, t) => tf.tidy(() => {
    const eps = epsTheta(p, c, tf.concat([xt, xt]), Array<number>(both.length).fill(t), both);
    const [epsC, epsU] = tf.split(eps, 2) as [tf.Tensor4D, tf.Tensor4D];
    return guide(epsU, epsC, w);
  });
}
// #endregion
