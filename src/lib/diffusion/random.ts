// Seeded randomness, so that every run is reproducible from one integer on every backend.
import * as tf from '@tensorflow/tfjs-core';

/** A stream of 32-bit integers from a seed (mulberry32). */
export function rngFromSeed(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let z = Math.imul(a ^ (a >>> 15), a | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return (z ^ (z >>> 14)) >>> 0;
  };
}

/** Standard normal noise with a seed drawn from `rng`: identical values on every backend. */
export function randn<R extends tf.Rank>(shape: tf.ShapeMap[R], rng: () => number): tf.Tensor<R> {
  return tf.randomNormal(shape, 0, 1, 'float32', rng());
}

/** Uniform integers in [0, n). */
export const randint = (rng: () => number, n: number, count: number) =>
  Array.from({ length: count }, () => rng() % n);
