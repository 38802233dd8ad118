// npm run train -- --dataset mnist|fashion-mnist|cifar10 [--data DIR] --channels C --timesteps T
//                  --epochs E --batch B --seed S --out NAME [--resume] [--workers W] [--init FILE]
// CIFAR-10 (32x32 RGB) needs --data DIR, the folder of its binary batches.
// Trains a class-conditional UNet with the library's own trainStep (DDPM Algorithm 1 with label
// dropout and an EMA), checkpoints to checkpoints/NAME/ every few minutes and on Ctrl-C, and
// exports the EMA weights with a model card to public/models/NAME.{safetensors,json}.
// --workers W splits each batch over W cores (./data-parallel.ts); on wasm the default is a worker
// per core that divides the batch (DIFFUSION_CORES caps the cores, scripts/cli.ts).
// The parts: train/run.ts (the run's configuration from its flags), train/lr.ts (the learning-rate
// schedule), train/loop.ts (the loop), train/checkpoint.ts (the checkpoint format),
// train/card.ts (the exported model and its card), train/signals.ts (Ctrl-C).
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useNodeBackend } from '../src/lib/runtime/node';
import {
  createTrainer, initParams, makeSchedule, torchShapes, type Trainer, type UNetConfig,
} from '../src/lib/diffusion';
import { loadDataset } from '../src/lib/data/datasets';
import { MODELS_DIR, modelPaths } from './models';
import { startShards } from './data-parallel';
import {
  backendFlag, defaultWorkers, need, num, parseFlags, runMain, threadsFlag, type Flags,
} from './cli';
import {
  SWITCHES, VALUE_FLAGS, freshConfig, initSource, isCount, resumedConfig, widenedInit,
  type InitSource, type RunConfig, type RunState,
} from './train/run';
import {
  readCheckpoint, restoreTrainer, writeCheckpoint, type Checkpoint,
} from './train/checkpoint';
import { exportModel } from './train/card';
import { withPeak } from './train/lr';
import { trainLoop } from './train/loop';
import { relayedFromTsx, stopSignals } from './train/signals';

async function main() {
  if (relayedFromTsx()) return new Promise<void>(() => {}); // the child's exit ends this process
  const flags = parseFlags(process.argv.slice(2), VALUE_FLAGS, SWITCHES);
  const { out, resume, checkpoint, modelsDir } = runFiles(flags);
  const saved = resume ? readCheckpoint(checkpoint) : null;
  if (resume && flags.init !== undefined) {
    throw new Error('--init starts a new run: leave it out with --resume');
  }
  const source = flags.init === undefined ? null : initSource(flags.init);
  const run = saved ? resumedConfig(saved.run, flags) : freshConfig(flags, source);
  const epochs = num(flags, 'epochs', saved?.state.epochs ?? NaN, (n) => n > 0);
  if (!Number.isFinite(epochs)) throw new Error('missing --epochs <value>');
  const stopAt = num(flags, 'stop-at', Infinity, (n) => isCount(n) || n === Infinity);
  const checkpointMs = num(flags, 'checkpoint-minutes', 5, (n) => n > 0) * 60_000;
  const backend = backendFlag(flags);

  const data = loadDataset(run.dataset, 'train', run.data ?? undefined);
  const images = run.limit === null ? data.count : Math.min(run.limit, data.count);
  const totalSteps = Math.ceil(epochs * Math.floor(images / run.batch));
  if (run.batch > images) {
    throw new Error(`--batch ${run.batch} is larger than the data set (${images} images)`);
  }
  // one data-parallel worker per core by default: threads would share only the convolutions
  const workers = num(flags, 'workers', defaultWorkers(backend, run.batch),
    (w) => isCount(w) && w <= 64);
  if (workers > 1 && backend !== 'wasm') {
    throw new Error(`--workers ${workers} needs the wasm backend (each worker is one core)`);
  }
  if (run.batch % workers) {
    throw new Error(`--batch ${run.batch} is not divisible by --workers ${workers}`);
  }
  const threads = threadsFlag(flags, { backend, workers });
  await useNodeBackend(backend, { threads });

  const config: UNetConfig = {
    imageChannels: data.channels, channels: run.channels, classes: data.classNames.length,
  };
  const tr = startTrainer(run, config, saved, source);
  const state: RunState = saved?.state ?? { step: 0, epochs, wallSeconds: 0, losses: [] };
  state.epochs = epochs;
  const firstPeak = { step: 0, lr: saved?.run.lr ?? run.lr };
  state.lrFrom = withPeak(state.lrFrom ?? [firstPeak], state.step, run.lr);
  mkdirSync(dirname(checkpoint), { recursive: true });
  mkdirSync(modelsDir, { recursive: true });

  const stopping = stopSignals();
  const guidance = typeof flags.guidance === 'string' ? run.guidance : undefined;
  const { classNames } = data;
  const save = async () => {
    await writeCheckpoint(checkpoint, tr, run, state);
    await exportModel({
      tr, run, state, name: out, dir: modelsDir, classNames, images, guidance, workers,
    });
  };
  const scheduleSpec = { kind: run.schedule, T: run.timesteps };
  const shards = workers > 1
    ? await startShards(workers, config, scheduleSpec, tr, { threads }) : null;
  process.stderr.write(`training ${out}: ${run.dataset} (${images} images), `
    + `${run.channels} channels, ${run.schedule} T=${run.timesteps}, batch ${run.batch}, `
    + `lr ${run.lr}, ${backend}${shards ? ` x ${workers} workers` : ''}, ${threads} thread(s); `
    + `step ${state.step} of ${totalSteps}\n`);
  await trainLoop({
    tr, run, state, data, images, totalSteps, stopAt, shards, checkpointMs, save, stopping,
  });
  await shards?.close();
  await save();
  const why = state.step >= totalSteps ? 'finished'
    : `stopped (${stopping() ?? `--stop-at ${stopAt}`})`;
  process.stderr.write(`\n${why} at step ${state.step}; checkpoint ${checkpoint}; `
    + `model ${modelPaths(out, modelsDir).weights}\n`);
  if (stopping() === 'SIGINT') process.exit(130);
}

/** --out NAME, its checkpoint file and the models folder; --resume needs the file, else not. */
function runFiles(flags: Flags) {
  const out = need(flags, 'out');
  if (!/^[\w.-]+$/.test(out)) {
    throw new Error(`--out must be a plain name (letters, digits, . _ -), received "${out}"`);
  }
  const root = typeof flags.checkpoints === 'string' ? flags.checkpoints : 'checkpoints';
  const checkpoint = join(resolve(root, out), 'checkpoint.safetensors');
  const modelsDir = typeof flags.models === 'string' ? resolve(flags.models) : MODELS_DIR;
  const resume = flags.resume === true;
  if (resume && !existsSync(checkpoint)) {
    throw new Error(`nothing to resume: ${checkpoint} does not exist`);
  }
  if (!resume && existsSync(checkpoint)) {
    throw new Error(`${checkpoint} exists: pass --resume to continue that run, `
      + 'or choose another --out');
  }
  return { out, resume, checkpoint, modelsDir };
}

/** The trainer: restored from the checkpoint, or fresh (widened from --init, or initialised). */
function startTrainer(run: RunConfig, config: UNetConfig, saved: Checkpoint | null,
  source: InitSource | null): Trainer {
  const schedule = makeSchedule(run.schedule, run.timesteps);
  const { seed, lr, labelDropout, emaDecay } = run;
  const options = { seed, lr, labelDropout, emaDecay };
  if (saved) return restoreTrainer(saved, config, schedule, options);
  const init = source ? widenedInit(source.saved, config, seed) : initParams(config, seed);
  // the parameters in torchShapes order, as restoreTrainer creates them
  const order = Object.keys(torchShapes(config));
  const tr = createTrainer(Object.fromEntries(order.map((n) => [n, init[n]])), config, schedule,
    options);
  tf.dispose(Object.values(init));
  return tr;
}

runMain(main);
