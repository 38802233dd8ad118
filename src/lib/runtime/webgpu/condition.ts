// The UNet's condition, relu(Linear(emb(t))) + relu(class_emb[y]), as one WebGPU program instead
// of about 14 tfjs kernels. The plain reference is `condition` and `timestepEmbedding` in
// src/lib/diffusion/unet.ts; tests/webgpu-fused-unet.test.ts checks values and gradients.
//
// One thread writes one of the [B, 2C] outputs: it computes the sinusoids of its image's t on the
// fly (cos for i < C/2, then sin) and their dot product with one column of the linear weight.
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

export const CONDITION = 'DiffusionCondition';
const WORKGROUP = 64;

type WebGPUProgram = Parameters<WebGPUBackend['runWebGPUProgram']>[0];

/** Inputs: t [B] and labels [B] (int32, -1: no label), weight [C, 2C], bias [2C] and classEmb
 *  [K, 2C] (a model without classes takes the core's condition). Output [B, 1, 1, 2C]. */
class ConditionProgram implements WebGPUProgram {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0, 1, 2, 3] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  size = true;
  variableNames = ['t', 'labels', 'weight', 'bias', 'classEmb'];
  constructor(B: number, private C: number) {
    this.outputShape = [B, 1, 1, 2 * C];
    this.dispatch = [Math.ceil((B * 2 * C) / WORKGROUP), 1, 1];
    this.shaderKey = `condition_${C}`;
  }
  getUserCode(): string {
    const { C } = this;
    const half = C / 2;
    // the frequency step as tfjs rounds the scalar -ln(10000) / half: to float32
    const step = Math.fround(-Math.log(10000) / half);
    return `
fn frequency(i: i32) -> f32 {
  return exp(f32(i) * ${step.toExponential(9)});
}

fn main(index: i32) {
  if (index >= uniforms.size) { return; }
  let b = index / ${2 * C};
  let j = index % ${2 * C};
  let tb = t[b];
  var acc = 0.0;
  for (var i = 0; i < ${half}; i = i + 1) { // the cosines, then the sines: emb's order
    acc = acc + cos(tb * frequency(i)) * weight[i * ${2 * C} + j];
  }
  for (var i = 0; i < ${half}; i = i + 1) {
    acc = acc + sin(tb * frequency(i)) * weight[(i + ${half}) * ${2 * C} + j];
  }
  var value = max(acc + bias[j], 0.0);
  let y = labels[b];
  if (y >= 0) { value = value + max(classEmb[y * ${2 * C} + j], 0.0); }
  result[index] = value;
}`;
  }
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object };

function conditionKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const [t, labels, weight, bias, classEmb] = ['t', 'labels', 'weight', 'bias', 'classEmb']
    .map((name) => {
      if (!inputs[name]) throw new Error(`${CONDITION}: no input "${name}"`);
      return inputs[name];
    });
  const [C, C2] = weight.shape;
  if (C2 !== 2 * C || bias.shape[0] !== C2 || classEmb.shape[1] !== C2) {
    throw new Error(`${CONDITION}: weight [${weight.shape}], bias [${bias.shape}], classEmb `
      + `[${classEmb.shape}]; expected [C, 2C], [2C], [K, 2C]`);
  }
  const program = new ConditionProgram(t.shape[0], C);
  return (backend as WebGPUBackend).runWebGPUProgram(program,
    [t, labels, weight, bias, classEmb], 'float32');
}

/** Registers the kernel for webgpu once. Its gradient (any backend) is in ../fused-unet.ts. */
export function registerConditionKernel() {
  if (tf.getKernel(CONDITION, 'webgpu')) return;
  tf.registerKernel({ kernelName: CONDITION, backendName: 'webgpu',
    kernelFunc: conditionKernel as tf.KernelFunc });
}
