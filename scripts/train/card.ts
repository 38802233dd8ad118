// The exported model of a training run: the EMA weights in PyTorch layout and the model card
// (src/lib/models/card.ts) at public/models/NAME.{safetensors,json}.
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { nodeGpuName } from '../../src/lib/runtime/node';
import { saveUNet, type Trainer } from '../../src/lib/diffusion';
import { IMAGE_SHAPES } from '../../src/lib/data/datasets';
import {
  parseModelCard, type LossPoint, type ModelCard, type Recommended, type TrainingRecord,
} from '../../src/lib/models/card';
import { readJsonFile, writeAtomic } from '../cli';
import { modelPaths } from '../models';
import { WIDEN_NOISE, type RunConfig, type RunState } from './run';

export interface ExportOptions {
  tr: Trainer; run: RunConfig; state: RunState;
  name: string; dir: string; // written to DIR/NAME.{safetensors,json}
  classNames: string[];
  images: number; // how many of the data set's images the run trains on
  guidance?: number; // --guidance, given on this command line
  workers: number; // --workers, for the card's machine line
}

/** Writes the EMA weights (PyTorch layout) and the model card; an existing card's eval is kept. */
export async function exportModel(o: ExportOptions) {
  const { tr, run, state, name } = o;
  const paths = modelPaths(name, o.dir);
  const meta = {
    format: 'pt', dataset: run.dataset, step: String(state.step), schedule: run.schedule,
    T: String(run.timesteps),
  };
  const bytes = await saveUNet(tr.ema ?? tr.params, meta);
  const previous = existsSync(paths.card)
    ? parseModelCard(readJsonFile<unknown>(paths.card), paths.card) : null;
  const { size: imageSize, channels: imageChannels } = IMAGE_SHAPES[run.dataset];
  const card: ModelCard = {
    name,
    dataset: run.dataset,
    architecture: {
      imageChannels, channels: run.channels, classes: o.classNames.length, imageSize,
    },
    schedule: { kind: run.schedule, T: run.timesteps },
    classNames: o.classNames,
    recommended: recommended(run, previous?.recommended ?? null, o.guidance),
    training: trainingRecord(o),
    ...(previous?.eval ? { eval: previous.eval } : {}),
  };
  writeAtomic(paths.weights, bytes);
  writeAtomic(paths.card, `${JSON.stringify(card, null, 1)}\n`);
}

/**
 * The sampling a card recommends. Guidance: --guidance, else the card's (a person may have tuned
 * it and eta: `chosen` says how), else the run's. Eta 1 until tuned: on every model here
 * stochastic DDIM samples were recognised far more often than eta 0 (mnist-64: 84.5 vs 54.5%).
 * A new card recomputes DDIM's eps from the clipped x_0 (mnist-64 at w = 2: 93.5 vs 84%); an
 * older card keeps what it was tuned with.
 */
function recommended(run: RunConfig, previous: Recommended | null, guidance?: number): Recommended {
  return {
    sampler: 'ddim', steps: Math.min(50, run.timesteps - 1), eta: previous?.eta ?? 1,
    recomputeEps: previous ? previous.recomputeEps : true,
    guidance: guidance ?? previous?.guidance ?? run.guidance,
    ...(previous?.chosen ? { chosen: previous.chosen } : {}),
  };
}

function trainingRecord({ tr, run, state, name, images, workers }: ExportOptions): TrainingRecord {
  const recent = state.losses.slice(-200);
  const backend = tf.getBackend();
  const gpu = backend === 'webgpu' ? nodeGpuName() : null;
  return {
    command: trainCommand(run, state, name),
    ...(run.init ? { initFrom: { ...run.init, widenNoise: WIDEN_NOISE } } : {}),
    lrFrom: state.lrFrom,
    dataset: run.dataset, images, split: 'train',
    epochs: state.step / Math.floor(images / run.batch), steps: state.step,
    imagesSeen: state.step * run.batch,
    batch: run.batch, seed: run.seed, lr: run.lr, warmupSteps: run.warmup,
    labelDropout: run.labelDropout, emaDecay: run.emaDecay, weights: tr.ema ? 'ema' : 'raw',
    finalLoss: recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : null,
    finalLossWindow: recent.length,
    lossCurve: downsample(state.losses, 200, run.batch),
    wallSeconds: Math.round(state.wallSeconds),
    machine: `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), `
      + `tfjs ${backend} backend${gpu ? ` (${gpu})` : ''}`
      + `${workers > 1 ? ` on ${workers} worker threads` : ''}, Node ${process.version}`,
  };
}

/** The command that started the run, at its first learning rate; later ones are in lrFrom. */
function trainCommand(run: RunConfig, state: RunState, name: string) {
  const flags = [
    `--dataset ${run.dataset} --channels ${run.channels} --timesteps ${run.timesteps}`,
    `--schedule ${run.schedule} --epochs ${state.epochs} --batch ${run.batch} --seed ${run.seed}`,
    `--lr ${state.lrFrom?.[0].lr ?? run.lr} --warmup ${run.warmup}`,
    `--label-dropout ${run.labelDropout} --ema ${run.emaDecay ?? 'none'} --out ${name}`,
    ...(run.limit ? [`--limit ${run.limit}`] : []),
    ...(run.init ? [`--init ${run.init.checkpoint}`] : []),
  ];
  return `npm run train -- ${flags.join(' ')}, then --resume`;
}

/** At most `points` means of consecutive windows of the per-step loss, at their images seen. */
function downsample(losses: number[], points: number, batch: number): LossPoint[] {
  const w = Math.max(1, Math.ceil(losses.length / points));
  const curve: LossPoint[] = [];
  for (let i = 0; i < losses.length; i += w) {
    const window = losses.slice(i, i + w);
    const mean = window.reduce((a, b) => a + b, 0) / window.length;
    curve.push({ imagesSeen: (i + window.length) * batch, loss: Number(mean.toPrecision(5)) });
  }
  return curve;
}
