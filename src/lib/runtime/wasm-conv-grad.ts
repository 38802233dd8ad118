// Conv2D gradients for tfjs-backend-wasm 4.22, which has no Conv2DBackpropFilter kernel (training
// fails with "Kernel 'Conv2DBackpropFilter' not registered") and a Conv2DBackpropInput ~10x slower
// than its forward conv. Both are rewritten here as forward convolutions, which wasm runs through
// XNNPACK:
//   dW = x (*) dy : a conv over the batch, x as [Ci, H, W, B] images, dy as an [OH, OW, B, Co]
//                   filter dilated by the stride
//   dX = dy (*) W : dy dilated by the stride, "full" padding, the filter flipped in space with
//                   in/out channels swapped. The UNet's 3x3, stride-2 convs skip the dilation:
//                   each of the four output phases (even/odd row, even/odd column) is a small
//                   conv of dy with the taps that reach it, and the phases are interleaved.
import * as tf from '@tensorflow/tfjs-core';

type Attrs = {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape?: [number, number, number, number]; inputShape?: [number, number, number, number];
};
type Backend = tf.KernelBackend & { incRef(id: tf.DataId): void };
type Args = { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: Backend };

/** Wraps a kernel input as a Tensor that holds its own reference, so that disposing it leaves the
 * input alive. */
export function asTensor(info: tf.TensorInfo, backend: Backend) {
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend) as tf.Tensor4D;
}

/** Inserts s-1 zeros between neighbours along H and W:
 * [B, OH, OW, C] -> [B, (OH-1)sh+1, (OW-1)sw+1, C]. */
function dilate(y: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  const [B, OH, OW, C] = y.shape;
  if (sw > 1) {
    const cols = tf.reshape(y, [B * OH, OW, 1, C]);
    const spread = tf.concat([cols, tf.zeros([B * OH, OW, sw - 1, C])], 2);
    const wide = tf.reshape(spread, [B, OH, OW * sw, C]);
    y = tf.slice(wide, 0, [B, OH, (OW - 1) * sw + 1, C]) as tf.Tensor4D;
  }
  if (sh > 1) {
    const W = y.shape[2];
    const rows = tf.reshape(y, [B, OH, 1, W * C]);
    const spread = tf.concat([rows, tf.zeros([B, OH, sh - 1, W * C])], 2);
    const tall = tf.reshape(spread, [B, OH * sh, W, C]);
    y = tf.slice(tall, 0, [B, (OH - 1) * sh + 1, W, C]) as tf.Tensor4D;
  }
  return y;
}

function convInfo(xShape: number[], filterShape: number[], a: Attrs) {
  if (a.dataFormat === 'NCHW') throw new Error('the wasm conv gradients support NHWC only');
  type Shape4 = [number, number, number, number];
  return tf.backend_util.computeConv2DInfo(xShape as Shape4, filterShape as Shape4,
    a.strides, 1, a.pad, a.dimRoundingMode);
}

/** Up to this many input channels (the image convs), dW is one matMul: the conv over the batch
 * would have only KH * KW * Ci output pixels, too few for XNNPACK's tiles (6 -> 1.6 ms for the
 * first UNet conv at batch 16). */
const FEW_CHANNELS = 4;

/** dW of a stride-1 conv as (taps of x) [KH * KW * Ci, B * OH * OW] x dy [B * OH * OW, Co]. */
function fewChannelsFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D,
  [[top, bottom], [left, right]]: [number, number][], [KH, KW]: number[]) {
  const [B, OH, OW, Co] = dy.shape;
  const Ci = x.shape[3];
  const padded = tf.pad(tf.transpose(x, [3, 0, 1, 2]), // [Ci, B, H + top + bottom, W + ...]
    [[0, 0], [0, 0], [top, bottom], [left, right]]);
  const taps: tf.Tensor[] = [];
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      taps.push(tf.reshape(tf.slice(padded, [0, 0, kh, kw], [Ci, B, OH, OW]), [Ci, -1]));
    }
  }
  const dW = tf.matMul(tf.concat(taps, 0), tf.reshape(dy, [B * OH * OW, Co]));
  return tf.reshape(dW, [KH, KW, Ci, Co]);
}

function conv2dBackpropFilter({ inputs, attrs, backend }: Args) {
  const a = attrs as unknown as Attrs;
  const [x, dy] = [asTensor(inputs.x!, backend), asTensor(inputs.dy!, backend)];
  const info = convInfo(x.shape, a.filterShape!, a);
  const { top, left } = info.padInfo;
  const [, H, W] = x.shape;
  const [KH, KW] = a.filterShape!;
  // padding that makes the output exactly KH x KW
  const bottom = KH + (info.outHeight - 1) * info.strideHeight - H - top;
  const right = KW + (info.outWidth - 1) * info.strideWidth - W - left;
  const dW = tf.tidy(() => {
    const stride1 = info.strideHeight === 1 && info.strideWidth === 1;
    if (x.shape[3] <= FEW_CHANNELS && stride1 && bottom >= 0 && right >= 0) {
      return fewChannelsFilterGrad(x, dy, [[top, bottom], [left, right]], [KH, KW]);
    }
    let images = tf.transpose(x, [3, 1, 2, 0]); // [Ci, H, W, B]
    if (bottom < 0 || right < 0) {
      images = tf.slice(images, 0, [-1, H + Math.min(bottom, 0), W + Math.min(right, 0), -1]);
    }
    const filter = tf.transpose(dy, [1, 2, 0, 3]); // [OH, OW, B, Co]
    const padding: tf.backend_util.ExplicitPadding =
      [[0, 0], [top, Math.max(bottom, 0)], [left, Math.max(right, 0)], [0, 0]];
    const dilation: [number, number] = [info.strideHeight, info.strideWidth];
    const out = tf.conv2d(images, filter, 1, padding, 'NHWC', dilation); // [Ci, KH, KW, Co]
    return tf.transpose(out, [1, 2, 0, 3]); // [KH, KW, Ci, Co]
  });
  tf.dispose([x, dy]);
  return dW;
}

/** w [KH, KW, Ci, Co] -> its taps as rows with in/out channels swapped: [KH * KW, Co * Ci]. */
function tapRows(w: tf.Tensor4D) {
  const [KH, KW, Ci, Co] = w.shape;
  return tf.reshape(tf.transpose(w, [0, 1, 3, 2]), [KH * KW, Co * Ci]) as tf.Tensor2D;
}

/** The filter made of the taps `order` of tapRows(w), shaped [rows, cols, Co, Ci]. tfjs wasm's
 * Reverse and Gather walk element by element (6 ms for a 3x3x128x128 filter); a product with a
 * 0/1 selection matrix moves whole taps (0.1 ms) and is exact for finite weights. */
function pickTaps(taps: tf.Tensor2D, order: number[], shape: [number, number, number, number]) {
  const n = taps.shape[0];
  const select = tf.tensor2d(order.flatMap((tap) =>
    Array.from({ length: n }, (_, k) => (k === tap ? 1 : 0))), [order.length, n]);
  return tf.reshape(tf.matMul(select, taps), shape) as tf.Tensor4D;
}

/** w [KH, KW, Ci, Co] flipped in space, in/out channels swapped: [KH, KW, Co, Ci], the filter
 * whose conv of dy is dX (stride 1). */
export function flipFilter(w: tf.Tensor4D): tf.Tensor4D {
  const [KH, KW, Ci, Co] = w.shape;
  const reversed = Array.from({ length: KH * KW }, (_, k) => KH * KW - 1 - k);
  return pickTaps(tapRows(w), reversed, [KH, KW, Co, Ci]);
}

/** dX of a 3x3, stride-2 conv with padding 1 on an even-sized input: y[o] = sum_k x[2o+k-1] w[k]
 * per axis, so dX[2m] = dy[m] w[1] and dX[2m+1] = dy[m] w[2] + dy[m+1] w[0]. Each of the four
 * (row, column) parities is a conv of dy with those taps; two transposes interleave them. */
function strideTwoInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D) {
  const [B, OH, OW, Co] = dy.shape;
  const Ci = filter.shape[2];
  const taps = tapRows(filter);
  const along = (parity: number) => (parity === 0 ? [1] : [2, 0]); // tap k of each axis
  const phase = (p: number, q: number) => {
    const order = along(p).flatMap((r) => along(q).map((c) => 3 * r + c));
    const f = pickTaps(taps, order, [p + 1, q + 1, Co, Ci]);
    return tf.reshape(tf.conv2d(dy, f, 1, [[0, 0], [0, p], [0, q], [0, 0]]), [1, -1]);
  };
  // [q, p, B * OH, OW, Ci]: interleave q into the columns, then p into the rows
  const phases = tf.concat([phase(0, 0), phase(1, 0), phase(0, 1), phase(1, 1)], 0);
  const cols = tf.transpose(tf.reshape(phases, [2, 2 * B * OH, OW, Ci]), [1, 2, 0, 3]);
  const rows = tf.transpose(tf.reshape(cols, [2, B * OH, 2 * OW * Ci]), [1, 0, 2]);
  return tf.reshape(rows, [B, 2 * OH, 2 * OW, Ci]);
}

function conv2dBackpropInput({ inputs, attrs, backend }: Args) {
  const a = attrs as unknown as Attrs;
  const [dy, filter] = [asTensor(inputs.dy!, backend), asTensor(inputs.filter!, backend)];
  const info = convInfo(a.inputShape!, filter.shape, a);
  const [, H, W] = a.inputShape!;
  const [KH, KW] = filter.shape;
  const { top, left } = info.padInfo;
  const strideTwo = info.strideHeight === 2 && info.strideWidth === 2 && KH === 3 && KW === 3 &&
    top === 1 && left === 1 && H === 2 * info.outHeight && W === 2 * info.outWidth;
  const dX = tf.tidy(() => {
    if (strideTwo) return strideTwoInputGrad(dy, filter);
    const d = dilate(dy, info.strideHeight, info.strideWidth);
    const [pt, pl] = [KH - 1 - top, KW - 1 - left];
    if (pt < 0 || pl < 0) {
      throw new Error('the wasm conv input gradient supports padding up to kernel size - 1');
    }
    const padding: tf.backend_util.ExplicitPadding =
      [[0, 0], [pt, H + KH - 1 - d.shape[1] - pt], [pl, W + KW - 1 - d.shape[2] - pl], [0, 0]];
    return tf.conv2d(d, flipFilter(filter), 1, padding);
  });
  tf.dispose([dy, filter]);
  return dX;
}

/** Registers both gradients for the wasm backend (once); safe to call before or after the backend
 * is set. */
export function registerWasmConvGrad() {
  const kernels = [
    ['Conv2DBackpropFilter', conv2dBackpropFilter], ['Conv2DBackpropInput', conv2dBackpropInput],
  ] as const;
  for (const [kernelName, kernelFunc] of kernels) {
    const existing = tf.getKernel(kernelName, 'wasm');
    if (existing?.kernelFunc === (kernelFunc as unknown)) continue;
    if (existing) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel(
      { kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
}
