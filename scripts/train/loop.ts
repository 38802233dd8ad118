// The training loop of npm run train: one step of DDPM Algorithm 1 per batch, at the scheduled
// learning rate, with a checkpoint every few minutes, until the run ends or is stopped.
import * as tf from '@tensorflow/tfjs-core';
import type { Trainer } from '../../src/lib/diffusion';
// trainStep on webgpu with one kernel per GroupNorm block and Adam + EMA as one kernel; on the
// other backends the core's own ops
import { fullyFusedTrainStep } from '../../src/lib/runtime/fused-unet';
import { batchShape, gatherImages, type Dataset } from '../../src/lib/data/datasets';
import { batchIndices } from '../../src/lib/data/batches';
import type { Shards } from '../data-parallel';
import { learningRate } from './lr';
import type { RunConfig, RunState } from './run';

export interface LoopOptions {
  tr: Trainer; run: RunConfig; state: RunState;
  data: Dataset; images: number; // the run trains on the data set's first `images` images
  totalSteps: number; stopAt: number; // the run ends at totalSteps; this session stops at stopAt
  shards: Shards | null; // --workers: each batch split over worker threads
  checkpointMs: number; save: () => Promise<void>; // a checkpoint every checkpointMs
  stopping: () => string | null; // why to stop between two steps (a signal), or null
}

/** Trains until the run's end, --stop-at or a signal; `state` follows every step. */
export async function trainLoop(o: LoopOptions): Promise<void> {
  const { tr, run, state, data, shards } = o;
  const progress = progressReporter(run.batch, o.totalSteps);
  let lastSave = Date.now();
  let sessionStart = performance.now();
  const clock = () => {
    state.wallSeconds += (performance.now() - sessionStart) / 1000;
    sessionStart = performance.now();
  };
  while (state.step < o.totalSteps && state.step < o.stopAt && !o.stopping()) {
    const indices = batchIndices(run.seed, state.step, o.images, run.batch);
    const shape = batchShape(data, run.batch);
    const x0 = tf.tensor4d(gatherImages(data, indices), shape); // [B, H, W, C]
    const labels = indices.map((i) => data.labels[i]);
    tr.adam.lr = learningRate(run.lr, run.warmup, state.step);
    const value = shards ? await shards.step(tr, x0, labels)
      : await lossValue(fullyFusedTrainStep(tr, x0, labels));
    x0.dispose();
    if (!Number.isFinite(value)) {
      throw new Error(`the loss became ${value} at step ${state.step}: lower --lr`);
    }
    state.losses.push(value);
    state.step = tr.step;
    progress(state.step, state.losses);
    // let signals and piped stderr through: wasm's data() never leaves the microtask queue
    await new Promise((resolve) => setImmediate(resolve));
    if (Date.now() - lastSave > o.checkpointMs) {
      clock();
      await o.save();
      lastSave = Date.now();
      const seen = state.step * run.batch;
      process.stderr.write(`\ncheckpoint at step ${state.step} (${seen} images seen)\n`);
    }
  }
  clock();
}

async function lossValue(loss: tf.Scalar) {
  const value = (await loss.data())[0];
  loss.dispose();
  return value;
}

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
    const line = `[${bar}] step ${step}/${totalSteps} loss ${loss.toFixed(4)} `
      + `${(batch / perStep).toFixed(1)} img/s ETA ${formatSeconds(eta)}`;
    const time = new Date().toISOString().slice(11, 19);
    process.stderr.write(tty ? `\r${line}` : `${time} ${line}\n`);
  };
}

/** 3725 -> "1h02m05s"; "?" when unknown. */
function formatSeconds(s: number) {
  if (!Number.isFinite(s)) return '?';
  const two = (n: number) => String(Math.floor(n)).padStart(2, '0');
  return `${Math.floor(s / 3600)}h${two((s % 3600) / 60)}m${two(s % 60)}s`;
}
