// Small helpers the sampling cells share.
import type { Labels } from '../../diffusion';
import type { Model } from './engine';

/** The class select's value as labels for a batch: '' means unconditional (no labels). */
export function labelsFor(model: Model, value: string, batch: number): Labels | undefined {
  if (value === '' || value === 'none') return undefined;
  if (model.config.classes === null) {
    throw new Error('this model has no class embedding: choose "any digit" (unconditional)');
  }
  const label = Number(value);
  if (!Number.isInteger(label) || label < 0 || label >= model.config.classes) {
    throw new Error(`class ${value} is out of range: expected 0..${model.config.classes - 1}`);
  }
  return Array<number>(batch).fill(label);
}

/** `count` step numbers (1-based) spread over 1..steps, always ending with the last step. */
export function snapshotSteps(steps: number, count: number): number[] {
  const picks = Array.from({ length: count },
    (_, j) => Math.max(1, Math.round(((j + 1) * steps) / count)));
  return [...new Set(picks)];
}

export const elapsedMs = (start: number) => Math.round(performance.now() - start);
