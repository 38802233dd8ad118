// Faster convolution gradients for the wasm backend, written as forward convolutions (which wasm runs
// through XNNPACK) instead of wasm's naive Conv2DBackpropInput loop and the per-tap matMul of
// src/lib/runtime/wasm-conv-grad.ts. About 8x faster training at 32 channels on one CPU core.
// Only NHWC, unit dilation and numeric or 'same'/'valid' padding are handled; anything else goes to the original kernel.
import * as tf from '@tensorflow/tfjs-core';
import { useNodeBackend, type NodeBackend } from '../src/lib/runtime/node';

type Args = { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: tf.KernelBackend & { incRef(id: tf.DataId): void } };
type ConvAttrs = { strides: [number, number] | number; pad: 'valid' | 'same' | number; dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil'; inputShape?: number[]; filterShape?: number[] };

/** Wraps a kernel input as a Tensor holding its own reference, so that disposing it leaves the input alive. */
function asTensor(info: tf.TensorInfo, backend: Args['backend']) {
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend) as tf.Tensor4D;
}

/** Inserts s - 1 zeros after every row and column: [B, H, W, C] -> [B, sH, sW, C]. */
function dilate(x: tf.Tensor4D, s: number): tf.Tensor4D {
  if (s === 1) return x;
  const [B, H, W, C] = x.shape;
  const zerosW = tf.zeros([B * H, W, s - 1, C]);
  const cols = tf.reshape(tf.concat([tf.reshape(x, [B * H, W, 1, C]), zerosW], 2), [B, H, 1, s * W * C]);
  const zerosH = tf.zeros([B, H, s - 1, s * W * C]);
  return tf.reshape(tf.concat([cols, zerosH], 2), [B, s * H, s * W, C]); // [B, sH, sW, C]
}

/** Pads (or, for a negative amount, crops) rows and columns: amounts [top, bottom, left, right]. */
function padOrCrop(x: tf.Tensor4D, [t, b, l, r]: number[]): tf.Tensor4D {
  const [, H, W] = x.shape;
  const cropped = tf.slice(x, [0, Math.max(0, -t), Math.max(0, -l), 0], [-1, H - Math.max(0, -t) - Math.max(0, -b), W - Math.max(0, -l) - Math.max(0, -r), -1]);
  return tf.pad(cropped, [[0, 0], [Math.max(0, t), Math.max(0, b)], [Math.max(0, l), Math.max(0, r)], [0, 0]]);
}

function convInfo(xShape: number[], filterShape: number[], a: ConvAttrs) {
  return tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number], filterShape as [number, number, number, number],
    a.strides, 1, a.pad, a.dimRoundingMode);
}

/** dx[i] = sum_k dy_dilated[i + top - k] W[k]: a stride-1 convolution of the dilated dy with the flipped, transposed filter. */
function backpropInput({ inputs, attrs, backend }: Args) {
  const a = attrs as unknown as ConvAttrs;
  const [dy, filter] = [asTensor(inputs.dy!, backend), asTensor(inputs.filter!, backend)];
  const info = convInfo(a.inputShape!, filter.shape, a);
  const [KH, KW] = filter.shape;
  const [, H, W] = a.inputShape!;
  const dx = tf.tidy(() => {
    const d = dilate(dy, info.strideHeight); // [B, s OH, s OW, Co]
    const [pt, pl] = [KH - 1 - info.padInfo.top, KW - 1 - info.padInfo.left];
    const padded = padOrCrop(d, [pt, H + KH - 1 - pt - d.shape[1], pl, W + KW - 1 - pl - d.shape[2]]);
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]); // [KH, KW, Co, Ci]
    return tf.conv2d(padded, flipped as tf.Tensor4D, 1, 'valid'); // [B, H, W, Ci]
  });
  tf.dispose([dy, filter]);
  return dx;
}

/** dW[kh, kw, ci, co] = sum_{b,i,j} x_pad[b, s i + kh, s j + kw, ci] dy[b, i, j, co]: a convolution over the batch axis, dilated by s. */
function backpropFilter({ inputs, attrs, backend }: Args) {
  const a = attrs as unknown as ConvAttrs;
  const [x, dy] = [asTensor(inputs.x!, backend), asTensor(inputs.dy!, backend)];
  const info = convInfo(x.shape, a.filterShape!, a);
  const [KH, KW] = a.filterShape!;
  const [, H, W] = x.shape;
  const s = info.strideHeight;
  const dW = tf.tidy(() => {
    const [needH, needW] = [KH + s * (info.outHeight - 1), KW + s * (info.outWidth - 1)];
    const { top, left } = info.padInfo;
    const xp = padOrCrop(x, [top, needH - H - top, left, needW - W - left]); // [B, needH, needW, Ci]
    const input = tf.transpose(xp, [3, 1, 2, 0]); // [Ci, needH, needW, B]
    const kernel = tf.transpose(dy, [1, 2, 0, 3]); // [OH, OW, B, Co]
    const out = tf.conv2d(input as tf.Tensor4D, kernel as tf.Tensor4D, 1, 'valid', 'NHWC', s); // [Ci, KH, KW, Co]
    return tf.transpose(out, [1, 2, 0, 3]); // [KH, KW, Ci, Co]
  });
  tf.dispose([x, dy]);
  return dW;
}

/** Whether the fast path handles these attributes; the original kernel takes the rest. */
function handled(a: ConvAttrs, inputs: tf.NamedTensorInfoMap) {
  const s = typeof a.strides === 'number' ? [a.strides, a.strides] : a.strides;
  const filterShape = a.filterShape ?? inputs.filter?.shape;
  return a.dataFormat !== 'NCHW' && s[0] === s[1] && (typeof a.pad === 'number' || a.pad === 'same' || a.pad === 'valid')
    && filterShape !== undefined && filterShape[0] === filterShape[1];
}

function override(name: string, fast: (args: Args) => tf.Tensor) {
  const original = tf.getKernel(name, 'wasm');
  if (!original || (original.kernelFunc as { fast?: boolean }).fast) return;
  const kernelFunc = ((args: Args) => (handled(args.attrs as unknown as ConvAttrs, args.inputs) ? fast(args) : original.kernelFunc(args as never))) as tf.KernelFunc & { fast?: boolean };
  kernelFunc.fast = true;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc });
}

/** useNodeBackend, and on wasm the fast convolution gradients for training. */
export async function useTrainingBackend(name: NodeBackend): Promise<void> {
  await useNodeBackend(name);
  if (name === 'wasm') {
    override('Conv2DBackpropInput', backpropInput);
    override('Conv2DBackpropFilter', backpropFilter);
  }
}
