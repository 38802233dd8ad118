// Live training: DDPM Algorithm 1 (the library's trainStep) on a few real digits, in the page,
// with the loss curve and DDIM samples from the current weights drawn as it trains. After a run (or
// a cancel) that trained at least one step, its weights are offered as a .safetensors download in
// PyTorch's names and layouts (saveUNet), with the schedule and T in the metadata.
import { saveUNet, type Trainer } from '../../diffusion';
import type { CellContext } from './controller';
import { drawCurves, drawImages } from './draw';
import {
  digitBatch, digits, library, RANDOM_CONFIG, startEngine, throwIfAborted, yieldToPage,
  type Library,
} from './engine';

const SUBSETS: Record<string, number[]> = {
  '01': [0, 1], '0123': [0, 1, 2, 3], all: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
};
const SAMPLE_ROWS = 6;

export async function run(ctx: CellContext) {
  await startEngine(ctx);
  const lib = await library();
  const { createTrainer, disposeAdam, initParams, makeSchedule, rngFromSeed, trainStep } = lib;
  // tfjs-core registers no gradients by itself
  await import('@tensorflow/tfjs-core/dist/register_all_gradients');
  const d = await digits();
  const classes = SUBSETS[ctx.value('subset')] ?? SUBSETS['01'];
  const pool = Array.from({ length: d.count }, (_, i) => i)
    .filter((i) => classes.includes(d.labels[i]));
  const steps = ctx.tiny ? 3 : Math.max(1, Math.round(ctx.number('steps')));
  const batch = ctx.tiny ? 2 : 16;
  const T = ctx.tiny ? 5 : 100;
  const sampleSteps = Math.min(10, T - 1);
  const sampleLabels = Array.from({ length: ctx.tiny ? 1 : 4 },
    (_, k) => classes[k % classes.length]);
  const sampleEvery = Math.max(1, Math.ceil(steps / SAMPLE_ROWS));
  // the paper's schedule needs T > 30
  const schedule = makeSchedule(T > 30 ? 'paper-linear' : 'ddpm-linear', T);
  const init = initParams(RANDOM_CONFIG, ctx.seed);
  let tr: Trainer | null = null;
  let trained = 0;
  offerDownload(ctx.root, null);
  try {
    const options = { seed: ctx.seed, lr: 2e-3, emaDecay: null, labelDropout: 0.1 };
    tr = createTrainer(init, RANDOM_CONFIG, schedule, options);
    Object.values(init).forEach((t) => t.dispose());
    ctx.show('setup', `${pool.length} digits of classes ${classes.join(', ')}; 32-channel UNet, `
      + `T = ${T}, batch ${batch}, Adam lr 2e-3`);
    const rng = rngFromSeed(ctx.seed);
    const losses: number[] = [];
    const rows: Float32Array[] = [];
    const start = performance.now();
    for (let step = 1; step <= steps; step++) {
      throwIfAborted(ctx.signal);
      const indices = Array.from({ length: batch }, () => pool[rng() % pool.length]);
      const x0 = digitBatch(d, indices);
      const loss = trainStep(tr, x0, indices.map((i) => d.labels[i]));
      x0.dispose();
      losses.push((await loss.data())[0]);
      loss.dispose();
      trained = step;
      ctx.progress(step, steps, 'training step');
      if (step % 5 === 0 || step === steps) {
        const smooth: number[] = []; // exponential moving average of the loss
        losses.forEach((v, i) => smooth.push(i ? 0.9 * smooth[i - 1] + 0.1 * v : v));
        drawCurves(ctx.canvas('loss'), [
          { label: 'loss', values: losses, color: '#90caf9' },
          { label: 'moving average', values: smooth, color: '#0d47a1' },
        ], { log: true, title: 'L_simple per step (log scale)' });
        const ms = (performance.now() - start) / step; // sampling rows included
        const last = losses[step - 1].toFixed(4);
        const rate = `${ms.toFixed(0)} ms per step, ${((1000 * batch) / ms).toFixed(1)} images/s`;
        ctx.show('loss-value', `step ${step}: loss ${last}, ${rate}`);
      }
      if (step % sampleEvery === 0 || step === steps) {
        rows.push(await sampleRow(ctx, lib, tr, sampleLabels, sampleSteps));
        const all = new Float32Array(rows.length * sampleLabels.length * 784);
        rows.forEach((r, k) => all.set(r, k * r.length));
        drawImages(ctx.canvas('samples'), all, rows.length * sampleLabels.length, 28, 28,
          { range: [-1, 1], cols: sampleLabels.length });
        const after = rows.map((_, k) => Math.min((k + 1) * sampleEvery, steps));
        ctx.show('samples-caption', `rows: DDIM samples (${sampleSteps} steps, classes `
          + `${sampleLabels.join(', ')}) after steps ${after.join(', ')}`);
      }
      await yieldToPage();
    }
  } finally {
    try {
      if (tr && trained > 0) {
        const metadata = { format: 'pt', schedule: tr.schedule.kind, T: String(T),
          steps: String(trained), seed: String(ctx.seed) };
        offerDownload(ctx.root, await saveUNet(tr.params, metadata));
      }
    } finally { // the weights are freed even if saving them failed
      if (tr) {
        Object.values(tr.params).forEach((v) => v.dispose());
        disposeAdam(tr.adam);
      } else {
        Object.values(init).forEach((t) => t.isDisposed || t.dispose());
      }
    }
  }
}

/** Samples one row from the current weights, always from the same noise (the run's seed). */
async function sampleRow(ctx: CellContext, { ddimSample, plainEps }: Library, tr: Trainer,
  labels: number[], steps: number): Promise<Float32Array> {
  const x0 = await ddimSample(plainEps(tr.params, tr.config, labels), tr.schedule,
    [labels.length, 28, 28, 1], { seed: ctx.seed + 1, steps, signal: ctx.signal });
  try {
    return (await x0.data()) as Float32Array;
  } finally {
    x0.dispose();
  }
}

/** Shows the cell's [data-download] link to these safetensors bytes; hides it for null. */
function offerDownload(root: HTMLElement, bytes: Uint8Array | null) {
  const link = root.querySelector<HTMLAnchorElement>('a[data-download]');
  if (!link) return;
  if (link.href.startsWith('blob:')) URL.revokeObjectURL(link.href);
  link.hidden = !bytes;
  link.removeAttribute('href');
  if (!bytes) return;
  const blob = new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' });
  link.href = URL.createObjectURL(blob);
}
