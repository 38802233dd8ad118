// Model files shared by the train, sample and eval commands: NAME.safetensors (the UNet, PyTorch layout)
// and NAME.json (the model card: architecture, schedule, class names, recommended sampling, training, eval).
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readJsonFile } from './cli';
import { ddimSample, ddpmSample, guidedEps, loadUNet, makeSchedule, type Params, type ScheduleKind, type UNetConfig } from '../src/lib/diffusion';

export const MODELS_DIR = resolve('public/models');

export interface ModelCard {
  name: string;
  dataset: string;
  architecture: { imageChannels: number; channels: number; classes: number | null; imageSize: number };
  schedule: { kind: ScheduleKind; T: number };
  classNames: string[];
  // recomputeEps: DDIM re-derives eps from the clipped x_0 estimate (absent in older cards: false, the paper's loop)
  recommended: { sampler: 'ddpm' | 'ddim'; steps: number; eta: number; guidance: number; recomputeEps?: boolean; chosen?: string };
  training?: Record<string, unknown>;
  eval?: Record<string, unknown>;
}

/** NAME -> public/models/NAME.{safetensors,json}; a path to a .safetensors file is used as it is. */
export function modelPaths(model: string, dir = MODELS_DIR) {
  const weights = model.endsWith('.safetensors') ? model : join(dir, `${model}.safetensors`);
  return { weights, card: weights.replace(/\.safetensors$/, '.json'), name: basename(weights, '.safetensors') };
}

/** A loaded card: its recommendation complete, older cards filled in. */
export type LoadedCard = ModelCard & { recommended: ModelCard['recommended'] & { recomputeEps: boolean } };

/** Loads a model's weights and card; the card's architecture must match the weights. */
export function loadModel(model: string, dir = MODELS_DIR): { card: LoadedCard; config: UNetConfig; params: Params; paths: ReturnType<typeof modelPaths> } {
  const paths = modelPaths(model, dir);
  if (!existsSync(paths.weights)) throw new Error(`model "${model}" not found: expected ${paths.weights}`);
  if (!existsSync(paths.card)) throw new Error(`model card not found: expected ${paths.card} beside the weights`);
  const card = readJsonFile<LoadedCard>(paths.card);
  if (!card.architecture || !card.schedule || !card.recommended) throw new Error(`${paths.card} lacks architecture, schedule or recommended: not a model card`);
  card.recommended.eta ??= 0; // older cards lack eta and recomputeEps: they were tuned with the paper's deterministic DDIM
  card.recommended.recomputeEps ??= false;
  const { imageChannels, channels, classes } = card.architecture;
  const { config, params } = loadUNet(new Uint8Array(readFileSync(paths.weights)), { imageChannels, channels, classes });
  return { card, config, params, paths };
}

/** Images sampled at once by default; chunk k of a call is drawn with seed + k. */
export const SAMPLE_CHUNK = 100;

/** "eta 1, eps recomputed": how DDIM sampled, for the CLIs' reports. */
export const ddimSettings = (eta: number, recomputeEps: boolean) => `eta ${eta}${recomputeEps ? ', eps recomputed' : ''}`;

export interface SampleSettings { sampler: 'ddpm' | 'ddim'; steps: number; eta: number; recomputeEps: boolean; guidance: number; seed: number }

/**
 * Samples one image per label with classifier-free guidance w, in chunks of at most `chunk` images
 * (chunk k uses seed + k). Returns [N, 28, 28] row-major values clipped to [-1, 1].
 */
export async function sampleImages(model: { card: ModelCard; config: UNetConfig; params: Params }, labels: number[],
  s: SampleSettings, chunk = SAMPLE_CHUNK, onChunk?: (done: number) => void): Promise<Float32Array> {
  const { card, config, params } = model;
  const schedule = makeSchedule(card.schedule.kind, card.schedule.T);
  const size = card.architecture.imageSize;
  const out = new Float32Array(labels.length * size * size * config.imageChannels);
  for (let at = 0, k = 0; at < labels.length; at += chunk, k++) {
    const y = labels.slice(at, at + chunk);
    const shape: [number, number, number, number] = [y.length, size, size, config.imageChannels];
    const epsFn = guidedEps(params, config, y, s.guidance);
    const opts = { seed: s.seed + k };
    const x = s.sampler === 'ddpm' ? await ddpmSample(epsFn, schedule, shape, opts)
      : await ddimSample(epsFn, schedule, shape, { ...opts, steps: s.steps, eta: s.eta, recomputeEps: s.recomputeEps });
    const clipped = tf.clipByValue(x, -1, 1);
    out.set(await clipped.data(), at * size * size * config.imageChannels);
    tf.dispose([x, clipped]);
    onChunk?.(Math.min(labels.length, at + chunk));
  }
  return out;
}
