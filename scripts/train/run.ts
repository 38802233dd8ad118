// What defines a training run and how far it has come, read from the flags of a new run, of a
// resumed run (--resume) or of a run that starts from another run's weights (--init).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { Params, ScheduleKind, UNetConfig } from '../../src/lib/diffusion';
import { DATASETS, type DatasetName } from '../../src/lib/data/datasets';
import { SCHEDULE_KINDS } from '../../src/lib/models/card';
import { need, num, type Flags } from '../cli';
import { widenParams } from '../widen';
import { readCheckpoint, type Checkpoint } from './checkpoint';
import type { PeakFrom } from './lr';

/** The flags of npm run train that take a value, and its one switch. */
export const VALUE_FLAGS = [
  'dataset', 'data', 'channels', 'timesteps', 'schedule', 'epochs', 'batch', 'seed', 'out', 'lr',
  'warmup', 'label-dropout', 'ema', 'backend', 'limit', 'checkpoint-minutes', 'stop-at',
  'checkpoints', 'models', 'guidance', 'workers', 'init', 'threads',
];
export const SWITCHES = ['resume'];

/** Relative noise that breaks the symmetry between a widened channel's copies (../widen.ts). */
export const WIDEN_NOISE = 0.01;

/** Everything that defines a run; kept in the checkpoint so that --resume continues the run. */
export interface RunConfig {
  dataset: DatasetName;
  data: string | null; // --data DIR, or null for the default place; kept on resume unless told
  limit: number | null; // train on the first `limit` images only (tests)
  channels: number;
  timesteps: number;
  schedule: ScheduleKind;
  batch: number;
  seed: number;
  lr: number; // the peak learning rate (./lr.ts)
  warmup: number; // steps of linear learning-rate warm-up
  labelDropout: number;
  emaDecay: number | null;
  guidance: number; // recommended guidance written to the model card
  init?: InitFrom | null; // --init: the run started from another run's EMA weights, widened
}

/** Where a run started by --init came from: that checkpoint's width and how far it trained. */
export interface InitFrom {
  checkpoint: string; channels: number; steps: number; imagesSeen: number;
}

/** How far a run has come: its counters and the loss of every step. */
export interface RunState {
  step: number; epochs: number; wallSeconds: number; losses: number[];
  lrFrom?: PeakFrom[]; // the peak learning rate from each step on (a resumed run may change it)
}

export const isCount = (n: number) => Number.isInteger(n) && n >= 1;
const isWhole = (n: number) => Number.isInteger(n) && n >= 0;

/** A new run's configuration from its flags; `source` is the checkpoint that --init names. */
export function freshConfig(flags: Flags, source: InitSource | null): RunConfig {
  const dataset = need(flags, 'dataset') as DatasetName;
  if (!DATASETS.includes(dataset)) {
    throw new Error(`--dataset must be one of ${DATASETS.join(', ')}, received "${dataset}"`);
  }
  const kind = typeof flags.schedule === 'string' ? flags.schedule : 'paper-linear';
  const schedule = kind as ScheduleKind;
  if (!SCHEDULE_KINDS.includes(schedule)) {
    const kinds = `${SCHEDULE_KINDS.slice(0, -1).join(', ')} or ${SCHEDULE_KINDS.at(-1)}`;
    throw new Error(`--schedule must be ${kinds}, received "${schedule}"`);
  }
  const run: RunConfig = {
    dataset, schedule,
    data: typeof flags.data === 'string' ? resolve(flags.data) : null,
    limit: flags.limit === undefined ? null : num(flags, 'limit', 0, isCount),
    channels: num(flags, 'channels', 32, (c) => isCount(c) && c % 32 === 0),
    timesteps: num(flags, 'timesteps', 300, (t) => isCount(t) && t >= 2),
    batch: num(flags, 'batch', 64, isCount),
    seed: num(flags, 'seed', 0, isWhole),
    lr: num(flags, 'lr', 1e-3, (x) => x > 0),
    warmup: num(flags, 'warmup', 200, isWhole),
    labelDropout: num(flags, 'label-dropout', 0.1, (p) => p >= 0 && p <= 1),
    emaDecay: flags.ema === 'none' ? null : num(flags, 'ema', 0.999, (d) => d > 0 && d < 1),
    guidance: num(flags, 'guidance', 3),
  };
  return { ...run, init: source ? initFrom(source, run) : null };
}

/**
 * A resumed run keeps its data, architecture, schedule, batch order and randomness; --lr, --epochs,
 * --guidance and --data (a moved folder) may change.
 */
export function resumedConfig(run: RunConfig, flags: Flags): RunConfig {
  const fixed: [string, unknown][] = [
    ['dataset', run.dataset], ['channels', run.channels], ['timesteps', run.timesteps],
    ['schedule', run.schedule], ['batch', run.batch], ['seed', run.seed],
    ['label-dropout', run.labelDropout], ['limit', run.limit], ['warmup', run.warmup],
  ];
  for (const [flag, value] of fixed) {
    if (typeof flags[flag] === 'string' && String(value) !== flags[flag]) {
      throw new Error(`--${flag} ${flags[flag]} differs from the checkpoint's ${value}: `
        + 'a resumed run keeps it (leave the flag out)');
    }
  }
  return {
    ...run, data: typeof flags.data === 'string' ? resolve(flags.data) : run.data ?? null,
    lr: num(flags, 'lr', run.lr, (x) => x > 0), guidance: num(flags, 'guidance', run.guidance),
  };
}

// #region init
/** The checkpoint that --init FILE names, read once: checked against the new run, then widened. */
export interface InitSource { path: string; saved: Checkpoint }

export function initSource(flag: string | true): InitSource {
  if (flag === true) throw new Error('missing --init <checkpoint file>');
  if (!existsSync(flag)) throw new Error(`--init ${flag}: no such checkpoint`);
  return { path: flag, saved: readCheckpoint(flag) };
}

/** --init FILE: a checkpoint of the same data set and schedule, its width dividing --channels. */
function initFrom({ path, saved: { run, state } }: InitSource, to: RunConfig): InitFrom {
  const differs = run.dataset !== to.dataset ? `data set ${run.dataset}`
    : run.schedule !== to.schedule || run.timesteps !== to.timesteps
      ? `schedule ${run.schedule} T=${run.timesteps}`
      : to.channels % run.channels ? `${run.channels} channels, which do not divide ${to.channels}`
        : null;
  if (differs) {
    throw new Error(`--init ${path} has ${differs}: it must match --dataset, --schedule and `
      + '--timesteps, and its width must divide --channels');
  }
  return {
    checkpoint: path, channels: run.channels, steps: state.step, imagesSeen: state.step * run.batch,
  };
}

/** The --init checkpoint's EMA weights (its raw weights if it kept no EMA), widened to `config`. */
export function widenedInit(saved: Checkpoint, config: UNetConfig, seed: number): Params {
  const host = saved.ema ?? saved.params;
  const small = Object.fromEntries(Object.entries(host).map(([name, { data, shape }]) =>
    [name, tf.tensor(data, shape)]));
  const from = { ...config, channels: saved.run.channels };
  const wide = widenParams(small, from, config.channels, { noise: WIDEN_NOISE, seed });
  tf.dispose(Object.values(small));
  return wide;
}
// #endregion
