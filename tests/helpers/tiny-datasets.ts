// Small data sets in the two on-disk formats, made in a temporary folder for tests of the loaders
// and the CLIs.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { writeIdx } from '../../src/lib/data/idx';

/** Pixel p of image i of digit d, 0..1: a bright square whose place depends on the digit. */
export const pixel = (d: number, i: number, p: number) => {
  const [y, x] = [Math.floor(p / 28), p % 28];
  return y >= 2 * d + 2 && y < 2 * d + 8 && x >= 4 + (i % 3) && x < 14 + (i % 3) ? 1 : 0;
};

/** The npm package's format: DIR/0.json .. 9.json, `perDigit` images each. */
export function makeMnistJson(perDigit: number,
  dir = mkdtempSync(join(tmpdir(), 'mnist-json-'))): string {
  for (let d = 0; d < 10; d++) {
    const data = Array.from({ length: perDigit * 784 },
      (_, k) => pixel(d, Math.floor(k / 784), k % 784));
    writeFileSync(join(dir, `${d}.json`), JSON.stringify({ data }));
  }
  return dir;
}

/** Fashion-MNIST's IDX files (gzipped), `train` and `test` images cycling through the classes. */
export function makeFashionIdx(train: number, test: number,
  dir = mkdtempSync(join(tmpdir(), 'fashion-idx-'))): string {
  for (const [prefix, n] of [['train', train], ['t10k', test]] as const) {
    const labels = Uint8Array.from({ length: n }, (_, i) => i % 10);
    const images = Uint8Array.from({ length: n * 784 }, (_, k) => {
      const i = Math.floor(k / 784);
      return 255 * pixel(labels[i], i, k % 784);
    });
    const imageFile = join(dir, `${prefix}-images-idx3-ubyte.gz`);
    writeFileSync(imageFile, gzipSync(writeIdx([n, 28, 28], images)));
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte.gz`), gzipSync(writeIdx([n], labels)));
  }
  return dir;
}

export const tempDir = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(dir, { recursive: true });
  return dir;
};

/** Runs `npm run -s NAME -- ...args`; returns the exit code and both streams, never throws. */
export function npmRun(name: string, args: string[]):
  { code: number; stdout: string; stderr: string } {
  const r = spawnSync('npm', ['run', '-s', name, '--', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
