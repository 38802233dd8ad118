// npm run train-classifier -- --dataset mnist|fashion-mnist|cifar10 [--data DIR] [--epochs 6]
//                             [--batch 64] [--lr 0.002] [--seed 0] [--out NAME]
// Trains the evaluation classifier (src/lib/classifier) on the data set's training images and
// writes public/models/NAME.safetensors (tfjs layout) and NAME.json with its accuracy on the
// held-out images. Its input is the data set's: 28x28 grey, or 32x32 RGB for CIFAR-10.
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { useNodeBackend } from '../src/lib/runtime/node';
import {
  DATASETS, batchShape, gatherImages, loadDataset, type DatasetName,
} from '../src/lib/data/datasets';
import { batchIndices } from '../src/lib/data/batches';
import { rngFromSeed } from '../src/lib/diffusion/random';
import { adamStep, createAdam } from '../src/lib/diffusion/adam';
import {
  DEFAULT_CLASSIFIER, classifierLoss, classify, initClassifier, saveClassifier,
} from '../src/lib/classifier/cnn';
import { MODELS_DIR, modelPaths } from './models';
import { backendFlag, need, num, parseFlags, runMain, writeAtomic } from './cli';

const FLAGS = [
  'dataset', 'data', 'epochs', 'batch', 'lr', 'seed', 'out', 'models', 'limit', 'backend',
];

async function main() {
  const flags = parseFlags(process.argv.slice(2), FLAGS);
  const dataset = need(flags, 'dataset') as DatasetName;
  if (!DATASETS.includes(dataset)) {
    throw new Error(`--dataset must be one of ${DATASETS.join(', ')}, received "${dataset}"`);
  }
  const epochs = num(flags, 'epochs', 6, (e) => e > 0);
  const B = num(flags, 'batch', 64, (b) => Number.isInteger(b) && b >= 1);
  const lr = num(flags, 'lr', 2e-3, (x) => x > 0);
  const seed = num(flags, 'seed', 0, (s) => Number.isInteger(s) && s >= 0);
  const out = typeof flags.out === 'string' ? flags.out : `classifier-${dataset}`;
  const dir = typeof flags.models === 'string' ? resolve(flags.models) : MODELS_DIR;
  const dataDir = typeof flags.data === 'string' ? flags.data : undefined;
  const train = loadDataset(dataset, 'train', dataDir);
  const test = loadDataset(dataset, 'test', dataDir);
  const limit = num(flags, 'limit', Infinity, (l) => Number.isInteger(l) && l >= 1);
  const n = Math.min(train.count, limit);
  if (B > n) throw new Error(`--batch ${B} is larger than the data set (${n} images)`);
  await useNodeBackend(backendFlag(flags));

  const config = { ...DEFAULT_CLASSIFIER, imageSize: train.size, imageChannels: train.channels };
  const flips = dataset === 'cifar10'; // mirror images are photos of the same class; digits not
  const init = initClassifier(config, seed);
  const vars = Object.fromEntries(Object.entries(init).map(([k, t]) => [k, tf.variable(t)]));
  const adam = createAdam(vars, { lr });
  const steps = Math.ceil(epochs * Math.floor(n / B));
  const started = performance.now();
  let recent: number[] = [];
  const rng = rngFromSeed(seed + 1); // the shift of each batch
  for (let step = 0; step < steps; step++) {
    const indices = batchIndices(seed, step, n, B);
    const batch = tf.tensor4d(gatherImages(train, indices), batchShape(train, B));
    const moved = shifted(batch, rng() % 5 - 2, rng() % 5 - 2); // [B, H, W, C]
    const x = flips && rng() % 2 ? mirrored(moved) : moved;
    const labels = indices.map((i) => train.labels[i]);
    adam.lr = lr * 0.5 * (1 + Math.cos((Math.PI * step) / steps)); // cosine decay to 0
    const loss = () => classifierLoss(vars, config, x, labels);
    const { value, grads } = tf.variableGrads(loss, Object.values(vars));
    // variableGrads keys the gradients by tf.Variable name; Adam takes them by parameter name
    const byName = Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, grads[v.name]]));
    adamStep(adam, vars, byName);
    recent.push((await value.data())[0]);
    tf.dispose([x, value, ...Object.values(grads)]);
    if ((step + 1) % 50 === 0 || step + 1 === steps) {
      const s = (performance.now() - started) / 1000;
      const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
      const speed = ((step + 1) * B) / s;
      const line = `step ${step + 1}/${steps} loss ${mean.toFixed(4)} ${speed.toFixed(0)} img/s`;
      process.stderr.write(`${line}\n`);
      recent = [];
    }
  }
  const { predicted } = await classify(vars, config, test.images);
  const correct = predicted.reduce((a, p, i) => a + (p === test.labels[i] ? 1 : 0), 0);
  const accuracy = correct / test.count;
  process.stderr.write(`held-out accuracy ${(100 * accuracy).toFixed(2)}% `
    + `on ${test.count} ${dataset} test images\n`);
  mkdirSync(dir, { recursive: true });
  const paths = modelPaths(out, dir);
  writeAtomic(paths.weights, await saveClassifier(vars, { dataset, layout: 'tfjs' }));
  const card = {
    name: out, kind: 'classifier', dataset, architecture: config, classNames: train.classNames,
    layout: 'tfjs: conv [kh, kw, in, out], dense [in, out]; NHWC images in [-1, 1]; '
      + 'code in src/lib/classifier/cnn.ts',
    training: {
      command: 'npm run train-classifier', images: n,
      augmentation: `each batch shifted by up to 2 pixels${flips ? ', half mirrored' : ''}`,
      lrSchedule: 'cosine decay to 0',
      split: 'train', epochs, batch: B, lr, seed, steps,
      wallSeconds: Math.round((performance.now() - started) / 1000),
      machine: `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), `
        + `tfjs ${tf.getBackend()} backend, Node ${process.version}`,
    },
    heldOut: { split: 'test', images: test.count, accuracy },
  };
  writeAtomic(paths.card, `${JSON.stringify(card, null, 1)}\n`);
  process.stderr.write(`wrote ${paths.weights} and ${paths.card}\n`);
}

/** The whole batch moved by (dy, dx) pixels, filling in the background -1: cheap augmentation. */
function shifted(x: tf.Tensor4D, dy: number, dx: number): tf.Tensor4D {
  const out = tf.tidy(() => {
    const padded = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], -1); // [B, H + 4, W + 4, C]
    return tf.slice(padded, [0, 2 - dy, 2 - dx, 0], x.shape) as tf.Tensor4D;
  });
  x.dispose();
  return out;
}

/** The whole batch mirrored left to right. */
function mirrored(x: tf.Tensor4D): tf.Tensor4D {
  const out = tf.reverse(x, 2); // [B, H, W, C], W reversed
  x.dispose();
  return out;
}

runMain(main);
