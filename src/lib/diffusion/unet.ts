// The paper's noise-prediction network eps_theta(x_t, t, y): a small UNet in NHWC.
// Parameter names are the PyTorch state_dict keys; layouts are tfjs (conv HWIO, linear [in, out]).
import * as tf from '@tensorflow/tfjs-core';

export interface UNetConfig {
  imageChannels: number; // 1 (MNIST) or 3 (CIFAR-10)
  channels: number; // C, the paper's model_channels; a multiple of 32
  classes: number | null; // null: no class embedding
}

export type Params = Record<string, tf.Tensor>;
/** One label per image; null leaves the class embedding out for that image (unconditional). */
export type Labels = readonly (number | null)[];

/** Every conv: its name, input and output channels. */
const CONVS = ({ imageChannels: io, channels: C }: UNetConfig): [string, number, number][] => [
  ['down_block1', io, C], ['down_block2.conv', C, C], ['down_block3', C, 2 * C],
  ['down_block4.conv', 2 * C, 2 * C], ['middle_block.conv1', 2 * C, 2 * C],
  ['middle_block.conv2', 2 * C, 2 * C], ['up_block1.conv', 2 * C, 2 * C],
  ['up_block2', 2 * C, C], ['up_block3.conv', C, C], ['up_block4', C, io],
];

/** Every parameter's PyTorch name and shape (conv OIHW, linear [out, in], embedding [K, dim]). */
export function torchShapes(c: UNetConfig): Record<string, number[]> {
  if (!Number.isInteger(c.channels) || c.channels < 32 || c.channels % 32) throw new Error(
    `channels must be a positive multiple of 32 (GroupNorm's groups), received ${c.channels}`);
  if (c.imageChannels !== 1 && c.imageChannels !== 3)
    throw new Error(`imageChannels must be 1 or 3, received ${c.imageChannels}`);
  const shapes: Record<string, number[]> = Object.fromEntries(CONVS(c).flatMap(([n, cin, cout]) =>
    [[`${n}.weight`, [cout, cin, 3, 3]], [`${n}.bias`, [cout]]]));
  shapes['noise_embedding.weight'] = [2 * c.channels, c.channels];
  shapes['noise_embedding.bias'] = [2 * c.channels];
  if (c.classes !== null) shapes['class_emb.weight'] = [c.classes, 2 * c.channels];
  return shapes;
}

/** PyTorch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for conv and linear,
 *  N(0, 1) for embeddings. */
export function initParams(c: UNetConfig, seed: number): Params {
  const shapes = torchShapes(c);
  return Object.fromEntries(Object.entries(shapes).map(([name, shape], i) => {
    const weight = shapes[name.replace(/bias$/, 'weight')]; // [out, in, kh, kw] or [out, in]
    const bound = 1 / Math.sqrt(weight.slice(1).reduce((a, b) => a * b)); // 1 / sqrt(fan_in)
    return [name, tf.tidy(() => toTfLayout(name, name === 'class_emb.weight'
      ? tf.randomNormal(shape, 0, 1, 'float32', seed + i)
      : tf.randomUniform(shape, -bound, bound, 'float32', seed + i)))];
  }));
}

// #region layouts
/** PyTorch layout -> tfjs layout: conv OIHW -> HWIO, linear [out, in] -> [in, out];
 *  embeddings stay. */
export function toTfLayout(name: string, t: tf.Tensor): tf.Tensor {
  if (t.rank === 4) return tf.transpose(t, [2, 3, 1, 0]);
  return t.rank === 2 && name !== 'class_emb.weight' ? tf.transpose(t) : tf.clone(t);
}

/** tfjs layout -> PyTorch layout, the inverse of toTfLayout. */
export function toTorchLayout(name: string, t: tf.Tensor): tf.Tensor {
  if (t.rank === 4) return tf.transpose(t, [3, 2, 0, 1]);
  return t.rank === 2 && name !== 'class_emb.weight' ? tf.transpose(t) : tf.clone(t);
}
// #endregion

// #region conv
/** 3x3 conv with padding 1 on every side (PyTorch's; tfjs 'same' pads only bottom and right at
 *  stride 2). */
export function conv(p: Params, name: string, x: tf.Tensor4D, stride = 1): tf.Tensor4D {
  const filter = p[`${name}.weight`] as tf.Tensor4D;
  return tf.fused.conv2d({ x, filter, bias: p[`${name}.bias`], strides: stride, pad: 1 });
}

/** block(x) = ReLU(GroupNorm(conv x)), every block but the last. */
export const block = (p: Params, name: string, x: tf.Tensor4D, stride = 1) =>
  tf.relu(groupNorm(conv(p, name, x, stride)));
// #endregion

// #region group-norm
/** GroupNorm(32) without learned scale or shift, as the paper's F.group_norm. */
export function groupNorm(x: tf.Tensor4D, groups = 32, eps = 1e-5): tf.Tensor4D {
  const [B, H, W, C] = x.shape;
  return tf.tidy(() => {
    const g = tf.reshape(x, [B, H * W, groups, C / groups]); // [B, HW, G, C/G]
    const { mean, variance } = tf.moments(g, [1, 3], true);
    return tf.reshape(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, eps))), [B, H, W, C]);
  });
}
// #endregion

// #region upsample
/** Nearest-neighbour 2x: [B, H, W, C] -> [B, 2H, 2W, C]; built from concat so that its gradient
 *  is right on every backend. */
export function upsample2x(x: tf.Tensor4D): tf.Tensor4D {
  const [B, H, W, C] = x.shape;
  return tf.tidy(() => {
    const cols = tf.reshape(x, [B * H, W, 1, C]);
    const rows = tf.reshape(tf.concat([cols, cols], 2), [B, H, 1, 2 * W * C]); // each pixel twice
    return tf.reshape(tf.concat([rows, rows], 2), [B, 2 * H, 2 * W, C]); // each row twice
  });
}
// #endregion

// #region timestep-embedding
/** emb(t) = [cos(t f_i), sin(t f_i)], f_i = 10000^(-i / (dim/2)), i < dim/2
 *  (Transformer sinusoids). */
export function timestepEmbedding(t: readonly number[], dim: number): tf.Tensor2D {
  const half = dim / 2;
  return tf.tidy(() => {
    const f = tf.exp(tf.mul(tf.range(0, half), -Math.log(10000) / half)); // [dim/2]
    const args = tf.mul(tf.tensor2d(t as number[], [t.length, 1]), f); // [B, dim/2]
    return tf.concat([tf.cos(args), tf.sin(args)], 1) as tf.Tensor2D;
  }); // [B, dim]
}
// #endregion

// #region condition
/** relu(Linear(emb(t))) + relu(class_emb[y]), added to every pixel of the middle block. */
export function condition(p: Params, c: UNetConfig, t: readonly number[], y?: Labels): tf.Tensor4D {
  const temb = tf.fused.matMul({
    a: timestepEmbedding(t, c.channels), b: p['noise_embedding.weight'] as tf.Tensor2D,
    bias: p['noise_embedding.bias'], activation: 'relu',
  }); // [B, 2C]
  if (!y?.some((l) => l !== null)) return tf.reshape(temb, [t.length, 1, 1, 2 * c.channels]);
  const oneHot = tf.oneHot(tf.tensor1d(y.map((l) => l ?? -1), 'int32'), c.classes!); // [B, K]
  const cemb = tf.relu(tf.matMul(oneHot, p['class_emb.weight'])); // class_emb[y]; 0 if no label
  return tf.reshape(tf.add(temb, cemb), [t.length, 1, 1, 2 * c.channels]);
}
// #endregion

// #region unet
/** eps_theta(x_t, t, y): the noise in x_t, [B, H, W, io] with H, W divisible by 4. */
export function epsTheta(p: Params, c: UNetConfig, xt: tf.Tensor4D, t: number[], y?: Labels) {
  checkInputs(c, xt, t, y);
  return tf.tidy(() => {
    const x1 = block(p, 'down_block1', xt); // [B, H, W, C]
    const x2 = block(p, 'down_block2.conv', x1, 2); // [B, H/2, W/2, C]
    const x3 = block(p, 'down_block3', x2); // [B, H/2, W/2, 2C]
    const x4 = block(p, 'down_block4.conv', x3, 2); // [B, H/4, W/4, 2C]
    const h = block(p, 'middle_block.conv2', block(p, 'middle_block.conv1', x4));
    const middle = tf.add(tf.add(h, x4), condition(p, c, t, y));
    const x5 = block(p, 'up_block1.conv', upsample2x(tf.add(middle, x4))); // [B, H/2, W/2, 2C]
    const x6 = block(p, 'up_block2', tf.add(x5, x3)); // [B, H/2, W/2, C]
    const x7 = block(p, 'up_block3.conv', upsample2x(tf.add(x6, x2))); // [B, H, W, C]
    return conv(p, 'up_block4', tf.add(x7, x1)); // [B, H, W, io]
  });
}
// #endregion

export function checkInputs(c: UNetConfig, xt: tf.Tensor4D, t: readonly number[], y?: Labels) {
  const [B, H, W, io] = xt.shape;
  if (io !== c.imageChannels || H % 4 || W % 4) throw new Error(`x_t has shape [${xt.shape}]; `
    + `expected [B, H, W, ${c.imageChannels}] with H and W divisible by 4`);
  if (t.length !== B) throw new Error(`received ${t.length} timesteps for a batch of ${B}`);
  if (y && y.length !== B) throw new Error(`received ${y.length} labels for a batch of ${B}`);
  const bad = y?.find((l) => l !== null
    && (c.classes === null || !Number.isInteger(l) || l < 0 || l >= c.classes));
  if (bad === undefined) return;
  throw new Error(c.classes === null ? 'this model has no class embedding: pass no labels'
    : `label ${bad} is out of range: expected an integer in 0..${c.classes - 1} or null`);
}
