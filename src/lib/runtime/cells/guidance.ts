// Classifier-free guidance: eps_u + w (eps_c - eps_u) for one class, sampled with DDIM from the
// seed, its eps either the guided network's (the paper's loop) or recomputed from the clipped x_0
// estimate.
import { ddimSample, guidedEps } from '../../diffusion';
import type { CellContext } from './controller';
import { drawImages } from './draw';
import { siteModel, startEngine, yieldToPage } from './engine';
import { elapsedMs, labelsFor } from './sampling';

export async function run(ctx: CellContext) {
  await startEngine(ctx);
  const model = await siteModel(ctx, ctx.value('model'));
  ctx.show('source', model.source);
  const batch = ctx.tiny ? 1 : 8;
  const w = ctx.number('w');
  const labels = labelsFor(model, ctx.value('label'), batch)!;
  const steps = Math.min(ctx.tiny ? 2 : ctx.number('steps'), model.schedule.T - 1);
  const eta = ctx.number('eta');
  const recomputeEps = ctx.value('eps') === 'recomputed';
  const start = performance.now();
  const epsFn = guidedEps(model.params, model.config, labels, w);
  const x0 = await ddimSample(epsFn, model.schedule, [batch, 28, 28, 1], {
    seed: ctx.seed, signal: ctx.signal, steps, eta, recomputeEps,
    onStep: async ({ step, steps: n }) => {
      ctx.progress(step, n);
      await yieldToPage();
    },
  });
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
