// DDPM sampling cell: Algorithm 2 over all T steps, with a strip of x_t and of the x_0 estimate at
// chosen steps.
import type { CellContext } from './controller';
import { drawImages } from './draw';
import { library, siteModel, startEngine, yieldToPage } from './engine';
import { startRecording } from './record';
import { labelsFor, snapshotSteps } from './sampling';

export async function run(ctx: CellContext) {
  await startEngine(ctx);
  const { ddpmSample, plainEps } = await library();
  const model = await siteModel(ctx);
  ctx.show('source', model.source);
  const batch = ctx.tiny ? 1 : ctx.number('batch');
  const labels = labelsFor(model, ctx.value('label'), batch);
  const { T } = model.schedule;
  const snaps = snapshotSteps(T, ctx.tiny ? Math.min(T, 4) : 8);
  const stripXt = new Float32Array(snaps.length * 784);
  const stripX0 = new Float32Array(snaps.length * 784);
  let lastDraw = 0;
  const grid = { range: [-1, 1] as [number, number], cols: Math.min(batch, 8) };
  const recording = await startRecording(ctx);
  const { schedule } = model;
  const phase = recording.phase({ name: 'DDPM', sampler: 'ddpm', steps: T, schedule });
  const eps = phase.wrap(plainEps(model.params, model.config, labels));
  const x0 = await phase.recording(ddpmSample(eps, model.schedule, [batch, 28, 28, 1], {
    seed: ctx.seed, signal: ctx.signal,
    onStep: async (info) => {
      const { step, steps, t, xt, x0: x0Hat } = info;
      await phase.record(info);
      ctx.progress(step, steps);
      const j = snaps.indexOf(step);
      if (j >= 0) {
        // image 0 of the batch is the first 784 values
        const [a, b] = await Promise.all([xt.data(), x0Hat.data()]);
        stripXt.set(a.subarray(0, 784), j * 784);
        stripX0.set(b.subarray(0, 784), j * 784);
        drawImages(ctx.canvas('strip-xt'), stripXt, j + 1, 28, 28, { range: [-1, 1] });
        drawImages(ctx.canvas('strip-x0'), stripX0, j + 1, 28, 28, { range: [-1, 1] });
        const shown = snaps.slice(0, j + 1).join(', ');
        ctx.show('strip-steps', `steps ${shown} (t = ${T - snaps[j]} at the last one)`);
      }
      if (performance.now() - lastDraw > 150 || step === steps) {
        lastDraw = performance.now();
        drawImages(ctx.canvas('samples'), await xt.data(), batch, 28, 28, grid);
        ctx.show('caption', `x_t at t = ${t} (step ${step} of ${steps})`);
      }
      await yieldToPage();
    },
  }));
  try {
    drawImages(ctx.canvas('samples'), await x0.data(), batch, 28, 28, grid);
    ctx.show('caption', `x_0 after ${T} steps${labels ? ` of class ${labels[0]}` : ''}`);
  } finally {
    x0.dispose();
  }
}
