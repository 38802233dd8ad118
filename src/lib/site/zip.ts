// The library download, /downloads/diffusion.zip, built with fflate when the site is built: the
// core (src/lib/diffusion) and the runtime glue that chapter 8 uses to train on wasm in Node.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { LIBRARY_DIR } from './regions';

/** src/lib/runtime files that the zip holds: the Node backend set-up and what it imports. */
export const RUNTIME_FILES = ['node.ts', 'wasm-conv-grad.ts', 'wasm-threads.ts', 'wasm-pool.ts',
  'esm-hooks.mjs'];

/** The zip's files: diffusion/*.ts and the runtime files above. */
export function libraryFiles(libraryDir = LIBRARY_DIR): Record<string, Uint8Array> {
  const runtimeDir = join(libraryDir, '../runtime');
  const core = readdirSync(libraryDir).filter((f) => f.endsWith('.ts')).sort()
    .map((f) => [`diffusion/${f}`, readFileSync(join(libraryDir, f))]);
  const glue = RUNTIME_FILES.map((f) => [`runtime/${f}`, readFileSync(join(runtimeDir, f))]);
  return Object.fromEntries([...core, ...glue]);
}

/** The files as a zip archive, stored uncompressed (so each file's bytes appear as they are). */
export function libraryZip(libraryDir = LIBRARY_DIR): Uint8Array {
  return zipSync(libraryFiles(libraryDir), { level: 0, mtime: new Date('2025-01-01T00:00:00Z') });
}
