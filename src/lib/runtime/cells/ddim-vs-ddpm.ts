// DDIM versus DDPM: the same x_T (both samplers draw it first from the seed), S DDIM steps with
// eta beside all T DDPM steps.
import * as tf from '@tensorflow/tfjs-core';
import { ddimSample, ddpmSample, plainEps } from '../../diffusion';
import type { CellContext } from './controller';
import { drawImages } from './draw';
import { siteModel, startEngine, yieldToPage } from './engine';
import { elapsedMs } from './sampling';

export async function run(ctx: CellContext) {
  await startEngine(ctx);
  const model = await siteModel(ctx);
  ctx.show('source', model.source);
  const { T } = model.schedule;
  const slider = ctx.root.querySelector<HTMLInputElement>('[name="steps"]')!;
  slider.max = String(T - 1);
  const steps = Math.min(ctx.tiny ? 2 : ctx.number('steps'), T - 1);
  const eta = ctx.number('eta');
  const batch = ctx.tiny ? 1 : 4;
  const shape: [number, number, number, number] = [batch, 28, 28, 1];
  const eps = plainEps(model.params, model.config);
  // compile the kernels once, so that neither timing includes it
  tf.tidy(() => eps(tf.zeros(shape), 0)).dispose();
  const total = steps + T;
  type OnStep = Parameters<typeof ddpmSample>[3]['onStep'];
  const opts = { seed: ctx.seed, signal: ctx.signal };
  const sides = [
    { name: 'ddim', label: `DDIM, ${steps} steps, eta = ${eta}`, offset: 0,
      sample: (onStep: OnStep) =>
        ddimSample(eps, model.schedule, shape, { ...opts, steps, eta, onStep }) },
    { name: 'ddpm', label: `DDPM, ${T} steps`, offset: steps,
      sample: (onStep: OnStep) => ddpmSample(eps, model.schedule, shape, { ...opts, onStep }) },
  ];
  for (const side of sides) {
    const start = performance.now();
    const x0 = await side.sample(async ({ step }) => {
      ctx.progress(side.offset + step, total, side.name === 'ddim' ? 'DDIM step' : 'DDPM step');
      await yieldToPage();
    });
    try {
      const data = await x0.data();
      drawImages(ctx.canvas(side.name), data, batch, 28, 28, { range: [-1, 1], cols: 2 });
      ctx.show(`${side.name}-info`, `${side.label}: ${elapsedMs(start)} ms`);
    } finally {
      x0.dispose();
    }
  }
}
