// DDIM versus DDPM: the same x_T (both samplers draw it first from the seed), S DDIM steps with
// eta beside all T DDPM steps.
import * as tf from '@tensorflow/tfjs-core';
import type { CellContext } from './controller';
import { drawImages } from './draw';
import { library, siteModel, startEngine, yieldToPage } from './engine';
import { startRecording } from './record';
import { elapsedMs } from './sampling';

export async function run(ctx: CellContext) {
  await startEngine(ctx);
  const { ddimSample, ddpmSample, plainEps } = await library();
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
  const { schedule } = model;
  // the scrubber steps through DDIM's steps, then DDPM's
  const recording = await startRecording(ctx);
  const ddim = recording.phase({ name: 'DDIM', sampler: 'ddim', steps, eta, schedule });
  const ddpm = recording.phase({ name: 'DDPM', sampler: 'ddpm', steps: T, schedule });
  const sides = [
    { name: 'ddim', label: `DDIM, ${steps} steps, eta = ${eta}`, offset: 0, phase: ddim,
      sample: (onStep: OnStep) =>
        ddimSample(ddim.wrap(eps), schedule, shape, { ...opts, steps, eta, onStep }) },
    { name: 'ddpm', label: `DDPM, ${T} steps`, offset: steps, phase: ddpm,
      sample: (onStep: OnStep) =>
        ddpmSample(ddpm.wrap(eps), schedule, shape, { ...opts, onStep }) },
  ];
  for (const side of sides) {
    const start = performance.now();
    const x0 = await side.phase.recording(side.sample(async (info) => {
      await side.phase.record(info);
      ctx.progress(side.offset + info.step, total, `${side.phase.opts.name} step`);
      await yieldToPage();
    }));
    try {
      const data = await x0.data();
      drawImages(ctx.canvas(side.name), data, batch, 28, 28, { range: [-1, 1], cols: 2 });
      ctx.show(`${side.name}-info`, `${side.label}: ${elapsedMs(start)} ms`);
    } finally {
      x0.dispose();
    }
  }
}
