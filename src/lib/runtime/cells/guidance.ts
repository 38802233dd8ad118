// Classifier-free guidance: eps_u + w (eps_c - eps_u) for one class, sampled with DDIM from the
// seed, its eps either the guided network's (the paper's loop) or recomputed from the clipped x_0
// estimate.
import type { CellContext } from './controller';
import { drawImages } from './draw';
import { library, siteModel, startEngine, yieldToPage } from './engine';
import { startRecording } from './record';
import { elapsedMs, labelsFor } from './sampling';

export async function run(ctx: CellContext) {
  await startEngine(ctx);
  const { ddimSample, guidedEps, plainEps } = await library();
  const model = await siteModel(ctx, ctx.value('model'));
  ctx.show('source', model.source);
  const batch = ctx.tiny ? 1 : 8;
  const w = ctx.number('w');
  const labels = labelsFor(model, ctx.value('label'), batch)!;
  const steps = Math.min(ctx.tiny ? 2 : ctx.number('steps'), model.schedule.T - 1);
  const eta = ctx.number('eta');
  const recomputeEps = ctx.value('eps') === 'recomputed';
  const start = performance.now();
  const { params, config, schedule } = model;
  const recording = await startRecording(ctx);
  // the step-through recomputes eps_c and eps_u of image 0: the network with labels [y, none]
  const pair = w === 1 ? undefined : plainEps(params, config, [labels[0], null]);
  const phase = recording.phase({ name: 'DDIM', sampler: 'ddim', steps, eta, schedule,
    w: pair ? w : undefined }); // at w = 1 guidedEps is the conditional eps: guide never runs
  const epsFn = phase.wrap(guidedEps(params, config, labels, w), pair);
  const x0 = await phase.recording(ddimSample(epsFn, schedule, [batch, 28, 28, 1], {
    seed: ctx.seed, signal: ctx.signal, steps, eta, recomputeEps,
    onStep: async (info) => {
      await phase.record(info);
      ctx.progress(info.step, info.steps);
      await yieldToPage();
    },
  }));
  try {
    const grid = { range: [-1, 1] as [number, number], cols: Math.min(batch, 8) };
    drawImages(ctx.canvas('samples'), await x0.data(), batch, 28, 28, grid);
    const label = model.classNames?.[labels[0]!];
    const named = label && label !== String(labels[0]) ? ` (${label})` : '';
    const meaning = w === 0 ? ' (w = 0: unconditional)'
      : w === 1 ? ' (w = 1: conditional, no guidance)' : '';
    ctx.show('caption', `class ${labels[0]}${named}, w = ${w}, ${steps} DDIM steps, eta ${eta}, `
      + `ε ${recomputeEps ? 'recomputed' : 'from the network'}, ${elapsedMs(start)} ms${meaning}`);
  } finally {
    x0.dispose();
  }
}
