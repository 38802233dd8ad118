// What every sampler shares: the loop over timesteps, progress reports, cancellation and tensor ownership.
import type * as tf from '@tensorflow/tfjs-core';

/** eps_theta at one timestep for the whole batch (see guidance.ts for the classifier-free version). */
export type EpsFn = (xt: tf.Tensor4D, t: number) => tf.Tensor4D;

export interface StepInfo {
  step: number; steps: number; // step k of n, k from 1
  t: number; // the timestep just denoised
  xt: tf.Tensor4D; x0: tf.Tensor4D; // the new x and this step's x_0 estimate, valid only during the callback
}

export interface SamplerOptions {
  seed: number;
  clipX0?: boolean; // clip the x_0 estimate to [-1, 1] (default true, as the paper)
  /** Awaited after each step: the place to draw, to yield to the page, and so to cancel. */
  onStep?: (info: StepInfo) => void | Promise<void>;
  signal?: AbortSignal;
}

type Step = (x: tf.Tensor4D, t: number, i: number) => { x: tf.Tensor4D; x0: tf.Tensor4D };

/** Awaits the caller's onStep and frees the x_0 estimate; then stops if the signal was aborted. */
async function report(opts: SamplerOptions, info: StepInfo) {
  try {
    await opts.onStep?.(info);
  } finally {
    info.x0.dispose();
  }
  if (opts.signal?.aborted) throw new DOMException('sampling was cancelled', 'AbortError');
}

// #region run-sampler
/** Runs `step` over the timesteps `ts` from x_T; the caller owns the returned x_0. */
export async function runSampler(xT: tf.Tensor4D, ts: number[], opts: SamplerOptions, step: Step): Promise<tf.Tensor4D> {
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
