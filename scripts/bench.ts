// npm run bench -- [--backend wasm|cpu|webgpu] [--channels 32,64] [--batch 16] [--train-batch 32]
//   [--repeats 5]
// Median wall time of the UNet forward pass (batch 1 and B) and of one training step, printed as
// a table.
// npm run -s bench -- --case unet-forward|train-step|ddim-sample|kernels --channels C [--batch B]
//   [--backend X] [--repeats R] [--workers W] [--steps S] [--guidance W] [--threads N] [--json]
//   [--vs-pytorch] [--plain | --vs-plain]
// One case, printed as one JSON line (the README lists its fields).
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { nodeGpuName, useNodeBackend, type NodeBackend } from '../src/lib/runtime/node';
import {
  createTrainer, ddimSample, disposeAdam, epsTheta, guidedEps, initParams, makeSchedule,
  trainStep, type Trainer, type UNetConfig,
} from '../src/lib/diffusion';
// the UNet as the CLIs and cells run it: one kernel per GroupNorm block on webgpu
import {
  fullyFusedTrainStep, fusedEpsTheta, fusedGuidedEps,
} from '../src/lib/runtime/fused-unet';
import {
  backendFlag, defaultWorkers, num, parseFlags, runMain, threadsFlag, type Flags,
} from './cli';
import { startShards } from './data-parallel';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Times in milliseconds of `repeats` runs of `f` after one warm-up run. */
async function timeRuns(repeats: number, f: () => Promise<void>): Promise<number[]> {
  await f();
  const ms: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await f();
    ms.push(performance.now() - start);
  }
  return ms;
}

/** Median milliseconds of `f` over `repeats` runs after one warm-up run. */
async function time(repeats: number, f: () => Promise<void>): Promise<number> {
  return median(await timeRuns(repeats, f));
}

/** The default output: a table of forward and training-step times over the `--channels` list. */
async function table(flags: Flags) {
  const backend = backendFlag(flags);
  const channels = (typeof flags.channels === 'string' ? flags.channels : '32,64')
    .split(',').map(Number);
  if (!channels.every((c) => Number.isInteger(c) && c >= 32 && c % 32 === 0)) {
    throw new Error('--channels must be multiples of 32 separated by commas, '
      + `received "${flags.channels}"`);
  }
  const B = num(flags, 'batch', 16, (n) => Number.isInteger(n) && n >= 1);
  const trainB = num(flags, 'train-batch', 32, (n) => Number.isInteger(n) && n >= 1);
  const repeats = num(flags, 'repeats', 5, (n) => Number.isInteger(n) && n >= 1);
  await useNodeBackend(backend, { threads: threadsFlag(flags, { backend }) });
  const schedule = makeSchedule('paper-linear', 300);
  const rows: string[][] = [[
    'channels', 'forward B=1 (ms)', `forward B=${B} (ms)`, `train step B=${trainB} (ms)`,
    'train ms/image', 'train images/s',
  ]];
  for (const C of channels) {
    const config: UNetConfig = { imageChannels: 1, channels: C, classes: 10 };
    const params = initParams(config, 0);
    const forward = (b: number) => time(repeats, async () => {
      const x = tf.randomNormal([b, 28, 28, 1]) as tf.Tensor4D;
      const eps = fusedEpsTheta(params, config, x, Array(b).fill(100), Array(b).fill(3));
      await eps.data();
      tf.dispose([x, eps]);
    });
    const f1 = await forward(1);
    const fB = await forward(B);
    const tr = createTrainer(params, config, schedule, { seed: 0 });
    const x0 = tf.randomUniform([trainB, 28, 28, 1], -1, 1) as tf.Tensor4D;
    const labels = Array.from({ length: trainB }, (_, i) => i % 10);
    const step = await time(repeats, async () => {
      const loss = fullyFusedTrainStep(tr, x0, labels);
      await loss.data();
      loss.dispose();
    });
    tf.dispose([x0, ...Object.values(params), ...Object.values(tr.params)]);
    tf.dispose(Object.values(tr.ema ?? {}));
    disposeAdam(tr.adam);
    rows.push([
      String(C), f1.toFixed(1), fB.toFixed(1), step.toFixed(0), (step / trainB).toFixed(1),
      ((1000 * trainB) / step).toFixed(1),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const gpu = backend === 'webgpu' ? ` on ${nodeGpuName() ?? 'an unnamed adapter'}` : '';
  process.stdout.write(`tfjs ${backend}${gpu}, median of ${repeats} runs after one warm-up\n`);
  for (const [i, r] of rows.entries()) {
    process.stdout.write(`| ${r.map((c, j) => c.padStart(widths[j])).join(' | ')} |\n`);
    if (i === 0) process.stdout.write(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |\n`);
  }
}

/**
 * Kernels that launch no work on a backend: they only relabel the input's buffer with a new shape
 * (the backend's kernel calls incRef on the input's data and returns it). tfjs 4.22: Reshape is a
 * view on wasm, cpu and webgpu; Identity is a view on cpu and webgpu but copies on wasm.
 */
export const VIEW_KERNELS: Record<NodeBackend, readonly string[]> = {
  wasm: ['Reshape'], cpu: ['Reshape', 'Identity'], webgpu: ['Reshape', 'Identity'],
};

export const CASES = ['unet-forward', 'train-step', 'ddim-sample', 'kernels'] as const;
type Case = (typeof CASES)[number];

/** What every case reads from the flags, checked once. */
interface CaseOptions {
  name: Case; backend: NodeBackend; channels: number; batch: number; repeats: number;
  workers: number; threads: number; steps: number; guidance: number; vsPytorch: boolean;
  plain: boolean; // the core's epsTheta and trainStep instead of the fused path
  vsPlain: boolean; // also the plain path, in the same run
}

const int = (min: number) => (n: number) => Number.isInteger(n) && n >= min;

function caseOptions(flags: Flags): CaseOptions {
  const name = flags.case as Case;
  if (!CASES.includes(name)) {
    throw new Error(`unknown --case ${JSON.stringify(flags.case)}: expected one of `
      + CASES.join(', '));
  }
  const backend = backendFlag(flags);
  const channels = num(flags, 'channels', 32, int(1));
  if (channels % 32) {
    throw new Error(`--channels must be a multiple of 32 (GroupNorm has 32 groups), `
      + `received ${channels}`);
  }
  const batch = num(flags, 'batch', name === 'kernels' ? 2 : 16, int(1));
  // train-step: the workers npm run train would use
  const workers = num(flags, 'workers',
    name === 'train-step' ? defaultWorkers(backend, batch) : 1, int(1));
  const threads = threadsFlag(flags, { backend, workers });
  if (workers > 1 && name !== 'train-step') {
    throw new Error(`--workers applies to --case train-step only, received --case ${name}`);
  }
  if (workers > 1 && backend !== 'wasm') {
    throw new Error(`--workers ${workers} runs on wasm only, received --backend ${backend}`);
  }
  if (batch % workers) {
    throw new Error(`--batch ${batch} does not split across --workers ${workers}: `
      + 'expected a multiple of the workers');
  }
  const vsPytorch = flags['vs-pytorch'] === true;
  if (flags.plain === true && flags['vs-plain'] === true) {
    throw new Error('--plain and --vs-plain exclude each other: --vs-plain already times both');
  }
  if (flags['vs-plain'] === true && name === 'kernels') {
    throw new Error('--vs-plain times a case; --case kernels prints the plain counts anyway');
  }
  if (vsPytorch && name !== 'unet-forward' && name !== 'train-step') {
    throw new Error(`--vs-pytorch measures unet-forward and train-step, received --case ${name}`);
  }
  return {
    name, backend, channels, batch, workers, threads, vsPytorch, plain: flags.plain === true,
    vsPlain: flags['vs-plain'] === true,
    repeats: num(flags, 'repeats', 5, int(1)),
    steps: num(flags, 'steps', 50, int(1)),
    guidance: num(flags, 'guidance', 2),
  };
}

/** The threads tfjs runs on: the wasm backend's own count, 1 on the others. */
async function threadsOf(backend: NodeBackend): Promise<number> {
  if (backend !== 'wasm') return 1;
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  return wasm.getThreadsCount();
}

const TORCH_SCRIPT = fileURLToPath(new URL('./bench_torch.py', import.meta.url));

/** Stops early, before any timing, where python3 cannot import torch. */
function checkTorch() {
  const r = spawnSync('python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error('--vs-pytorch needs python3 with torch '
      + '(Debian: apt-get install python3-torch)');
  }
}

/** PyTorch's median milliseconds for the same case, network and thread count. */
function torchMs(o: CaseOptions, threads: number): number {
  const args = [TORCH_SCRIPT, '--case', o.name, '--channels', String(o.channels),
    '--batch', String(o.batch), '--threads', String(threads * o.workers),
    '--repeats', String(o.repeats)];
  const r = spawnSync('python3', args, { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`bench_torch.py failed: ${r.stderr.trim().split('\n').pop()}`);
  }
  return Number(JSON.parse(r.stdout.trim().split('\n').pop()!).ms_median);
}

const labelsOf = (B: number) => Array.from({ length: B }, (_, i) => i % 10);
const round = (x: number) => Math.round(x * 100) / 100;

/** A trainer on fresh weights; `free` releases it. */
function trainerFor(config: UNetConfig, labelDropout?: number) {
  const params = initParams(config, 0);
  const tr = createTrainer(params, config, makeSchedule('paper-linear', 300),
    { seed: 0, labelDropout });
  tf.dispose(Object.values(params));
  const free = (t: Trainer) => {
    tf.dispose([...Object.values(t.params), ...Object.values(t.ema ?? {})]);
    disposeAdam(t.adam);
  };
  return { tr, free: () => free(tr) };
}

/** Milliseconds per run of the case's one call (unet-forward, train-step, ddim-sample). */
async function caseTimes(o: CaseOptions, config: UNetConfig): Promise<number[]> {
  const B = o.batch;
  if (o.name === 'train-step') {
    const { tr, free } = trainerFor(config);
    const x0 = tf.randomUniform([B, 28, 28, 1], -1, 1) as tf.Tensor4D;
    const shards = o.workers > 1
      ? await startShards(o.workers, config, { kind: 'paper-linear', T: 300 }, tr,
        { threads: o.threads, plain: o.plain }) : null;
    try {
      return await timeRuns(o.repeats, async () => {
        if (shards) return void await shards.step(tr, x0, labelsOf(B));
        const loss = (o.plain ? trainStep : fullyFusedTrainStep)(tr, x0, labelsOf(B));
        await loss.data();
        loss.dispose();
      });
    } finally {
      await shards?.close();
      x0.dispose();
      free();
    }
  }
  const params = initParams(config, 0);
  try {
    if (o.name === 'unet-forward') {
      return await timeRuns(o.repeats, async () => {
        const x = tf.randomNormal([B, 28, 28, 1]) as tf.Tensor4D;
        const net = o.plain ? epsTheta : fusedEpsTheta;
        const eps = net(params, config, x, Array(B).fill(100), labelsOf(B));
        await eps.data();
        tf.dispose([x, eps]);
      });
    }
    const schedule = makeSchedule('paper-linear', 300);
    const labels = Array.from({ length: B }, () => Math.floor(Math.random() * 10));
    const epsFn = (o.plain ? guidedEps : fusedGuidedEps)(params, config, labels, o.guidance);
    return await timeRuns(o.repeats, async () => {
      const x = await ddimSample(epsFn, schedule, [B, 28, 28, 1], { steps: o.steps, seed: 0 });
      await x.data();
      x.dispose();
    });
  } finally {
    tf.dispose(Object.values(params));
  }
}

/** Kernels launched by `f` (awaited), and the views among them (VIEW_KERNELS). An op that
 *  wraps its kernels for a custom gradient (tf.fused.conv2d, tf.fused.matMul) is profiled under
 *  its scope name, `...__op`, beside the kernel it runs: those entries launch nothing and are not
 *  counted. */
async function countKernels(backend: NodeBackend, f: () => Promise<tf.Tensor>) {
  const info = await tf.profile(async () => {
    const out = await f();
    await out.data();
    return out;
  });
  tf.dispose(info.result);
  const launched = info.kernels.filter((k) => !k.name.endsWith('__op'));
  const views = launched.filter((k) => VIEW_KERNELS[backend].includes(k.name)).length;
  return { kernels: launched.length - views, views };
}

type Net = typeof epsTheta;
type Step = typeof trainStep;
type Guided = typeof guidedEps;

/** Kernel counts of one forward, one training step and one guided DDIM step, on the network and
 *  step given. */
async function kernelCountsOf(o: CaseOptions, config: UNetConfig, net: Net, step: Step,
  guided: Guided) {
  const B = o.batch;
  const params = initParams(config, 0);
  const x = tf.randomNormal([B, 28, 28, 1]) as tf.Tensor4D;
  const forward = await countKernels(o.backend, async () =>
    net(params, config, x, Array(B).fill(100), labelsOf(B)));
  // no label dropout: every step takes the class-embedding path, so the count is the same at
  // every batch size and seed
  const { tr, free } = trainerFor(config, 0);
  tf.dispose(step(tr, x, labelsOf(B))); // Adam's first step, outside the count
  const train = await countKernels(o.backend, async () => step(tr, x, labelsOf(B)));
  free();
  // one guided DDIM step: a 2-step call less a 1-step call (the same start, one step more)
  const s = makeSchedule('paper-linear', 300);
  const epsFn = guided(params, config, labelsOf(B), o.guidance);
  const sample = (steps: number) => countKernels(o.backend, () =>
    ddimSample(epsFn, s, [B, 28, 28, 1], { steps, seed: 0 }));
  const [one, two] = [await sample(1), await sample(2)];
  tf.dispose([x, ...Object.values(params)]);
  return { forward, train, sample: { kernels: two.kernels - one.kernels,
    views: two.views - one.views } };
}

/** Kernel counts of the path the CLIs run (fused network and update), and of the plain core
 *  (epsTheta, trainStep, guidedEps) as `plain_...`. */
async function kernelCounts(o: CaseOptions, config: UNetConfig) {
  const fast = await kernelCountsOf(o, config, fusedEpsTheta, fullyFusedTrainStep,
    fusedGuidedEps);
  const plain = await kernelCountsOf(o, config, epsTheta, trainStep, guidedEps);
  return {
    forward_kernels: fast.forward.kernels, forward_views: fast.forward.views,
    train_step_kernels: fast.train.kernels, train_step_views: fast.train.views,
    sample_step_kernels: fast.sample.kernels, sample_step_views: fast.sample.views,
    plain_forward_kernels: plain.forward.kernels, plain_train_step_kernels: plain.train.kernels,
    plain_sample_step_kernels: plain.sample.kernels,
  };
}

/** One case, printed as one JSON line. */
async function runCase(flags: Flags) {
  const o = caseOptions(flags);
  if (o.vsPytorch) checkTorch();
  await useNodeBackend(o.backend, { threads: o.threads });
  const threads = await threadsOf(o.backend);
  const config: UNetConfig = { imageChannels: 1, channels: o.channels, classes: 10 };
  const head = { case: o.name, backend: o.backend, channels: o.channels, batch: o.batch, threads,
    ...(o.plain ? { plain: true } : {}) };
  if (o.name === 'kernels') {
    process.stdout.write(`${JSON.stringify({ ...head, ...await kernelCounts(o, config) })}\n`);
    return;
  }
  const ms = await caseTimes(o, config);
  const msMedian = median(ms);
  const line: Record<string, unknown> = {
    ...head, ms_median: round(msMedian), ms_min: round(Math.min(...ms)), runs: ms.length,
  };
  if (o.name === 'train-step') {
    Object.assign(line, { workers: o.workers, images_per_s: round((1000 * o.batch) / msMedian) });
  }
  if (o.name === 'ddim-sample') Object.assign(line, { steps: o.steps, guidance: o.guidance });
  if (o.vsPlain) {
    const plainMs = median(await caseTimes({ ...o, plain: true }, config));
    Object.assign(line, { plain_ms: round(plainMs), speedup: round(plainMs / msMedian) });
  }
  if (o.vsPytorch) {
    const pytorchMs = torchMs(o, threads);
    Object.assign(line, { pytorch_ms: round(pytorchMs), ratio: round(msMedian / pytorchMs) });
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main() {
  const known = ['backend', 'channels', 'batch', 'train-batch', 'repeats', 'case', 'steps',
    'guidance', 'threads', 'workers'];
  const flags = parseFlags(process.argv.slice(2), known,
    ['json', 'vs-pytorch', 'plain', 'vs-plain']);
  if (flags.case !== undefined) return runCase(flags);
  const caseOnly = ['json', 'vs-pytorch', 'steps', 'guidance', 'workers', 'plain', 'vs-plain'];
  const stray = caseOnly.find((k) => flags[k] !== undefined);
  if (stray) throw new Error(`--${stray} needs --case NAME (one of ${CASES.join(', ')})`);
  return table(flags);
}

// a CLI when run, a module of constants when a test imports it
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) runMain(main);
