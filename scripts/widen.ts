// Net2WiderNet (Chen, Goodfellow & Shlens 2016) for the paper's UNet: a network k times wider that
// computes the same eps_theta, so that a trained small model can start a wider run instead of a
// fresh initialisation. Every channel is repeated k times in place (new channel j is old channel
// floor(j / k)), so each of GroupNorm's 32 groups holds the copies of one old group and normalises
// them with the same mean and variance; a layer that reads repeated channels divides its weights
// by k. Small noise then lets the copies drift apart in training.
import * as tf from '@tensorflow/tfjs-core';
import { torchShapes, type Params, type UNetConfig } from '../src/lib/diffusion';

/** Indices 0..n*k-1 mapped to their source floor(j / k). */
const repeated = (n: number, k: number) =>
  tf.tensor1d(Array.from({ length: n * k }, (_, j) => Math.floor(j / k)), 'int32');

/**
 * Widens `p` (tfjs layout) from `from.channels` to `channels`, a whole multiple of it. With `noise`
 * 0 (the default) the wider network's output equals the old one's up to float rounding; `noise` > 0
 * adds N(0, (noise * std)^2) to every weight tensor (std: that tensor's own), drawn from `seed`,
 * which breaks the symmetry between the copies.
 */
export function widenParams(p: Params, from: UNetConfig, channels: number,
  { noise = 0, seed = 0 }: { noise?: number; seed?: number } = {}): Params {
  const k = channels / from.channels;
  if (!Number.isInteger(k) || k < 1) {
    throw new Error(`cannot widen ${from.channels} channels to ${channels}: `
      + 'the new width must be a whole multiple of the old');
  }
  const to: UNetConfig = { ...from, channels };
  const shapes = torchShapes(to);
  return tf.tidy(() => Object.fromEntries(Object.keys(shapes).map((name, i) => {
    const old = p[name];
    if (!old) throw new Error(`the model lacks tensor "${name}"`);
    let w: tf.Tensor;
    if (name === 'noise_embedding.weight') w = widenTimeEmbedding(old, k);
    else if (name === 'class_emb.weight') w = tf.gather(old, repeated(old.shape[1]!, k), 1);
    else if (name === 'up_block4.bias') w = old;
    else if (old.rank === 1) w = tf.gather(old, repeated(old.shape[0]!, k));
    else { // conv, HWIO: repeat the outputs and the inputs, except the image's channels
      const cin = name === 'down_block1.weight' ? 1 : k;
      const cout = name === 'up_block4.weight' ? 1 : k;
      const inputs = tf.gather(old, repeated(old.shape[2]!, cin), 2);
      w = tf.div(tf.gather(inputs, repeated(old.shape[3]!, cout), 3), cin);
    }
    if (noise > 0 && name.endsWith('.weight')) {
      const std = tf.sqrt(tf.moments(old).variance);
      w = tf.add(w, tf.mul(tf.randomNormal(w.shape, 0, noise, 'float32', seed + i), std));
    }
    // fresh storage: wasm's gather keeps a 4-D shape that its FusedConv2D rejects for a bias
    return [name, tf.keep(tf.tensor(w.dataSync(), w.shape))];
  })));
}

/**
 * noise_embedding reads emb(t) of dimension C: [cos(t f_i), sin(t f_i)], f_i = 10000^(-i / (C/2)).
 * At width kC the frequencies are 10000^(-i' / (kC/2)), so old frequency i is new frequency k i:
 * those rows take the old weights and the new in-between frequencies start at 0. The outputs
 * (2C -> 2kC) are repeated like every other channel.
 */
function widenTimeEmbedding(w: tf.Tensor, k: number): tf.Tensor {
  const [dim, out] = w.shape; // tfjs layout [in, out]
  const half = dim / 2;
  const zeroRow = dim; // index of an appended row of zeros
  const rows = Array.from({ length: dim * k }, (_, r) => {
    const [part, i] = r < half * k ? [0, r] : [half, r - half * k];
    return i % k === 0 ? part + i / k : zeroRow;
  });
  const padded = tf.concat([w, tf.zeros([1, out])], 0);
  return tf.gather(tf.gather(padded, tf.tensor1d(rows, 'int32')), repeated(out, k), 1);
}
