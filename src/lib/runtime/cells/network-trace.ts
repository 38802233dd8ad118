// Network trace: eps_theta's blocks one at a time, each with its shape, a thumbnail (the mean over
// channels) and its time. The blocks are the library's own (conv, block, condition, upsample2x of
// src/lib/diffusion/unet.ts), wired as epsTheta wires them; the result is checked against epsTheta.
import * as tf from '@tensorflow/tfjs-core';
import type { Params, UNetConfig } from '../../diffusion';
import type { CellContext } from './controller';
import { drawImages } from './draw';
import {
  digitBatch, digits, library, siteModel, startEngine, yieldToPage, type Library,
} from './engine';

type Stage = { name: string; run: (v: Record<string, tf.Tensor4D>) => tf.Tensor4D };

/** The UNet as named stages; each reads earlier outputs by name (the skip connections). */
function stages(lib: Library, p: Params, c: UNetConfig, t: number[], y: number | null): Stage[] {
  const { block, condition, conv, upsample2x } = lib;
  const [x1, x2, x3] = ['down_block1', 'down_block2 (stride 2)', 'down_block3'];
  const [x4, h1, h2] = ['down_block4 (stride 2)', 'middle_block.conv1', 'middle_block.conv2'];
  const [cond, middle] = ['condition (t, y)', 'middle + x4 + condition'];
  const [x5, x6, x7] = ['up_block1 (upsample)', 'up_block2', 'up_block3 (upsample)'];
  return [
    { name: x1, run: (v) => block(p, 'down_block1', v.xt) },
    { name: x2, run: (v) => block(p, 'down_block2.conv', v[x1], 2) },
    { name: x3, run: (v) => block(p, 'down_block3', v[x2]) },
    { name: x4, run: (v) => block(p, 'down_block4.conv', v[x3], 2) },
    { name: h1, run: (v) => block(p, 'middle_block.conv1', v[x4]) },
    { name: h2, run: (v) => block(p, 'middle_block.conv2', v[h1]) },
    { name: cond, run: () => condition(p, c, t, [y]) },
    { name: middle, run: (v) => tf.add(tf.add(v[h2], v[x4]), v[cond]) },
    { name: x5, run: (v) => block(p, 'up_block1.conv', upsample2x(tf.add(v[middle], v[x4]))) },
    { name: x6, run: (v) => block(p, 'up_block2', tf.add(v[x5], v[x3])) },
    { name: x7, run: (v) => block(p, 'up_block3.conv', upsample2x(tf.add(v[x6], v[x2]))) },
    { name: 'up_block4 = eps', run: (v) => conv(p, 'up_block4', tf.add(v[x7], v[x1])) },
  ];
}

export async function run(ctx: CellContext) {
  await startEngine(ctx);
  const lib = await library();
  const { epsTheta, qSample, randn, rngFromSeed } = lib;
  const [model, d] = await Promise.all([siteModel(ctx), digits()]);
  ctx.show('source', model.source);
  const { config: c, params: p, schedule: s } = model;
  if (c.imageChannels !== 1) {
    throw new Error('the trace draws 28 x 28 digits; '
      + `this model has ${c.imageChannels} image channels`);
  }
  ctx.root.querySelector<HTMLInputElement>('[name="t"]')!.max = String(s.T - 1);
  const t = Math.min(s.T - 1, Math.round(ctx.tiny ? s.T / 2 : ctx.number('t')));
  const y = c.classes === null ? null : d.labels[0];
  const noise = randn<tf.Rank.R4>([1, 28, 28, 1], rngFromSeed(ctx.seed));
  const xt = tf.tidy(() => qSample(s, digitBatch(d, [0]), [t], noise)); // [1, 28, 28, 1]
  noise.dispose();
  const values: Record<string, tf.Tensor4D> = { xt };
  const table = ctx.root.querySelector<HTMLTableSectionElement>('tbody[data-out="trace"]')!;
  table.replaceChildren();
  try {
    // also compiles every kernel, so the timings below exclude it
    const reference = epsTheta(p, c, xt, [t], [y]);
    values.reference = reference;
    await reference.data();
    const list = stages(lib, p, c, [t], y);
    let total = 0;
    for (const [k, stage] of list.entries()) {
      const start = performance.now();
      const out = tf.tidy(() => stage.run(values));
      const thumb = tf.tidy(() => (out.shape[1] * out.shape[2] === 1
        ? tf.reshape(out, [1, 1, out.shape[3]]) // a vector as a row
        : tf.mean(out, 3))); // [1, h, w]
      const data = await thumb.data(); // waits for the GPU, so the time is the block's
      const ms = performance.now() - start;
      total += ms;
      values[stage.name] = out;
      addRow(table, k, stage.name, out.shape, ms, [thumb.shape[1]!, thumb.shape[2]!], data);
      thumb.dispose();
      ctx.progress(k + 1, list.length, 'block');
      await yieldToPage();
    }
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(values['up_block4 = eps'], reference))));
    const maxDiff = (await diff.data())[0];
    diff.dispose();
    ctx.show('summary', `x_t: digit #0 (a ${d.labels[0]}) at t = ${t}`
      + `${y === null ? '' : `, class ${y}`}; ${list.length} blocks in ${total.toFixed(1)} ms; `
      + `max |trace − epsTheta| = ${maxDiff.toExponential(1)}`);
  } finally {
    Object.values(values).forEach((v) => v.dispose());
  }
}

function addRow(body: HTMLTableSectionElement, k: number, name: string, shape: number[], ms: number,
  [h, w]: [number, number], data: ArrayLike<number>) {
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
