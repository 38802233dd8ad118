// npm run bench's one-case contract (issues 14 and 15): one JSON line per case, one error line on
// bad input. Tiny sizes on wasm: these check the fields, not the speed.
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { VIEW_KERNELS } from '../scripts/bench';
import { useNodeBackend, type NodeBackend } from '../src/lib/runtime/node';
import { npmRun, tempDir } from './helpers/tiny-datasets';
import { coreCount, MAX_WASM_THREADS } from '../src/lib/runtime/wasm-threads';

/** The CLIs' default: DIFFUSION_CORES (1 in these tests, vitest.config.ts), else every core, up
 * to the most tfjs's wasm thread pool takes. */
const allThreads = Math.min(MAX_WASM_THREADS, Number(process.env.DIFFUSION_CORES ?? coreCount()));

/** The one JSON line a case prints, after checking it exited 0 and printed nothing else. */
function bench(args: string[]): Record<string, unknown> {
  const r = npmRun('bench', [...args, '--backend', 'wasm', '--json']);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]) as Record<string, unknown>;
}

const positive = (line: Record<string, unknown>, keys: string[]) => keys.forEach((k) => {
  expect(typeof line[k], k).toBe('number');
  expect(line[k] as number, k).toBeGreaterThan(0);
});

describe('npm run bench --case', () => {
  const tiny = ['--channels', '32', '--batch', '2', '--repeats', '1'];

  it('unet-forward prints case, backend, channels, batch, threads, ms_median, ms_min, runs', () => {
    const line = bench(['--case', 'unet-forward', ...tiny]);
    expect(line).toMatchObject(
      { case: 'unet-forward', backend: 'wasm', channels: 32, batch: 2, threads: allThreads,
        runs: 1 });
    positive(line, ['ms_median', 'ms_min']);
    expect(line.ms_min as number).toBeLessThanOrEqual(line.ms_median as number);
  });

  it('train-step adds images_per_s and the workers it ran on', () => {
    const line = bench(['--case', 'train-step', ...tiny]);
    expect(line).toMatchObject({ case: 'train-step', workers: 1, threads: allThreads });
    positive(line, ['ms_median', 'ms_min', 'images_per_s']);
  });

  it('ddim-sample times one whole guided sampling call', () => {
    const line = bench(['--case', 'ddim-sample', ...tiny, '--steps', '2', '--guidance', '2']);
    expect(line).toMatchObject({ case: 'ddim-sample', steps: 2, guidance: 2, batch: 2 });
    positive(line, ['ms_median', 'ms_min']);
  });

  it('--vs-plain adds the plain path\'s time and the speedup; --plain marks its line', () => {
    const line = bench(['--case', 'unet-forward', ...tiny, '--vs-plain']);
    positive(line, ['ms_median', 'plain_ms', 'speedup']);
    expect(line.speedup as number).toBeCloseTo((line.plain_ms as number)
      / (line.ms_median as number), 1);
    expect(bench(['--case', 'unet-forward', ...tiny, '--plain'])).toMatchObject({ plain: true });
  });

  it('--plain with --vs-plain, or --vs-plain on kernels: one error line, exit 1', () => {
    for (const args of [['--case', 'unet-forward', '--plain', '--vs-plain'],
      ['--case', 'kernels', '--vs-plain'], ['--plain']]) {
      const r = npmRun('bench', [...args, '--backend', 'wasm', '--json']);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  it('kernels: fewer on the fused path than the plain core, on wasm too (SIMD GroupNorm)', () => {
    const line = bench(['--case', 'kernels', '--channels', '32', '--batch', '2']);
    positive(line, ['plain_forward_kernels', 'plain_train_step_kernels',
      'plain_sample_step_kernels']);
    for (const call of ['forward', 'train_step', 'sample_step']) {
      expect(line[`${call}_kernels`] as number, call)
        .toBeLessThan(line[`plain_${call}_kernels`] as number);
    }
  });

  it('kernels counts launches and views apart, the same at every batch size', () => {
    const counts = [1, 2].map((b) => bench(['--case', 'kernels', '--channels', '32',
      '--batch', String(b)]));
    const [one, two] = counts;
    positive(two, ['forward_kernels', 'train_step_kernels', 'sample_step_kernels',
      'forward_views', 'train_step_views']);
    expect(two.train_step_kernels as number).toBeGreaterThan(two.forward_kernels as number);
    // a guided step is the forward on 2B images plus guidance and the update
    expect(two.sample_step_kernels as number).toBeGreaterThan(two.forward_kernels as number);
    const { batch: _b1, ...a } = one;
    const { batch: _b2, ...b } = two;
    expect(a).toEqual(b);
  });
});

describe('VIEW_KERNELS', () => {
  it('lists exactly the kernels that hand back their input\'s buffer (wasm, cpu)', async () => {
    for (const name of ['wasm', 'cpu'] as NodeBackend[]) {
      await useNodeBackend(name);
      const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
      const attrs = { Reshape: { shape: [4] }, Identity: {} };
      for (const [kernel, attr] of Object.entries(attrs)) {
        const out = tf.engine().runKernel(kernel, { x }, attr) as tf.Tensor;
        expect(VIEW_KERNELS[name].includes(kernel), `${kernel} on ${name}`)
          .toBe(out.dataId === x.dataId);
        out.dispose();
      }
      x.dispose();
    }
  });
});

describe('npm run bench on bad input', () => {
  it('fails with one line and exit 1', () => {
    const bad = [
      ['--case', 'nope'],
      ['--case', 'unet-forward', '--threads', '0'],
      ['--case', 'unet-forward', '--threads', String(MAX_WASM_THREADS + 1)],
      ['--case', 'unet-forward', '--backend', 'cpu', '--threads', '2'],
      ['--case', 'train-step', '--batch', '3', '--workers', '2'],
      ['--case', 'unet-forward', '--channels', '48'],
      ['--json'],
    ];
    for (const args of bad) {
      const r = npmRun('bench', args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  it('--vs-pytorch without torch says how to get it, before measuring anything', () => {
    // a python3 that cannot import torch, first on the PATH, whatever this machine has
    const bin = tempDir('no-torch-');
    writeFileSync(join(bin, 'python3'), '#!/bin/sh\nexit 1\n');
    chmodSync(join(bin, 'python3'), 0o755);
    const r = spawnSync('npm', ['run', '-s', 'bench', '--', '--case', 'unet-forward',
      '--channels', '32', '--batch', '1', '--vs-pytorch'], {
      encoding: 'utf8', env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}` },
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('error: --vs-pytorch needs python3 with torch '
      + '(Debian: apt-get install python3-torch)');
  });
});
