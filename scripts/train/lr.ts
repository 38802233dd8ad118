// The learning-rate schedule of npm run train: a linear warm-up to the peak rate, then the peak.
// A resumed run may change the peak (--lr); the run keeps each peak with the step it took effect.

/** Adam's step size at step n (counting from 0): peak * min(1, (n + 1) / warmup). */
export function learningRate(peak: number, warmup: number, step: number): number {
  return peak * Math.min(1, (step + 1) / Math.max(1, warmup));
}

/** A peak learning rate and the step from which it applies. */
export interface PeakFrom { step: number; lr: number }

/** The history of peaks with `lr` added from `step` on, unless it is already the current peak. */
export function withPeak(history: PeakFrom[], step: number, lr: number): PeakFrom[] {
  return history.at(-1)?.lr === lr ? history : [...history, { step, lr }];
}
