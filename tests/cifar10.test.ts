// CIFAR-10's binary batches, made here a few records per file: the loader reads labels and pixels
// exactly (HWC, [-1, 1]); npm run train, sample, train-classifier and eval work on them at 32x32
// RGB; bad files give one clear line and a non-zero exit.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadDataset } from '../src/lib/data/datasets';
import { CIFAR10_BATCHES, CIFAR10_RECORD } from '../src/lib/data/cifar10';
import { labelledGrid } from '../src/lib/data/grid';
import { encodePng, PNG_SIGNATURE } from '../src/lib/data/png';
import { readSafetensors } from '../src/lib/diffusion';
import { npmRun, tempDir } from './helpers/tiny-datasets';

const NAMES = [
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
];
const FILES = [...CIFAR10_BATCHES.train, ...CIFAR10_BATCHES.test]; // data_batch_1..5, test_batch
const PLANE = 1024;
/** The byte of colour c (0 R, 1 G, 2 B) at pixel p of record r in file f: every value 0..255. */
const byte = (f: number, r: number, c: number, p: number) => (f * 41 + r * 13 + c * 85 + p) % 256;
/** Record r of file f has label (4 f + r) mod 10: with 4 a file, each class twice in training. */
const label = (f: number, r: number) => (4 * f + r) % 10;

/** The five training batches, the test batch and batches.meta.txt, `perFile` records each. */
function makeCifar(perFile: number, dir = tempDir('cifar10-')): string {
  mkdirSync(dir, { recursive: true });
  FILES.forEach((name, f) => {
    const bytes = new Uint8Array(perFile * CIFAR10_RECORD);
    for (let r = 0; r < perFile; r++) {
      bytes[r * CIFAR10_RECORD] = label(f, r);
      for (let c = 0; c < 3; c++) {
        const plane = r * CIFAR10_RECORD + 1 + c * PLANE; // label byte, then R, G, B planes
        for (let p = 0; p < PLANE; p++) bytes[plane + p] = byte(f, r, c, p);
      }
    }
    writeFileSync(join(dir, name), bytes);
  });
  writeFileSync(join(dir, 'batches.meta.txt'), `${NAMES.join('\n')}\n\n`); // as the archive's
  return dir;
}

const scaled = (v: number) => Math.fround((v / 255) * 2 - 1);

describe('the CIFAR-10 loader', () => {
  const dir = makeCifar(4);
  it('reads labels, class names and every pixel, HWC in [-1, 1]', () => {
    const train = loadDataset('cifar10', 'train', dir);
    expect([train.count, train.size, train.channels]).toEqual([20, 32, 3]);
    expect(train.classNames).toEqual(NAMES);
    expect(Array.from(train.labels)).toEqual(Array.from({ length: 20 }, (_, i) => i % 10));
    expect(train.images).toHaveLength(20 * 32 * 32 * 3);
    // image 6 is record 2 of data_batch_2.bin; pixel (y 3, x 5) is 3 * 32 + 5 = 101 of a plane
    const at = 6 * 3072 + 101 * 3;
    expect(Array.from(train.images.subarray(at, at + 3)))
      .toEqual([0, 1, 2].map((c) => scaled(byte(1, 2, c, 101))));
    // HWC: value k is colour k mod 3 of pixel floor(k / 3)
    const whole = Array.from({ length: 3072 }, (_, k) => scaled(byte(1, 2, k % 3, k / 3 | 0)));
    expect(Array.from(train.images.subarray(6 * 3072, 7 * 3072))).toEqual(whole);
    expect([Math.min(...train.images), Math.max(...train.images)]).toEqual([-1, 1]);
    const test = loadDataset('cifar10', 'test', dir);
    expect([test.count, ...test.labels]).toEqual([4, 0, 1, 2, 3]);
    expect(test.images[3072 + 2]).toBe(scaled(byte(5, 1, 2, 0))); // blue of its first pixel
  });
  it('also reads the folder the archive unpacks into, and says where the files come from', () => {
    const parent = tempDir('cifar10-parent-');
    makeCifar(1, join(parent, 'cifar-10-batches-bin'));
    expect(loadDataset('cifar10', 'test', parent).count).toBe(1);
    expect(() => loadDataset('cifar10', 'train'))
      .toThrow(/not shipped.*cifar-10-binary\.tar\.gz.*--data DIR/);
  });
});

/** A copy of a good folder with one defect. */
function broken(change: (dir: string) => void): string {
  const dir = makeCifar(2);
  change(dir);
  return dir;
}
const BAD: [string, string, RegExp][] = [
  ['a batch of the wrong length', broken((dir) => {
    const file = join(dir, 'data_batch_3.bin');
    writeFileSync(file, readFileSync(file).subarray(1));
  }), /data_batch_3\.bin has 6145 bytes, not a positive multiple of 3073/],
  ['a label above 9', broken((dir) => {
    const file = join(dir, 'data_batch_2.bin');
    const bytes = readFileSync(file);
    bytes[CIFAR10_RECORD] = 10;
    writeFileSync(file, bytes);
  }), /data_batch_2\.bin: record 1 has label 10; expected 0\.\.9/],
  ['no batches.meta.txt', broken((dir) => rmSync(join(dir, 'batches.meta.txt'))),
    /CIFAR-10 not found: .* has no batches\.meta\.txt; download .*cifar-10-binary\.tar\.gz/],
  ['no data_batch_4.bin', broken((dir) => rmSync(join(dir, 'data_batch_4.bin'))),
    /CIFAR-10 batch file missing: .* has no data_batch_4\.bin/],
];

describe('bad CIFAR-10 files', () => {
  const work = tempDir('cifar10-bad-');
  for (const [what, dir, message] of BAD) {
    it(`${what}: one clear line from the loader and from npm run train`, () => {
      expect(() => loadDataset('cifar10', 'train', dir)).toThrow(message);
      const r = npmRun('train', ['--dataset', 'cifar10', '--data', dir, '--epochs', '1',
        '--out', 'bad', '--checkpoints', join(work, 'ck'), '--models', join(work, 'models')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^error: /);
    });
  }
});

describe('train, sample, train-classifier and eval on CIFAR-10', () => {
  const data = makeCifar(4);
  const work = tempDir('cifar10-cli-');
  const models = join(work, 'models');
  const card = (name: string) => JSON.parse(readFileSync(join(models, `${name}.json`), 'utf8'));
  /** A PNG's width, height and colour type, and its inflated rows. */
  const png = (file: string) => {
    const bytes = readFileSync(file);
    expect(Array.from(bytes.subarray(0, 8))).toEqual(Array.from(PNG_SIGNATURE));
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const raw = inflateSync(bytes.subarray(41, 41 + view.getUint32(33)));
    return { width: view.getUint32(16), height: view.getUint32(20), type: bytes[25], raw };
  };

  beforeAll(() => {
    const r = npmRun('train', [
      '--dataset', 'cifar10', '--data', data, '--channels', '32', '--timesteps', '40',
      '--batch', '4', '--epochs', '1', '--stop-at', '2', '--out', 'tiny',
      '--checkpoints', join(work, 'ck'), '--models', models,
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
  });

  it('trains a 3-channel UNet at 32x32; the card records the data set and class names', () => {
    const c = card('tiny');
    expect(c.dataset).toBe('cifar10');
    expect(c.classNames).toEqual(NAMES);
    expect(c.architecture).toEqual({ imageChannels: 3, channels: 32, classes: 10, imageSize: 32 });
    expect(c.training).toMatchObject({ dataset: 'cifar10', steps: 2, images: 20, imagesSeen: 8 });
    const weights = readSafetensors(new Uint8Array(readFileSync(join(models, 'tiny.safetensors'))));
    expect(weights.tensors.get('down_block1.weight')!.shape).toEqual([32, 3, 3, 3]);
    expect(weights.tensors.get('up_block4.weight')!.shape).toEqual([3, 32, 3, 3]);
  });

  it('samples [N, 32, 32, 3] as JSON, row-major HWC in [-1, 1], and a colour PNG', () => {
    const sample = (out: string) => npmRun('sample', ['--model', 'tiny', '--models', models,
      '--labels', '0,9', '--per-label', '1', '--steps', '2', '--scale', '1', '--out', out]);
    const json = join(work, 's.json');
    expect(sample(json).code).toBe(0);
    const body = JSON.parse(readFileSync(json, 'utf8'));
    expect(body.labels).toEqual([0, 9]);
    expect(body.shape).toEqual([2, 32, 32, 3]);
    expect(body.images).toHaveLength(2 * 3072);
    expect(body.images.every((v: number) => v >= -1 && v <= 1)).toBe(true);
    const file = join(work, 's.png');
    const r = sample(file);
    expect(r.code, r.stderr).toBe(0);
    const { width, height, type, raw } = png(file);
    expect(type).toBe(2); // RGB
    expect([width, height]).toEqual([5 + 2 + 32 + 2, 2 * (32 + 2) + 2]); // 2 rows, 1 column
    expect(raw).toHaveLength(height * (3 * width + 1));
    // the first image's top left pixel, from the JSON, at row 2, column 7
    const at = 2 * (3 * width + 1) + 1 + 7 * 3;
    const level = (v: number) => (v + 1) * 127.5; // the JSON's values are rounded to 1e-5
    Array.from(raw.subarray(at, at + 3)).forEach((drawn, c) =>
      expect(Math.abs(drawn - level(body.images[c]))).toBeLessThanOrEqual(0.5 + 1e-3));
  });

  it('trains the classifier on RGB images and evaluates the model with it', () => {
    const trained = npmRun('train-classifier', ['--dataset', 'cifar10', '--data', data,
      '--epochs', '1', '--batch', '5', '--models', models]);
    expect(trained.code, trained.stderr).toBe(0);
    const judge = card('classifier-cifar10');
    expect(judge.architecture).toMatchObject({ imageSize: 32, imageChannels: 3 });
    expect(judge.classNames).toEqual(NAMES);
    expect(judge.training.augmentation).toMatch(/half mirrored/);
    const args = ['--model', 'tiny', '--models', models, '--data', data, '--per-class', '2',
      '--steps', '2', '--guidance', '0'];
    const r = npmRun('eval', args);
    expect(r.code, r.stderr).toBe(0);
    const { eval: e } = card('tiny');
    expect(e).toMatchObject({
      classifier: 'classifier-cifar10', heldOutImages: 4, samplesPerClass: 2, target: null,
    });
    expect(e.floor.images).toBe(20);
    for (const row of e.results) {
      expect(row.perClass).toHaveLength(10);
      expect(Number.isFinite(row.frechet)).toBe(true);
      expect(png(join(models, row.grid)).type).toBe(2);
    }
    // a grey classifier cannot judge colour images (its card predates imageChannels)
    copyFileSync(join(models, 'classifier-cifar10.safetensors'), join(models, 'grey.safetensors'));
    const grey = { ...judge, architecture: { ...judge.architecture, imageSize: 28 } };
    delete grey.architecture.imageChannels;
    writeFileSync(join(models, 'grey.json'), JSON.stringify(grey));
    const wrong = npmRun('eval', [...args, '--classifier', 'grey']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim()).toMatch(
      /^error: classifier "grey" reads 28x28x1 images, but tiny draws 32x32x3: train a classifier/);
  });
});

describe('colour grids and PNGs', () => {
  it('draws RGB images in place and encodes them as colour type 2', () => {
    const image = new Float32Array(32 * 32 * 3).map((_, k) => [1, -1, 0][k % 3]);
    const grid = labelledGrid(image, [7], { scale: 1, gap: 2, size: 32, channels: 3 });
    expect(grid.channels).toBe(3);
    const at = (2 * grid.width + 5 + 2) * 3; // the image's top left pixel
    expect(Array.from(grid.pixels.subarray(at, at + 3))).toEqual([255, 0, 128]);
    const bytes = encodePng(grid.pixels, grid.width, grid.height, 3);
    expect(bytes[25]).toBe(2);
    expect(() => encodePng(grid.pixels, grid.width, grid.height, 1))
      .toThrow(/needs \d+ pixels, received/);
  });
});
