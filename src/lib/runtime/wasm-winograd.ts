// The UNet's 3x3, stride-1, padding-1 convs on the wasm backend as Winograd F(2x2, 3x3): each
// 2x2 block of outputs from its 4x4 input patch d and the filter g as
//   Y = A^T [ (G g G^T) * (B^T d B) ] A      (* elementwise over the 16 positions)
// so a conv is 16 matMuls [tiles, Ci] x [Ci, Co] (XNNPACK): 4 multiplies an output, not 9. The
// input and output transforms are WebAssembly SIMD passes over tfjs's heap
// (./wasm-simd/winograd.wat); the filter transform is one matMul. Used by ./fused-unet.ts;
// tests/wasm-winograd.test.ts checks values and gradients against tf.fused.conv2d.
import * as tf from '@tensorflow/tfjs-core';
import { flipFilter } from './wasm-conv-grad';
import { exportsOf, heapMemory, pointer, validates, withScratch, type Backend } from './wasm-heap';
import * as WINOGRAD_MODULE from './wasm-simd/winograd-wasm';

export const WINOGRAD_CONV = 'DiffusionWinogradConv';

interface Simd {
  input(xp: number, v: number, b: number, th: number, tw: number, c: number): void;
  output(m: number, bias: number, y: number, tiles: number, tw: number, c: number): void;
}
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object };

/** G of F(2x2, 3x3): U = G g G^T, as one [16, 9] matrix on the flattened 3x3 taps. */
const G = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]];
const GG = Array.from({ length: 16 * 9 }, (_, n) => {
  const [xi, tap] = [Math.floor(n / 9), n % 9];
  return G[Math.floor(xi / 4)][Math.floor(tap / 3)] * G[xi % 4][tap % 3];
});

/** Wraps a kernel input as a Tensor that holds its own reference. */
function asTensor(info: tf.TensorInfo, backend: Backend) {
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend);
}

/** Writes the 16 tensors' heap offsets at `table`. */
function writeTable(backend: Backend, table: number, ts: tf.TensorInfo[]) {
  const heap = new Int32Array(heapMemory(backend).buffer);
  ts.forEach((t, i) => (heap[table / 4 + i] = pointer(backend, t)));
}

function winogradKernel({ inputs, backend: b }: KernelArgs): tf.TensorInfo {
  const backend = b as Backend;
  const simd = exportsOf<Simd>(backend, WINOGRAD_MODULE);
  const [x, filter, bias] = [inputs.x!, inputs.filter!, inputs.bias!].map((t) =>
    asTensor(t, backend)) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D];
  const [B, H, W, Ci] = x.shape;
  const Co = filter.shape[3];
  const [TH, TW] = [Math.ceil(H / 2), Math.ceil(W / 2)];
  const tiles = B * TH * TW;
  const y = tf.tidy(() => withScratch(backend, 16, (table) => {
    const xp = tf.pad(x, [[0, 0], [1, 2 * TH + 1 - H], [1, 2 * TW + 1 - W], [0, 0]]);
    const v = Array.from({ length: 16 }, () =>
      tf.engine().makeTensorFromTensorInfo(backend.makeOutput([tiles, Ci], 'float32')));
    writeTable(backend, table, v);
    simd.input(pointer(backend, xp), table, B, TH, TW, Ci);
    // U[xi] = (G g G^T)[xi], each its own matMul: tfjs wasm copies the whole tensor to slice it
    const taps = tf.reshape(filter, [9, Ci * Co]);
    const m = v.map((vi, xi) => tf.matMul(vi as tf.Tensor2D, tf.reshape(
      tf.matMul(tf.tensor2d(GG.slice(9 * xi, 9 * xi + 9), [1, 9]), taps), [Ci, Co])));
    const out = tf.engine().makeTensorFromTensorInfo(
      backend.makeOutput([B, 2 * TH, 2 * TW, Co], 'float32'));
    writeTable(backend, table, m);
    simd.output(table, pointer(backend, bias), pointer(backend, out), tiles, TW, Co);
    return 2 * TH === H && 2 * TW === W ? out : tf.slice(out, 0, [B, H, W, Co]);
  }));
  tf.dispose([x, filter, bias]);
  return y;
}

/** Whether winogradConv is the faster way for this conv (measured at batch 16: 20-30% faster
 *  from 64 channels on even sizes; slower at 32 channels, even at 7x7): the kernel is registered
 *  (wasm with SIMD), both channel counts are multiples of 4 from 64 up, H and W are even. */
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
  tf.registerKernel({ kernelName: WINOGRAD_CONV, backendName: 'wasm',
    kernelFunc: winogradKernel as unknown as tf.KernelFunc });
  tf.registerGradient({
    kernelName: WINOGRAD_CONV, inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved) => {
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const g = dy as tf.Tensor4D;
      return {
        // dX is the conv of dy with the flipped filter, itself a Winograd conv
        x: () => winogradConv(g, flipFilter(filter), tf.zeros([x.shape[3]])),
        filter: () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: g },
          { strides: 1, pad: 1, dataFormat: 'NHWC', filterShape: filter.shape }) as tf.Tensor,
        bias: () => tf.sum(g, [0, 1, 2]),
      };
    },
  });
  return true;
}
