// The optimizer update of a training step (Adam, then the EMA of the weights) as one WebGPU
// program over all weights, instead of about 17 tfjs kernels per weight. The plain reference is
// applyGradients in src/lib/diffusion/train.ts (adamStep in adam.ts);
// tests/webgpu-fused-adam.test.ts checks that both give the same numbers.
//
// How it runs, per step: the gradients, weights, moments and EMA are copied (buffer copies, no
// kernels) into five packed scratch buffers, one dispatch updates all of them, and the results are
// copied into fresh tensors that the trainer's variables are assigned, as the plain path assigns.
// Weights beyond one storage binding (maxStorageBufferBindingSize) go in a few chunks, one dispatch
// each. To tfjs it is one kernel, `DiffusionAdamEma`, so tf.profile counts it.
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { applyGradients, simpleLoss, stepDraws, type Trainer } from '../../diffusion';

export const ADAM_EMA_KERNEL = 'DiffusionAdamEma';
const WORKGROUP = 256;
const STATES = ['theta', 'm', 'v', 'ema'] as const; // packed buffers after `g`, in binding order

/** The update of one element, as adamStep and updateEma write it, each line one of their ops. */
function shaderSource(withEma: boolean): string {
  return `
struct Step {
  beta1: f32, oneMinusBeta1: f32, beta2: f32, oneMinusBeta2: f32,
  oneMinusBeta1Power: f32, oneMinusBeta2Power: f32, epsilon: f32, negativeLr: f32,
  emaDecay: f32, oneMinusEmaDecay: f32,
}
@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read_write> theta: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
${withEma ? '@group(0) @binding(4) var<storage, read_write> ema: array<f32>;' : ''}
@group(0) @binding(5) var<uniform> s: Step;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) local: u32) {
  let i = (group.y * groups.x + group.x) * ${WORKGROUP}u + local;
  if (i >= arrayLength(&theta)) { return; }
  let gi = g[i];
  let mi = m[i] * s.beta1 + gi * s.oneMinusBeta1;
  let vi = v[i] * s.beta2 + (gi * gi) * s.oneMinusBeta2;
  let mHat = mi / s.oneMinusBeta1Power;
  let vHat = vi / s.oneMinusBeta2Power;
  let thetaNext = theta[i] + (mHat / (sqrt(vHat) + s.epsilon)) * s.negativeLr;
  m[i] = mi;
  v[i] = vi;
  theta[i] = thetaNext;
  ${withEma ? 'ema[i] = s.emaDecay * ema[i] + s.oneMinusEmaDecay * thetaNext;' : ''}
}`;
}

// compiled pipelines by device and variant: a cache, so a lost device takes its pipelines along
const pipelines = new WeakMap<GPUDevice, Map<boolean, GPUComputePipeline>>();

function pipelineFor(device: GPUDevice, withEma: boolean): GPUComputePipeline {
  const byVariant = pipelines.get(device) ?? new Map<boolean, GPUComputePipeline>();
  pipelines.set(device, byVariant);
  let pipeline = byVariant.get(withEma);
  if (!pipeline) {
    const module = device.createShaderModule({ code: shaderSource(withEma) });
    pipeline = device.createComputePipeline({
      layout: 'auto', compute: { module, entryPoint: 'main' },
    });
    byVariant.set(withEma, pipeline);
  }
  return pipeline;
}

/** The step's scalars, each rounded to float32 as the plain path's scalar tensors are. */
export interface AdamEmaAttrs {
  beta1: number; beta2: number; epsilon: number; lr: number;
  beta1Power: number; beta2Power: number; // beta^n, n counting this step
  emaDecay: number | null; // d of this step; null: no EMA
  count: number; // weights
  chunkElements?: number; // most elements per dispatch; the device's binding limit unless given
}

function uniformValues(a: AdamEmaAttrs) {
  const d = a.emaDecay ?? 0;
  return new Float32Array([
    a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, 1 - a.beta1Power, 1 - a.beta2Power, a.epsilon,
    -a.lr, d, 1 - d, 0, 0,
  ]); // 48 bytes: 10 fields, padded to 16
}

/** One weight in the packed buffers: its tensors' GPU buffers, in STATES order. */
interface Slot {
  size: number; // elements
  g: GPUBuffer | null; // null: gradient 0
  from: GPUBuffer[]; // theta, m, v (, ema) now
  into: GPUBuffer[]; // ... after this step: the buffers of `out`
  out: tf.TensorInfo[];
}

/** Splits the weights into runs of at most `limit` elements, in order (none is larger). */
function chunksOf<T extends { size: number }>(slots: T[], limit: number): T[][] {
  const chunks: T[][] = [[]];
  let filled = 0;
  for (const slot of slots) {
    if (filled + slot.size > limit) {
      chunks.push([]);
      filled = 0;
    }
    chunks[chunks.length - 1].push(slot);
    filled += slot.size;
  }
  return chunks;
}

/** The kernel: inputs g{i} (absent: gradient 0), theta{i}, m{i}, v{i}, ema{i}; outputs the new
 *  theta, m, v (and ema) of each weight in that order, as fresh tensors. */
function adamEmaKernel({ inputs, backend, attrs }: {
  inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap;
}): tf.TensorInfo[] {
  const gpu = backend as WebGPUBackend;
  const { device, queue, bufferManager } = gpu;
  const a = attrs as unknown as AdamEmaAttrs;
  const states = a.emaDecay === null ? STATES.slice(0, 3) : STATES;
  const input = (name: string) => {
    const t = inputs[name];
    if (t?.dtype !== 'float32') {
      throw new Error(`${ADAM_EMA_KERNEL} input "${name}": ${t?.dtype}, expected float32`);
    }
    return t;
  };
  // everything checked before anything is allocated
  const weights = Array.from({ length: a.count }, (_, i) => {
    const [g, now] = [inputs[`g${i}`] && input(`g${i}`), states.map((s) => input(`${s}${i}`))];
    const size = tf.util.sizeFromShape(now[0].shape);
    if (g && tf.util.sizeFromShape(g.shape) !== size) {
      throw new Error(`gradient ${i}: shape [${g.shape}], expected [${now[0].shape}]`);
    }
    return { size, g, now };
  });
  const { maxStorageBufferBindingSize, maxBufferSize } = device.limits;
  const limit = a.chunkElements ?? Math.floor(Math.min(maxStorageBufferBindingSize,
    maxBufferSize) / 4);
  const huge = weights.find((w) => w.size > limit);
  if (huge) {
    throw new Error(`a weight of ${huge.size} elements: expected at most ${limit} per binding`);
  }

  const buffer = (t: tf.TensorInfo) => {
    gpu.uploadToGPU(t.dataId); // values still on the CPU (small tensors) go up first
    const resource = gpu.tensorMap.get(t.dataId).resource;
    if (!(resource instanceof GPUBuffer)) throw new Error('a tensor not in a GPU buffer');
    return resource;
  };
  const slots: Slot[] = weights.map(({ size, g, now }) => {
    const out = now.map((t) => gpu.makeTensorInfo(t.shape, 'float32'));
    return { size, g: g ? buffer(g) : null, from: now.map(buffer), into: out.map(buffer), out };
  });
  // the gradients come from kernels still queued in tfjs's encoder: submit those first
  gpu.ensureCommandEncoderReady();
  gpu.endComputePassEncoder();
  gpu.submitQueue();

  const chunks = chunksOf(slots, limit);
  const scratchElements = Math.max(1, ...chunks.map(elementsOf));
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const scratch = Array.from({ length: 1 + states.length },
    () => bufferManager.acquireBuffer(4 * scratchElements, usage)); // g, then states
  const uniform = bufferManager.acquireBuffer(48,
    GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  queue.writeBuffer(uniform, 0, uniformValues(a));
  const pipeline = pipelineFor(device, a.emaDecay !== null);
  const encoder = device.createCommandEncoder();
  for (const chunk of chunks) {
    let offset = 0; // bytes
    for (const { size, g, from } of chunk) { // gather: [g | theta | m | v | ema] at `offset`
      if (g) encoder.copyBufferToBuffer(g, 0, scratch[0], offset, 4 * size);
      else encoder.clearBuffer(scratch[0], offset, 4 * size);
      from.forEach((b, k) => encoder.copyBufferToBuffer(b, 0, scratch[1 + k], offset, 4 * size));
      offset += 4 * size;
    }
    if (offset > 0) dispatch(encoder, pipeline, scratch, uniform, elementsOf(chunk), device);
    offset = 0;
    for (const { size, into } of chunk) { // scatter into the fresh tensors
      into.forEach((b, k) => encoder.copyBufferToBuffer(scratch[1 + k], offset, b, 0, 4 * size));
      offset += 4 * size;
    }
  }
  queue.submit([encoder.finish()]);
  [...scratch, uniform].forEach((b) => bufferManager.releaseBuffer(b));
  return slots.flatMap((slot) => slot.out);
}

function elementsOf(chunk: { size: number }[]): number {
  return chunk.reduce((n, slot) => n + slot.size, 0);
}

/** One dispatch over `elements` packed elements: 256 per workgroup, in rows of workgroups. */
function dispatch(encoder: GPUCommandEncoder, pipeline: GPUComputePipeline, scratch: GPUBuffer[],
  uniform: GPUBuffer, elements: number, device: GPUDevice) {
  const bindings: GPUBindGroupEntry[] = scratch.map((buffer, binding) =>
    ({ binding, resource: { buffer, size: 4 * elements } }));
  bindings.push({ binding: 5, resource: { buffer: uniform } });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0), entries: bindings,
  });
  const groups = Math.ceil(elements / WORKGROUP);
  const x = Math.min(groups, device.limits.maxComputeWorkgroupsPerDimension);
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(x, Math.ceil(groups / x));
  pass.end();
}

/** Registers the kernel with tfjs once (webgpu only). */
function registerAdamEmaKernel() {
  if (tf.getKernel(ADAM_EMA_KERNEL, 'webgpu')) return;
  tf.registerKernel({ kernelName: ADAM_EMA_KERNEL, backendName: 'webgpu',
    kernelFunc: adamEmaKernel as tf.KernelFunc });
}

export interface FusedOptions {
  chunkElements?: number; // most elements per dispatch (tests use it to force several chunks)
}

/** applyGradients (train.ts) with the Adam and EMA update as one WebGPU program: the same
 *  beta powers, step count and EMA decay, the same disposal of `grads`. On another backend it is
 *  applyGradients itself. */
export function fusedApplyGradients(tr: Trainer, grads: tf.NamedTensorMap,
  options: FusedOptions = {}): void {
  if (tf.getBackend() !== 'webgpu') return applyGradients(tr, grads);
  registerAdamEmaKernel();
  const { adam, params, ema } = tr;
  // beta^n, n counting this step, as adamStep keeps them; stored once the kernel has run
  const beta1Power = Math.fround(adam.beta1Power * Math.fround(adam.beta1));
  const beta2Power = Math.fround(adam.beta2Power * Math.fround(adam.beta2));
  const d = Math.min(tr.options.emaDecay!, (1 + tr.step) / (10 + tr.step));
  const names = Object.keys(params);
  const inputs: tf.NamedTensorMap = {};
  names.forEach((name, i) => {
    const g = grads[params[name].name];
    if (g) inputs[`g${i}`] = g;
    Object.assign(inputs, { [`theta${i}`]: params[name], [`m${i}`]: adam.m[name],
      [`v${i}`]: adam.v[name] });
    if (ema) inputs[`ema${i}`] = ema[name];
  });
  const attrs: AdamEmaAttrs = {
    beta1: adam.beta1, beta2: adam.beta2, epsilon: adam.epsilon, lr: adam.lr,
    beta1Power, beta2Power,
    emaDecay: ema ? d : null, count: names.length, ...options,
  };
  const outputs = tf.engine().runKernel(ADAM_EMA_KERNEL, inputs,
    attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  const perWeight = ema ? 4 : 3;
  names.forEach((name, i) => {
    const next = outputs.slice(perWeight * i, perWeight * (i + 1));
    [params[name], adam.m[name], adam.v[name], ema?.[name]].forEach((variable, k) =>
      variable?.assign(next[k]));
  });
  tf.dispose(outputs);
  tf.dispose(Object.values(grads));
  Object.assign(adam, { beta1Power, beta2Power });
  tr.step += 1;
}

/** trainStep (train.ts) with the fused update: the same draws, loss and gradients. `lossFn`
 *  computes the loss (simpleLoss unless given: ../fused-unet.ts gives its fused network's). */
export function fusedTrainStep(tr: Trainer, x0: tf.Tensor4D, labels?: number[],
  lossFn: typeof simpleLoss = simpleLoss): tf.Scalar {
  const { t, y, eps } = stepDraws(tr, x0.shape, labels);
  const loss = () => lossFn(tr.params, tr.config, tr.schedule, x0, t, eps, y);
  const { value, grads } = tf.variableGrads(loss, Object.values(tr.params));
  eps.dispose();
  fusedApplyGradients(tr, grads);
  return value;
}
