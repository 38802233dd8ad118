// tfjs-backend-wasm's threaded SIMD build in Node. tfjs switches it off there (its flag
// WASM_HAS_MULTITHREAD_SUPPORT is hard-coded false under Node, tfjs issue 3830), though the
// Emscripten code inside supports Node's worker_threads. Three things stand in the way, and this
// file removes each before the backend starts:
// 1. The pthread worker is handed to Emscripten as a blob: URL, which Node's Worker cannot load:
//    we write the worker script to a file and answer that blob with the file's path.
// 2. Each worker is then sent the module's factory as a Blob to import, and a Node worker can only
//    import a path: the worker file starts by answering blobs with the factory's own file.
// 3. The wasm side sizes its thread pool as min(logical cores / 2, 4), so 2 cores give 1 thread
//    whatever setThreadsCount asks: while the backend starts, os.cpus() reports each core twice.
// Call before importing '@tensorflow/tfjs-backend-wasm' for the first time; then set the backend.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { MAX_WASM_THREADS } from './wasm-pool';

const require = createRequire(import.meta.url);
const WASM_OUT = '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd';

export { MAX_WASM_THREADS };

/** The cores this process may use (the CLIs' default, up to MAX_WASM_THREADS). */
export function coreCount(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism()
    : os.cpus().length;
}

/** Writes the pthread worker script to a temporary file and returns its path. */
function writeWorkerScript(): string {
  const { wasmWorkerContents } = require(`${WASM_OUT}.worker.js`) as
    { wasmWorkerContents: string };
  const factory = require.resolve(`${WASM_OUT}.js`);
  const prefix = `URL.createObjectURL = () => ${JSON.stringify(factory)};\n`
    + 'URL.revokeObjectURL = () => {};\n';
  const path = join(mkdtempSync(join(os.tmpdir(), 'tfjs-wasm-threads-')), 'worker.cjs');
  // tfjs escapes newlines the same way before it makes its blob: the contents hold "\n" escapes
  // that its template literal turned into line breaks inside string literals.
  writeFileSync(path, prefix + wasmWorkerContents.replace(/\n/g, '\\n'));
  return path;
}

/**
 * Starts tfjs's wasm backend with `threads` threads (1 = the single-threaded SIMD build, as
 * tfjs does in Node by default). Returns the thread count the backend reports.
 */
export function startWasmBackend(threads: number): Promise<number> {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new Error(`threads must be a whole number from 1 to ${MAX_WASM_THREADS} (the most `
      + `tfjs's wasm build takes); got ${threads}`);
  }
  started ??= start(threads);
  started.catch(() => (started = null));
  return started;
}

/** Once per process: the wasm module cannot be started again with another thread count. */
let started: Promise<number> | null = null;

async function start(threads: number): Promise<number> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (threads === 1) {
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not start');
    return wasm.getThreadsCount();
  }
  const worker = writeWorkerScript();
  const createObjectURL = URL.createObjectURL;
  const cpus = os.cpus;
  URL.createObjectURL = (blob: Blob) =>
    (blob.type === 'application/javascript' ? worker : createObjectURL(blob));
  os.cpus = () => [...cpus(), ...cpus()];
  try {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(threads);
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not start');
  } finally {
    URL.createObjectURL = createObjectURL;
    os.cpus = cpus;
  }
  return wasm.getThreadsCount();
}
