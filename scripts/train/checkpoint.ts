// The checkpoint of a training run, checkpoints/NAME/checkpoint.safetensors: one file, written
// atomically (never half a checkpoint), that holds all --resume needs to continue the run exactly.
//
// Format 2, written here:
//   p/NAME, ema/NAME            the parameters and their EMA (tfjs layout)
//   adam/m/NAME, adam/v/NAME    Adam's first and second moments, by parameter name
//   losses                      the loss of every step so far
//   metadata                    format "diffusion-executed checkpoint 2"; run (RunConfig), state
//                               (RunState without the losses) and adam ({ beta1, beta2, epsilon,
//                               beta1Power, beta2Power }), as JSON: the beta powers stay exact
// Format 1, read for older checkpoints (tfjs's AdamOptimizer): the same p/, ema/ and losses;
// adam/0000 the iteration count, then Adam's getWeights in order, every first moment, then every
// second moment; metadata.adam names them "iter", "ID/m"..., "ID/v"..., where ID is the name of a
// tf.Variable in the process that wrote the file. Slot k belongs to the trainer's k-th parameter,
// in torchShapes order, as the old trainer created them.
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import {
  createTrainer, readSafetensors, torchShapes, writeSafetensors,
  type HostTensor, type Schedule, type TrainOptions, type Trainer, type UNetConfig,
} from '../../src/lib/diffusion';
import { writeAtomic } from '../cli';
import type { RunConfig, RunState } from './run';

const FORMAT = 'diffusion-executed checkpoint 2';
const FORMAT_1 = 'diffusion-executed checkpoint 1';

type HostTensors = Record<string, HostTensor>;

/** Adam's state as saved: moments by parameter name, and its constants and beta powers. */
export interface SavedAdam {
  beta1: number; beta2: number; epsilon: number; beta1Power: number; beta2Power: number;
  m: HostTensors; v: HostTensors;
}

/** A checkpoint read back, whichever format it was written in. */
export interface Checkpoint {
  run: RunConfig; state: RunState; params: HostTensors; ema: HostTensors | null; adam: SavedAdam;
}

// #region write
export async function writeCheckpoint(path: string, tr: Trainer, run: RunConfig, state: RunState) {
  const host: HostTensors = {};
  const put = async (prefix: string, vars: Record<string, tf.Tensor>) => {
    for (const [name, t] of Object.entries(vars)) {
      host[`${prefix}${name}`] = { shape: t.shape, data: Float32Array.from(await t.data()) };
    }
  };
  await put('p/', tr.params);
  await put('ema/', tr.ema ?? {});
  await put('adam/m/', tr.adam.m);
  await put('adam/v/', tr.adam.v);
  host.losses = { shape: [state.losses.length], data: Float32Array.from(state.losses) };
  const { losses: _, ...counters } = state;
  const { beta1, beta2, epsilon, beta1Power, beta2Power } = tr.adam;
  const adam = { beta1, beta2, epsilon, beta1Power, beta2Power };
  const metadata = {
    format: FORMAT, run: JSON.stringify(run), state: JSON.stringify(counters),
    adam: JSON.stringify(adam),
  };
  writeAtomic(path, writeSafetensors(host, metadata));
}
// #endregion

// #region read
export function readCheckpoint(path: string): Checkpoint {
  // a plain Uint8Array: Buffer's slice() returns a view, not a copy, unlike Uint8Array's
  const { tensors, metadata } = readSafetensors(new Uint8Array(readFileSync(path)));
  if (metadata.format !== FORMAT && metadata.format !== FORMAT_1) {
    throw new Error(`${path} is not a checkpoint written by npm run train`);
  }
  const group = (prefix: string): HostTensors => Object.fromEntries([...tensors]
    .filter(([key]) => key.startsWith(prefix))
    .map(([key, host]) => [key.slice(prefix.length), host]));
  const run = JSON.parse(metadata.run) as RunConfig;
  const losses = Array.from(tensors.get('losses')!.data);
  const state = { ...JSON.parse(metadata.state), losses } as RunState;
  const [params, ema] = [group('p/'), group('ema/')];
  const adam = metadata.format === FORMAT
    ? { ...JSON.parse(metadata.adam), m: group('adam/m/'), v: group('adam/v/') } as SavedAdam
    : tfjsAdam(path, tensors, JSON.parse(metadata.adam), { run, state, params });
  return { run, state, params, ema: Object.keys(ema).length ? ema : null, adam };
}

/** beta^n as n float32 products, the way the library's Adam (and tfjs's) accumulates it. */
function floatPower(beta: number, n: number): number {
  let power = 1;
  for (let i = 0; i < n; i++) power = Math.fround(power * Math.fround(beta));
  return power;
}

/**
 * Format 1's Adam, from tfjs's getWeights, by parameter name, with tf.train.adam's defaults. tfjs
 * kept beta^(n + 1); the library's Adam keeps beta^n, both as float32 running products, which
 * floatPower rebuilds bit for bit (beta ** n may differ in the last bit, and the losses with it).
 */
function tfjsAdam(path: string, tensors: Map<string, HostTensor>, names: string[],
  { run, state, params }: Pick<Checkpoint, 'run' | 'state' | 'params'>): SavedAdam {
  const classes = params['class_emb.weight']?.shape[0] ?? null;
  const order = Object.keys(torchShapes({ imageChannels: 1, channels: run.channels, classes }));
  const [beta1, beta2, n] = [0.9, 0.999, state.step];
  const saved: SavedAdam = {
    beta1, beta2, epsilon: 1e-7, beta1Power: floatPower(beta1, n), beta2Power: floatPower(beta2, n),
    m: {}, v: {},
  };
  if (names.length === 1) return saved; // "iter" alone: saved before the first step
  if (names.length !== 2 * order.length + 1) {
    throw new Error(`${path} holds ${names.length - 1} Adam moments; expected 2 x ${order.length}`);
  }
  const slot = (i: number) => tensors.get(`adam/${String(i).padStart(4, '0')}`)!;
  order.forEach((name, k) => {
    const [m, v] = [slot(1 + k), slot(1 + order.length + k)];
    const id = names[1 + k].replace(/\/m$/, '');
    const fits = (t: HostTensor) => t.shape.join() === params[name]?.shape.join();
    if (names[1 + order.length + k] !== `${id}/v` || !fits(m) || !fits(v)) {
      throw new Error(`${path}: Adam slot ${k} (${names[1 + k]}) does not fit parameter ${name}`);
    }
    [saved.m[name], saved.v[name]] = [m, v];
  });
  return saved;
}
// #endregion

// #region restore
/** A trainer at the checkpoint's step: its parameters, EMA and Adam as saved. */
export function restoreTrainer(saved: Checkpoint, config: UNetConfig, schedule: Schedule,
  options: TrainOptions): Trainer {
  const order = Object.keys(torchShapes(config)); // the parameters in one order, as a fresh run
  const params = Object.fromEntries(order.map((name) => {
    const host = saved.params[name];
    if (!host) throw new Error(`the checkpoint lacks tensor "${name}"`);
    return [name, tf.tensor(host.data, host.shape)];
  }));
  const tr = createTrainer(params, config, schedule, options, saved.state.step);
  tf.dispose(Object.values(params));
  if (tr.ema && saved.ema) assignAll(tr.ema, saved.ema, 'EMA');
  const { m, v, ...constants } = saved.adam;
  if (Object.keys(m).length) {
    assignAll(tr.adam.m, m, 'Adam first moment');
    assignAll(tr.adam.v, v, 'Adam second moment');
  }
  Object.assign(tr.adam, constants);
  return tr;
}

function assignAll(vars: Record<string, tf.Variable>, host: HostTensors, what: string) {
  for (const [name, variable] of Object.entries(vars)) {
    if (!host[name]) throw new Error(`the checkpoint lacks the ${what} of "${name}"`);
    tf.tidy(() => variable.assign(tf.tensor(host[name].data, host[name].shape)));
  }
}
// #endregion
