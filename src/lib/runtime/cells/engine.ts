// What every cell's code shares once tfjs is loaded: one backend, one weights cache, the digit
// set and a debug hook for tests. Loaded by the first Run on a page, a code-split chunk with tfjs.
/// <reference types="vite/client" />
import * as tf from '@tensorflow/tfjs-core';
import {
  forcedBackend, initBrowserBackend, wasmThreads, type BrowserBackend,
} from '../browser';
import * as bundled from '../../diffusion';
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
} = { models: new Map() };

/**
 * The library that cells run: the bundled one while no pane on the page is edited, else the one
 * built from the edits (../edit/graph.ts, loaded only then; rebuilt when the edits change). A
 * syntax error rejects, and the panes show it.
 */
export function library(): Promise<Library> {
  const edits = pageEdits();
  if (!edits.size) return Promise.resolve(bundled);
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

/** Sets the backend once per page (the first cell to run decides), shows it on the cell, and
 * installs the test hook. */
export async function startEngine(ctx: CellContext): Promise<typeof tf> {
  session.backend ??= initBrowserBackend(forcedBackend(ctx.search),
    { threads: wasmThreads(ctx.search) });
  session.backend.catch(() => (session.backend = undefined));
  ctx.setBackend(await session.backend);
  Object.assign(window, { __tfMemory: () => tf.memory(), __tfBackend: () => tf.getBackend() });
  return tf;
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
