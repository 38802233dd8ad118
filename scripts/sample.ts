// npm run sample -- --model NAME --labels 0,1,... --per-label K --sampler ddpm|ddim --steps S
//                   --eta E --guidance W --seed N --out FILE [--recompute-eps true|false]
// Samples a class-conditional model with classifier-free guidance. FILE.png is a labelled grid (one
// row per label; in colour for an RGB model); FILE.json is exactly
//   {"labels": [N ints], "shape": [N, 28, 28], "images": [N*784 floats in -1..1, row-major]}
// for a grey model, and "shape": [N, 32, 32, 3] with N*3072 values, row-major HWC, for an RGB
// one (CIFAR-10).
// Sampler, steps, eta, guidance and recompute-eps (DDIM re-derives eps from the clipped x_0)
// default to the model card's recommendation. --weights FILE (.safetensors, or a .pth saved by
// torch.save(model.state_dict())) takes a bare file in place of --model, with --schedule KIND and
// --timesteps T (the paper's paper-linear and 300 unless told) and the paper's DDIM-50, eta 0, w 1.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { useNodeBackend } from '../src/lib/runtime/node';
import { encodePng } from '../src/lib/data/png';
import { labelledGrid } from '../src/lib/data/grid';
import {
  ddimSettings, loadModel, loadWeightsFile, MODELS_DIR, sampleImages, type SampleSettings,
} from './models';
import { SCHEDULE_KINDS } from '../src/lib/models/card';
import type { ScheduleKind } from '../src/lib/diffusion';
import {
  backendFlag, bool, need, num, parseFlags, runMain, threadsFlag, writeAtomic,
} from './cli';

const FLAGS = [
  'model', 'labels', 'per-label', 'sampler', 'steps', 'eta', 'guidance', 'seed', 'out', 'backend',
  'models', 'scale', 'recompute-eps', 'weights', 'schedule', 'timesteps', 'threads',
];

async function main() {
  const flags = parseFlags(process.argv.slice(2), FLAGS);
  const out = need(flags, 'out');
  const format = out.endsWith('.png') ? 'png' : out.endsWith('.json') ? 'json' : null;
  if (!format) {
    throw new Error('--out must end in .png (a labelled grid) or .json (the images as numbers), '
      + `received "${out}"`);
  }
  const folder = dirname(resolve(out));
  if (!existsSync(folder)) {
    throw new Error(`cannot write ${out}: the folder ${folder} does not exist`);
  }
  if ((flags.model === undefined) === (flags.weights === undefined)) {
    throw new Error('give either --model NAME (a shipped model and its card) or --weights FILE');
  }
  if (flags.model !== undefined && (flags.schedule ?? flags.timesteps) !== undefined) {
    throw new Error('--schedule and --timesteps go with --weights; a model card gives its own');
  }
  const perLabel = num(flags, 'per-label', 1, (k) => Number.isInteger(k) && k >= 1 && k <= 1000);
  const seed = num(flags, 'seed', 0, (s) => Number.isInteger(s) && s >= 0);
  const scale = num(flags, 'scale', 2, (s) => Number.isInteger(s) && s >= 1 && s <= 8);
  const sampler = flags.sampler;
  if (sampler !== undefined && sampler !== 'ddpm' && sampler !== 'ddim') {
    throw new Error(`--sampler must be ddpm or ddim, received ${JSON.stringify(sampler)}`);
  }
  const backend = backendFlag(flags);

  await useNodeBackend(backend, { threads: threadsFlag(flags, { backend }) });
  const models = typeof flags.models === 'string' ? resolve(flags.models) : MODELS_DIR;
  const loaded = flags.model !== undefined ? loadModel(need(flags, 'model'), models)
    : loadWeightsFile(need(flags, 'weights'), weightsSchedule(flags));
  if (flags.weights !== undefined) {
    const { kind, T } = loaded.card.schedule;
    const told = flags.schedule !== undefined || flags.timesteps !== undefined;
    process.stderr.write(`${loaded.paths.name}: ${kind}, T = ${T} `
      + `(${told ? 'as told' : "the paper's; --schedule and --timesteps change it"})\n`);
  }
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
  const ddimOnly = ['steps', 'eta', 'recompute-eps'].some((name) => flags[name] !== undefined);
  if (settings.sampler === 'ddpm' && ddimOnly) {
    throw new Error('--steps, --eta and --recompute-eps apply to --sampler ddim only: '
      + 'DDPM takes all T steps with its own variance');
  }
  // label-major: K images of the first label, then the next
  const all = labels.flatMap((l) => Array<number>(perLabel).fill(l));
  const started = performance.now();
  const tty = process.stderr.isTTY;
  const onChunk = (done: number) => tty && process.stderr.write(`\rsampled ${done}/${all.length}`);
  const images = await sampleImages(loaded, all, settings, { chunk: 100, onChunk });
  const seconds = (performance.now() - started) / 1000;
  const how = settings.sampler === 'ddim'
    ? `ddim-${settings.steps} (${ddimSettings(settings.eta, settings.recomputeEps)})`
    : `ddpm (${card.schedule.T} steps)`;
  process.stderr.write(`${tty ? '\r' : ''}${all.length} images from ${loaded.paths.name} `
    + `with ${how}, guidance ${settings.guidance}, seed ${seed} in ${seconds.toFixed(1)} s\n`);
  const size = card.architecture.imageSize;
  const channels = config.imageChannels === 1 ? 1 : 3;
  if (format === 'json') {
    const rounded = Array.from(images, (v) => Math.round(v * 1e5) / 1e5);
    // grey: [N, H, W] as before; RGB: [N, H, W, 3]
    const shape = [all.length, size, size, ...(channels === 1 ? [] : [channels])];
    const body = { labels: all, shape, images: rounded };
    writeAtomic(out, JSON.stringify(body));
  } else {
    const grid = labelledGrid(images, all, { scale, size, channels });
    writeAtomic(out, encodePng(grid.pixels, grid.width, grid.height, channels));
  }
  process.stderr.write(`wrote ${out}\n`);
}

/** --schedule and --timesteps for a bare weights file: the paper's paper-linear, T = 300. */
function weightsSchedule(flags: ReturnType<typeof parseFlags>): { kind: ScheduleKind; T: number } {
  const kind = flags.schedule ?? 'paper-linear';
  if (typeof kind !== 'string' || !(SCHEDULE_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`--schedule must be one of ${SCHEDULE_KINDS.join(', ')}, `
      + `received ${JSON.stringify(kind)}`);
  }
  const T = num(flags, 'timesteps', 300, (t) => Number.isInteger(t) && t >= 2);
  return { kind: kind as ScheduleKind, T };
}

/** "0,1,2" -> [0, 1, 2]; default: every class. */
function parseLabels(value: string | true | undefined, classes: number): number[] {
  if (!classes) {
    throw new Error('this model has no class embedding, and npm run sample draws '
      + 'class-conditional samples only');
  }
  if (value === undefined) return Array.from({ length: classes }, (_, i) => i);
  const parts = typeof value === 'string' ? value.split(',') : [];
  const labels = parts.map((p) => (p.trim() === '' ? NaN : Number(p)));
  if (!labels.length || !labels.every((l) => Number.isInteger(l) && l >= 0 && l < classes)) {
    throw new Error(`--labels must be integers in 0..${classes - 1} separated by commas, `
      + `received ${JSON.stringify(value)}`);
  }
  return labels;
}

runMain(main);
