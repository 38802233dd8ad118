import * as tf from '@tensorflow/tfjs-core';
import { useNodeBackend, type NodeBackend } from '../../src/lib/runtime/node';

/** Sets the backend for a test file (wasm unless the file needs another). */
export async function backend(name: NodeBackend = 'wasm') {
  await useNodeBackend(name);
  return tf;
}

/** Largest absolute difference between two arrays of equal length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
