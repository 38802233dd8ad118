// The UNet's "GroupNorm, ReLU, then add the skip (and the condition), maybe upsample" as one
// WebGPU program, and its gradient as one more. The plain reference is `block` and `groupNorm` in
// src/lib/diffusion/unet.ts with tf.add and upsample2x; tests/webgpu-fused-unet.test.ts checks
// values and gradients against it.
//
// One workgroup normalises one (image, group) pair: it reads the group's H W C/G values to find
// their mean and variance (two passes, as tf.moments), then writes every output. Nothing is read
// back, and the shapes are baked into each shader (one pipeline per layer shape, cached by tfjs).
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

export const GROUP_NORM_RELU = 'DiffusionGroupNormRelu';
export const GROUP_NORM_RELU_GRAD = 'DiffusionGroupNormReluGrad';
export const UPSAMPLE_GRAD = 'DiffusionUpsample2xGrad';
const WORKGROUP = 64; // 256 is 4-6x slower on CPU-emulated adapters (SwiftShader, lavapipe)

/** What follows the normalisation: z = relu(n) + skip + cond (+ skip again), then 2x nearest. */
export interface GroupNormReluAttrs {
  groups: number; eps: number;
  twice: boolean; // skip is added a second time, after cond (the middle block's epilogue)
  upsample: boolean; // the result is upsampled 2x (nearest)
}

type WebGPUProgram = Parameters<WebGPUBackend['runWebGPUProgram']>[0];

/** The fixed sizes of one layer, written into its shader as constants. */
function sizes(shape: number[], groups: number) {
  const [B, H, W, C] = shape;
  if (C % groups) throw new Error(`${C} channels do not split into ${groups} groups`);
  return { B, H, W, C, G: groups, CG: C / groups, N: H * W * (C / groups) };
}

/** Shared by both programs: the group this workgroup owns, a workgroup sum, x's address of the
 *  group's k-th value, and the group's mean and 1 / sqrt(variance + eps). */
function groupPrelude(s: ReturnType<typeof sizes>, eps: number): string {
  return `
var<workgroup> partial: array<f32, ${WORKGROUP}>;

// (sum, compensation) + v, Kahan's summation: each thread adds up N / WORKGROUP values, and the
// compensation keeps their rounding from growing with that count
fn kahanAdd(acc: vec2<f32>, v: f32) -> vec2<f32> {
  let y = v - acc.y;
  let t = acc.x + y;
  return vec2<f32>(t, (t - acc.x) - y);
}

fn workgroupSum(v: f32) -> f32 {
  partial[localIndex] = v;
  workgroupBarrier();
  for (var half = ${WORKGROUP / 2}u; half > 0u; half = half / 2u) {
    if (localIndex < half) {
      partial[localIndex] = partial[localIndex] + partial[localIndex + half];
    }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

// (b, g, 1) for the workgroup of image b, group g; (last b, g, 0) past the last group (tfjs may
// round the dispatch up to a grid)
fn ownGroup() -> vec3<u32> {
  _ = uniforms.outShape; // tfjs binds its uniforms: a layout of 'auto' keeps only what is used
  let group = (workgroupId.z * numWorkgroups.y + workgroupId.y) * numWorkgroups.x + workgroupId.x;
  return vec3<u32>(min(group / ${s.G}u, ${s.B - 1}u), group % ${s.G}u,
    select(0u, 1u, group < ${s.B * s.G}u));
}

// [B, H, W, C] address of the k-th value of group (b, g): pixel k / CG, channel g CG + k % CG
fn addressOf(b: u32, g: u32, k: u32) -> u32 {
  return (b * ${s.H * s.W}u + k / ${s.CG}u) * ${s.C}u + g * ${s.CG}u + k % ${s.CG}u;
}

// mean and 1 / sqrt(variance + eps) of group (b, g); reads stay in bounds when valid is false
fn groupStats(b: u32, g: u32, valid: bool) -> vec2<f32> {
  var sum = vec2<f32>(0.0);
  for (var k = localIndex; k < ${s.N}u; k = k + ${WORKGROUP}u) {
    if (valid) { sum = kahanAdd(sum, x[addressOf(b, g, k)]); }
  }
  let mean = workgroupSum(sum.x) / ${s.N}.0;
  var squares = vec2<f32>(0.0);
  for (var k = localIndex; k < ${s.N}u; k = k + ${WORKGROUP}u) {
    if (valid) {
      let d = x[addressOf(b, g, k)] - mean;
      squares = kahanAdd(squares, d * d);
    }
  }
  let variance = workgroupSum(squares.x) / ${s.N}.0;
  return vec2<f32>(mean, inverseSqrt(variance + ${eps.toExponential()}));
}`;
}

/** Output address of pixel (b, p) of the un-upsampled image, channel ch, copy (i, j) of 2x2. */
function upsampledAddress(s: ReturnType<typeof sizes>): string {
  return `
fn upAddress(b: u32, p: u32, ch: u32, i: u32, j: u32) -> u32 {
  let h = p / ${s.W}u;
  let w = p % ${s.W}u;
  return ((b * ${2 * s.H}u + 2u * h + i) * ${2 * s.W}u + 2u * w + j) * ${s.C}u + ch;
}`;
}

class GroupNormReluProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  constructor(private shape: number[], private a: GroupNormReluAttrs,
    private has: { skip: boolean; cond: boolean }) {
    const s = sizes(shape, a.groups);
    const up = a.upsample ? 2 : 1;
    this.outputShape = [s.B, up * s.H, up * s.W, s.C];
    this.variableNames = ['x', ...(has.skip ? ['skip'] : []), ...(has.cond ? ['cond'] : [])];
    this.dispatch = [s.B * s.G, 1, 1];
    this.shaderKey = `gnrelu_${shape}_${a.groups}_${a.eps}_${a.twice}_${a.upsample}_`
      + `${has.skip}_${has.cond}`;
  }
  getUserCode(): string {
    const s = sizes(this.shape, this.a.groups);
    const { skip, cond } = this.has;
    const write = this.a.upsample
      ? `let p = k / ${s.CG}u;
      let ch = g * ${s.CG}u + k % ${s.CG}u;
      result[upAddress(b, p, ch, 0u, 0u)] = z;
      result[upAddress(b, p, ch, 0u, 1u)] = z;
      result[upAddress(b, p, ch, 1u, 0u)] = z;
      result[upAddress(b, p, ch, 1u, 1u)] = z;`
      : 'result[at] = z;';
    return `${groupPrelude(s, this.a.eps)}
${this.a.upsample ? upsampledAddress(s) : ''}

fn main(index: i32) {
  let own = ownGroup();
  let b = own.x;
  let g = own.y;
  let stats = groupStats(b, g, own.z == 1u);
  if (own.z == 0u) { return; }
  for (var k = localIndex; k < ${s.N}u; k = k + ${WORKGROUP}u) {
    let at = addressOf(b, g, k);
    var z = max((x[at] - stats.x) * stats.y, 0.0);
    ${skip ? 'z = z + skip[at];' : ''}
    ${cond ? `z = z + cond[b * ${s.C}u + g * ${s.CG}u + k % ${s.CG}u];` : ''}
    ${skip && this.a.twice ? 'z = z + skip[at];' : ''}
    ${write}
  }
}`;
  }
}

/** dx of z = relu(GroupNorm(x)) given dz (summed over each 2x2 block of dy when upsampled):
 *  dx = r (dn - mean(dn) - n mean(dn n)), n = (x - mean) r, dn = dz [n > 0]. */
class GroupNormReluGradProgram implements WebGPUProgram {
  variableNames = ['x', 'dy'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  constructor(private shape: number[], private a: GroupNormReluAttrs) {
    const s = sizes(shape, a.groups);
    this.outputShape = shape;
    this.dispatch = [s.B * s.G, 1, 1];
    this.shaderKey = `gnrelugrad_${shape}_${a.groups}_${a.eps}_${a.upsample}`;
  }
  getUserCode(): string {
    const s = sizes(this.shape, this.a.groups);
    const dz = this.a.upsample
      ? `let p = k / ${s.CG}u;
    let ch = g * ${s.CG}u + k % ${s.CG}u;
    return dy[upAddress(b, p, ch, 0u, 0u)] + dy[upAddress(b, p, ch, 0u, 1u)]
      + dy[upAddress(b, p, ch, 1u, 0u)] + dy[upAddress(b, p, ch, 1u, 1u)];`
      : 'return dy[addressOf(b, g, k)];';
    return `${groupPrelude(s, this.a.eps)}
${this.a.upsample ? upsampledAddress(s) : ''}

fn dzAt(b: u32, g: u32, k: u32) -> f32 {
  ${dz}
}

fn main(index: i32) {
  let own = ownGroup();
  let b = own.x;
  let g = own.y;
  let valid = own.z == 1u;
  let stats = groupStats(b, g, valid);
  var dnSum = vec2<f32>(0.0);
  var dnnSum = vec2<f32>(0.0);
  for (var k = localIndex; k < ${s.N}u; k = k + ${WORKGROUP}u) {
    if (valid) {
      let n = (x[addressOf(b, g, k)] - stats.x) * stats.y;
      let dn = select(0.0, dzAt(b, g, k), n > 0.0);
      dnSum = kahanAdd(dnSum, dn);
      dnnSum = kahanAdd(dnnSum, dn * n);
    }
  }
  let dnMean = workgroupSum(dnSum.x) / ${s.N}.0;
  let dnnMean = workgroupSum(dnnSum.x) / ${s.N}.0;
  if (!valid) { return; }
  for (var k = localIndex; k < ${s.N}u; k = k + ${WORKGROUP}u) {
    let at = addressOf(b, g, k);
    let n = (x[at] - stats.x) * stats.y;
    let dn = select(0.0, dzAt(b, g, k), n > 0.0);
    result[at] = stats.y * (dn - dnMean - n * dnnMean);
  }
}`;
  }
}

/** The gradient of nearest 2x upsampling: each output sums its 2x2 block of dy. */
class UpsampleGradProgram implements WebGPUProgram {
  variableNames = ['dy'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  size = true;
  constructor(dyShape: number[]) {
    const [B, H2, W2, C] = dyShape;
    this.outputShape = [B, H2 / 2, W2 / 2, C];
    this.dispatch = [Math.ceil(tf.util.sizeFromShape(this.outputShape) / WORKGROUP), 1, 1];
    this.shaderKey = `upsamplegrad_${dyShape}`;
  }
  getUserCode(): string {
    const [, H, W, C] = this.outputShape;
    return `
fn main(index: i32) {
  if (index >= uniforms.size) { return; }
  let i = u32(index);
  let ch = i % ${C}u;
  let w = (i / ${C}u) % ${W}u;
  let h = (i / ${C * W}u) % ${H}u;
  let b = i / ${C * W * H}u;
  let top = ((b * ${2 * H}u + 2u * h) * ${2 * W}u + 2u * w) * ${C}u + ch;
  let bottom = top + ${2 * W * C}u;
  result[i] = dy[top] + dy[top + ${C}u] + dy[bottom] + dy[bottom + ${C}u];
}`;
  }
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap };

function checkFloat4D(name: string, t: tf.TensorInfo | undefined,
  shape?: number[]): asserts t is tf.TensorInfo {
  if (!t || t.dtype !== 'float32' || t.shape.length !== 4) {
    throw new Error(`GroupNorm kernel input "${name}": expected a float32 [B, H, W, C] tensor, `
      + `received ${t ? `${t.dtype} [${t.shape}]` : 'none'}`);
  }
  if (shape && !tf.util.arraysEqual(t.shape, shape)) {
    throw new Error(`GroupNorm kernel input "${name}": expected [${shape}], `
      + `received [${t.shape}]`);
  }
}

function groupNormReluKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const a = attrs as unknown as GroupNormReluAttrs;
  const { x, skip, cond } = inputs;
  checkFloat4D('x', x);
  const [B, , , C] = x.shape;
  if (skip) checkFloat4D('skip', skip, x.shape);
  if (cond) checkFloat4D('cond', cond, [B, 1, 1, C]);
  const program = new GroupNormReluProgram(x.shape, a, { skip: !!skip, cond: !!cond });
  const ins = [x, ...(skip ? [skip] : []), ...(cond ? [cond] : [])] as tf.TensorInfo[];
  return (backend as WebGPUBackend).runWebGPUProgram(program, ins, 'float32');
}

function groupNormReluGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const a = attrs as unknown as GroupNormReluAttrs;
  const { x, dy } = inputs;
  checkFloat4D('x', x);
  checkFloat4D('dy', dy);
  const program = new GroupNormReluGradProgram(x.shape, a);
  return (backend as WebGPUBackend).runWebGPUProgram(program, [x, dy], 'float32');
}

function upsampleGradKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { dy } = inputs;
  checkFloat4D('dy', dy);
  const program = new UpsampleGradProgram(dy.shape);
  return (backend as WebGPUBackend).runWebGPUProgram(program, [dy], 'float32');
}

/** Registers the three kernels for webgpu once. The gradients (any backend) are in fused-unet. */
export function registerGroupNormKernels() {
  if (tf.getKernel(GROUP_NORM_RELU, 'webgpu')) return;
  const kernels: [string, (args: KernelArgs) => tf.TensorInfo][] = [
    [GROUP_NORM_RELU, groupNormReluKernel], [GROUP_NORM_RELU_GRAD, groupNormReluGradKernel],
    [UPSAMPLE_GRAD, upsampleGradKernel],
  ];
  for (const [kernelName, f] of kernels) {
    tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc: f as tf.KernelFunc });
  }
}
