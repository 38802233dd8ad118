// Network trace: eps_theta's blocks one at a time (the block sequence of src/lib/diffusion/unet.ts, rebuilt here from
// tfjs ops and the library's exported groupNorm, upsample2x and timestepEmbedding), with each block's shape, a
// thumbnail (the mean over channels) and its time. The result is checked against the library's epsTheta.
import * as tf from '@tensorflow/tfjs-core';
import { epsTheta, groupNorm, qSample, randn, rngFromSeed, timestepEmbedding, upsample2x, type Params, type UNetConfig } from '../../diffusion';
import type { CellContext } from './controller';
import { drawImages } from './draw';
import { digitBatch, digits, siteModel, startEngine, yieldToPage } from './engine';

const conv = (p: Params, name: string, x: tf.Tensor4D, stride = 1) =>
  tf.fused.conv2d({ x, filter: p[`${name}.weight`] as tf.Tensor4D, bias: p[`${name}.bias`], strides: stride, pad: 1 });
const block = (p: Params, name: string, x: tf.Tensor4D, stride = 1) => tf.relu(groupNorm(conv(p, name, x, stride))) as tf.Tensor4D;

/** relu(Linear(emb(t))) + relu(class_emb[y]), as unet.ts's condition(), shaped [B, 1, 1, 2C]. */
function condition(p: Params, c: UNetConfig, t: number[], y: number | null): tf.Tensor4D {
  let emb = tf.relu(tf.add(tf.matMul(timestepEmbedding(t, c.channels), p['noise_embedding.weight']), p['noise_embedding.bias']));
  if (y !== null && c.classes !== null) emb = tf.add(emb, tf.relu(tf.matMul(tf.oneHot(tf.tensor1d([y], 'int32'), c.classes), p['class_emb.weight'])));
  return tf.reshape(emb, [t.length, 1, 1, 2 * c.channels]);
}

type Stage = { name: string; run: (v: Record<string, tf.Tensor4D>) => tf.Tensor4D };

/** The UNet as named stages; each reads earlier outputs by name (the skip connections). */
function stages(p: Params, c: UNetConfig, t: number[], y: number | null): Stage[] {
  return [
    { name: 'down_block1', run: (v) => block(p, 'down_block1', v.xt) },
    { name: 'down_block2 (stride 2)', run: (v) => block(p, 'down_block2.conv', v.down_block1, 2) },
    { name: 'down_block3', run: (v) => block(p, 'down_block3', v['down_block2 (stride 2)']) },
    { name: 'down_block4 (stride 2)', run: (v) => block(p, 'down_block4.conv', v.down_block3, 2) },
    { name: 'middle_block.conv1', run: (v) => block(p, 'middle_block.conv1', v['down_block4 (stride 2)']) },
    { name: 'middle_block.conv2', run: (v) => block(p, 'middle_block.conv2', v['middle_block.conv1']) },
    { name: 'condition (t, y)', run: () => condition(p, c, t, y) },
    { name: 'middle + x4 + condition', run: (v) => tf.add(tf.add(v['middle_block.conv2'], v['down_block4 (stride 2)']), v['condition (t, y)']) },
    { name: 'up_block1 (upsample)', run: (v) => block(p, 'up_block1.conv', upsample2x(tf.add(v['middle + x4 + condition'], v['down_block4 (stride 2)']))) },
    { name: 'up_block2', run: (v) => block(p, 'up_block2', tf.add(v['up_block1 (upsample)'], v.down_block3)) },
    { name: 'up_block3 (upsample)', run: (v) => block(p, 'up_block3.conv', upsample2x(tf.add(v.up_block2, v['down_block2 (stride 2)']))) },
    { name: 'up_block4 = eps', run: (v) => conv(p, 'up_block4', tf.add(v['up_block3 (upsample)'], v.down_block1)) },
  ];
}

export async function run(ctx: CellContext) {
  await startEngine(ctx);
  const [model, d] = await Promise.all([siteModel(ctx), digits()]);
  ctx.show('source', model.source);
  const { config: c, params: p, schedule: s } = model;
  if (c.imageChannels !== 1) throw new Error(`the trace draws 28 x 28 digits; this model has ${c.imageChannels} image channels`);
  ctx.root.querySelector<HTMLInputElement>('[name="t"]')!.max = String(s.T - 1);
  const t = Math.min(s.T - 1, Math.round(ctx.tiny ? s.T / 2 : ctx.number('t')));
  const y = c.classes === null ? null : d.labels[0];
  const xt = tf.tidy(() => qSample(s, digitBatch(d, [0]), [t], randn([1, 28, 28, 1], rngFromSeed(ctx.seed)))); // [1, 28, 28, 1]
  const values: Record<string, tf.Tensor4D> = { xt };
  const table = ctx.root.querySelector<HTMLTableSectionElement>('tbody[data-out="trace"]')!;
  table.replaceChildren();
  try {
    const reference = epsTheta(p, c, xt, [t], [y]); // also compiles every kernel, so the timings below exclude it
    values.reference = reference;
    await reference.data();
    const list = stages(p, c, [t], y);
    let total = 0;
    for (const [k, stage] of list.entries()) {
      const start = performance.now();
      const out = tf.tidy(() => stage.run(values));
      const thumb = tf.tidy(() => (out.shape[1] * out.shape[2] === 1 ? tf.reshape(out, [1, 1, out.shape[3]]) : tf.mean(out, 3))); // [1, h, w]; a vector as a row
      const data = await thumb.data(); // waits for the GPU, so the time is the block's
      const ms = performance.now() - start;
      total += ms;
      values[stage.name] = out;
      addRow(table, k, stage.name, out.shape, ms, thumb.shape[1]!, thumb.shape[2]!, data);
      thumb.dispose();
      ctx.progress(k + 1, list.length, 'block');
      await yieldToPage();
    }
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(values['up_block4 = eps'], reference))));
    const maxDiff = (await diff.data())[0];
    diff.dispose();
    ctx.show('summary', `x_t: digit #0 (a ${d.labels[0]}) at t = ${t}${y === null ? '' : `, class ${y}`}; `
      + `${list.length} blocks in ${total.toFixed(1)} ms; max |trace − epsTheta| = ${maxDiff.toExponential(1)}`);
  } finally {
    Object.values(values).forEach((v) => v.dispose());
  }
}

function addRow(body: HTMLTableSectionElement, k: number, name: string, shape: number[], ms: number, h: number, w: number, data: ArrayLike<number>) {
  const row = body.insertRow();
  row.insertCell().textContent = name;
  row.insertCell().textContent = `[${shape.join(', ')}]`;
  row.insertCell().textContent = `${ms.toFixed(2)} ms`;
  const canvas = document.createElement('canvas');
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `mean over channels of ${name}, ${h} by ${w}`);
  canvas.dataset.out = `block-${k}`;
  row.insertCell().append(canvas);
  drawImages(canvas, data, 1, h, w, { range: 'auto' });
}
