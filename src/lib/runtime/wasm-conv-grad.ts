// tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel, so training on wasm fails with
// "Kernel 'Conv2DBackpropFilter' not registered". This registers one built from kernels wasm does have:
// dW[kh, kw] = sum over (b, i, j) of x_padded[b, i*s + kh, j*s + kw, :]^T dy[b, i, j, :], one matMul per tap.
import * as tf from '@tensorflow/tfjs-core';

type Attrs = { strides: [number, number] | number; pad: 'valid' | 'same' | number; filterShape: [number, number, number, number];
  dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: 'floor' | 'round' | 'ceil' };

type Args = { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: tf.KernelBackend & { incRef(id: tf.DataId): void } };

/** Wraps a kernel input as a Tensor that holds its own reference, so that disposing it leaves the input alive. */
function asTensor(info: tf.TensorInfo, backend: Args['backend']) {
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend) as tf.Tensor4D;
}

function conv2dBackpropFilter({ inputs, attrs, backend }: Args) {
  const { strides, pad, filterShape, dataFormat, dimRoundingMode } = attrs as unknown as Attrs;
  if (dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter on wasm supports NHWC only');
  const [x, dy] = [asTensor(inputs.x!, backend), asTensor(inputs.dy!, backend)];
  const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode);
  const { top, bottom, left, right } = info.padInfo;
  const [KH, KW, Ci, Co] = filterShape;
  const [sh, sw] = [info.strideHeight, info.strideWidth];
  const dW = tf.tidy(() => {
    const xp = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]);
    const dy2 = tf.reshape(dy, [-1, Co]); // [B*OH*OW, Co]
    const taps: tf.Tensor[] = [];
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        const end = [x.shape[0], kh + sh * (info.outHeight - 1) + 1, kw + sw * (info.outWidth - 1) + 1, Ci];
        const patch = tf.reshape(tf.stridedSlice(xp, [0, kh, kw, 0], end, [1, sh, sw, 1]), [-1, Ci]); // [B*OH*OW, Ci]
        taps.push(tf.matMul(patch, dy2, true, false)); // [Ci, Co]
      }
    }
    return tf.reshape(tf.stack(taps), filterShape);
  });
  x.dispose();
  dy.dispose();
  return dW;
}

/** Registers the missing kernel once; safe to call before or after the wasm backend is set. */
export function registerWasmConvGrad() {
  if (!tf.getKernel('Conv2DBackpropFilter', 'wasm')) {
    tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2dBackpropFilter as unknown as tf.KernelFunc });
  }
}
