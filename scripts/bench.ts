// npm run bench -- [--backend wasm|cpu|webgpu] [--channels 32,64] [--batch 16] [--train-batch 32]
//   [--repeats 5]
// Median wall time of the UNet forward pass (batch 1 and B) and of one training step, printed as
// a table.
import * as tf from '@tensorflow/tfjs-core';
import { nodeGpuName, useNodeBackend, type NodeBackend } from '../src/lib/runtime/node';
import {
  createTrainer, disposeAdam, epsTheta, initParams, makeSchedule, trainStep, type UNetConfig,
} from '../src/lib/diffusion';
import { num, parseFlags, runMain } from './cli';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median milliseconds of `f` over `repeats` runs after one warm-up run. */
async function time(repeats: number, f: () => Promise<void>): Promise<number> {
  await f();
  const ms: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await f();
    ms.push(performance.now() - start);
  }
  return median(ms);
}

async function main() {
  const known = ['backend', 'channels', 'batch', 'train-batch', 'repeats'];
  const flags = parseFlags(process.argv.slice(2), known);
  const backend = (typeof flags.backend === 'string' ? flags.backend : 'wasm') as NodeBackend;
  const channels = (typeof flags.channels === 'string' ? flags.channels : '32,64')
    .split(',').map(Number);
  if (!channels.every((c) => Number.isInteger(c) && c >= 32 && c % 32 === 0)) {
    throw new Error('--channels must be multiples of 32 separated by commas, '
      + `received "${flags.channels}"`);
  }
  const B = num(flags, 'batch', 16, (n) => Number.isInteger(n) && n >= 1);
  const trainB = num(flags, 'train-batch', 32, (n) => Number.isInteger(n) && n >= 1);
  const repeats = num(flags, 'repeats', 5, (n) => Number.isInteger(n) && n >= 1);
  await useNodeBackend(backend);
  const schedule = makeSchedule('paper-linear', 300);
  const rows: string[][] = [[
    'channels', 'forward B=1 (ms)', `forward B=${B} (ms)`, `train step B=${trainB} (ms)`,
    'train ms/image', 'train images/s',
  ]];
  for (const C of channels) {
    const config: UNetConfig = { imageChannels: 1, channels: C, classes: 10 };
    const params = initParams(config, 0);
    const forward = (b: number) => time(repeats, async () => {
      const x = tf.randomNormal([b, 28, 28, 1]) as tf.Tensor4D;
      const eps = epsTheta(params, config, x, Array(b).fill(100), Array(b).fill(3));
      await eps.data();
      tf.dispose([x, eps]);
    });
    const f1 = await forward(1);
    const fB = await forward(B);
    const tr = createTrainer(params, config, schedule, { seed: 0 });
    const x0 = tf.randomUniform([trainB, 28, 28, 1], -1, 1) as tf.Tensor4D;
    const labels = Array.from({ length: trainB }, (_, i) => i % 10);
    const step = await time(repeats, async () => {
      const loss = trainStep(tr, x0, labels);
      await loss.data();
      loss.dispose();
    });
    tf.dispose([x0, ...Object.values(params), ...Object.values(tr.params)]);
    tf.dispose(Object.values(tr.ema ?? {}));
    disposeAdam(tr.adam);
    rows.push([
      String(C), f1.toFixed(1), fB.toFixed(1), step.toFixed(0), (step / trainB).toFixed(1),
      ((1000 * trainB) / step).toFixed(1),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const gpu = backend === 'webgpu' ? ` on ${nodeGpuName() ?? 'an unnamed adapter'}` : '';
  process.stdout.write(`tfjs ${backend}${gpu}, median of ${repeats} runs after one warm-up\n`);
  for (const [i, r] of rows.entries()) {
    process.stdout.write(`| ${r.map((c, j) => c.padStart(widths[j])).join(' | ')} |\n`);
    if (i === 0) process.stdout.write(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |\n`);
  }
}

runMain(main);
