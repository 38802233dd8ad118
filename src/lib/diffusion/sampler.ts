// What every sampler shares: the loop over timesteps, progress reports, cancellation and tensor
// ownership.
import * as tf from '@tensorflow/tfjs-core';
import { randn } from './random';

/** eps_theta at one timestep for the whole batch (guidance.ts: plainEps, guidedEps). */
export type EpsFn = (xt: tf.Tensor4D, t: number) => tf.Tensor4D;
/** The shape of a batch of images: [B, H, W, C]. */
export type Shape4D = [number, number, number, number];

export interface StepInfo {
  step: number; steps: number; t: number; // step k of n (k from 1), at the timestep t just denoised
  xt: tf.Tensor4D; x0: tf.Tensor4D; // the new x and this step's x_0 estimate, during the callback
}

export interface SamplerOptions {
  /** Seeds the noise: x_T is drawn first, then one z per step. */
  seed: number;
  /** Start from this x_T (the caller keeps it) instead of drawing it; the z stay the seed's. */
  xT?: tf.Tensor4D;
  clipX0?: boolean; // clip the x_0 estimate to [-1, 1] (default true, as the paper)
  /** Awaited after each step: the place to draw, to yield to the page, and so to cancel. */
  onStep?: (info: StepInfo) => void | Promise<void>;
  signal?: AbortSignal;
}

/** x_T ~ N(0, I) from the seed's first draw; a given xT is copied, and that draw skipped. */
export function startNoise(shape: Shape4D, rng: () => number, xT?: tf.Tensor4D): tf.Tensor4D {
  if (!xT) return randn(shape, rng);
  if (xT.shape.join() !== shape.join())
    throw new Error(`xT has shape [${xT.shape}]; expected the sample shape [${shape}]`);
  rng();
  return tf.clone(xT);
}

type Step = (x: tf.Tensor4D, t: number, i: number) => { x: tf.Tensor4D; x0: tf.Tensor4D };

/** Awaits the caller's onStep and frees the x_0 estimate; then stops if the signal was aborted. */
async function report(opts: SamplerOptions, info: StepInfo) {
  try { await opts.onStep?.(info); } finally { info.x0.dispose(); }
  if (opts.signal?.aborted) throw new DOMException('sampling was cancelled', 'AbortError');
}

// #region run-sampler
/** Runs `step` over the timesteps `ts` from x_T; the caller owns the returned x_0. */
export async function runSampler(xT: tf.Tensor4D, ts: number[], opts: SamplerOptions, step: Step) {
  let x = xT;
  try {
    for (const [i, t] of ts.entries()) {
      const next = step(x, t, i);
      x.dispose();
      x = next.x;
      await report(opts, { step: i + 1, steps: ts.length, t, xt: x, x0: next.x0 });
    }
    return x;
  } catch (error) {
    x.dispose();
    throw error;
  }
}
// #endregion
