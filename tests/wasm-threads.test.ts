// tfjs's threaded wasm build in Node (src/lib/runtime/wasm-threads.ts): the CLIs start it with
// --threads N, the backend reports N threads, and the same seed draws the same numbers as one
// thread. A process starts its wasm backend once, so each thread count runs in its own process.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { npmRun, tempDir } from './helpers/tiny-datasets';
import { maxAbsDiff } from './helpers/backend';

const work = tempDir('threads-');

/** npm run sample with the shipped 32-channel MNIST model, guided DDIM, on `threads` threads. */
function sampleWith(threads: number): number[] {
  const out = join(work, `t${threads}.json`);
  const r = npmRun('sample', ['--model', 'mnist', '--labels', '0,1,2,3,4,5,6,7', '--steps', '4',
    '--guidance', '3', '--seed', '5', '--threads', String(threads), '--out', out]);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(readFileSync(out, 'utf8')).images;
}

describe('the threaded wasm backend in Node', () => {
  it('reports the threads asked for in the bench line', () => {
    const lines = [1, 2].map((threads) => {
      const r = npmRun('bench', ['--case', 'unet-forward', '--channels', '32', '--batch', '2',
        '--repeats', '1', '--threads', String(threads), '--json']);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout.trim().split('\n').pop()!);
    });
    expect(lines.map((l) => [l.backend, l.threads])).toEqual([['wasm', 1], ['wasm', 2]]);
  });

  it('draws the same samples on 2 threads as on 1 (within 1e-5)', () => {
    const [one, two] = [sampleWith(1), sampleWith(2)];
    expect(one).toHaveLength(8 * 784);
    expect(one.some((v) => v !== one[0])).toBe(true);
    expect(maxAbsDiff(one, two)).toBeLessThan(1e-5);
  });

  it('refuses --threads on a backend other than wasm, in one line', () => {
    const r = npmRun('sample', ['--model', 'mnist', '--labels', '1', '--backend', 'cpu',
      '--threads', '2', '--out', join(work, 'x.json')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe('error: --threads 2 applies to the wasm backend only, received '
      + '--backend cpu');
  });
});
