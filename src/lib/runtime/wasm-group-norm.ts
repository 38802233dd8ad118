// The fused GroupNorm block of ./fused-unet.ts on the wasm backend: "GroupNorm, ReLU, add the
// skip (and the condition), maybe upsample" and its gradient, each a few passes of WebAssembly
// SIMD (./wasm-simd/group-norm.wat) over tfjs's own heap, instead of about 12 tfjs kernels forward
// and 30 backward. The per-group arithmetic (a few numbers a channel) is here. The WebGPU
// programs (./webgpu/group-norm.ts) compute the same; tests/wasm-group-norm.test.ts checks values
// and gradients against the core's groupNorm, tf.relu, tf.add and upsample2x.
import * as tf from '@tensorflow/tfjs-core';
import {
  GROUP_NORM_RELU, GROUP_NORM_RELU_GRAD, UPSAMPLE_GRAD, type GroupNormReluAttrs,
} from './webgpu/group-norm';
import * as GROUP_NORM_MODULE from './wasm-simd/group-norm-wasm';
import {
  exportsOf, heapMemory, pointer, validates, withScratch, type Backend,
} from './wasm-heap';

interface Simd {
  sums(x: number, out: number, hw: number, c: number): void;
  squares(x: number, mean: number, out: number, hw: number, c: number): void;
  apply(x: number, scale: number, shift: number, skip: number, cond: number, out: number,
    h: number, w: number, c: number, flags: number): void;
  downsum(dy: number, out: number, h: number, w: number, c: number): void;
  gradSums(x: number, dz: number, scale: number, shift: number, sumDn: number, sumDnn: number,
    hw: number, c: number): void;
  gradApply(x: number, dz: number, scale: number, shift: number, a: number, b: number,
    dx: number, hw: number, c: number): void;
}

const simdOf = (backend: Backend) => exportsOf<Simd>(backend, GROUP_NORM_MODULE);

/** Each group's mean of the per-channel sums at byte offset `sums` (C floats, each over the hw
 *  pixels of one image: N values a group); written back per channel at `into` if given. */
function groupMeans(heap: Float32Array, sums: number, l: { C: number; CG: number; N: number },
  into?: number): Float64Array {
  const means = new Float64Array(l.C / l.CG);
  for (let c = 0; c < l.C; c++) means[Math.floor(c / l.CG)] += heap[sums / 4 + c] / l.N;
  if (into !== undefined) {
    for (let c = 0; c < l.C; c++) heap[into / 4 + c] = means[Math.floor(c / l.CG)];
  }
  return means;
}

/** Per channel of image x (at byte offset xb): its group's mean as scale = 1 / sqrt(var + eps)
 *  and shift = -mean scale, written at `scale` and `scale + 4C`; `work` holds 2C floats. */
function groupScaleShift(backend: Backend, simd: Simd, o: { xb: number; hw: number; C: number;
  groups: number; eps: number; work: number; scale: number }) {
  const { xb, hw, C, groups, eps, work, scale } = o;
  const l = { C, CG: C / groups, N: hw * (C / groups) };
  const heap = () => new Float32Array(heapMemory(backend).buffer); // a fresh view each time
  simd.sums(xb, work, hw, C);
  const mean = groupMeans(heap(), work, l, work + 4 * C);
  simd.squares(xb, work + 4 * C, work, hw, C);
  const h = heap();
  const variance = groupMeans(h, work, l);
  for (let c = 0; c < C; c++) {
    const g = Math.floor(c / l.CG);
    const r = 1 / Math.sqrt(variance[g] + eps);
    h[scale / 4 + c] = r;
    h[scale / 4 + C + c] = -mean[g] * r;
  }
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap };

function checkShape(name: string, t: tf.TensorInfo | undefined, groups?: number):
  asserts t is tf.TensorInfo {
  if (!t || t.dtype !== 'float32' || t.shape.length !== 4 || t.shape[3] % 4
    || (groups && t.shape[3] % groups)) {
    const received = t ? `${t.dtype} [${t.shape}]` : 'a different shape';
    throw new Error(`GroupNorm kernel input "${name}": expected a float32 [B, H, W, C] tensor `
      + `with C a multiple of 4 and of the groups, received ${received}`);
  }
}

function groupNormReluKernel({ inputs, backend: b, attrs }: KernelArgs): tf.TensorInfo {
  const backend = b as Backend;
  const a = attrs as unknown as GroupNormReluAttrs;
  const { x, skip, cond } = inputs;
  checkShape('x', x, a.groups);
  const [B, H, W, C] = x.shape;
  if (skip && !tf.util.arraysEqual(skip.shape, x.shape)) checkShape('skip', undefined);
  if (cond && tf.util.sizeFromShape(cond.shape) !== B * C) checkShape('cond', undefined);
  const up = a.upsample ? 2 : 1;
  const simd = simdOf(backend);
  const out = backend.makeOutput([B, up * H, up * W, C], 'float32');
  const flags = (skip ? 1 : 0) | (cond ? 2 : 0) | (skip && a.twice ? 4 : 0) | (up === 2 ? 8 : 0);
  const image = 4 * H * W * C; // bytes
  withScratch(backend, 4 * C, (work) => {
    const scale = work + 8 * C;
    for (let i = 0; i < B; i++) {
      const xb = pointer(backend, x) + i * image;
      groupScaleShift(backend, simd, { xb, hw: H * W, C, groups: a.groups, eps: a.eps, work,
        scale });
      simd.apply(xb, scale, scale + 4 * C, skip ? pointer(backend, skip) + i * image : 0,
        cond ? pointer(backend, cond) + 4 * i * C : 0, pointer(backend, out) + up * up * i * image,
        H, W, C, flags);
    }
  });
  return out;
}

/** dx = r (dn - mean(dn) - n mean(dn n)) per group, n = x r - mean r, dn = dz where n > 0; dz is
 *  dy, or dy's 2x2 blocks summed when the forward upsampled. */
function groupNormReluGradKernel({ inputs, backend: b, attrs }: KernelArgs): tf.TensorInfo {
  const backend = b as Backend;
  const a = attrs as unknown as GroupNormReluAttrs;
  const { x, dy } = inputs;
  checkShape('x', x, a.groups);
  checkShape('dy', dy);
  const [B, H, W, C] = x.shape;
  const simd = simdOf(backend);
  const dx = backend.makeOutput(x.shape, 'float32');
  const image = 4 * H * W * C;
  const l = { C, CG: C / a.groups, N: (H * W * C) / a.groups };
  withScratch(backend, 8 * C + (a.upsample ? H * W * C : 0), (work) => {
    const [scale, sums, ab] = [work + 8 * C, work + 16 * C, work + 24 * C];
    const dzScratch = work + 32 * C;
    for (let i = 0; i < B; i++) {
      const xb = pointer(backend, x) + i * image;
      groupScaleShift(backend, simd, { xb, hw: H * W, C, groups: a.groups, eps: a.eps, work,
        scale });
      let dz = pointer(backend, dy) + (a.upsample ? 4 : 1) * i * image;
      if (a.upsample) {
        simd.downsum(dz, dzScratch, H, W, C);
        dz = dzScratch;
      }
      simd.gradSums(xb, dz, scale, scale + 4 * C, sums, sums + 4 * C, H * W, C);
      const heap = new Float32Array(heapMemory(backend).buffer);
      groupMeans(heap, sums, l, ab); // mean(dn) of each channel's group
      groupMeans(heap, sums + 4 * C, l, ab + 4 * C); // mean(dn n)
      simd.gradApply(xb, dz, scale, scale + 4 * C, ab, ab + 4 * C, pointer(backend, dx) + i * image,
        H * W, C);
    }
  });
  return dx;
}

/** The gradient of nearest 2x upsampling: each output sums its 2x2 block of dy. */
function upsampleGradKernel({ inputs, backend: b }: KernelArgs): tf.TensorInfo {
  const backend = b as Backend;
  const { dy } = inputs;
  checkShape('dy', dy);
  const [B, H2, W2, C] = dy.shape;
  const simd = simdOf(backend);
  const out = backend.makeOutput([B, H2 / 2, W2 / 2, C], 'float32');
  const image = H2 * W2 * C; // floats of one image of dy
  for (let i = 0; i < B; i++) {
    simd.downsum(pointer(backend, dy) + 4 * i * image, pointer(backend, out) + i * image,
      H2 / 2, W2 / 2, C);
  }
  return out;
}

/** Registers the three kernels for the wasm backend once, where this runtime has WebAssembly
 *  SIMD; false where it has not (the core's ops run then). */
export function registerWasmGroupNormKernels(): boolean {
  if (tf.getKernel(GROUP_NORM_RELU, 'wasm')) return true;
  if (!validates(GROUP_NORM_MODULE)) return false;
  const kernels: [string, (args: KernelArgs) => tf.TensorInfo][] = [
    [GROUP_NORM_RELU, groupNormReluKernel], [GROUP_NORM_RELU_GRAD, groupNormReluGradKernel],
    [UPSAMPLE_GRAD, upsampleGradKernel],
  ];
  for (const [kernelName, f] of kernels) {
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: f as tf.KernelFunc });
  }
  return true;
}
