// Our WebAssembly SIMD modules (./wasm-simd/*.wat) run in tfjs's own wasm heap: each imports the
// backend's memory, so kernels pass tensors to them as byte offsets, with no copies.
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type * as tf from '@tensorflow/tfjs-core';

/** The Emscripten module of tfjs's wasm backend, as far as it is used here. */
interface WasmModule { wasmMemory?: WebAssembly.Memory; asm?: { memory?: WebAssembly.Memory };
  _malloc(bytes: number): number; _free(ptr: number): void }
export type Backend = BackendWasm & { wasm: WasmModule;
  dataIdMap: { get(id: object): { memoryOffset: number } } };
/** A module assembled twice by npm run build-wasm: its memory import unshared and shared. */
export interface SimdModule { UNSHARED: string; SHARED: string }

const bytes = (b64: string) => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
const instances = new WeakMap<WebAssembly.Memory, Map<SimdModule, unknown>>();

/** Whether this runtime runs the module (WebAssembly SIMD). */
export const validates = (m: SimdModule) => WebAssembly.validate(bytes(m.UNSHARED));

/** The heap's memory object: imported by the threaded build, exported by the others. */
export function heapMemory(backend: Backend): WebAssembly.Memory {
  const memory = backend.wasm.wasmMemory ?? backend.wasm.asm?.memory;
  if (!memory) throw new Error('the tfjs wasm backend does not expose its memory');
  return memory;
}

/** Module `m`'s exports, instantiated once on the backend's heap. */
export function exportsOf<T>(backend: Backend, m: SimdModule): T {
  const memory = heapMemory(backend);
  const mine = instances.get(memory) ?? new Map<SimdModule, unknown>();
  instances.set(memory, mine);
  if (!mine.has(m)) {
    const shared = typeof SharedArrayBuffer !== 'undefined'
      && memory.buffer instanceof SharedArrayBuffer;
    const module = new WebAssembly.Module(bytes(shared ? m.SHARED : m.UNSHARED));
    mine.set(m, new WebAssembly.Instance(module, { env: { memory } }).exports);
  }
  return mine.get(m) as T;
}

/** A tensor's byte offset in the heap. */
export const pointer = (backend: Backend, t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)
  .memoryOffset;

/** Scratch floats in the heap for `f`, freed after it. */
export function withScratch<T>(backend: Backend, floats: number, f: (ptr: number) => T): T {
  const ptr = backend.wasm._malloc(4 * floats);
  try {
    return f(ptr);
  } finally {
    backend.wasm._free(ptr);
  }
}
