// npm run train on a tiny data set: resuming after an interruption reproduces the uninterrupted run
// exactly, from either checkpoint format; Ctrl-C saves a checkpoint; the exported model and card;
// bad flags fail with one line.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors, writeSafetensors, type HostTensor } from '../src/lib/diffusion/weights';
import { torchShapes } from '../src/lib/diffusion/unet';
import { readCheckpoint } from '../scripts/train/checkpoint';
import { makeMnistJson, npmRun, tempDir } from './helpers/tiny-datasets';

const data = makeMnistJson(2); // 2 images per digit: 20 training images
const work = tempDir('train-');
const dirs = ['--checkpoints', join(work, 'ck'), '--models', join(work, 'models')];
const run = [
  '--dataset', 'mnist', '--data', data, '--channels', '32', '--timesteps', '50', '--batch', '3',
  '--limit', '8', '--epochs', '2', '--seed', '5', '--lr', '0.002', '--warmup', '2', ...dirs,
];
const ckFile = (name: string) => join(work, 'ck', name, 'checkpoint.safetensors');
const modelFile = (name: string) => join(work, 'models', `${name}.safetensors`);
const card = (name: string) =>
  JSON.parse(readFileSync(join(work, 'models', `${name}.json`), 'utf8'));
const checkpoint = (name: string) => readSafetensors(new Uint8Array(readFileSync(ckFile(name))));
const losses = (name: string) => Array.from(checkpoint(name).tensors.get('losses')!.data);
const committed = 'checkpoints/mnist/checkpoint.safetensors';

/**
 * A checkpoint rewritten in format 1, as the trainer wrote it with tfjs's AdamOptimizer: Adam's
 * getWeights as adam/0000 (iterations), then every first moment, then every second moment, named
 * after tf.Variable ids (any: a new process never knows them), and beta^(n + 1) in float32.
 */
function asFormat1(bytes: Uint8Array): Uint8Array {
  const { tensors, metadata } = readSafetensors(new Uint8Array(bytes));
  const order = Object.keys(torchShapes({ imageChannels: 1, channels: 32, classes: 10 }));
  const step = JSON.parse(metadata.state).step as number;
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of tensors) if (!name.startsWith('adam/')) out[name] = t;
  const scalar = (x: number): HostTensor => ({ shape: [], data: Float32Array.of(x) });
  const slots = [scalar(step), ...['m', 'v'].flatMap((kind) =>
    order.map((name) => tensors.get(`adam/${kind}/${name}`)!))];
  slots.forEach((t, i) => (out[`adam/${String(i).padStart(4, '0')}`] = t));
  out['adam/accBeta1'] = scalar(0.9 ** (step + 1));
  out['adam/accBeta2'] = scalar(0.999 ** (step + 1));
  const ids = order.map((_, k) => 40 + k);
  const names = ['iter', ...ids.map((id) => `${id}/m`), ...ids.map((id) => `${id}/v`)];
  const { run, state } = metadata;
  const format = 'diffusion-executed checkpoint 1';
  return writeSafetensors(out, { run, state, adam: JSON.stringify(names), format });
}

describe('npm run train', () => {
  it('resumes an interrupted run onto the same loss curve and weights as an uninterrupted one',
    () => {
      expect(npmRun('train', [...run, '--out', 'straight']).code).toBe(0);
      expect(npmRun('train', [...run, '--out', 'split', '--stop-at', '2']).code).toBe(0);
      expect(losses('split')).toHaveLength(2);
      const resumed = npmRun('train', ['--resume', '--out', 'split', ...dirs]);
      expect(resumed.code, resumed.stderr).toBe(0);
      const straight = losses('straight');
      expect(straight).toHaveLength(4); // 2 epochs of floor(8 / 3) = 2 batches
      expect(losses('split')).toEqual(straight);
      expect(new Set(straight).size).toBe(4);
      expect(readFileSync(modelFile('split'))).toEqual(readFileSync(modelFile('straight')));
    });

  it('resumes a checkpoint of the old format (tfjs Adam slots) onto the same loss curve', () => {
    expect(npmRun('train', [...run, '--out', 'old', '--stop-at', '2']).code).toBe(0);
    writeFileSync(ckFile('old'), asFormat1(readFileSync(ckFile('old'))));
    expect(checkpoint('old').metadata.format).toBe('diffusion-executed checkpoint 1');
    const resumed = npmRun('train', ['--resume', '--out', 'old', ...dirs]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(losses('old')).toEqual(losses('straight'));
    expect(checkpoint('old').metadata.format).toBe('diffusion-executed checkpoint 2');
  });

  it('reads the committed checkpoint by parameter name', () => {
    const saved = readCheckpoint(committed);
    const names = Object.keys(saved.params);
    expect(Object.keys(saved.adam.m).sort()).toEqual(names.sort());
    for (const name of names) {
      expect(saved.adam.m[name].shape).toEqual(saved.params[name].shape);
      expect(saved.adam.v[name].shape).toEqual(saved.params[name].shape);
      expect(saved.adam.v[name].data.every((x) => x >= 0)).toBe(true); // a second moment
    }
    expect(saved.adam.beta2Power).toBeCloseTo(0.999 ** saved.state.step, 12);
  });

  it('exports the EMA weights in the PyTorch layout with a model card', () => {
    const { tensors } = readSafetensors(new Uint8Array(readFileSync(modelFile('straight'))));
    expect(tensors.get('down_block1.weight')!.shape).toEqual([32, 1, 3, 3]);
    expect(tensors.get('class_emb.weight')!.shape).toEqual([10, 64]);
    const c = card('straight');
    expect(c.architecture).toEqual({ imageChannels: 1, channels: 32, classes: 10, imageSize: 28 });
    expect(c.schedule).toEqual({ kind: 'paper-linear', T: 50 });
    expect(c.classNames).toHaveLength(10);
    expect(c.recommended)
      .toMatchObject({ sampler: 'ddim', steps: 49, eta: 1, recomputeEps: true, guidance: 3 });
    expect(c.training).toMatchObject({
      dataset: 'mnist', images: 8, steps: 4, imagesSeen: 12, epochs: 2, seed: 5,
      labelDropout: 0.1, weights: 'ema',
    });
    expect(c.training.lossCurve).toHaveLength(4);
    expect(c.training.finalLoss).toBeCloseTo(losses('straight').reduce((a, b) => a + b) / 4, 5);
  });

  it('--init starts a wider run from a checkpoint\'s EMA weights and records where they came from',
    () => {
      const from = ckFile('straight');
      const wide = npmRun('train',
        [...run, '--channels', '64', '--epochs', '1', '--init', from, '--out', 'wide']);
      expect(wide.code, wide.stderr).toBe(0);
      const c = card('wide');
      expect(c.architecture.channels).toBe(64);
      expect(c.training.initFrom)
        .toEqual({ checkpoint: from, channels: 32, steps: 4, imagesSeen: 12, widenNoise: 0.01 });
      expect(c.training.command).toContain(`--init ${from}`);
      // same seed, so the same first batch and draws: the widened trained weights fit it better
      // than a fresh network
      const fresh = [...run, '--channels', '64', '--stop-at', '1', '--out', 'wide-fresh'];
      expect(npmRun('train', fresh).code).toBe(0);
      expect(losses('wide')[0]).toBeLessThan(0.9 * losses('wide-fresh')[0]);
      expect(checkpoint('wide').tensors.get('p/middle_block.conv1.weight')!.shape)
        .toEqual([3, 3, 128, 128]);
    });

  it('--workers 2 splits each batch over two threads and trains the same run, up to float rounding',
    () => {
      const at = run.indexOf('--batch');
      const four = [...run.slice(0, at), '--batch', '4', ...run.slice(at + 2)];
      expect(npmRun('train', [...four, '--out', 'one-thread']).code).toBe(0);
      const two = npmRun('train', [...four, '--out', 'two-threads', '--workers', '2']);
      expect(two.code, two.stderr).toBe(0);
      expect(two.stderr).toMatch(/wasm x 2 workers/);
      const [a, b] = [losses('one-thread'), losses('two-threads')];
      expect(a).toHaveLength(4);
      b.forEach((loss, i) => expect(Math.abs(loss - a[i]) / a[i]).toBeLessThan(1e-5));
      expect(card('two-threads').training.machine).toMatch(/on 2 worker threads/);
      // a run may change its worker count when it resumes
      const more = ['--resume', '--out', 'two-threads', '--epochs', '3', '--workers', '1', ...dirs];
      expect(npmRun('train', more).code).toBe(0);
      expect(losses('two-threads')).toHaveLength(6);
    });

  it('saves a checkpoint on Ctrl-C and exits with 130', async () => {
    // its own process group, which Ctrl-C in a terminal signals as a whole
    const args = ['scripts/train.ts', ...run, '--epochs', '1000', '--out', 'interrupted'];
    const child = spawn('node_modules/.bin/tsx', args,
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    await new Promise<void>((ok) => {
      const started = () => stderr.includes('training interrupted') && (clearInterval(poll), ok());
      const poll = setInterval(started, 50);
    });
    await new Promise((ok) => setTimeout(ok, 1500));
    // 'close': after the last of stderr, which 'exit' may precede
    const exited = new Promise((ok) => child.on('close', ok));
    process.kill(-child.pid!, 'SIGINT');
    // never leave it running
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000);
    const code = await exited;
    clearTimeout(timer);
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/SIGINT: saving a checkpoint/);
    expect(existsSync(ckFile('interrupted'))).toBe(true);
    expect(card('interrupted').training.steps).toBe(losses('interrupted').length);
  });

  it('fails with one line on bad input', () => {
    const cases: [string[], RegExp][] = [
      [[...run, '--out', 'straight'], /exists: pass --resume/],
      [['--resume', '--out', 'nothing-here', ...dirs], /nothing to resume/],
      [[...run, '--out', 'x', '--dataset', 'cifar'],
        /--dataset must be one of mnist, fashion-mnist/],
      [[...run, '--out', 'x', '--channels', '48'], /--channels must be a valid number/],
      [[...run, '--out', 'x', '--bogus', '1'], /unknown flag --bogus/],
      [[...run, '--out', 'x', 'stray'], /unexpected argument "stray"/],
      [['--resume', 'yes', '--out', 'straight', ...dirs],
        /--resume takes no value, received "yes"/],
      [['--resume', '--out', 'straight', '--batch', '4', ...dirs],
        /--batch 4 differs from the checkpoint's 3/],
      [[...run, '--out', '../escape'], /--out must be a plain name/],
      [[...run, '--out', 'x', '--data', work], /MNIST digits not found/],
      [[...run, '--out', 'x', '--workers', '2'], /--batch 3 is not divisible by --workers 2/],
      [[...run, '--out', 'x', '--workers', '0'], /--workers must be a valid number/],
      [[...run, '--out', 'x', '--workers', '2', '--backend', 'cpu'],
        /--workers 2 needs the wasm backend/],
      [[...run, '--out', 'x', '--init', join(work, 'nothing.safetensors')],
        /--init .*nothing.safetensors: no such checkpoint/],
      [[...run, '--out', 'x', '--channels', '96', '--init', ckFile('wide')],
        /has 64 channels, which do not divide 96/],
      [[...run, '--out', 'x', '--timesteps', '60', '--init', ckFile('straight')],
        /has schedule paper-linear T=50: it must match/],
      [['--resume', '--out', 'straight', '--init', ckFile('straight'), ...dirs],
        /--init starts a new run/],
    ];
    for (const [args, message] of cases) {
      const r = npmRun('train', args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });
});
