// CIFAR-10, binary version (Krizhevsky 2009; www.cs.toronto.edu/~kriz/cifar.html), unpacked from
// cifar-10-binary.tar.gz into cifar-10-batches-bin/: data_batch_1.bin .. data_batch_5.bin (the
// 50,000 training images), test_batch.bin (10,000 held out) and batches.meta.txt (the class names,
// one a line). Each record is 3073 bytes: the label (0..9), then the 32x32 red plane, the green
// and the blue, each row-major. The images come out HWC, [N, 32, 32, 3], scaled to [-1, 1].
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataset, Split } from './datasets';

export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz';
export const CIFAR10_SIZE = 32;
export const CIFAR10_CHANNELS = 3;
const PLANE = CIFAR10_SIZE * CIFAR10_SIZE; // 1024 bytes of one colour
/** One record: 1 label byte, then 1024 R, 1024 G and 1024 B bytes. */
export const CIFAR10_RECORD = 1 + CIFAR10_CHANNELS * PLANE;
export const CIFAR10_META = 'batches.meta.txt';
export const CIFAR10_BATCHES: Record<Split, string[]> = {
  train: [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`),
  test: ['test_batch.bin'],
};
/** The folder the archive unpacks into; --data may name it or the folder that holds it. */
const UNPACKED = 'cifar-10-batches-bin';

const WHERE = `the binary version of CIFAR-10 (${CIFAR10_URL}), unpacked`;

/** Loads a split from DIR (or DIR/cifar-10-batches-bin). Throws one clear error on any defect. */
export function loadCifar10(dir: string | undefined, split: Split): Dataset {
  if (!dir) {
    throw new Error(`CIFAR-10 is not shipped with this project: download ${WHERE}, `
      + 'and pass --data DIR, the folder with data_batch_1.bin .. and batches.meta.txt');
  }
  const root = !existsSync(join(dir, CIFAR10_META)) && existsSync(join(dir, UNPACKED, CIFAR10_META))
    ? join(dir, UNPACKED) : dir;
  const classNames = readClassNames(root);
  const batches = CIFAR10_BATCHES[split].map((name) => readBatch(root, name));
  const count = batches.reduce((a, b) => a + b.length / CIFAR10_RECORD, 0);
  const pixels = PLANE * CIFAR10_CHANNELS;
  const images = new Float32Array(count * pixels); // [N, 32, 32, 3]
  const labels = new Int32Array(count);
  const scaled = Float32Array.from({ length: 256 }, (_, v) => (v / 255) * 2 - 1); // [-1, 1]
  let n = 0;
  for (const bytes of batches) {
    for (let at = 0; at < bytes.length; at += CIFAR10_RECORD, n++) {
      labels[n] = bytes[at];
      // planes [3, 32, 32] -> pixels [32, 32, 3]: byte 1 + c * 1024 + p goes to p * 3 + c
      for (let c = 0; c < CIFAR10_CHANNELS; c++) {
        const plane = at + 1 + c * PLANE;
        for (let p = 0; p < PLANE; p++) {
          images[n * pixels + p * CIFAR10_CHANNELS + c] = scaled[bytes[plane + p]];
        }
      }
    }
  }
  return {
    name: 'cifar10', split, count, images, labels, classNames,
    size: CIFAR10_SIZE, channels: CIFAR10_CHANNELS,
  };
}

/** batches.meta.txt: ten class names, one a line (blank lines ignored). */
function readClassNames(dir: string): string[] {
  const file = join(dir, CIFAR10_META);
  if (!existsSync(file)) {
    throw new Error(`CIFAR-10 not found: ${dir} has no ${CIFAR10_META}; download ${WHERE}, `
      + 'and pass --data DIR, the folder with data_batch_1.bin .. and batches.meta.txt');
  }
  const names = readFileSync(file, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (names.length !== 10) {
    throw new Error(`${file} names ${names.length} classes; expected 10, one per line`);
  }
  return names;
}

/** One batch file's bytes, checked: whole records, labels 0..9. */
function readBatch(dir: string, name: string): Uint8Array {
  const file = join(dir, name);
  if (!existsSync(file)) {
    const all = [...CIFAR10_BATCHES.train, ...CIFAR10_BATCHES.test].join(', ');
    throw new Error(`CIFAR-10 batch file missing: ${dir} has no ${name}; expected ${all} `
      + `from ${WHERE}`);
  }
  const bytes = new Uint8Array(readFileSync(file));
  if (bytes.length === 0 || bytes.length % CIFAR10_RECORD) {
    throw new Error(`${file} has ${bytes.length} bytes, not a positive multiple of `
      + `${CIFAR10_RECORD} (a record: 1 label byte, then 1024 R, 1024 G, 1024 B bytes)`);
  }
  for (let at = 0; at < bytes.length; at += CIFAR10_RECORD) {
    if (bytes[at] > 9) {
      const record = at / CIFAR10_RECORD;
      throw new Error(`${file}: record ${record} has label ${bytes[at]}; expected 0..9`);
    }
  }
  return bytes;
}
