// Noise schedules and every quantity derived from them, in float64.
// Timesteps are 0-based: t = 0 .. T-1, as in the paper's code.
import * as tf from '@tensorflow/tfjs-core';

export type ScheduleKind = 'paper-linear' | 'ddpm-linear' | 'cosine';

type F64 = Float64Array;
export interface Schedule {
  kind: ScheduleKind; T: number;
  beta: F64; alpha: F64; alphaBar: F64; alphaBarPrev: F64; sqrtAlphaBar: F64;
  sqrtOneMinusAlphaBar: F64; sqrtRecipAlphaBar: F64; sqrtRecipAlphaBarMinusOne: F64;
  // q(x_{t-1} | x_t, x_0): its variance betaTilde, the log of that, and the factors of its mean
  betaTilde: F64; logBetaTilde: F64; posteriorCoefX0: F64; posteriorCoefXt: F64;
}

const fill = (T: number, f: (t: number) => number) => new Float64Array(T).map((_, t) => f(t));

// #region betas
/** beta_1..beta_T. The paper scales DDPM's 1000-step range by 1000/T;
 *  cosine is Nichol & Dhariwal eq. 17. */
export function betas(kind: ScheduleKind, T: number): Float64Array {
  if (kind === 'cosine') {
    const f = (t: number) => Math.cos(((t / T + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    return fill(T, (t) => Math.min(1 - f(t + 1) / f(t), 0.999));
  }
  const [start, end] = kind === 'paper-linear'
    ? [0.0003 * (1000 / T), 0.03 * (1000 / T)] : [1e-4, 0.02];
  return fill(T, (t) => (T === 1 ? start : start + (t * (end - start)) / (T - 1)));
}
// #endregion

/** betas(kind, T), or an error that says which beta leaves (0, 1). */
function validBetas(kind: ScheduleKind, T: number): F64 {
  if (!Number.isInteger(T) || T < 1)
    throw new Error(`timesteps must be a positive integer, received ${T}`);
  const beta = betas(kind, T);
  const bad = beta.findIndex((b) => !(b > 0 && b < 1));
  if (bad < 0) return beta;
  const paper = " (the paper's schedule ends at 30/T, so it needs T > 30)";
  throw new Error(`${kind} with T = ${T} gives beta_${bad} = ${beta[bad]}; `
    + `every beta must be in (0, 1)${kind === 'paper-linear' ? paper : ''}`);
}

// #region alpha-bar
/** alpha_t = 1 - beta_t and alphaBar_t = prod_{s<=t} alpha_s (DDPM eq. 4). */
export function makeSchedule(kind: ScheduleKind, T: number): Schedule {
  const beta = validBetas(kind, T);
  const alpha = fill(T, (t) => 1 - beta[t]);
  const alphaBar = new Float64Array(T);
  alphaBar.forEach((_, t) => (alphaBar[t] = alpha[t] * (t > 0 ? alphaBar[t - 1] : 1)));
  const alphaBarPrev = fill(T, (t) => (t > 0 ? alphaBar[t - 1] : 1));
  return { kind, T, beta, alpha, alphaBar, alphaBarPrev,
    ...derived(beta, alpha, alphaBar, alphaBarPrev) };
}
// #endregion

// #region posterior-coefficients
/** q(x_{t-1} | x_t, x_0) = N(coefX0 x_0 + coefXt x_t, betaTilde) (DDPM eqs. 6-7). */
function derived(beta: F64, alpha: F64, alphaBar: F64, alphaBarPrev: F64) {
  const T = beta.length;
  const betaTilde = fill(T, (t) => (beta[t] * (1 - alphaBarPrev[t])) / (1 - alphaBar[t]));
  return {
    sqrtAlphaBar: fill(T, (t) => Math.sqrt(alphaBar[t])),
    sqrtOneMinusAlphaBar: fill(T, (t) => Math.sqrt(1 - alphaBar[t])),
    sqrtRecipAlphaBar: fill(T, (t) => Math.sqrt(1 / alphaBar[t])),
    sqrtRecipAlphaBarMinusOne: fill(T, (t) => Math.sqrt(1 / alphaBar[t] - 1)),
    betaTilde,
    logBetaTilde: fill(T, (t) => Math.log(Math.max(betaTilde[t], 1e-20))),
    posteriorCoefX0: fill(T, (t) => (beta[t] * Math.sqrt(alphaBarPrev[t])) / (1 - alphaBar[t])),
    posteriorCoefXt: fill(T, (t) => ((1 - alphaBarPrev[t]) * Math.sqrt(alpha[t]))
      / (1 - alphaBar[t])),
  };
}
// #endregion

/** One schedule entry per batch item, as [B, 1, 1, 1] to broadcast over images (the paper's
 *  `_extract`). */
export function perSample(coef: Float64Array, t: readonly number[]): tf.Tensor4D {
  const bad = t.find((ti) => !Number.isInteger(ti) || ti < 0 || ti >= coef.length);
  if (bad !== undefined) throw new Error(
    `timestep ${bad} is out of range: expected an integer in 0..${coef.length - 1}`);
  return tf.tensor4d(t.map((ti) => coef[ti]), [t.length, 1, 1, 1]);
}
