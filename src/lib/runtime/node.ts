// Backend set-up for Node (CLIs and tests). The browser's version is in ./browser.ts.
import * as tf from '@tensorflow/tfjs-core';
import { registerWasmConvGrad } from './wasm-conv-grad';
import { startWasmBackend } from './wasm-threads';

export type NodeBackend = 'wasm' | 'cpu' | 'webgpu';
export const NODE_BACKENDS: NodeBackend[] = ['wasm', 'cpu', 'webgpu'];

/** Picks a Vulkan driver for Dawn on a machine without a GPU: Mesa lavapipe if present, else
 * Chromium's SwiftShader. */
function chooseSoftwareVulkan(exists: (p: string) => boolean) {
  if (process.env.VK_ICD_FILENAMES) return;
  const drivers = [
    '/usr/share/vulkan/icd.d/lvp_icd.json', '/usr/lib/chromium/vk_swiftshader_icd.json',
  ];
  const icd = drivers.find(exists);
  if (icd) process.env.VK_ICD_FILENAMES = icd;
}

/** tfjs-core registers no gradients by itself; its ES module that does needs a resolve hook in
 * Node. */
async function registerGradients() {
  if (tf.getGradient('Mean')) return;
  const { register } = await import('node:module');
  register('./esm-hooks.mjs', import.meta.url);
  await import('@tensorflow/tfjs-core/dist/register_all_gradients.js' as string);
}

let gpuName: string | null = null;

/** The GPU that Dawn runs on (its adapter's vendor, architecture and description), or null
 * before webgpu is set up. */
export function nodeGpuName(): string | null {
  return gpuName;
}

export interface NodeBackendOptions {
  /** wasm only: XNNPACK threads (the threaded SIMD build when above 1; see ./wasm-threads.ts).
   * 1 unless given; the CLIs pass every core. Fixed by the first call in a process. */
  threads?: number;
}

/** Sets a tfjs backend in Node, with gradients for training; webgpu goes through Dawn (the
 * `webgpu` package). */
export async function useNodeBackend(name: NodeBackend, options: NodeBackendOptions = {})
  : Promise<void> {
  if (!NODE_BACKENDS.includes(name)) {
    throw new Error(`unknown backend "${name}": expected one of ${NODE_BACKENDS.join(', ')}`);
  }
  await registerGradients();
  if (name === 'wasm') {
    await startWasmBackend(options.threads ?? 1);
    registerWasmConvGrad();
  } else if (name === 'cpu') {
    await import('@tensorflow/tfjs-backend-cpu');
  } else if (!tf.findBackend('webgpu')) {
    const { existsSync } = await import('node:fs');
    chooseSoftwareVulkan(existsSync);
    const { create, globals } = await import('webgpu');
    Object.assign(globalThis, globals);
    const gpu = create([]);
    Object.defineProperty(globalThis, 'navigator',
      { value: { gpu }, configurable: true, writable: true });
    const info = (await gpu.requestAdapter())?.info;
    const parts = [info?.vendor, info?.architecture, info?.description && `(${info.description})`];
    gpuName = parts.filter(Boolean).join(' ') || null;
    await import('@tensorflow/tfjs-backend-webgpu');
  }
  if (!(await tf.setBackend(name))) throw new Error(`the ${name} backend could not be initialised`);
  await tf.ready();
}
