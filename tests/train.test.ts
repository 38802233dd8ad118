// npm run train on a tiny data set: resuming after an interruption reproduces the uninterrupted run exactly;
// Ctrl-C saves a checkpoint; the exported model and card; bad flags fail with one line.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/lib/diffusion/weights';
import { makeMnistJson, npmRun, tempDir } from './helpers/tiny-datasets';

const data = makeMnistJson(2); // 2 images per digit: 20 training images
const work = tempDir('train-');
const dirs = ['--checkpoints', join(work, 'ck'), '--models', join(work, 'models')];
const run = ['--dataset', 'mnist', '--data', data, '--channels', '32', '--timesteps', '50', '--batch', '3', '--limit', '8',
  '--epochs', '2', '--seed', '5', '--lr', '0.002', '--warmup', '2', ...dirs];
const card = (name: string) => JSON.parse(readFileSync(join(work, 'models', `${name}.json`), 'utf8'));
const checkpoint = (name: string) => readSafetensors(new Uint8Array(readFileSync(join(work, 'ck', name, 'checkpoint.safetensors'))));
const losses = (name: string) => Array.from(checkpoint(name).tensors.get('losses')!.data);

describe('npm run train', () => {
  it('resumes an interrupted run onto the same loss curve and weights as an uninterrupted one', () => {
    expect(npmRun('train', [...run, '--out', 'straight']).code).toBe(0);
    expect(npmRun('train', [...run, '--out', 'split', '--stop-at', '2']).code).toBe(0);
    expect(losses('split')).toHaveLength(2);
    const resumed = npmRun('train', ['--resume', '--out', 'split', ...dirs]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const straight = losses('straight');
    expect(straight).toHaveLength(4); // 2 epochs of floor(8 / 3) = 2 batches
    expect(losses('split')).toEqual(straight);
    expect(new Set(straight).size).toBe(4);
    expect(readFileSync(join(work, 'models', 'split.safetensors'))).toEqual(readFileSync(join(work, 'models', 'straight.safetensors')));
  });

  it('exports the EMA weights in the PyTorch layout with a model card', () => {
    const { tensors } = readSafetensors(new Uint8Array(readFileSync(join(work, 'models', 'straight.safetensors'))));
    expect(tensors.get('down_block1.weight')!.shape).toEqual([32, 1, 3, 3]);
    expect(tensors.get('class_emb.weight')!.shape).toEqual([10, 64]);
    const c = card('straight');
    expect(c.architecture).toEqual({ imageChannels: 1, channels: 32, classes: 10, imageSize: 28 });
    expect(c.schedule).toEqual({ kind: 'paper-linear', T: 50 });
    expect(c.classNames).toHaveLength(10);
    expect(c.recommended).toMatchObject({ sampler: 'ddim', steps: 49, eta: 1, recomputeEps: true, guidance: 3 });
    expect(c.training).toMatchObject({ dataset: 'mnist', images: 8, steps: 4, imagesSeen: 12, epochs: 2, seed: 5, labelDropout: 0.1, weights: 'ema' });
    expect(c.training.lossCurve).toHaveLength(4);
    expect(c.training.finalLoss).toBeCloseTo(losses('straight').reduce((a, b) => a + b) / 4, 5);
  });

  it('--init starts a wider run from a checkpoint\'s EMA weights and records where they came from', () => {
    const from = join(work, 'ck', 'straight', 'checkpoint.safetensors');
    const wide = npmRun('train', [...run, '--channels', '64', '--epochs', '1', '--init', from, '--out', 'wide']);
    expect(wide.code, wide.stderr).toBe(0);
    const c = card('wide');
    expect(c.architecture.channels).toBe(64);
    expect(c.training.initFrom).toEqual({ checkpoint: from, channels: 32, steps: 4, imagesSeen: 12, widenNoise: 0.01 });
    expect(c.training.command).toContain(`--init ${from}`);
    // same seed, so the same first batch and draws: the widened trained weights fit it better than a fresh network
    expect(npmRun('train', [...run, '--channels', '64', '--stop-at', '1', '--out', 'wide-fresh']).code).toBe(0);
    expect(losses('wide')[0]).toBeLessThan(0.9 * losses('wide-fresh')[0]);
    expect(checkpoint('wide').tensors.get('p/middle_block.conv1.weight')!.shape).toEqual([3, 3, 128, 128]);
  });

  it('--workers 2 splits each batch over two threads and trains the same run, up to float rounding', () => {
    const four = [...run.slice(0, run.indexOf('--batch')), '--batch', '4', ...run.slice(run.indexOf('--batch') + 2)];
    expect(npmRun('train', [...four, '--out', 'one-thread']).code).toBe(0);
    const two = npmRun('train', [...four, '--out', 'two-threads', '--workers', '2']);
    expect(two.code, two.stderr).toBe(0);
    expect(two.stderr).toMatch(/wasm x 2 workers/);
    const [a, b] = [losses('one-thread'), losses('two-threads')];
    expect(a).toHaveLength(4);
    b.forEach((loss, i) => expect(Math.abs(loss - a[i]) / a[i]).toBeLessThan(1e-5));
    expect(card('two-threads').training.machine).toMatch(/on 2 worker threads/);
    // a run may change its worker count when it resumes
    expect(npmRun('train', ['--resume', '--out', 'two-threads', '--epochs', '3', '--workers', '1', ...dirs]).code).toBe(0);
    expect(losses('two-threads')).toHaveLength(6);
  });

  it('saves a checkpoint on Ctrl-C and exits with 130', async () => {
    // its own process group, which Ctrl-C in a terminal signals as a whole
    const child = spawn('node_modules/.bin/tsx', ['scripts/train.ts', ...run, '--epochs', '1000', '--out', 'interrupted'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    await new Promise<void>((ok) => { const poll = setInterval(() => stderr.includes('training interrupted') && (clearInterval(poll), ok()), 50); });
    await new Promise((ok) => setTimeout(ok, 1500));
    const exited = new Promise((ok) => child.on('close', ok)); // 'close': after the last of stderr, which 'exit' may precede
    process.kill(-child.pid!, 'SIGINT');
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000); // never leave it running
    const code = await exited;
    clearTimeout(timer);
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/SIGINT: saving a checkpoint/);
    expect(existsSync(join(work, 'ck', 'interrupted', 'checkpoint.safetensors'))).toBe(true);
    expect(card('interrupted').training.steps).toBe(losses('interrupted').length);
  });

  it('fails with one line on bad input', () => {
    const cases: [string[], RegExp][] = [
      [[...run, '--out', 'straight'], /exists: pass --resume/],
      [['--resume', '--out', 'nothing-here', ...dirs], /nothing to resume/],
      [[...run, '--out', 'x', '--dataset', 'cifar'], /--dataset must be one of mnist, fashion-mnist/],
      [[...run, '--out', 'x', '--channels', '48'], /--channels must be a valid number/],
      [[...run, '--out', 'x', '--bogus', '1'], /unknown flag --bogus/],
      [['--resume', '--out', 'straight', '--batch', '4', ...dirs], /--batch 4 differs from the checkpoint's 3/],
      [[...run, '--out', '../escape'], /--out must be a plain name/],
      [[...run, '--out', 'x', '--data', work], /MNIST digits not found/],
      [[...run, '--out', 'x', '--workers', '2'], /--batch 3 is not divisible by --workers 2/],
      [[...run, '--out', 'x', '--workers', '0'], /--workers must be a valid number/],
      [[...run, '--out', 'x', '--workers', '2', '--backend', 'cpu'], /--workers 2 needs the wasm backend/],
      [[...run, '--out', 'x', '--init', join(work, 'nothing.safetensors')], /--init .*nothing.safetensors: no such checkpoint/],
      [[...run, '--out', 'x', '--channels', '96', '--init', join(work, 'ck', 'wide', 'checkpoint.safetensors')], /has 64 channels, which do not divide 96/],
      [[...run, '--out', 'x', '--timesteps', '60', '--init', join(work, 'ck', 'straight', 'checkpoint.safetensors')], /has schedule paper-linear T=50: it must match/],
      [['--resume', '--out', 'straight', '--init', join(work, 'ck', 'straight', 'checkpoint.safetensors'), ...dirs], /--init starts a new run/],
    ];
    for (const [args, message] of cases) {
      const r = npmRun('train', args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });
});
