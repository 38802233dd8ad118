// The order in which a training run visits its images: a function of (seed, epoch) only,
// so that a run resumed at step s sees exactly the batches an uninterrupted run sees.
import { rngFromSeed } from '../diffusion/random';

/** A permutation of 0..n-1 for one epoch (Fisher-Yates on a stream seeded by seed and epoch). */
export function epochOrder(seed: number, epoch: number, n: number): Int32Array {
  const rng = rngFromSeed((seed ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng() % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Image indices of global step `step`: epochs of floor(n / B) full batches, the rest dropped. */
export function batchIndices(seed: number, step: number, n: number, B: number): number[] {
  const perEpoch = Math.floor(n / B);
  if (perEpoch < 1) throw new Error(`batch size ${B} is larger than the data set (${n} images)`);
  const epoch = Math.floor(step / perEpoch);
  const at = (step % perEpoch) * B;
  return Array.from(epochOrder(seed, epoch, n).subarray(at, at + B));
}
