// Model files shared by the train, sample and eval commands: NAME.safetensors (the UNet, PyTorch
// layout) and NAME.json (the model card, src/lib/models/card.ts: architecture, schedule, class
// names, recommended sampling, training, eval).
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readJsonFile } from './cli';
import {
  ddimSample, ddpmSample, loadUNet, makeSchedule, type Params, type UNetConfig,
} from '../src/lib/diffusion';
import { parseModelCard, type ModelCard } from '../src/lib/models/card';
import { asSafetensors } from '../src/lib/runtime/pth';
// the UNet with one kernel per GroupNorm block on webgpu; the core's own ops elsewhere
import { fusedGuidedEps } from '../src/lib/runtime/fused-unet';
import type { ScheduleKind } from '../src/lib/diffusion';

export const MODELS_DIR = resolve('public/models');

export type { ModelCard } from '../src/lib/models/card';

/** NAME -> public/models/NAME.{safetensors,json}; a path to a .safetensors file is kept as is. */
export function modelPaths(model: string, dir = MODELS_DIR) {
  const weights = model.endsWith('.safetensors') ? model : join(dir, `${model}.safetensors`);
  const card = weights.replace(/\.safetensors$/, '.json');
  return { weights, card, name: basename(weights, '.safetensors') };
}

/** A loaded card: validated, its recommendation complete (parseModelCard fills in older cards). */
export type LoadedCard = ModelCard;

/** Loads a model's weights and card; the card's architecture must match the weights. */
export function loadModel(model: string, dir = MODELS_DIR):
  { card: LoadedCard; config: UNetConfig; params: Params; paths: ReturnType<typeof modelPaths> } {
  const paths = modelPaths(model, dir);
  if (!existsSync(paths.weights)) {
    throw new Error(`model "${model}" not found: expected ${paths.weights}`);
  }
  if (!existsSync(paths.card)) {
    throw new Error(`model card not found: expected ${paths.card} beside the weights`);
  }
  const card = parseModelCard(readJsonFile<unknown>(paths.card), paths.card);
  const { imageChannels, channels, classes } = card.architecture;
  const bytes = new Uint8Array(readFileSync(paths.weights));
  const { config, params } = loadUNet(bytes, { imageChannels, channels, classes });
  return { card, config, params, paths };
}

/**
 * A weights file without a card: .safetensors, or a .pth from torch.save(model.state_dict()) (read
 * without running its pickle). The schedule is the caller's; sampling follows the paper's script:
 * DDIM with 50 steps (T - 1 for smaller T), eta 0, the network's eps, no guidance (w = 1).
 */
export function loadWeightsFile(file: string, schedule: { kind: ScheduleKind; T: number }) {
  if (!existsSync(file)) throw new Error(`weights file not found: ${file}`);
  const raw = new Uint8Array(readFileSync(file));
  const { config, params } = loadUNet(asSafetensors(raw));
  const name = basename(file).replace(/\.(safetensors|pth?)$/i, '');
  const classes = config.classes ?? 0;
  const card: ModelCard = {
    name, dataset: 'unknown', schedule,
    architecture: { ...config, imageSize: config.imageChannels === 1 ? 28 : 32 },
    classNames: Array.from({ length: classes }, (_, i) => String(i)),
    recommended: {
      sampler: 'ddim', steps: Math.min(50, schedule.T - 1), eta: 0, guidance: 1,
      recomputeEps: false,
    },
  };
  return { card, config, params, paths: { weights: file, card: null, name } };
}

/** Images sampled at once by default; chunk k of a call is drawn with seed + k. */
export const SAMPLE_CHUNK = 100;

/** "eta 1, eps recomputed": how DDIM sampled, for the CLIs' reports. */
export const ddimSettings = (eta: number, recomputeEps: boolean) =>
  `eta ${eta}${recomputeEps ? ', eps recomputed' : ''}`;

export interface SampleSettings {
  sampler: 'ddpm' | 'ddim'; steps: number; eta: number; recomputeEps: boolean;
  guidance: number; seed: number;
}

/** A loaded model, as loadModel gives it. */
export interface Model { card: ModelCard; config: UNetConfig; params: Params }

/**
 * Samples one image per label with classifier-free guidance w, in chunks of at most `chunk` images
 * (chunk k uses seed + k), calling `onChunk` with the count done after each. Returns [N, H, W, C]
 * row-major values clipped to [-1, 1] (H = W = the card's imageSize, C = imageChannels).
 */
export async function sampleImages(model: Model, labels: number[], s: SampleSettings,
  { chunk = SAMPLE_CHUNK, onChunk }: { chunk?: number; onChunk?: (done: number) => void } = {},
): Promise<Float32Array> {
  const { card, config, params } = model;
  const schedule = makeSchedule(card.schedule.kind, card.schedule.T);
  const size = card.architecture.imageSize;
  const out = new Float32Array(labels.length * size * size * config.imageChannels);
  for (let at = 0, k = 0; at < labels.length; at += chunk, k++) {
    const y = labels.slice(at, at + chunk);
    const shape: [number, number, number, number] = [y.length, size, size, config.imageChannels];
    const epsFn = fusedGuidedEps(params, config, y, s.guidance);
    const seed = s.seed + k;
    const { steps, eta, recomputeEps } = s;
    const x = s.sampler === 'ddpm' ? await ddpmSample(epsFn, schedule, shape, { seed })
      : await ddimSample(epsFn, schedule, shape, { seed, steps, eta, recomputeEps });
    const clipped = tf.clipByValue(x, -1, 1);
    out.set(await clipped.data(), at * size * size * config.imageChannels);
    tf.dispose([x, clipped]);
    onChunk?.(Math.min(labels.length, at + chunk));
  }
  return out;
}
