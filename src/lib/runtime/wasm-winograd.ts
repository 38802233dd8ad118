// The UNet's 3x3, stride-1, padding-1 convs on the wasm backend as Winograd F(2x2, 3x3): each
// 2x2 block of outputs from its 4x4 input patch d and the filter g as
//   Y = A^T [ (G g G^T) * (B^T d B) ] A      (* elementwise over the 16 positions)
// so a conv is 16 matMuls [tiles, Ci] x [Ci, Co] (XNNPACK): 4 multiplies an output, not 9. The
// filter, input and output transforms are WebAssembly SIMD passes over tfjs's heap
// (./wasm-simd/winograd.wat). Used by ./fused-unet.ts;
// tests/wasm-winograd.test.ts checks values and gradients against tf.fused.conv2d.
import * as tf from '@tensorflow/tfjs-core';
import { asTensor, flipFilter } from './wasm-conv-grad';
import { exportsOf, heapMemory, pointer, validates, withScratch, type Backend } from './wasm-heap';
import * as WINOGRAD_MODULE from './wasm-simd/winograd-wasm';

export const WINOGRAD_CONV = 'DiffusionWinogradConv';
export const WINOGRAD_FILTER_GRAD = 'DiffusionWinogradFilterGrad';

interface Simd {
  input(xp: number, v: number, b: number, th: number, tw: number, c: number): void;
  output(m: number, bias: number, y: number, tiles: number, tw: number, c: number): void;
  gradient(dy: number, g: number, tiles: number, tw: number, c: number): void;
  filter(g: number, u: number, n: number): void;
}
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object };

/** G of F(2x2, 3x3), and G^T (.) G^T as a [9, 16] matrix: dW's 9 taps from the 16 positions. */
const G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]];
const GG_T = Array.from({ length: 9 * 16 }, (_, n) => {
  const [tap, xi] = [Math.floor(n / 16), n % 16];
  return G[Math.floor(xi / 4)][Math.floor(tap / 3)] * G[xi % 4][tap % 3];
});

/** Writes the 16 tensors' heap offsets at `table`. */
function writeTable(backend: Backend, table: number, ts: tf.TensorInfo[]) {
  const heap = new Int32Array(heapMemory(backend).buffer);
  ts.forEach((t, i) => (heap[table / 4 + i] = pointer(backend, t)));
}

/** 16 new, unfilled tensors of `shape` in the heap, their offsets written at `table` for the
 *  SIMD module to fill. */
function sixteen(backend: Backend, table: number, shape: [number, number]): tf.Tensor2D[] {
  const ts = Array.from({ length: 16 }, () =>
    tf.engine().makeTensorFromTensorInfo(backend.makeOutput(shape, 'float32')) as tf.Tensor2D);
  writeTable(backend, table, ts);
  return ts;
}

/** The 16 tensors [tiles, C] of B^T d B over the 4x4 patches of x (padding 1, 2x2 tiles). */
function inputTransform(backend: Backend, simd: Simd, x: tf.Tensor4D, table: number) {
  const [B, H, W, C] = x.shape;
  const [TH, TW] = [Math.ceil(H / 2), Math.ceil(W / 2)];
  const xp = tf.pad(x, [[0, 0], [1, 2 * TH + 1 - H], [1, 2 * TW + 1 - W], [0, 0]]);
  const v = sixteen(backend, table, [B * TH * TW, C]);
  simd.input(pointer(backend, xp), table, B, TH, TW, C);
  return v;
}

function winogradKernel({ inputs, backend: b }: KernelArgs): tf.TensorInfo {
  const backend = b as Backend;
  const simd = exportsOf<Simd>(backend, WINOGRAD_MODULE);
  const [x, filter, bias] = [inputs.x!, inputs.filter!, inputs.bias!].map((t) =>
    asTensor(t, backend)) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D];
  const [B, H, W, Ci] = x.shape;
  const Co = filter.shape[3];
  const [TH, TW] = [Math.ceil(H / 2), Math.ceil(W / 2)];
  const y = tf.tidy(() => withScratch(backend, 16, (table) => {
    const v = inputTransform(backend, simd, x, table);
    const u = sixteen(backend, table, [Ci, Co]);
    simd.filter(pointer(backend, filter), table, Ci * Co);
    const m = v.map((vi, xi) => tf.matMul(vi, u[xi]));
    const out = tf.engine().makeTensorFromTensorInfo(
      backend.makeOutput([B, 2 * TH, 2 * TW, Co], 'float32'));
    writeTable(backend, table, m);
    simd.output(table, pointer(backend, bias), pointer(backend, out), B * TH * TW, TW, Co);
    return 2 * TH === H && 2 * TW === W ? out : tf.slice(out, 0, [B, H, W, Co]);
  }));
  tf.dispose([x, filter, bias]);
  return y;
}

/** dW [3, 3, Ci, Co] of the conv, H and W even: G^T [sum over the tiles of (A e A^T) *
 *  (B^T d B)] G, the sums as 16 matMuls [Co, tiles] x [tiles, Ci]. */
function winogradFilterGradKernel({ inputs, backend: b }: KernelArgs): tf.TensorInfo {
  const backend = b as Backend;
  const simd = exportsOf<Simd>(backend, WINOGRAD_MODULE);
  const [x, dy] = [asTensor(inputs.x!, backend), asTensor(inputs.dy!, backend)];
  const [B, H, W, Ci] = x.shape;
  const Co = dy.shape[3];
  const tiles = B * (H / 2) * (W / 2);
  const dW = tf.tidy(() => withScratch(backend, 16, (table) => {
    const v = inputTransform(backend, simd, x, table);
    const e = sixteen(backend, table, [Co, tiles]);
    simd.gradient(pointer(backend, dy), table, tiles, W / 2, Co);
    const sums = tf.concat(e.map((ei, xi) => tf.reshape(tf.matMul(ei, v[xi]), [1, Co * Ci])));
    const taps = tf.matMul(tf.tensor2d(GG_T, [9, 16]), sums); // [9, Co Ci]
    return tf.transpose(tf.reshape(taps, [3, 3, Co, Ci]), [0, 1, 3, 2]);
  }));
  tf.dispose([x, dy]);
  return dW;
}

/** Whether winogradConv takes this conv: the kernel is registered (wasm with SIMD), H and W are
 *  even, both channel counts are multiples of 4 from 64 up. Measured at batch 8 and 16: 5-30%
 *  faster than XNNPACK's conv from 64 channels on one thread (the training workers), and from 128
 *  on two; on two threads at 64 channels 10-20% slower, as XNNPACK threads the matMuls but not the
 *  transforms. The choice does not depend on the thread count, so that 1 and 2 threads draw the
 *  same samples. */
export function winogradFits(x: tf.Tensor4D, filter: tf.Tensor4D): boolean {
  const [KH, KW, Ci, Co] = filter.shape;
  const [, H, W] = x.shape;
  return KH === 3 && KW === 3 && x.shape[3] === Ci && H % 2 === 0 && W % 2 === 0
    && [Ci, Co].every((c) => c >= 64 && c % 4 === 0)
    && tf.getBackend() === 'wasm' && registerWasmWinograd();
}

/** The conv tf.fused.conv2d({ x, filter, bias, strides: 1, pad: 1 }) computes, by Winograd. */
export function winogradConv(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D) {
  if (!registerWasmWinograd()) throw new Error('winogradConv needs WebAssembly SIMD');
  return tf.engine().runKernel(WINOGRAD_CONV, { x, filter, bias }) as tf.Tensor4D;
}

/** Registers the kernel and its gradient once, where this runtime has WebAssembly SIMD. */
export function registerWasmWinograd(): boolean {
  if (tf.getKernel(WINOGRAD_CONV, 'wasm')) return true;
  if (!validates(WINOGRAD_MODULE)) return false;
  const kernels: [string, (args: KernelArgs) => tf.TensorInfo][] = [
    [WINOGRAD_CONV, winogradKernel], [WINOGRAD_FILTER_GRAD, winogradFilterGradKernel]];
  for (const [kernelName, f] of kernels) {
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: f as tf.KernelFunc });
  }
  tf.registerGradient({
    kernelName: WINOGRAD_CONV, inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved) => {
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const g = dy as tf.Tensor4D;
      return {
        // dX is the conv of dy with the flipped filter, itself a Winograd conv
        x: () => winogradConv(g, flipFilter(filter), tf.zeros([x.shape[3]])),
        filter: () => {
          const [, H, W] = x.shape;
          if (H % 2 === 0 && W % 2 === 0) {
            return tf.engine().runKernel(WINOGRAD_FILTER_GRAD, { x, dy: g }) as tf.Tensor;
          }
          return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: g },
            { strides: 1, pad: 1, dataFormat: 'NHWC', filterShape: filter.shape }) as tf.Tensor;
        },
        bias: () => tf.sum(g, [0, 1, 2]),
      };
    },
  });
  return true;
}
