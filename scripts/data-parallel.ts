// Synchronous data parallelism for npm run train --workers W: each step's batch is cut into W equal
// shards; this thread computes the gradient of shard 0 while W - 1 worker threads (each with its
// own tfjs wasm engine) compute the others; the mean of the W gradients is the gradient of the
// whole batch, applied once with applyGradients. Same draws (t, eps, dropped labels), same batches,
// same Adam: the run is the single-thread run, up to float rounding, on W cores.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { useNodeBackend } from '../src/lib/runtime/node';
import {
  applyGradients, makeSchedule, simpleLoss, stepDraws,
  type Labels, type Schedule, type ScheduleKind, type Trainer, type UNetConfig,
} from '../src/lib/diffusion';
import { fusedSimpleLoss } from '../src/lib/runtime/fused-unet';

interface Setup {
  config: UNetConfig; schedule: { kind: ScheduleKind; T: number };
  names: string[]; shapes: number[][]; // the parameters, in the order of every list below
  threads: number; // each worker's wasm threads
  plain: boolean; // the core's simpleLoss instead of the fused network (bench --plain)
}
interface ShardJob {
  params: Float32Array[]; x0: Float32Array; eps: Float32Array;
  shape: [number, number, number, number]; t: number[]; y?: Labels;
}
type ShardResult = { loss: number; grads: Float32Array[] } | { error: string };

/** Loss and gradients of one shard, parameters in `setup.names` order, read back to the host. */
async function shardGradients(params: tf.Variable[], setup: Setup, s: Schedule, job: ShardJob) {
  const p = Object.fromEntries(setup.names.map((n, i) => [n, params[i]]));
  const [x0, eps] = [tf.tensor4d(job.x0, job.shape), tf.tensor4d(job.eps, job.shape)];
  const lossOf = setup.plain ? simpleLoss : fusedSimpleLoss;
  const f = () => lossOf(p, setup.config, s, x0, job.t, eps, job.y);
  const { value, grads } = tf.variableGrads(f, params);
  // a weight unused by this shard (class_emb when all its labels were dropped): gradient 0
  const out = await Promise.all(params.map(async (v) =>
    (grads[v.name] ? await grads[v.name].data() as Float32Array : new Float32Array(v.size))));
  const loss = (await value.data())[0];
  tf.dispose([x0, eps, value, ...Object.values(grads)]);
  return { loss, grads: out };
}

/** The worker thread: holds a copy of the parameters, overwritten each step with the trainer's. */
async function workerMain() {
  const setup = workerData as Setup;
  await useNodeBackend('wasm', { threads: setup.threads });
  const s = makeSchedule(setup.schedule.kind, setup.schedule.T);
  const params = setup.shapes.map((shape) => tf.tidy(() => tf.variable(tf.zeros(shape))));
  parentPort!.on('message', async (job: ShardJob) => {
    try {
      params.forEach((v, i) => tf.tidy(() => v.assign(tf.tensor(job.params[i], v.shape))));
      const result = await shardGradients(params, setup, s, job);
      parentPort!.postMessage(result, result.grads.map((g) => g.buffer as ArrayBuffer));
    } catch (error) {
      parentPort!.postMessage({ error: error instanceof Error ? error.message : String(error) });
    }
  });
  parentPort!.postMessage({ ready: true });
}

export interface Shards {
  /** The whole batch's loss and gradient at this step's draws, as the means over the shards. */
  gradients(tr: Trainer, x0: tf.Tensor4D, labels?: number[]):
    Promise<{ loss: number; grads: tf.NamedTensorMap }>;
  /** One training step: `gradients`, then applyGradients (Adam and the EMA). */
  step(tr: Trainer, x0: tf.Tensor4D, labels?: number[]): Promise<number>;
  close(): Promise<void>;
}

/** Starts `workers - 1` worker threads that, with this thread, share each step of trainer `tr`. */
export async function startShards(workers: number, config: UNetConfig,
  schedule: { kind: ScheduleKind; T: number }, tr: Trainer, { threads = 1, plain = false } = {})
  : Promise<Shards> {
  const names = Object.keys(tr.params);
  const shapes = names.map((n) => tr.params[n].shape);
  const setup: Setup = { config, schedule, names, shapes, threads, plain };
  // a worker thread does not inherit tsx's loader: register it there before importing this file
  const boot = 'import(\'tsx/esm/api\').then((tsx) => { tsx.register(); '
    + `return import(${JSON.stringify(import.meta.url)}); })`;
  const others = Array.from({ length: workers - 1 },
    () => new Worker(boot, { eval: true, workerData: setup }));
  // the worker's next message; an error or an exit instead rejects, so that a dead worker never
  // leaves the step waiting
  const next = (w: Worker) => new Promise<ShardResult & { ready?: true }>((resolve, reject) => {
    if (w.threadId === -1) {
      return reject(new Error('a training worker is not running (closed or exited)'));
    }
    const done = () => (w.off('error', fail), w.off('exit', exited), w.off('message', reply));
    const fail = (error: Error) =>
      (done(), reject(new Error(`a training worker failed: ${error.message}`)));
    const exited = (code: number) =>
      (done(), reject(new Error(`a training worker exited with code ${code}`)));
    const reply = (m: ShardResult & { ready?: true }) => (done(), resolve(m));
    w.on('error', fail).on('exit', exited).on('message', reply);
  });
  await Promise.all(others.map(next));
  const shards: Shards = {
    async gradients(tr, x0, labels) {
      const [B, H, W, C] = x0.shape;
      if (B % workers) throw new Error(`--batch ${B} is not divisible by --workers ${workers}`);
      const [b, size] = [B / workers, (B / workers) * H * W * C];
      const { t, y, eps } = stepDraws(tr, x0.shape, labels);
      const x0Host = await x0.data() as Float32Array;
      const epsHost = await eps.data() as Float32Array;
      eps.dispose();
      const params = await Promise.all(names.map((n) =>
        tr.params[n].data() as Promise<Float32Array>));
      const shard = (k: number): ShardJob => ({
        params, shape: [b, H, W, C],
        t: t.slice(k * b, (k + 1) * b), y: y?.slice(k * b, (k + 1) * b),
        x0: x0Host.slice(k * size, (k + 1) * size), eps: epsHost.slice(k * size, (k + 1) * size),
      });
      const replies = others.map((w, k) => (w.postMessage(shard(k + 1)), next(w)));
      const vars = names.map((n) => tr.params[n]);
      const mine = await shardGradients(vars, setup, tr.schedule, shard(0));
      const results = [mine, ...await Promise.all(replies)];
      const failed = results.find((r): r is { error: string } => 'error' in r);
      if (failed) throw new Error(`a training worker failed: ${failed.error}`);
      const ok = results as { loss: number; grads: Float32Array[] }[];
      // the mean on wasm: a JS loop over the ~1M floats took 4-14 ms, this 2.5 ms
      const grads = Object.fromEntries(vars.map((v, i) => [v.name, tf.tidy(() =>
        tf.addN(ok.map((r) => tf.div(tf.tensor(r.grads[i], v.shape), workers))))]));
      return { loss: ok.reduce((a, r) => a + r.loss, 0) / workers, grads };
    },
    async step(tr, x0, labels) {
      const { loss, grads } = await shards.gradients(tr, x0, labels);
      applyGradients(tr, grads);
      return loss;
    },
    async close() {
      await Promise.all(others.map((w) => w.terminate()));
    },
  };
  return shards;
}

if (!isMainThread) void workerMain();
