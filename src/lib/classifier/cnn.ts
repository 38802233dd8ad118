// The evaluation classifier: a small CNN trained on a data set's training images, used to score
// samples (does it recognise the requested class?) and to embed them (features for the Frechet
// distance).
// Layout is tfjs throughout (conv HWIO, dense [in, out]); NHWC images in [-1, 1].
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors, writeSafetensors, type HostTensor } from '../diffusion/weights';

export interface ClassifierConfig {
  imageSize: number; // 28 (MNIST, Fashion-MNIST) or 32 (CIFAR-10)
  imageChannels: number; // 1 (grey) or 3 (RGB); cards written before CIFAR-10 leave it out: 1
  classes: number; // 10
  channels: number; // C: convs C, C (stride 2), 2C, 2C (stride 2)
  features: number; // F: the penultimate layer, whose activations the Frechet distance compares
}

export const DEFAULT_CLASSIFIER: ClassifierConfig = {
  imageSize: 28, imageChannels: 1, classes: 10, channels: 32, features: 64,
};

/** A classifier card's architecture; one written before CIFAR-10 has no imageChannels: 1. */
export function classifierConfig(architecture: Omit<ClassifierConfig, 'imageChannels'>
  & { imageChannels?: number }): ClassifierConfig {
  return { ...architecture, imageChannels: architecture.imageChannels ?? 1 };
}
export type ClassifierParams = Record<string, tf.Tensor>;

/** Every parameter's name and shape. */
export function classifierShapes(c: ClassifierConfig): Record<string, number[]> {
  const [C, s] = [c.channels, c.imageSize / 4];
  if (!Number.isInteger(s)) {
    throw new Error(`imageSize must be divisible by 4, received ${c.imageSize}`);
  }
  return {
    'conv1.weight': [3, 3, c.imageChannels, C], 'conv1.bias': [C],
    'conv2.weight': [3, 3, C, C], 'conv2.bias': [C],
    'conv3.weight': [3, 3, C, 2 * C], 'conv3.bias': [2 * C],
    'conv4.weight': [3, 3, 2 * C, 2 * C], 'conv4.bias': [2 * C],
    'features.weight': [s * s * 2 * C, c.features], 'features.bias': [c.features],
    'logits.weight': [c.features, c.classes], 'logits.bias': [c.classes],
  };
}

/** He-uniform weights, zero biases. */
export function initClassifier(c: ClassifierConfig, seed: number): ClassifierParams {
  return Object.fromEntries(Object.entries(classifierShapes(c)).map(([name, shape], i) => {
    if (name.endsWith('.bias')) return [name, tf.zeros(shape)];
    const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const bound = Math.sqrt(6 / fanIn);
    return [name, tf.randomUniform(shape, -bound, bound, 'float32', seed + i)];
  }));
}

const conv = (p: ClassifierParams, name: string, x: tf.Tensor4D, stride: number) =>
  tf.fused.conv2d({
    x, filter: p[`${name}.weight`] as tf.Tensor4D, bias: p[`${name}.bias`],
    strides: stride, pad: 1, activation: 'relu',
  });

/** x W + b for the dense layer `name`, optionally through a ReLU. */
const dense = (p: ClassifierParams, name: string, x: tf.Tensor2D, activation?: 'relu') =>
  tf.fused.matMul({
    a: x, b: p[`${name}.weight`] as tf.Tensor2D, bias: p[`${name}.bias`], activation,
  });

/** The F features of each image: [B, H, W, io] -> [B, F] (after ReLU). */
export function classifierFeatures(p: ClassifierParams, x: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const h1 = conv(p, 'conv1', x, 1); // [B, H, W, C]
    const h2 = conv(p, 'conv2', h1, 2); // [B, H/2, W/2, C]
    const h4 = conv(p, 'conv4', conv(p, 'conv3', h2, 1), 2); // [B, H/4, W/4, 2C]
    const flat = tf.reshape(h4, [x.shape[0], -1]) as tf.Tensor2D; // [B, H/4 * W/4 * 2C]
    return dense(p, 'features', flat, 'relu'); // [B, F]
  }) as tf.Tensor2D;
}

/** Class scores before softmax: [B, H, W, io] -> [B, K]. */
export function classifierLogits(p: ClassifierParams, x: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => dense(p, 'logits', classifierFeatures(p, x))) as tf.Tensor2D;
}

/** Mean softmax cross-entropy of the logits against integer labels. */
export function classifierLoss(p: ClassifierParams, c: ClassifierConfig, x: tf.Tensor4D,
  labels: number[]): tf.Scalar {
  return tf.tidy(() => {
    const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), c.classes);
    const logp = tf.logSoftmax(classifierLogits(p, x));
    return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), 1)));
  }) as tf.Scalar;
}

/** Predicted class and features of images given as [N, H, W, io] row-major floats in [-1, 1]. */
export async function classify(p: ClassifierParams, c: ClassifierConfig, images: Float32Array,
  batch = 250) {
  const px = c.imageSize * c.imageSize * c.imageChannels;
  const n = images.length / px;
  const predicted = new Int32Array(n);
  const features = new Float32Array(n * c.features);
  for (let at = 0; at < n; at += batch) {
    const b = Math.min(batch, n - at);
    const shape: [number, number, number, number] =
      [b, c.imageSize, c.imageSize, c.imageChannels]; // [B, H, W, io]
    const x = tf.tensor4d(images.subarray(at * px, (at + b) * px), shape);
    const f = classifierFeatures(p, x);
    const logits = dense(p, 'logits', f);
    const arg = tf.argMax(logits, 1);
    predicted.set(await arg.data() as Int32Array, at);
    features.set(await f.data() as Float32Array, at * c.features);
    tf.dispose([x, f, logits, arg]);
  }
  return { predicted, features };
}

/**
 * Parameters from safetensors bytes (tfjs layout, as written by npm run train-classifier); names
 * and shapes are checked.
 */
export function loadClassifier(bytes: Uint8Array, c: ClassifierConfig): ClassifierParams {
  const { tensors } = readSafetensors(bytes);
  return Object.fromEntries(Object.entries(classifierShapes(c)).map(([name, shape]) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`the classifier weights lack tensor "${name}"`);
    if (t.shape.join() !== shape.join()) {
      throw new Error(`classifier tensor "${name}" has shape [${t.shape}]; expected [${shape}]`);
    }
    return [name, tf.tensor(t.data, shape)];
  }));
}

/** Serialises the parameters as safetensors (tfjs layout). */
export async function saveClassifier(p: ClassifierParams,
  metadata: Record<string, string> = {}): Promise<Uint8Array> {
  const host: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(p)) {
    host[name] = { shape: t.shape, data: Float32Array.from(await t.data()) };
  }
  return writeSafetensors(host, metadata);
}
