// Backend set-up in the browser: webgpu, webgl, wasm, cpu in that order, each backend's code
// loaded only when it is tried. `?backend=NAME` forces one. A software WebGPU adapter or WebGL
// renderer (SwiftShader, lavapipe, llvmpipe) is far slower than wasm, so it is skipped unless
// forced. The page's other parameters: `?threads=N` (wasmThreads) and `?fused=` (fusedMode). The
// Node version is ./node.ts.
import * as tf from '@tensorflow/tfjs-core';
import { registerWasmConvGrad } from './wasm-conv-grad';
import { MAX_WASM_THREADS } from './wasm-pool';

export type BrowserBackend = 'webgpu' | 'webgl' | 'wasm' | 'cpu';
export const BACKEND_ORDER: BrowserBackend[] = ['webgpu', 'webgl', 'wasm', 'cpu'];

/** The backend named by `?backend=NAME`, or null; an unknown name is an error that lists the
 * known ones. */
export function forcedBackend(search: string): BrowserBackend | null {
  const name = new URLSearchParams(search).get('backend');
  if (name === null || name === '') return null;
  if (!BACKEND_ORDER.includes(name as BrowserBackend)) {
    const known = BACKEND_ORDER.join(', ');
    throw new Error(`?backend=${name} is not a backend: expected one of ${known}`);
  }
  return name as BrowserBackend;
}

/**
 * The wasm threads for this page: `?threads=N` (1 to 4), else every core up to 4. Threads need a
 * cross-origin isolated page (the COOP and COEP headers the site sends; SharedArrayBuffer exists
 * only there); elsewhere wasm runs one thread whatever is asked.
 */
export function wasmThreads(search: string): number {
  const asked = new URLSearchParams(search).get('threads');
  if (asked === null || asked === '') {
    return Math.min(MAX_WASM_THREADS, navigator.hardwareConcurrency || 1);
  }
  const n = Number(asked);
  if (!Number.isInteger(n) || n < 1 || n > MAX_WASM_THREADS) {
    throw new Error(`?threads=${asked} is not a thread count: expected 1 to ${MAX_WASM_THREADS}`);
  }
  return n;
}

/** How the cells run the UNet on webgpu and wasm: `on` (the default) with the fused kernels of
 * ./fused-unet.ts; `off` (`?fused=off`) with the plain library; `fail` (`?fused=fail`, for tests)
 * as `on`, but the first fused call of the page throws, so the cell falls back to the plain
 * library with a note (cells/engine.ts). webgl and cpu always run the plain library. */
export type FusedMode = 'on' | 'off' | 'fail';
const FUSED_MODES: FusedMode[] = ['on', 'off', 'fail'];

/** The page's FusedMode from `?fused=`; an unknown value is an error that lists the known ones. */
export function fusedMode(search: string): FusedMode {
  const asked = new URLSearchParams(search).get('fused');
  if (asked === null || asked === '') return 'on';
  if (!FUSED_MODES.includes(asked as FusedMode)) {
    throw new Error(`?fused=${asked} is not a mode: expected one of ${FUSED_MODES.join(', ')}`);
  }
  return asked as FusedMode;
}

/** Names of CPU-emulated GPUs, as adapters and renderers report them. */
const SOFTWARE = /swiftshader|llvmpipe|lavapipe|software/i;

interface AdapterLike {
  isFallbackAdapter?: boolean;
  info?: Record<string, unknown>;
  requestAdapterInfo?: () => Promise<Record<string, unknown>>; // Chrome before 127
}

/** True for a CPU-emulated WebGPU adapter: it says it is a fallback, or its vendor, architecture
 * or description names one. */
export function isSoftwareAdapter(adapter: AdapterLike): boolean {
  const info = adapter.info ?? {};
  if (adapter.isFallbackAdapter || info.isFallbackAdapter) return true;
  const text = ['vendor', 'architecture', 'device', 'description']
    .map((k) => String(info[k] ?? '')).join(' ');
  return SOFTWARE.test(text);
}

/** Why webgl should not be chosen here: no WebGL 2, or (unless forced) a software renderer; null
 * if it is fine. */
function webglProblem(forced: boolean): string | null {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return 'this browser has no WebGL 2';
  const debug = gl.getExtension('WEBGL_debug_renderer_info');
  const name = debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER;
  const renderer = String(gl.getParameter(name) ?? '');
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  if (forced || !SOFTWARE.test(renderer)) return null;
  return `the WebGL renderer is a software one (${renderer}), slower than wasm`;
}

/** Why webgpu cannot be used here, or null when a hardware adapter (or, if forced, any adapter)
 * exists. */
async function webgpuProblem(forced: boolean): Promise<string | null> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return 'this browser has no WebGPU (navigator.gpu is missing)';
  const adapter = (await gpu.requestAdapter().catch(() => null)) as AdapterLike | null;
  if (!adapter) return 'WebGPU is present but no GPU adapter is available';
  const info = adapter.info ?? (await adapter.requestAdapterInfo?.().catch(() => ({}))) ?? {};
  if (!forced && isSoftwareAdapter({ isFallbackAdapter: adapter.isFallbackAdapter, info })) {
    return 'the only WebGPU adapter is a software one (slower than wasm)';
  }
  return null;
}

/**
 * Starts tfjs's wasm backend, threaded where the page is cross-origin isolated. Its C++ sizes the
 * thread pool as min(logical cores / 2, 4), so 2 cores give 1 thread whatever setThreadsCount
 * asks: while it starts, navigator.hardwareConcurrency reports each core twice. Returns the
 * threads it runs.
 */
async function startWasm(threads: number): Promise<number> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const urls = await import('./cells/wasm-urls');
  wasm.setWasmPaths(urls.wasmFileMap, true);
  const threaded = globalThis.crossOriginIsolated === true && threads > 1;
  if (!threaded) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  wasm.setThreadsCount(threaded ? threads : 1);
  if (threaded) {
    const cores = navigator.hardwareConcurrency || 1;
    Object.defineProperty(navigator, 'hardwareConcurrency',
      { value: 2 * cores, configurable: true });
  }
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs could not initialise wasm');
  } finally {
    delete (navigator as { hardwareConcurrency?: number }).hardwareConcurrency;
  }
  registerWasmConvGrad();
  return wasm.getThreadsCount();
}

/** Loads one backend's code and makes it current; returns why it failed, or null. */
async function trySetBackend(name: BrowserBackend, forced: boolean, threads: number)
  : Promise<string | null> {
  try {
    if (name === 'webgpu') {
      const problem = await webgpuProblem(forced);
      if (problem) return problem;
      await import('@tensorflow/tfjs-backend-webgpu');
    } else if (name === 'webgl') {
      const problem = webglProblem(forced);
      if (problem) return problem;
      await import('@tensorflow/tfjs-backend-webgl');
    } else if (name === 'wasm') {
      Object.assign(window, { __tfWasmThreads: await startWasm(threads) });
    } else {
      await import('@tensorflow/tfjs-backend-cpu');
    }
    if (!(await tf.setBackend(name))) return `tfjs could not initialise the ${name} backend`;
    await tf.ready();
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Sets the first backend that works (or the forced one) and returns its name; throws with every
 * reason if none does. `threads`: wasm's, where the page allows them (see wasmThreads); `skip`:
 * backends not to try (webgpu, once its device is lost). */
export async function initBrowserBackend(forced: BrowserBackend | null,
  { threads = 1, skip = [] as BrowserBackend[] } = {}): Promise<BrowserBackend> {
  const reasons: string[] = [];
  const order = forced ? [forced] : BACKEND_ORDER.filter((name) => !skip.includes(name));
  for (const name of order) {
    const problem = await trySetBackend(name, forced !== null, threads);
    if (!problem) return name;
    reasons.push(`${name}: ${problem}`);
  }
  if (forced) throw new Error(`the forced backend failed: ${reasons[0]}`);
  throw new Error(`no tfjs backend works here (${reasons.join('; ')})`);
}
