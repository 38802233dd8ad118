// The forward (noising) process.
import * as tf from '@tensorflow/tfjs-core';
import { perSample, type Schedule } from './schedule';

// #region q-sample
/** x_t = sqrt(alphaBar_t) x_0 + sqrt(1 - alphaBar_t) eps, eps ~ N(0, I)   (DDPM eq. 4) */
export function qSample(s: Schedule, x0: tf.Tensor4D, t: number[], eps: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.add(tf.mul(perSample(s.sqrtAlphaBar, t), x0),
    tf.mul(perSample(s.sqrtOneMinusAlphaBar, t), eps)));
}
// #endregion
