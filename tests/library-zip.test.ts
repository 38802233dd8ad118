// The downloadable library trains: the built /downloads/diffusion.zip, unzipped into an empty
// project that installs nothing (this repository's node_modules linked in), runs chapter 8's
// "train on wasm in Node" code as the chapter prints it, for its two steps.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, describe, expect, it } from 'vitest';
import { siteDist } from './helpers/site-dist';

const CHAPTER = join(process.cwd(), 'src/content/docs/chapters/08-using-the-library.mdx');

/** The chapter's ```ts blocks, in order. */
const tsBlocks = (mdx: string) => [...mdx.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);

describe('the library zip', () => {
  const project = mkdtempSync(join(tmpdir(), 'diffusion-zip-'));
  afterAll(() => rmSync(project, { recursive: true, force: true }));

  it('holds the core and the Node glue chapter 8 uses, and trains two steps on wasm', () => {
    const files = unzipSync(readFileSync(join(siteDist(), 'downloads', 'diffusion.zip')));
    expect(Object.keys(files)).toEqual(expect.arrayContaining(['diffusion/index.ts',
      'runtime/node.ts', 'runtime/wasm-conv-grad.ts', 'runtime/wasm-threads.ts',
      'runtime/wasm-pool.ts', 'runtime/esm-hooks.mjs']));
    for (const [path, bytes] of Object.entries(files)) {
      mkdirSync(join(project, dirname(path)), { recursive: true });
      writeFileSync(join(project, path), bytes);
    }
    symlinkSync(join(process.cwd(), 'node_modules'), join(project, 'node_modules'), 'dir');
    writeFileSync(join(project, 'package.json'), '{ "type": "module" }\n');
    const code = tsBlocks(readFileSync(CHAPTER, 'utf8'))
      .find((b) => b.includes("useNodeBackend('wasm')") && b.includes('trainStep('));
    expect(code, 'chapter 8 shows a block that trains on wasm in Node').toBeDefined();
    writeFileSync(join(project, 'train.ts'), code!);
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'train.ts'], {
      cwd: project, encoding: 'utf8', timeout: 240_000, env: { ...process.env, NODE_OPTIONS: '' },
    });
    const losses = [...out.matchAll(/^step (\d+): loss (\S+)$/gm)];
    expect(losses.map((m) => Number(m[1]))).toEqual([1, 2]);
    for (const m of losses) expect(Number.isFinite(Number(m[2])) && Number(m[2]) > 0).toBe(true);
  }, 300_000);
});
