// The paper's UNet wired for fewer kernels: epsTheta (src/lib/diffusion/unet.ts) with each
// "GroupNorm, ReLU, add the skip, upsample" run as one kernel where the backend has one
// (./webgpu/group-norm.ts, ./wasm-group-norm.ts), and as the core's own ops where it has not.
// The convolutions are the core's, but for the wide stride-1 ones on wasm, which run as Winograd
// (./wasm-winograd.ts); the condition is one kernel on webgpu (./webgpu/condition.ts).
// tests/webgpu-fused-unet.test.ts and tests/wasm-group-norm.test.ts check values and gradients
// against epsTheta; the samplers and the trainer take these in place of the core's.
import * as tf from '@tensorflow/tfjs-core';
import {
  checkInputs, condition, conv, groupNorm, guide, qSample, timestepEmbedding,
  upsample2x, type EpsFn, type Labels, type Params, type Schedule, type Trainer, type UNetConfig,
} from '../diffusion';
import { fusedTrainStep } from './webgpu/fused-adam';
import {
  GROUP_NORM_RELU, GROUP_NORM_RELU_GRAD, registerGroupNormKernels, UPSAMPLE_GRAD,
  type GroupNormReluAttrs,
} from './webgpu/group-norm';
import { CONDITION, registerConditionKernel } from './webgpu/condition';
import { registerWasmGroupNormKernels } from './wasm-group-norm';
import { winogradConv, winogradFits } from './wasm-winograd';

export interface GroupNormReluOptions {
  skip?: tf.Tensor4D; // added after the ReLU, [B, H, W, C]
  cond?: tf.Tensor4D; // added after skip, [B, 1, 1, C]
  twice?: boolean; // skip added again after cond
  upsample?: boolean; // then 2x nearest
}

const GROUPS = 32;
const EPS = 1e-5;

/** True where the active backend runs GroupNormRelu as one kernel: the WebGPU programs on webgpu,
 *  WebAssembly SIMD on wasm (registered here on first use). */
export function hasFusedKernels(): boolean {
  const backend = tf.getBackend();
  if (backend === 'webgpu') {
    registerGroupNormKernels();
    registerConditionKernel();
  }
  if (backend === 'wasm') registerWasmGroupNormKernels();
  if (!tf.getKernel(GROUP_NORM_RELU, backend)) return false;
  registerGradients();
  return true;
}

/** z = relu(GroupNorm(x)) + skip + cond (+ skip), upsampled 2x if asked: one kernel, or the
 *  core's ops (groupNorm, tf.relu, tf.add, upsample2x) in the same order. */
export function groupNormRelu(x: tf.Tensor4D, o: GroupNormReluOptions = {}): tf.Tensor4D {
  if (o.twice && !o.skip) throw new Error('groupNormRelu: twice needs a skip');
  if (hasFusedKernels()) {
    const attrs: GroupNormReluAttrs = {
      groups: GROUPS, eps: EPS, twice: !!o.twice, upsample: !!o.upsample,
    };
    const inputs: tf.NamedTensorMap = { x };
    if (o.skip) inputs.skip = o.skip;
    if (o.cond) inputs.cond = o.cond;
    return tf.engine().runKernel(GROUP_NORM_RELU, inputs,
      attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  }
  return plainGroupNormRelu(x, o);
}

/** groupNormRelu by the core's ops, in epsTheta's order: the reference the kernels are tested
 *  against, and what backends without them run. */
export function plainGroupNormRelu(x: tf.Tensor4D, o: GroupNormReluOptions = {}): tf.Tensor4D {
  return tf.tidy(() => {
    let z = tf.relu(groupNorm(x, GROUPS, EPS));
    if (o.skip) z = tf.add(z, o.skip);
    if (o.cond) z = tf.add(z, o.cond);
    if (o.twice) z = tf.add(z, o.skip!);
    return o.upsample ? upsample2x(z) : z;
  });
}

/** condition (unet.ts): relu(Linear(emb(t))) + relu(class_emb[y]), [B, 1, 1, 2C]; one kernel
 *  for a class-conditional model on webgpu, else the core's. */
export function fusedCondition(p: Params, c: UNetConfig, t: readonly number[],
  y?: Labels): tf.Tensor4D {
  if (c.classes === null || !hasFusedKernels() || !tf.getKernel(CONDITION, tf.getBackend())) {
    return condition(p, c, t, y);
  }
  const labels = Array.from(t, (_, i) => y?.[i] ?? -1);
  return tf.tidy(() => {
    const inputs: tf.NamedTensorMap = {
      t: tf.tensor1d(t as number[]), labels: tf.tensor1d(labels, 'int32'),
      weight: p['noise_embedding.weight'], bias: p['noise_embedding.bias'],
      classEmb: p['class_emb.weight'],
    };
    const attrs = { t: [...t], labels, channels: c.channels };
    return tf.engine().runKernel(CONDITION, inputs, attrs) as tf.Tensor4D;
  });
}

let gradientsRegistered = false;

function registerGradients() {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  tf.registerGradient({
    kernelName: GROUP_NORM_RELU, inputsToSave: ['x'], gradFunc: groupNormGrad,
  });
  tf.registerGradient({
    kernelName: CONDITION, inputsToSave: ['weight', 'bias', 'classEmb'], gradFunc: conditionGrad,
  });
}

/** GroupNormRelu's gradient: dx by one more kernel; skip and cond take dz, the gradient at the
 *  un-upsampled sum (dy's 2x2 blocks summed, by a third kernel, when upsampled). */
function groupNormGrad(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) {
  const [x] = saved;
  const a = attrs as unknown as GroupNormReluAttrs;
  // made here, not in a closure: each closure runs in its own tidy
  const dz = a.upsample
    ? tf.engine().runKernel(UPSAMPLE_GRAD, { dy: dy as tf.Tensor }) as tf.Tensor4D
    : dy as tf.Tensor4D;
  return {
    x: () => tf.engine().runKernel(GROUP_NORM_RELU_GRAD, { x, dy: dy as tf.Tensor },
      attrs as unknown as tf.NamedAttrMap) as tf.Tensor,
    skip: () => (a.twice ? tf.mul(dz, 2) : dz),
    cond: () => tf.sum(dz, [1, 2], true),
  };
}

/** The condition's gradient by the core's ops: the embedding and the pre-activation again, then
 *  relu' and the two products. */
function conditionGrad(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) {
  const [weight, bias, classEmb] = saved;
  const { t, labels, channels } = attrs as unknown as { t: number[]; labels: number[];
    channels: number };
  const d = tf.reshape(dy as tf.Tensor, [t.length, 2 * channels]); // [B, 2C]
  const emb = timestepEmbedding(t, channels); // [B, C]
  const dTemb = tf.mul(d, tf.step(tf.add(tf.matMul(emb, weight as tf.Tensor2D), bias)));
  const classEmbGrad = () => {
    const oneHot = tf.oneHot(tf.tensor1d(labels, 'int32'), classEmb.shape[0]); // [B, K]
    return tf.matMul(oneHot, tf.mul(d, tf.step(tf.matMul(oneHot, classEmb))), true, false);
  };
  return {
    weight: () => tf.matMul(emb, dTemb, true, false),
    bias: () => tf.sum(dTemb, 0),
    classEmb: classEmbGrad,
  };
}

/** The core's conv, or Winograd where winogradFits (stride 1, 64 channels and more, on wasm). */
function fastConv(p: Params, name: string, x: tf.Tensor4D, stride = 1): tf.Tensor4D {
  const filter = p[`${name}.weight`] as tf.Tensor4D;
  if (stride === 1 && winogradFits(x, filter)) {
    return winogradConv(x, filter, p[`${name}.bias`] as tf.Tensor1D);
  }
  return conv(p, name, x, stride);
}

/** epsTheta with the fused blocks: the same network, the same weights, fewer kernels. */
export function fusedEpsTheta(p: Params, c: UNetConfig, xt: tf.Tensor4D, t: number[],
  y?: Labels): tf.Tensor4D {
  checkInputs(c, xt, t, y);
  return tf.tidy(() => {
    const block = (name: string, x: tf.Tensor4D, stride = 1, o: GroupNormReluOptions = {}) =>
      groupNormRelu(fastConv(p, name, x, stride), o);
    const x1 = block('down_block1', xt); // [B, H, W, C]
    const x2 = block('down_block2.conv', x1, 2); // [B, H/2, W/2, C]
    const x3 = block('down_block3', x2); // [B, H/2, W/2, 2C]
    const x4 = block('down_block4.conv', x3, 2); // [B, H/4, W/4, 2C]
    const h = block('middle_block.conv1', x4);
    const cond = fusedCondition(p, c, t, y);
    // upsample2x(((h + x4) + cond) + x4): [B, H/2, W/2, 2C]
    const up1 = block('middle_block.conv2', h, 1, { skip: x4, cond, twice: true, upsample: true });
    const x5 = block('up_block1.conv', up1, 1, { skip: x3 }); // x5 + x3
    const up2 = block('up_block2', x5, 1, { skip: x2, upsample: true }); // [B, H, W, C]
    const x7 = block('up_block3.conv', up2, 1, { skip: x1 }); // x7 + x1
    return fastConv(p, 'up_block4', x7); // [B, H, W, io]
  });
}

/** plainEps (guidance.ts) on the fused network. */
export function fusedPlainEps(p: Params, c: UNetConfig, labels?: Labels): EpsFn {
  return (xt, t) => fusedEpsTheta(p, c, xt, Array<number>(xt.shape[0]).fill(t), labels);
}

/** guidedEps (guidance.ts) on the fused network: both branches in one batch of 2B. */
export function fusedGuidedEps(p: Params, c: UNetConfig, labels: Labels | undefined,
  w: number): EpsFn {
  if (!labels || w === 1) return fusedPlainEps(p, c, labels);
  const both = [...labels, ...labels.map(() => null)]; // y, then no label
  return (xt, t) => tf.tidy(() => {
    const eps = fusedEpsTheta(p, c, tf.concat([xt, xt]), Array<number>(both.length).fill(t),
      both);
    const [epsC, epsU] = tf.split(eps, 2) as [tf.Tensor4D, tf.Tensor4D];
    return guide(epsU, epsC, w);
  });
}

/** simpleLoss (train.ts) on the fused network. */
export function fusedSimpleLoss(p: Params, c: UNetConfig, s: Schedule, x0: tf.Tensor4D,
  t: number[], eps: tf.Tensor4D, y?: Labels): tf.Scalar {
  return tf.tidy(() =>
    tf.mean(tf.squaredDifference(eps, fusedEpsTheta(p, c, qSample(s, x0, t, eps), t, y))));
}

/** trainStep (train.ts) on the fused network, with the fused Adam + EMA update
 *  (./webgpu/fused-adam.ts): the same draws, loss and gradients. npm run train runs this. */
export function fullyFusedTrainStep(tr: Trainer, x0: tf.Tensor4D, labels?: number[]): tf.Scalar {
  return fusedTrainStep(tr, x0, labels, fusedSimpleLoss);
}
