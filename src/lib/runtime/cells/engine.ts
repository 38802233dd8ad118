// What every cell's code shares once tfjs is loaded: one backend, one weights cache, the digit
// set and debug hooks for tests. Loaded by the first Run on a page, a code-split chunk with tfjs.
// On webgpu and wasm the UNet runs fused (../fused-unet.ts) unless a pane is edited or
// `?fused=off`; a failure of the fused kernels, or a lost WebGPU device, reruns the cell on the
// plain library, or on the next backend, with a note on the cell.
/// <reference types="vite/client" />
import * as tf from '@tensorflow/tfjs-core';
import {
  forcedBackend, fusedMode, initBrowserBackend, wasmThreads, type BrowserBackend, type FusedMode,
} from '../browser';
import * as bundled from '../../diffusion';
import * as fused from '../fused-unet';
import {
  initParams, loadUNet, makeSchedule,
  type Params, type Schedule, type ScheduleKind, type UNetConfig,
} from '../../diffusion';
import { pageEdits } from '../edit/store';
import { parseModelCard, SCHEDULE_KINDS } from '../../models/card';
import type { CellContext } from './controller';

export interface Model {
  config: UNetConfig;
  params: Params;
  schedule: Schedule;
  /** Where the weights came from, as shown on the cell. */
  source: string;
  /** The card's class names (index = label); none for random weights. */
  classNames?: string[];
}

export interface Digits { labels: Uint8Array; pixels: Uint8Array; count: number }

/** The library's API, as bundled or as the reader edited it. */
export type Library = typeof bundled;

/** One page, one session: promises so that cells starting at once share a single load. */
const session: {
  backend?: Promise<BrowserBackend>; models: Map<string, Promise<Model>>; digits?: Promise<Digits>;
  /** The library built from the page's edits, and the edits it was built from. */
  edited?: { key: string; library: Promise<Library> };
  /** The fused UNet on webgpu: `?fused=`, the one check of the kernels (probeFused), why they
   * failed (then the page runs the plain library), and whether the last run used them. */
  fused: { mode?: FusedMode; probe?: Promise<void>; failure?: string; thrown?: boolean;
    ran: boolean };
  /** The WebGPU device whose loss is watched, and why it was lost (then cells leave webgpu). */
  device?: GPUDeviceLike; lost?: string; leftWebgpu?: boolean;
} = { models: new Map(), fused: { ran: false } };

/**
 * The library that cells run: the bundled one while no pane on the page is edited, else the one
 * built from the edits (../edit/graph.ts, loaded only then; rebuilt when the edits change). A
 * syntax error rejects, and the panes show it. Unedited on webgpu, its epsTheta, plainEps and
 * guidedEps are the fused ones (fusedLibrary) unless `?fused=off` or they failed on this page.
 */
export function library(): Promise<Library> {
  const edits = pageEdits();
  if (!edits.size) return Promise.resolve(useFused() ? fusedLibrary() : bundled);
  const key = JSON.stringify([...edits].sort());
  if (session.edited?.key !== key) {
    const built = import('../edit/graph').then((graph) => graph.buildLibrary(new Map(edits), tf));
    session.edited = { key, library: built };
    built.catch(() => {
      if (session.edited?.key === key) session.edited = undefined;
    });
  }
  return session.edited.library;
}

const BASE = import.meta.env.BASE_URL.replace(/\/?$/, '/');
/** The random model of `?cells=tiny` and `?model=random`: the paper's MNIST UNet at 32 channels. */
export const RANDOM_CONFIG: UNetConfig = { imageChannels: 1, channels: 32, classes: 10 };

/** Sets the backend once per page (the first cell to run decides; after a lost WebGPU device, the
 * next that works), shows it and any fallback note on the cell, gives the cell's controller
 * `recover`, and installs the test hooks. */
export async function startEngine(ctx: CellContext): Promise<typeof tf> {
  const threads = wasmThreads(ctx.search);
  if (session.lost !== undefined && !session.leftWebgpu) {
    session.leftWebgpu = true;
    session.models.clear(); // their weights lived on the lost device
    session.backend = initBrowserBackend(null, { threads, skip: ['webgpu'] });
  }
  session.backend ??= initBrowserBackend(forcedBackend(ctx.search), { threads });
  session.backend.catch(() => (session.backend = undefined));
  const backend = await session.backend;
  ctx.setBackend(backend);
  ctx.recover = recover;
  session.fused.ran = false;
  if (session.lost !== undefined) {
    ctx.note(`The WebGPU device was lost (${session.lost}): this cell ran on ${backend}.`);
  }
  if (backend === 'wasm') session.fused.mode ??= fusedMode(ctx.search);
  if (backend === 'webgpu') {
    watchDevice();
    session.fused.mode ??= fusedMode(ctx.search);
    if (session.fused.mode !== 'off') await (session.fused.probe ??= probeFused());
  }
  if (session.fused.failure !== undefined) {
    const kind = backend === 'webgpu' ? 'WebGPU' : backend;
    ctx.note(`Fused ${kind} kernels failed (${session.fused.failure}): ran the plain library.`);
  }
  Object.assign(window, {
    __tfMemory: () => tf.memory(), __tfBackend: () => tf.getBackend(),
    __fusedPath: () => session.fused.ran,
  });
  return tf;
}

/** What the engine uses of a GPUDevice (tfjs-backend-webgpu's backend.device). */
interface GPUDeviceLike {
  lost: Promise<{ reason?: string; message?: string }>;
  destroy(): void;
  pushErrorScope(filter: 'validation' | 'internal' | 'out-of-memory'): void;
  popErrorScope(): Promise<{ message: string } | null>;
}

const webgpuDevice = () => tf.getBackend() === 'webgpu'
  ? (tf.backend() as unknown as { device?: GPUDeviceLike }).device : undefined;

/** Notes the loss of the current WebGPU device (then startEngine leaves webgpu); the test hook
 * `__loseWebGPUDevice()` destroys it. */
function watchDevice() {
  const device = webgpuDevice();
  if (!device || session.device === device) return;
  session.device = device;
  void device.lost.then((info) => {
    session.lost ??= info.message || info.reason || 'no reason given';
  });
  Object.assign(window, { __loseWebGPUDevice: () => device.destroy() });
}

/** The fused path on an unedited page: webgpu or wasm (WebAssembly SIMD GroupNorm), not
 *  `?fused=off`, not failed. */
function useFused(): boolean {
  const f = session.fused;
  return ['webgpu', 'wasm'].includes(tf.getBackend()) && f.mode !== undefined && f.mode !== 'off'
    && f.failure === undefined && session.lost === undefined;
}

/**
 * Checks the fused kernels once per page, before a cell uses them: each of them once, on small
 * inputs, inside WebGPU error scopes, since a shader or pipeline that the adapter rejects reports
 * an error there rather than throwing. A failure is kept in session.fused.failure: the page then
 * runs the plain library, and its cells say so.
 */
async function probeFused(): Promise<void> {
  const device = webgpuDevice();
  const scopes = ['validation', 'internal', 'out-of-memory'] as const;
  try {
    if (!fused.hasFusedKernels()) throw new Error('no fused kernels on this backend');
    scopes.forEach((scope) => device?.pushErrorScope(scope));
    // the scopes stay open until the values are read, so that they see the submitted work
    const values = await fusedProbeKernels().catch((thrown: unknown) => thrown);
    const errors = await Promise.all(scopes.map(() => device?.popErrorScope() ?? null));
    const error = errors.find((e) => e);
    if (error) throw new Error(error.message);
    if (!(values instanceof Float32Array)) throw values;
    if (!values.every(Number.isFinite)) {
      throw new Error('the fused kernels gave values that are not finite');
    }
  } catch (error) {
    session.fused.failure = error instanceof Error ? error.message : String(error);
    console.warn('fused WebGPU kernels failed; running the plain library:', error);
  }
}

/** The probe's kernels: the condition and the four GroupNormRelu variants that fusedEpsTheta
 * runs, on a batch of 2 at 4 x 4 (a pipeline per shape: compiling few and small ones is quick). */
async function fusedProbeKernels(): Promise<Float32Array> {
  const params = initParams(RANDOM_CONFIG, 0);
  let outs: tf.Tensor[];
  try {
    outs = tf.tidy(() => {
      const cond = fused.fusedCondition(params, RANDOM_CONFIG, [1, 1], [3, null]); // [2, 1, 1, 64]
      const x = tf.ones<tf.Rank.R4>([2, 4, 4, 64]);
      return [cond, fused.groupNormRelu(x), fused.groupNormRelu(x, { skip: x }),
        fused.groupNormRelu(x, { skip: x, upsample: true }),
        fused.groupNormRelu(x, { skip: x, cond, twice: true, upsample: true })];
    });
  } finally {
    tf.dispose(Object.values(params));
  }
  try {
    const values = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
    return Float32Array.from(values.flatMap((v) => Array.from(v)));
  } finally {
    tf.dispose(outs);
  }
}

/** A failure inside a fused UNet call (the plain call with the same inputs worked). */
class FusedFailure extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'FusedFailure';
  }
}

/** `fusedFn` in place of `plainFn`. If it throws, `plainFn` runs on the same inputs: its own error
 * (bad inputs) is thrown as it is; if it works, a FusedFailure is thrown, and recover() has the
 * controller rerun the cell on the plain library. After a failure, `plainFn` alone runs. */
function guard<A extends unknown[], R extends tf.Tensor>(fusedFn: (...a: A) => R,
  plainFn: (...a: A) => R): (...a: A) => R {
  return (...args) => {
    if (!useFused()) return plainFn(...args);
    try {
      if (session.fused.mode === 'fail' && !session.fused.thrown) {
        session.fused.thrown = true;
        throw new Error('forced by ?fused=fail');
      }
      const out = fusedFn(...args);
      session.fused.ran = true;
      return out;
    } catch (error) {
      tf.dispose(plainFn(...args));
      throw new FusedFailure(error);
    }
  };
}

let fusedLib: Library | undefined;

/** The bundled library with the UNet's fused forward (same signatures, same numbers). */
function fusedLibrary(): Library {
  fusedLib ??= {
    ...bundled,
    epsTheta: guard(fused.fusedEpsTheta, bundled.epsTheta),
    plainEps: (p, c, labels) =>
      guard(fused.fusedPlainEps(p, c, labels), bundled.plainEps(p, c, labels)),
    guidedEps: (p, c, labels, w) =>
      guard(fused.fusedGuidedEps(p, c, labels, w), bundled.guidedEps(p, c, labels, w)),
  };
  return fusedLib;
}

/** The controller's question after a failed run: should it run again? Yes, once the fused
 * kernels failed (the rerun gets the plain library) or the WebGPU device was lost (the rerun's
 * startEngine moves to the next backend). */
async function recover(error: unknown): Promise<boolean> {
  if (error instanceof FusedFailure && session.fused.failure === undefined) {
    session.fused.failure = error.message;
    console.warn('fused kernels failed; running the plain library:', error.cause);
    return true;
  }
  const device = webgpuDevice();
  if (session.lost === undefined && device) {
    // a lost device fails the run's reads (mapAsync rejects), while its lost promise may stay
    // pending for seconds (Chromium with work in flight): such a failure counts as the loss
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof DOMException && /mapAsync/.test(message)) session.lost = message;
    else await Promise.race([device.lost, new Promise((resolve) => setTimeout(resolve, 250))]);
  }
  return session.lost !== undefined && !session.leftWebgpu;
}

/** The site's models that cells may choose (public/models/NAME.json + .safetensors); the first is
 * every cell's default. */
export const SITE_MODELS = ['mnist', 'mnist-64', 'fashion-mnist'];

/** A trained site model, fetched once (`mnist` unless named); random weights for `?cells=tiny` and
 * `?model=random`. Its schedule comes from library(), so that an edited schedule region counts. */
export async function siteModel(ctx: CellContext, name = SITE_MODELS[0]): Promise<Model> {
  const model = await loadedModel(ctx, name);
  if (!pageEdits().size) return model;
  const { kind, T } = model.schedule;
  return { ...model, schedule: (await library()).makeSchedule(kind, T) };
}

function loadedModel(ctx: CellContext, name: string): Promise<Model> {
  if (!SITE_MODELS.includes(name)) {
    throw new Error(`unknown site model "${name}": expected one of ${SITE_MODELS.join(', ')}`);
  }
  const random = ctx.tiny || new URLSearchParams(ctx.search).get('model') === 'random';
  const key = random ? `random:${ctx.tiny}` : name;
  if (!session.models.has(key)) {
    const loading = random ? Promise.resolve(randomModel(ctx.tiny ? 5 : 1000))
      : loadSiteModel(name);
    loading.catch(() => session.models.delete(key));
    session.models.set(key, loading);
  }
  return session.models.get(key)!;
}

/** Random weights; the paper's linear schedule needs T > 30, so a tiny T uses DDPM's. */
function randomModel(T: number): Model {
  const schedule = makeSchedule(T > 30 ? 'paper-linear' : 'ddpm-linear', T);
  return { config: RANDOM_CONFIG, params: initParams(RANDOM_CONFIG, 0), schedule,
    source: `random weights (32 channels, ${schedule.kind}, T = ${T})` };
}

/**
 * A schedule from loose metadata ({ schedule: { kind, T } }, { schedule: kind, T } or
 * { scheduleKind, timesteps }), the paper's (paper-linear, T = 1000) where it names none. For a
 * checkpoint's own metadata; a site model's schedule comes from its validated card.
 */
export function scheduleFromJson(meta: Record<string, unknown>): Schedule {
  const s = (typeof meta.schedule === 'object' && meta.schedule ? meta.schedule : {}) as
    Record<string, unknown>;
  const kind = [s.kind, s.name, meta.schedule, meta.scheduleKind]
    .find((k) => SCHEDULE_KINDS.includes(k as ScheduleKind)) as ScheduleKind | undefined;
  const T = [s.T, s.timesteps, meta.T, meta.timesteps, meta.n_T]
    .find((v) => Number.isInteger(v)) as number | undefined;
  return makeSchedule(kind ?? 'paper-linear', T ?? 1000);
}

const DATASET_NAMES: Record<string, string> = { mnist: 'MNIST', 'fashion-mnist': 'Fashion-MNIST' };

/** A site model from its card and weights; a missing or invalid card is an error on the cell. */
async function loadSiteModel(name: string): Promise<Model> {
  const cardUrl = new URL(`${BASE}models/${name}.json`, location.href);
  const response = await fetch(cardUrl);
  if (!response.ok) {
    throw new Error(`could not fetch the model card ${cardUrl.pathname}: HTTP ${response.status}`);
  }
  const card = parseModelCard(await response.json(), cardUrl.pathname);
  const weightsUrl = new URL(`${name}.safetensors`, cardUrl);
  const weights = await fetch(weightsUrl);
  if (!weights.ok) {
    const status = `HTTP ${weights.status}`;
    throw new Error(`could not fetch the model weights ${weightsUrl.pathname}: ${status}`);
  }
  const { imageChannels, channels, classes } = card.architecture;
  const bytes = new Uint8Array(await weights.arrayBuffer());
  const { config, params } = loadUNet(bytes, { imageChannels, channels, classes });
  const schedule = makeSchedule(card.schedule.kind, card.schedule.T);
  const dataset = DATASET_NAMES[card.dataset] ?? card.dataset;
  const source = `trained ${dataset} model ${name} `
    + `(${config.channels} channels, ${schedule.kind}, T = ${schedule.T})`;
  return { config, params, schedule, source, classNames: card.classNames };
}

/** The 100 real MNIST digits of public/data/mnist-100.bin (ten of each class), fetched once. */
export function digits(): Promise<Digits> {
  const url = `${BASE}data/mnist-100.bin`;
  session.digits ??= fetch(url).then(async (r) => {
    if (!r.ok) throw new Error(`could not fetch the digit set ${url}: HTTP ${r.status}`);
    const bytes = new Uint8Array(await r.arrayBuffer());
    const count = 100;
    if (bytes.length !== count * 785) {
      throw new Error(`the digit set has ${bytes.length} bytes; expected ${count * 785}`);
    }
    return { labels: bytes.subarray(0, count), pixels: bytes.subarray(count), count };
  });
  session.digits.catch(() => (session.digits = undefined));
  return session.digits;
}

/** Digits `indices` as x_0 in [-1, 1], shaped [B, 28, 28, 1]; the caller owns the tensor. */
export function digitBatch(d: Digits, indices: number[]): tf.Tensor4D {
  const x = new Float32Array(indices.length * 784);
  indices.forEach((index, b) => {
    for (let p = 0; p < 784; p++) x[b * 784 + p] = (d.pixels[index * 784 + p] / 255) * 2 - 1;
  });
  return tf.tensor4d(x, [indices.length, 28, 28, 1]);
}

/** Lets the page paint and handle a Cancel click between steps (a message, which unlike
 * setTimeout is not clamped to 4 ms). */
export function yieldToPage(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(0);
  });
}

/** Throws the AbortError that the controller reports as "cancelled". */
export function throwIfAborted(signal: AbortSignal) {
  if (signal.aborted) throw new DOMException('the run was cancelled', 'AbortError');
}
