// What every cell's code shares once tfjs is loaded: one backend, one weights cache, the digit set,
// and a debug hook for tests. Loaded by the first Run on a page (a code-split chunk with tfjs in it).
/// <reference types="vite/client" />
import * as tf from '@tensorflow/tfjs-core';
import { forcedBackend, initBrowserBackend, type BrowserBackend } from '../browser';
import { initParams, loadUNet, makeSchedule, type Params, type Schedule, type ScheduleKind, type UNetConfig } from '../../diffusion';
import type { CellContext } from './controller';

export interface Model {
  config: UNetConfig;
  params: Params;
  schedule: Schedule;
  /** Where the weights came from, as shown on the cell. */
  source: string;
  /** Set when the trained model could not be used. */
  warning: string | null;
  /** The card's class names (index = label), when a card lists them. */
  classNames?: string[];
}

export interface Digits { labels: Uint8Array; pixels: Uint8Array; count: number }

/** One page, one session: promises so that cells starting at once share a single load. */
const session: { backend?: Promise<BrowserBackend>; models: Map<string, Promise<Model>>; digits?: Promise<Digits> } = { models: new Map() };

const BASE = import.meta.env.BASE_URL.replace(/\/?$/, '/');
/** The random model of `?cells=tiny` and of a site without trained weights: the paper's MNIST UNet at 32 channels. */
export const RANDOM_CONFIG: UNetConfig = { imageChannels: 1, channels: 32, classes: 10 };

/** Sets the backend once per page (the first cell to run decides), shows it on the cell, and installs the test hook. */
export async function startEngine(ctx: CellContext): Promise<typeof tf> {
  session.backend ??= initBrowserBackend(forcedBackend(ctx.search));
  session.backend.catch(() => (session.backend = undefined));
  ctx.setBackend(await session.backend);
  Object.assign(window, { __tfMemory: () => tf.memory(), __tfBackend: () => tf.getBackend() });
  return tf;
}

/** The site's models that cells may choose (public/models/NAME.json + .safetensors); the first is every cell's default. */
export const SITE_MODELS = ['mnist', 'mnist-64', 'fashion-mnist'];

/** A trained site model, fetched once (`mnist` unless named); random weights if absent or `?cells=tiny`. */
export function siteModel(ctx: CellContext, name = SITE_MODELS[0]): Promise<Model> {
  if (!SITE_MODELS.includes(name)) throw new Error(`unknown site model "${name}": expected one of ${SITE_MODELS.join(', ')}`);
  const random = ctx.tiny || new URLSearchParams(ctx.search).get('model') === 'random';
  const key = random ? `random:${ctx.tiny}` : name;
  if (!session.models.has(key)) {
    const loading = random ? Promise.resolve(randomModel(ctx.tiny ? 5 : 1000, null)) : loadSiteModel(name);
    loading.catch(() => session.models.delete(key));
    session.models.set(key, loading);
  }
  return session.models.get(key)!.then((m) => {
    if (m.warning) ctx.note(m.warning);
    return m;
  });
}

/** Random weights; the paper's linear schedule needs T > 30, so a tiny T uses DDPM's. */
function randomModel(T: number, warning: string | null): Model {
  const schedule = makeSchedule(T > 30 ? 'paper-linear' : 'ddpm-linear', T);
  return { config: RANDOM_CONFIG, params: initParams(RANDOM_CONFIG, 0), schedule,
    source: `random weights (32 channels, ${schedule.kind}, T = ${T})`, warning };
}

const SCHEDULES: ScheduleKind[] = ['paper-linear', 'ddpm-linear', 'cosine'];

/** Reads the schedule from a model's JSON, accepting { schedule: { kind, T } }, { schedule: kind, T } or { scheduleKind, timesteps }. */
export function scheduleFromJson(meta: Record<string, unknown>): Schedule {
  const s = (typeof meta.schedule === 'object' && meta.schedule ? meta.schedule : {}) as Record<string, unknown>;
  const kind = [s.kind, s.name, meta.schedule, meta.scheduleKind].find((k) => SCHEDULES.includes(k as ScheduleKind)) as ScheduleKind | undefined;
  const T = [s.T, s.timesteps, meta.T, meta.timesteps, meta.n_T].find((v) => Number.isInteger(v)) as number | undefined;
  return makeSchedule(kind ?? 'paper-linear', T ?? 1000);
}

/** The architecture a model card (scripts/models.ts's ModelCard) declares, if it declares one. */
function cardConfig(meta: Record<string, unknown>): UNetConfig | undefined {
  const a = meta.architecture as Partial<UNetConfig> | undefined;
  if (!a || !Number.isInteger(a.channels) || !Number.isInteger(a.imageChannels)) return undefined;
  return { imageChannels: a.imageChannels!, channels: a.channels!, classes: Number.isInteger(a.classes) ? a.classes! : null };
}

const DATASET_NAMES: Record<string, string> = { mnist: 'MNIST', 'fashion-mnist': 'Fashion-MNIST' };

async function loadSiteModel(name: string): Promise<Model> {
  const jsonUrl = `${BASE}models/${name}.json`;
  const response = await fetch(jsonUrl).catch(() => null);
  if (!response?.ok) {
    return randomModel(1000, `No trained model at ${jsonUrl} yet: using random weights, so samples are noise.`);
  }
  const meta = (await response.json()) as Record<string, unknown>;
  const weightsUrl = new URL(typeof meta.weights === 'string' ? meta.weights : `${name}.safetensors`, new URL(jsonUrl, location.href));
  const weights = await fetch(weightsUrl);
  if (!weights.ok) throw new Error(`could not fetch the model weights ${weightsUrl.pathname}: HTTP ${weights.status}`);
  const { config, params } = loadUNet(new Uint8Array(await weights.arrayBuffer()), cardConfig(meta));
  const schedule = scheduleFromJson(meta);
  const dataset = DATASET_NAMES[String(meta.dataset)] ?? 'MNIST';
  const classNames = Array.isArray(meta.classNames) ? meta.classNames.map(String) : undefined;
  return { config, params, schedule, source: `trained ${dataset} model ${name} (${config.channels} channels, ${schedule.kind}, T = ${schedule.T})`, warning: null, classNames };
}

/** The 100 real MNIST digits of public/data/mnist-100.bin (ten of each class), fetched once. */
export function digits(): Promise<Digits> {
  session.digits ??= fetch(`${BASE}data/mnist-100.bin`).then(async (r) => {
    if (!r.ok) throw new Error(`could not fetch the digit set ${BASE}data/mnist-100.bin: HTTP ${r.status}`);
    const bytes = new Uint8Array(await r.arrayBuffer());
    const count = 100;
    if (bytes.length !== count * 785) throw new Error(`the digit set has ${bytes.length} bytes; expected ${count * 785}`);
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

/** Lets the page paint and handle a Cancel click between steps (a message, which unlike setTimeout is not clamped to 4 ms). */
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
