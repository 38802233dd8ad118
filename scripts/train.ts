// npm run train -- --dataset mnist|fashion-mnist [--data DIR] --channels C --timesteps T --epochs E --batch B --seed S --out NAME [--resume] [--workers W]
// Trains a class-conditional UNet with the library's own trainStep (DDPM Algorithm 1 with label dropout and an EMA),
// checkpoints to checkpoints/NAME/ every few minutes and on Ctrl-C, and exports the EMA weights with a model card
// to public/models/NAME.{safetensors,json}. --workers W splits each batch over W cores (./data-parallel.ts).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { nodeGpuName, useNodeBackend, type NodeBackend } from '../src/lib/runtime/node';
import {
  createTrainer, initParams, makeSchedule, readSafetensors, saveUNet, torchShapes, trainStep, writeSafetensors,
  type HostTensor, type Params, type ScheduleKind, type Trainer, type UNetConfig,
} from '../src/lib/diffusion';
import { DATASETS, IMAGE_SIZE, gatherImages, loadDataset, type Dataset, type DatasetName } from '../src/lib/data/datasets';
import { batchIndices } from '../src/lib/data/batches';
import { MODELS_DIR, modelPaths, type ModelCard } from './models';
import { startShards } from './data-parallel';
import { widenParams } from './widen';
import { need, num, parseFlags, readJsonFile, runMain, writeAtomic } from './cli';

const FLAGS = [
  'dataset', 'data', 'channels', 'timesteps', 'schedule', 'epochs', 'batch', 'seed', 'out', 'resume', 'lr', 'warmup',
  'label-dropout', 'ema', 'backend', 'limit', 'checkpoint-minutes', 'stop-at', 'checkpoints', 'models', 'guidance', 'workers', 'init',
];

/** Relative noise that breaks the symmetry between the copies of a widened channel (./widen.ts). */
const WIDEN_NOISE = 0.01;

/** Everything that defines a run; stored in the checkpoint so that --resume continues the same run. */
interface RunConfig {
  dataset: DatasetName;
  data: string | null; // --data DIR, or null for the default place; a resumed run reads the same folder unless told
  limit: number | null; // train on the first `limit` images only (tests)
  channels: number;
  timesteps: number;
  schedule: ScheduleKind;
  batch: number;
  seed: number;
  lr: number;
  warmup: number; // steps of linear learning-rate warm-up
  labelDropout: number;
  emaDecay: number | null;
  guidance: number; // recommended guidance written to the model card
  init?: InitFrom | null; // --init: the run started from another run's EMA weights, widened
}

/** Where a run started by --init came from: that checkpoint's width and how far it had trained. */
interface InitFrom { checkpoint: string; channels: number; steps: number; imagesSeen: number }

interface RunState {
  step: number; epochs: number; wallSeconds: number; losses: number[];
  lrFrom?: { step: number; lr: number }[]; // the peak learning rate from each step on (a resumed run may change it)
}

const int = (n: number) => Number.isInteger(n) && n >= 1;

/**
 * Under `tsx` (as `npm run train` runs it) the tsx parent SIGKILLs its child when the child does not acknowledge a
 * signal within about 60 ms, and one train step blocks the event loop far longer, so Ctrl-C would lose the run.
 * So the training runs in a plain `node --import tsx` child, and this process only relays signals to it.
 */
function relayedFromTsx(): boolean {
  if (!process.execArgv.some((a) => a.includes('tsx/dist/preflight'))) return false;
  const child = spawn(process.execPath, ['--import', 'tsx', ...process.argv.slice(1)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGTERM' ? 143 : 130)));
  return true;
}

async function main() {
  if (relayedFromTsx()) return new Promise<void>(() => {}); // the child's exit ends this process
  const flags = parseFlags(process.argv.slice(2), FLAGS);
  const out = need(flags, 'out');
  if (!/^[\w.-]+$/.test(out)) throw new Error(`--out must be a plain name (letters, digits, . _ -), received "${out}"`);
  const ckptDir = resolve(typeof flags.checkpoints === 'string' ? flags.checkpoints : 'checkpoints', out);
  const modelsDir = typeof flags.models === 'string' ? resolve(flags.models) : MODELS_DIR;
  const ckptFile = join(ckptDir, 'checkpoint.safetensors');
  const resume = flags.resume === true;
  if (flags.resume !== undefined && !resume) throw new Error('--resume takes no value');
  if (resume && !existsSync(ckptFile)) throw new Error(`nothing to resume: ${ckptFile} does not exist`);
  if (!resume && existsSync(ckptFile)) throw new Error(`${ckptFile} exists: pass --resume to continue that run, or choose another --out`);

  const saved = resume ? readCheckpoint(ckptFile) : null;
  if (resume && flags.init !== undefined) throw new Error('--init starts a new run: leave it out with --resume');
  const source = flags.init === undefined ? null : initSource(flags.init);
  const run = saved ? resumedConfig(saved.run, flags) : freshConfig(flags, source);
  const epochs = num(flags, 'epochs', saved?.state.epochs ?? NaN, (n) => n > 0);
  if (!Number.isFinite(epochs)) throw new Error('missing --epochs <value>');
  const stopAt = num(flags, 'stop-at', Infinity, (n) => int(n) || n === Infinity);
  const checkpointMs = num(flags, 'checkpoint-minutes', 5, (n) => n > 0) * 60_000;
  const backend = (typeof flags.backend === 'string' ? flags.backend : 'wasm') as NodeBackend;
  const workers = num(flags, 'workers', 1, (w) => int(w) && w <= 64);
  if (workers > 1 && backend !== 'wasm') throw new Error(`--workers ${workers} needs the wasm backend (each worker is one core)`);

  const data = loadDataset(run.dataset, 'train', run.data ?? undefined);
  const n = run.limit === null ? data.count : Math.min(run.limit, data.count);
  const totalSteps = Math.ceil(epochs * Math.floor(n / run.batch));
  if (run.batch > n) throw new Error(`--batch ${run.batch} is larger than the data set (${n} images)`);
  if (run.batch % workers) throw new Error(`--batch ${run.batch} is not divisible by --workers ${workers}`);
  await useNodeBackend(backend);

  const config: UNetConfig = { imageChannels: 1, channels: run.channels, classes: data.classNames.length };
  const schedule = makeSchedule(run.schedule, run.timesteps);
  const options = { seed: run.seed, lr: run.lr, labelDropout: run.labelDropout, emaDecay: run.emaDecay };
  const order = Object.keys(torchShapes(config)); // Adam's moments are matched to variables by position: keep one order
  let tr: Trainer;
  const state: RunState = saved?.state ?? { step: 0, epochs, wallSeconds: 0, losses: [] };
  state.epochs = epochs;
  state.lrFrom ??= [{ step: 0, lr: saved?.run.lr ?? run.lr }];
  if (state.lrFrom[state.lrFrom.length - 1].lr !== run.lr) state.lrFrom.push({ step: state.step, lr: run.lr });
  if (saved) {
    const toTensors = (host: Record<string, HostTensor>): Params => Object.fromEntries(order.map((name) => {
      if (!host[name]) throw new Error(`the checkpoint lacks tensor "${name}"`);
      return [name, tf.tensor(host[name].data, host[name].shape)];
    }));
    const params = toTensors(saved.params);
    tr = createTrainer(params, config, schedule, options, state.step);
    tf.dispose(Object.values(params));
    if (tr.ema && saved.ema) {
      const ema = toTensors(saved.ema);
      for (const name of order) tr.ema[name].assign(ema[name]);
      tf.dispose(Object.values(ema));
    }
    await restoreAdam(tr, saved.adam);
  } else {
    const init = source ? widenedInit(source.saved, config, run.seed) : initParams(config, run.seed);
    tr = createTrainer(pick(init, order), config, schedule, options);
    tf.dispose(Object.values(init));
  }
  mkdirSync(ckptDir, { recursive: true });
  mkdirSync(modelsDir, { recursive: true });

  let stopping: string | null = null;
  let stoppingSince = 0;
  const onSignal = (signal: string) => () => {
    // Ctrl-C reaches this process twice (from the terminal and relayed by tsx): only a later one quits without saving
    if (stopping && Date.now() - stoppingSince > 2000) process.exit(130);
    if (stopping) return;
    [stopping, stoppingSince] = [signal, Date.now()];
    process.stderr.write(`\n${signal}: saving a checkpoint before exiting (Ctrl-C again to quit at once)\n`);
  };
  process.on('SIGINT', onSignal('SIGINT'));
  process.on('SIGTERM', onSignal('SIGTERM'));

  const save = async () => {
    await writeCheckpoint(ckptFile, tr, run, state);
    await exportModel(tr, run, state, data, n, out, modelsDir, typeof flags.guidance === 'string' ? run.guidance : undefined, workers);
  };
  const shards = workers > 1 ? await startShards(workers, config, { kind: run.schedule, T: run.timesteps }, tr) : null;
  process.stderr.write(`training ${out}: ${run.dataset} (${n} images), ${run.channels} channels, ${run.schedule} T=${run.timesteps}, `
    + `batch ${run.batch}, lr ${run.lr}, ${backend}${shards ? ` x ${workers} workers` : ''}; step ${state.step} of ${totalSteps}\n`);
  const progress = progressReporter(run.batch, totalSteps);
  let lastSave = Date.now();
  let sessionStart = performance.now();
  while (state.step < totalSteps && state.step < stopAt && !stopping) {
    const indices = batchIndices(run.seed, state.step, n, run.batch);
    const x0 = tf.tensor4d(gatherImages(data, indices), [run.batch, IMAGE_SIZE, IMAGE_SIZE, 1]); // [B, 28, 28, 1]
    setLearningRate(tr, run.lr * Math.min(1, (state.step + 1) / Math.max(1, run.warmup)));
    const labels = indices.map((i) => data.labels[i]);
    const value = shards ? await shards.step(tr, x0, labels) : await lossValue(trainStep(tr, x0, labels));
    x0.dispose();
    if (!Number.isFinite(value)) throw new Error(`the loss became ${value} at step ${state.step}: lower --lr`);
    state.losses.push(value);
    state.step = tr.step;
    progress(state.step, state.losses);
    await new Promise((resolve) => setImmediate(resolve)); // let signals and piped stderr through: wasm's data() never leaves the microtask queue
    if (Date.now() - lastSave > checkpointMs) {
      state.wallSeconds += (performance.now() - sessionStart) / 1000;
      sessionStart = performance.now();
      await save();
      lastSave = Date.now();
      process.stderr.write(`\ncheckpoint at step ${state.step} (${state.step * run.batch} images seen)\n`);
    }
  }
  state.wallSeconds += (performance.now() - sessionStart) / 1000;
  await shards?.close();
  await save();
  const done = state.step >= totalSteps;
  process.stderr.write(`\n${done ? 'finished' : `stopped (${stopping ?? `--stop-at ${stopAt}`})`} at step ${state.step}; `
    + `checkpoint ${ckptFile}; model ${modelPaths(out, modelsDir).weights}\n`);
  if (stopping === 'SIGINT') process.exit(130);
}

function freshConfig(flags: Record<string, string | true>, source: InitSource | null): RunConfig {
  const dataset = need(flags, 'dataset') as DatasetName;
  if (!DATASETS.includes(dataset)) throw new Error(`--dataset must be one of ${DATASETS.join(', ')}, received "${dataset}"`);
  const schedule = (typeof flags.schedule === 'string' ? flags.schedule : 'paper-linear') as ScheduleKind;
  if (!['paper-linear', 'ddpm-linear', 'cosine'].includes(schedule)) throw new Error(`--schedule must be paper-linear, ddpm-linear or cosine, received "${schedule}"`);
  const ema = flags.ema === 'none' ? null : num(flags, 'ema', 0.999, (d) => d > 0 && d < 1);
  const run: RunConfig = {
    dataset, schedule,
    data: typeof flags.data === 'string' ? resolve(flags.data) : null,
    limit: flags.limit === undefined ? null : num(flags, 'limit', 0, int),
    channels: num(flags, 'channels', 32, (c) => int(c) && c % 32 === 0),
    timesteps: num(flags, 'timesteps', 300, (t) => int(t) && t >= 2),
    batch: num(flags, 'batch', 64, int),
    seed: num(flags, 'seed', 0, (s) => Number.isInteger(s) && s >= 0),
    lr: num(flags, 'lr', 1e-3, (x) => x > 0),
    warmup: num(flags, 'warmup', 200, (w) => Number.isInteger(w) && w >= 0),
    labelDropout: num(flags, 'label-dropout', 0.1, (p) => p >= 0 && p <= 1),
    emaDecay: ema,
    guidance: num(flags, 'guidance', 3),
  };
  return { ...run, init: source ? initFrom(source, run) : null };
}

/** The checkpoint that --init FILE names, read once: checked against the new run, then widened into it. */
interface InitSource { path: string; saved: ReturnType<typeof readCheckpoint> }

function initSource(flag: string | true): InitSource {
  if (flag === true) throw new Error('missing --init <checkpoint file>');
  if (!existsSync(flag)) throw new Error(`--init ${flag}: no such checkpoint`);
  return { path: flag, saved: readCheckpoint(flag) };
}

/** --init FILE: a checkpoint of the same data set and schedule, at a width that divides --channels. */
function initFrom({ path, saved: { run, state } }: InitSource, to: RunConfig): InitFrom {
  const differs = run.dataset !== to.dataset ? `data set ${run.dataset}` : run.schedule !== to.schedule || run.timesteps !== to.timesteps
    ? `schedule ${run.schedule} T=${run.timesteps}` : to.channels % run.channels ? `${run.channels} channels, which do not divide ${to.channels}` : null;
  if (differs) throw new Error(`--init ${path} has ${differs}: it must match --dataset, --schedule and --timesteps, and its width must divide --channels`);
  return { checkpoint: path, channels: run.channels, steps: state.step, imagesSeen: state.step * run.batch };
}

/** The --init checkpoint's EMA weights (its raw weights if it kept no EMA), widened to this run's channels. */
function widenedInit(saved: ReturnType<typeof readCheckpoint>, config: UNetConfig, seed: number): Params {
  const host = saved.ema ?? saved.params;
  const small = Object.fromEntries(Object.entries(host).map(([name, { data, shape }]) => [name, tf.tensor(data, shape)]));
  const wide = widenParams(small, { ...config, channels: saved.run.channels }, config.channels, WIDEN_NOISE, seed);
  tf.dispose(Object.values(small));
  return wide;
}

/** A resumed run keeps its data, architecture, schedule, batch order and randomness; --lr, --epochs, --guidance and --data (a moved folder) may change. */
function resumedConfig(run: RunConfig, flags: Record<string, string | true>): RunConfig {
  const fixed: [string, unknown][] = [
    ['dataset', run.dataset], ['channels', run.channels], ['timesteps', run.timesteps], ['schedule', run.schedule],
    ['batch', run.batch], ['seed', run.seed], ['label-dropout', run.labelDropout], ['limit', run.limit], ['warmup', run.warmup],
  ];
  for (const [flag, value] of fixed) {
    if (typeof flags[flag] === 'string' && String(value) !== flags[flag]) {
      throw new Error(`--${flag} ${flags[flag]} differs from the checkpoint's ${value}: a resumed run keeps it (leave the flag out)`);
    }
  }
  return {
    ...run, data: typeof flags.data === 'string' ? resolve(flags.data) : run.data ?? null,
    lr: num(flags, 'lr', run.lr, (x) => x > 0), guidance: num(flags, 'guidance', run.guidance),
  };
}

async function lossValue(loss: tf.Scalar) {
  const value = (await loss.data())[0];
  loss.dispose();
  return value;
}

const pick = (p: Params, order: string[]): Params => Object.fromEntries(order.map((name) => [name, p[name]]));

/** Adam's step size; tfjs reads this field at every step, so changing it between steps schedules the rate. */
function setLearningRate(tr: Trainer, lr: number) {
  (tr.optimizer as unknown as { learningRate: number }).learningRate = lr;
}

// #region checkpoint
/**
 * One safetensors file holds the whole run: parameters (p/NAME, tfjs layout), EMA (ema/NAME), Adam's moments
 * (adam/i, in the order getWeights gives them), Adam's running beta powers, and the loss of every step;
 * the run config and counters go in the metadata. One file written atomically is never half a checkpoint.
 */
async function writeCheckpoint(path: string, tr: Trainer, run: RunConfig, state: RunState) {
  const host: Record<string, HostTensor> = {};
  const put = async (name: string, t: tf.Tensor) => (host[name] = { shape: t.shape, data: Float32Array.from(await t.data()) });
  for (const [name, v] of Object.entries(tr.params)) await put(`p/${name}`, v);
  for (const [name, v] of Object.entries(tr.ema ?? {})) await put(`ema/${name}`, v);
  const adam = await tr.optimizer.getWeights();
  const adamNames = adam.map((w) => w.name);
  for (const [i, w] of adam.entries()) await put(`adam/${String(i).padStart(4, '0')}`, w.tensor);
  const betas = tr.optimizer as unknown as { accBeta1: tf.Variable; accBeta2: tf.Variable };
  await put('adam/accBeta1', betas.accBeta1);
  await put('adam/accBeta2', betas.accBeta2);
  host.losses = { shape: [state.losses.length], data: Float32Array.from(state.losses) };
  const { losses: _, ...counters } = state;
  writeAtomic(path, writeSafetensors(host, {
    run: JSON.stringify(run), state: JSON.stringify(counters), adam: JSON.stringify(adamNames), format: 'diffusion-executed checkpoint 1',
  }));
}

function readCheckpoint(path: string) {
  // a plain copy: the library misreads a Node Buffer, whose slice() is a view into a shared pool
  const { tensors, metadata } = readSafetensors(new Uint8Array(readFileSync(path)));
  if (metadata.format !== 'diffusion-executed checkpoint 1') throw new Error(`${path} is not a checkpoint written by npm run train`);
  const group = (prefix: string) => Object.fromEntries([...tensors].filter(([k]) => k.startsWith(prefix))
    .map(([k, host]) => [k.slice(prefix.length), host]));
  const adamNames = JSON.parse(metadata.adam) as string[];
  const adam = adamNames.map((name, i) => {
    const { shape, data } = tensors.get(`adam/${String(i).padStart(4, '0')}`)!;
    return { name, data, shape };
  });
  const beta = (k: string) => tensors.get(`adam/${k}`)?.data[0];
  const ema = group('ema/');
  return {
    run: JSON.parse(metadata.run) as RunConfig,
    state: { ...JSON.parse(metadata.state), losses: Array.from(tensors.get('losses')!.data) } as RunState,
    params: group('p/'), ema: Object.keys(ema).length ? ema : null,
    adam: { weights: adam, accBeta1: beta('accBeta1'), accBeta2: beta('accBeta2') },
  };
}

/** Restores Adam exactly: setWeights recomputes beta^(n+1) with pow, which can differ in the last bit from the running product. */
async function restoreAdam(tr: Trainer, adam: ReturnType<typeof readCheckpoint>['adam']) {
  if (!adam.weights.length) return;
  await tr.optimizer.setWeights(adam.weights.map(({ name, data, shape }) => ({ name, tensor: tf.tensor(data, shape) })));
  const betas = tr.optimizer as unknown as { accBeta1: tf.Variable; accBeta2: tf.Variable };
  if (adam.accBeta1 !== undefined) betas.accBeta1.assign(tf.scalar(adam.accBeta1));
  if (adam.accBeta2 !== undefined) betas.accBeta2.assign(tf.scalar(adam.accBeta2));
}
// #endregion

// #region export
/** Writes the EMA weights (PyTorch layout) and the model card; an existing card's eval block is kept. */
async function exportModel(tr: Trainer, run: RunConfig, state: RunState, data: Dataset, n: number, name: string, dir: string, guidance?: number, workers = 1) {
  const paths = modelPaths(name, dir);
  const weights = tr.ema ?? tr.params;
  const bytes = await saveUNet(weights as Params, { format: 'pt', dataset: run.dataset, step: String(state.step), schedule: run.schedule, T: String(run.timesteps) });
  const previous = existsSync(paths.card) ? readJsonFile<ModelCard>(paths.card) : null;
  const recent = state.losses.slice(-200);
  const card: ModelCard = {
    name,
    dataset: run.dataset,
    architecture: { imageChannels: 1, channels: run.channels, classes: data.classNames.length, imageSize: IMAGE_SIZE },
    schedule: { kind: run.schedule, T: run.timesteps },
    classNames: data.classNames,
    // the guidance given by --guidance, else the card's (a person may have tuned it and eta: `chosen` says how), else 3;
    // eta 1 until tuned: on every model here stochastic DDIM samples were recognised far more often than eta 0 (mnist-64: 84.5 vs 54.5%);
    // a new card recomputes DDIM's eps from the clipped x_0 (mnist-64 at w = 2: 93.5 vs 84%), an older card keeps what it was tuned with
    recommended: {
      sampler: 'ddim', steps: Math.min(50, run.timesteps - 1), eta: previous?.recommended?.eta ?? 1,
      recomputeEps: previous?.recommended ? previous.recommended.recomputeEps ?? false : true,
      guidance: guidance ?? previous?.recommended?.guidance ?? run.guidance,
      ...(previous?.recommended?.chosen ? { chosen: previous.recommended.chosen } : {}),
    },
    training: {
      command: `npm run train -- --dataset ${run.dataset} --channels ${run.channels} --timesteps ${run.timesteps} --schedule ${run.schedule} `
        + `--epochs ${state.epochs} --batch ${run.batch} --seed ${run.seed} --lr ${state.lrFrom?.[0].lr ?? run.lr} --warmup ${run.warmup} `
        + `--label-dropout ${run.labelDropout} --ema ${run.emaDecay ?? 'none'} --out ${name}${run.limit ? ` --limit ${run.limit}` : ''}`
        + `${run.init ? ` --init ${run.init.checkpoint}` : ''}, then --resume`,
      ...(run.init ? { initFrom: { ...run.init, widenNoise: WIDEN_NOISE } } : {}),
      lrFrom: state.lrFrom,
      dataset: run.dataset, images: n, split: 'train',
      epochs: state.step / Math.floor(n / run.batch), steps: state.step, imagesSeen: state.step * run.batch,
      batch: run.batch, seed: run.seed, lr: run.lr, warmupSteps: run.warmup, labelDropout: run.labelDropout,
      emaDecay: run.emaDecay, weights: tr.ema ? 'ema' : 'raw',
      finalLoss: recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : null,
      finalLossWindow: recent.length,
      lossCurve: downsample(state.losses, 200, run.batch),
      wallSeconds: Math.round(state.wallSeconds),
      machine: `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), tfjs ${tf.getBackend()} backend`
        + `${tf.getBackend() === 'webgpu' && nodeGpuName() ? ` (${nodeGpuName()})` : ''}`
        + `${workers > 1 ? ` on ${workers} worker threads` : ''}, Node ${process.version}`,
    },
    ...(previous?.eval ? { eval: previous.eval } : {}),
  };
  writeAtomic(paths.weights, bytes);
  writeAtomic(paths.card, `${JSON.stringify(card, null, 1)}\n`);
}

/** At most `points` means of consecutive windows of the per-step loss, each at the images seen by its last step. */
function downsample(losses: number[], points: number, batch: number) {
  const w = Math.max(1, Math.ceil(losses.length / points));
  const curve: { imagesSeen: number; loss: number }[] = [];
  for (let i = 0; i < losses.length; i += w) {
    const win = losses.slice(i, i + w);
    curve.push({ imagesSeen: (i + win.length) * batch, loss: Number((win.reduce((a, b) => a + b, 0) / win.length).toPrecision(5)) });
  }
  return curve;
}
// #endregion

/** A progress line on stderr: redrawn in place on a terminal, one line every 30 s in a log file. */
function progressReporter(batch: number, totalSteps: number) {
  const tty = process.stderr.isTTY;
  const times: number[] = [];
  let lastLine = 0;
  return (step: number, losses: number[]) => {
    const now = performance.now();
    times.push(now);
    if (times.length > 50) times.shift();
    if (!tty && now - lastLine < 30_000 && step < totalSteps) return;
    lastLine = now;
    const perStep = times.length > 1 ? (now - times[0]) / (times.length - 1) / 1000 : NaN;
    const recent = losses.slice(-50);
    const loss = recent.reduce((a, b) => a + b, 0) / recent.length;
    const eta = (totalSteps - step) * perStep;
    const bar = '#'.repeat(Math.round((20 * step) / totalSteps)).padEnd(20, '.');
    const line = `[${bar}] step ${step}/${totalSteps} loss ${loss.toFixed(4)} ${(batch / perStep).toFixed(1)} img/s ETA ${formatSeconds(eta)}`;
    process.stderr.write(tty ? `\r${line}` : `${new Date().toISOString().slice(11, 19)} ${line}\n`);
  };
}

const formatSeconds = (s: number) => (Number.isFinite(s) ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m${String(Math.floor(s % 60)).padStart(2, '0')}s` : '?');

runMain(main);
