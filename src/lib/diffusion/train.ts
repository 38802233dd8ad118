// Training (DDPM Algorithm 1), with label dropout for classifier-free guidance and an EMA of the
// weights.
import * as tf from '@tensorflow/tfjs-core';
import { adamStep, createAdam, type Adam } from './adam';
import { qSample } from './forward';
import { randint, randn, rngFromSeed } from './random';
import type { Schedule } from './schedule';
import { epsTheta, type Labels, type Params, type UNetConfig } from './unet';

export interface TrainOptions {
  seed: number;
  lr?: number; // Adam learning rate, 5e-4 as the paper
  labelDropout?: number; // probability of training a label as "no label", 0.1 unless told
  emaDecay?: number | null; // null: no EMA
}

export interface Trainer {
  config: UNetConfig; schedule: Schedule; options: Required<TrainOptions>;
  params: Record<string, tf.Variable>; ema: Record<string, tf.Variable> | null; // EMA: averaged
  adam: Adam; step: number;
}

/** Wraps copies of `params` in variables with Adam; `step` > 0 resumes a run's random stream. */
export function createTrainer(params: Params, config: UNetConfig, schedule: Schedule,
  options: TrainOptions, step = 0): Trainer {
  const opts = { lr: 5e-4, labelDropout: 0.1, emaDecay: 0.999, ...options };
  const copy = (trainable: boolean) =>
    Object.fromEntries(Object.entries(params).map(([n, t]) => [n, tf.variable(t, trainable)]));
  const [weights, ema] = [copy(true), opts.emaDecay === null ? null : copy(false)];
  const adam = createAdam(weights, { lr: opts.lr });
  return { config, schedule, options: opts, params: weights, ema, adam, step };
}

// #region simple-loss
/** L_simple = || eps - eps_theta(x_t, t, y) ||^2,
 *  x_t = sqrt(alphaBar_t) x_0 + sqrt(1 - alphaBar_t) eps   (DDPM eq. 14) */
export function simpleLoss(p: Params, c: UNetConfig, s: Schedule, x0: tf.Tensor4D, t: number[],
  eps: tf.Tensor4D, y?: Labels): tf.Scalar {
  return tf.tidy(() =>
    tf.mean(tf.squaredDifference(eps, epsTheta(p, c, qSample(s, x0, t, eps), t, y))));
}
// #endregion

// #region train-step
/** One step's draws (Algorithm 1): t ~ U{0..T-1}, eps ~ N(0, I), each label dropped w.p. p. */
export function stepDraws(tr: Trainer, shape: [number, number, number, number], labels?: number[]) {
  const rng = rngFromSeed((tr.options.seed ^ Math.imul(tr.step + 1, 0x9e3779b1)) >>> 0);
  const t = randint(rng, tr.schedule.T, shape[0]);
  const y = labels?.map((l) => (rng() / 2 ** 32 < tr.options.labelDropout ? null : l));
  return { t, y, eps: randn<tf.Rank.R4>(shape, rng) };
}
/** One step of Algorithm 1 on a batch: the gradient of L_simple at those draws, applied. */
export function trainStep(tr: Trainer, x0: tf.Tensor4D, labels?: number[]): tf.Scalar {
  const { t, y, eps } = stepDraws(tr, x0.shape, labels);
  const loss = () => simpleLoss(tr.params, tr.config, tr.schedule, x0, t, eps, y);
  const { value, grads } = tf.variableGrads(loss, Object.values(tr.params));
  eps.dispose();
  applyGradients(tr, grads);
  return value;
}
// #endregion

// #region ema
/** One Adam step on `grads` (this batch's or the shards' mean, keyed by tf.Variable name as from
 *  tf.variableGrads), then the EMA. A weight the batch did not use counts as gradient 0. */
export function applyGradients(tr: Trainer, grads: tf.NamedTensorMap) {
  const byName = Object.fromEntries(Object.entries(tr.params).map(([n, v]) => [n, grads[v.name]]));
  adamStep(tr.adam, tr.params, byName);
  tf.dispose(Object.values(grads));
  const d = Math.min(tr.options.emaDecay!, (1 + tr.step) / (10 + tr.step));
  if (tr.ema) updateEma(tr.ema, tr.params, d);
  tr.step += 1;
}

/** theta_ema <- d theta_ema + (1 - d) theta, with d warming up as (1 + n) / (10 + n) early on. */
function updateEma(ema: Trainer['params'], params: Trainer['params'], d: number) {
  tf.tidy(() => Object.entries(ema).forEach(([n, e]) =>
    e.assign(tf.add(tf.mul(d, e), tf.mul(1 - d, params[n])))));
}
// #endregion
