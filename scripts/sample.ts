// npm run sample -- --model NAME --labels 0,1,... --per-label K --sampler ddpm|ddim --steps S --eta E --guidance W --seed N --out FILE
//                   [--recompute-eps true|false]
// Samples a class-conditional model with classifier-free guidance. FILE.png is a labelled grid (one row per label);
// FILE.json is exactly {"labels": [N ints], "shape": [N, 28, 28], "images": [N*784 floats in -1..1, row-major]}.
// Sampler, steps, eta, guidance and recompute-eps (DDIM re-derives eps from the clipped x_0) default to the model card's
// recommendation.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { useNodeBackend, type NodeBackend } from '../src/lib/runtime/node';
import { encodeGreyPng } from '../src/lib/data/png';
import { labelledGrid } from '../src/lib/data/grid';
import { ddimSettings, loadModel, MODELS_DIR, sampleImages, type SampleSettings } from './models';
import { bool, need, num, parseFlags, runMain, writeAtomic } from './cli';

const FLAGS = ['model', 'labels', 'per-label', 'sampler', 'steps', 'eta', 'guidance', 'seed', 'out', 'backend', 'models', 'scale', 'recompute-eps'];

async function main() {
  const flags = parseFlags(process.argv.slice(2), FLAGS);
  const out = need(flags, 'out');
  const format = out.endsWith('.png') ? 'png' : out.endsWith('.json') ? 'json' : null;
  if (!format) throw new Error(`--out must end in .png (a labelled grid) or .json (the images as numbers), received "${out}"`);
  if (!existsSync(dirname(resolve(out)))) throw new Error(`cannot write ${out}: the folder ${dirname(resolve(out))} does not exist`);
  const model = need(flags, 'model');
  const perLabel = num(flags, 'per-label', 1, (k) => Number.isInteger(k) && k >= 1 && k <= 1000);
  const seed = num(flags, 'seed', 0, (s) => Number.isInteger(s) && s >= 0);
  const scale = num(flags, 'scale', 2, (s) => Number.isInteger(s) && s >= 1 && s <= 8);
  const sampler = flags.sampler;
  if (sampler !== undefined && sampler !== 'ddpm' && sampler !== 'ddim') throw new Error(`--sampler must be ddpm or ddim, received ${JSON.stringify(sampler)}`);
  const backend = (typeof flags.backend === 'string' ? flags.backend : 'wasm') as NodeBackend;

  await useNodeBackend(backend);
  const loaded = loadModel(model, typeof flags.models === 'string' ? resolve(flags.models) : MODELS_DIR);
  const { card, config } = loaded;
  const classes = config.classes ?? 0;
  const labels = parseLabels(flags.labels, classes);
  const rec = card.recommended;
  const settings: SampleSettings = {
    sampler: (sampler ?? rec.sampler) as 'ddpm' | 'ddim',
    steps: num(flags, 'steps', rec.steps, (s) => Number.isInteger(s) && s >= 1),
    eta: num(flags, 'eta', rec.eta, (e) => e >= 0 && e <= 1),
    recomputeEps: bool(flags, 'recompute-eps', rec.recomputeEps),
    guidance: num(flags, 'guidance', rec.guidance),
    seed,
  };
  if (settings.sampler === 'ddpm' && (flags.steps !== undefined || flags.eta !== undefined || flags['recompute-eps'] !== undefined)) {
    throw new Error('--steps, --eta and --recompute-eps apply to --sampler ddim only: DDPM takes all T steps with its own variance');
  }
  const all = labels.flatMap((l) => Array<number>(perLabel).fill(l)); // label-major: K images of the first label, then the next
  const started = performance.now();
  const images = await sampleImages(loaded, all, settings, 100, (done) => process.stderr.isTTY && process.stderr.write(`\rsampled ${done}/${all.length}`));
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write(`${process.stderr.isTTY ? '\r' : ''}${all.length} images from ${loaded.paths.name} with ${settings.sampler}${settings.sampler === 'ddim' ? `-${settings.steps} (${ddimSettings(settings.eta, settings.recomputeEps)})` : ` (${card.schedule.T} steps)`}, guidance ${settings.guidance}, seed ${seed} in ${seconds.toFixed(1)} s\n`);
  if (format === 'json') {
    const size = card.architecture.imageSize;
    const body = { labels: all, shape: [all.length, size, size], images: Array.from(images, (v) => Math.round(v * 1e5) / 1e5) };
    writeAtomic(out, JSON.stringify(body));
  } else {
    const grid = labelledGrid(images, all, { scale });
    writeAtomic(out, encodeGreyPng(grid.pixels, grid.width, grid.height));
  }
  process.stderr.write(`wrote ${out}\n`);
}

/** "0,1,2" -> [0, 1, 2]; default: every class. */
function parseLabels(value: string | true | undefined, classes: number): number[] {
  if (!classes) throw new Error('this model has no class embedding, and npm run sample draws class-conditional samples only');
  if (value === undefined) return Array.from({ length: classes }, (_, i) => i);
  const parts = typeof value === 'string' ? value.split(',') : [];
  const labels = parts.map((p) => (p.trim() === '' ? NaN : Number(p)));
  if (!labels.length || !labels.every((l) => Number.isInteger(l) && l >= 0 && l < classes)) {
    throw new Error(`--labels must be integers in 0..${classes - 1} separated by commas, received ${JSON.stringify(value)}`);
  }
  return labels;
}

runMain(main);
