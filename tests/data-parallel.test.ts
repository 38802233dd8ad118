// npm run train --workers: the mean of the shards' gradients, computed on worker threads, is the
// whole batch's gradient at the same draws, and a step through the shards advances the trainer
// like trainStep.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTrainer, initParams, makeSchedule, simpleLoss, stepDraws, trainStep,
  type Trainer, type UNetConfig,
} from '../src/lib/diffusion';
import { startShards, type Shards } from '../scripts/data-parallel';
import { backend } from './helpers/backend';

const config: UNetConfig = { imageChannels: 1, channels: 32, classes: 10 };
const schedule = makeSchedule('paper-linear', 50);
const labels = [0, 1, 2, 3, 4, 5];
let tr: Trainer;
let shards: Shards;
let x0: tf.Tensor4D;

beforeAll(async () => {
  await backend('wasm');
  const init = initParams(config, 5);
  tr = createTrainer(init, config, schedule, { seed: 5, labelDropout: 0.5 });
  tf.dispose(Object.values(init));
  x0 = tf.randomUniform([6, 28, 28, 1], -1, 1, 'float32', 3) as tf.Tensor4D;
  shards = await startShards(3, config, { kind: 'paper-linear', T: 50 }, tr);
}, 120_000);
afterAll(() => shards?.close());

/** ||a - b|| / ||b|| over all parameters. */
function relativeDiff(a: tf.NamedTensorMap, b: tf.NamedTensorMap) {
  let [d, n] = [0, 0];
  for (const [name, t] of Object.entries(b)) {
    const [x, y] = [a[name].dataSync(), t.dataSync()];
    y.forEach((v, j) => { d += (x[j] - v) ** 2; n += v * v; });
  }
  return Math.sqrt(d / n);
}

describe('data-parallel training (3 shards of 2 images)', () => {
  it('gives the whole batch\'s loss and gradient at the same draws', async () => {
    const { t, y, eps } = stepDraws(tr, x0.shape, labels);
    expect(y).toContain(null); // some labels dropped: the shards must get the same ones
    const loss = () => simpleLoss(tr.params, config, schedule, x0, t, eps, y);
    const whole = tf.variableGrads(loss, Object.values(tr.params));
    const split = await shards.gradients(tr, x0, labels);
    expect(Object.keys(split.grads).sort()).toEqual(Object.keys(whole.grads).sort());
    expect(Math.abs(split.loss - whole.value.dataSync()[0]) / split.loss).toBeLessThan(1e-5);
    expect(relativeDiff(split.grads, whole.grads)).toBeLessThan(1e-5);
    // and not by accident: a different step's draws give a different gradient
    tr.step += 1;
    const other = await shards.gradients(tr, x0, labels);
    tr.step -= 1;
    expect(relativeDiff(other.grads, whole.grads)).toBeGreaterThan(0.1);
    tf.dispose([eps, whole.value, ...Object.values(whole.grads), ...Object.values(split.grads),
      ...Object.values(other.grads)]);
  });

  it('steps the trainer: Adam moves the weights, the EMA follows, the step count advances',
    async () => {
      const before = tr.params['down_block1.weight'].dataSync().slice();
      const loss = await shards.step(tr, x0, labels);
      expect(Number.isFinite(loss)).toBe(true);
      expect(tr.step).toBe(1);
      const after = tr.params['down_block1.weight'].dataSync();
      expect(after.some((v, j) => v !== before[j])).toBe(true);
      expect(Array.from(tr.ema!['down_block1.weight'].dataSync())).not.toEqual(Array.from(before));
    });

  it('fails, rather than waiting, once its workers are gone', async () => {
    const closed = await startShards(2, config, { kind: 'paper-linear', T: 50 }, tr);
    await closed.close();
    const x = tf.zeros([2, 28, 28, 1]) as tf.Tensor4D;
    await expect(closed.gradients(tr, x, [0, 1]))
      .rejects.toThrow(/a training worker is not running/);
    x.dispose();
  }, 120_000);

  it('rejects a batch that does not split evenly', async () => {
    const odd = tf.zeros([4, 28, 28, 1]) as tf.Tensor4D;
    await expect(shards.gradients(tr, odd, [0, 1, 2, 3]))
      .rejects.toThrow(/--batch 4 is not divisible by --workers 3/);
    odd.dispose();
  });
});

describe('trainStep when a batch uses no class embedding', () => {
  it('keeps Adam\'s moments with their weights (class_emb gets gradient 0, not a shifted slot)',
    () => {
      const { 'class_emb.weight': classEmbedding, ...rest } = initParams(config, 2);
      // first, so that a skipped slot would shift every other
      const init = { 'class_emb.weight': classEmbedding, ...rest };
      const solo = createTrainer(init, config, schedule, { seed: 1, labelDropout: 1 });
      tf.dispose(Object.values(init));
      const x = tf.randomUniform([1, 28, 28, 1], -1, 1, 'float32', 1) as tf.Tensor4D;
      const classEmb = solo.params['class_emb.weight'].dataSync().slice();
      tf.dispose(trainStep(solo, x, [4])); // the one label dropped: class_emb unused
      expect(Array.from(solo.params['class_emb.weight'].dataSync())).toEqual(Array.from(classEmb));
      solo.options.labelDropout = 0;
      // now used: the moments must still match their weights' shapes
      const loss = trainStep(solo, x, [4]);
      expect(Number.isFinite(loss.dataSync()[0])).toBe(true);
      const after = Array.from(solo.params['class_emb.weight'].dataSync());
      expect(after).not.toEqual(Array.from(classEmb));
      const moments = solo.adam.m; // by parameter name
      const params = Object.entries(solo.params);
      expect(Object.keys(moments)).toHaveLength(params.length);
      params.forEach(([name, p]) => expect(moments[name].shape).toEqual(p.shape));
      tf.dispose([x, loss]);
    });
});
