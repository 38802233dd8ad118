// Load a checkpoint: a .safetensors file of the paper's UNet (PyTorch state_dict names), or a .pth
// written by torch.save(model.state_dict()) (read by ../pth.ts, which executes nothing), checked by
// loadUNet, then sampled with DDIM (eta and guidance w from the controls). The schedule and T come
// from the file's metadata when it has them, else from the controls, whose defaults are the
// paper's (paper-linear, T = 300, 50 DDIM steps).
import { loadUNet, type Params, type ScheduleKind, type UNetConfig } from '../../diffusion';
import type { CellContext } from './controller';
import { drawImages } from './draw';
import { library, startEngine, yieldToPage } from './engine';
import { startRecording } from './record';
import { asSafetensors } from '../pth';
import { elapsedMs } from './sampling';

interface Loaded {
  key: string; name: string; config: UNetConfig; params: Params; metadata: Record<string, string>;
}
/** The last file loaded by each cell; its tensors are disposed when another file replaces it. */
const loaded = new WeakMap<HTMLElement, Loaded>();

async function loadFile(ctx: CellContext, file: File): Promise<Loaded> {
  const key = `${file.name}:${file.size}:${file.lastModified}`;
  const previous = loaded.get(ctx.root);
  if (previous?.key === key) return previous;
  if (!/\.(safetensors|pth?)$/i.test(file.name)) {
    ctx.note(`${file.name} does not end in .safetensors, .pth or .pt; trying to read it anyway.`);
  }
  let model: ReturnType<typeof loadUNet>; // the weights, config and metadata, from one read
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    model = loadUNet(asSafetensors(bytes));
  } catch (error) {
    const why = error instanceof Error ? error.message : error;
    throw new Error(`${file.name} is not a compatible model: ${why}`);
  }
  if (previous) Object.values(previous.params).forEach((t) => t.dispose());
  const next = { key, name: file.name, ...model };
  loaded.set(ctx.root, next);
  return next;
}

const KINDS: string[] = ['paper-linear', 'ddpm-linear', 'cosine'] satisfies ScheduleKind[];

/** The schedule and T to sample with: the file's metadata where it names them, else the controls;
 *  with why, for the reader. */
function pickSchedule(ctx: CellContext, metadata: Record<string, string>) {
  const fileKind = KINDS.includes(metadata.schedule) ? metadata.schedule as ScheduleKind : null;
  const fileT = Number(metadata.T);
  const T = Number.isInteger(fileT) && fileT > 1 ? fileT : Math.round(ctx.number('T'));
  const kind = fileKind ?? ctx.value('schedule') as ScheduleKind;
  const fromFile = [fileKind && 'schedule', T === fileT && 'T'].filter(Boolean).join(' and ');
  const paper = 'the paper\'s defaults are paper-linear, T = 300';
  const why = fromFile === 'schedule and T' ? ' (from the file): its metadata names both'
    : fromFile ? ` (${fromFile} from the file's metadata, the rest from the controls; ${paper})`
      : ` (from the controls: the file's metadata names no schedule or T; ${paper})`;
  return { kind, T, why };
}

export async function run(ctx: CellContext) {
  const file = ctx.root.querySelector<HTMLInputElement>('input[type="file"]')?.files?.[0];
  if (!file) throw new Error('choose or drop a .safetensors or .pth file first');
  await startEngine(ctx);
  const { ddimSample, guidedEps, makeSchedule, plainEps } = await library();
  const { name, config, params, metadata } = await loadFile(ctx, file);
  const { kind, T, why } = pickSchedule(ctx, metadata);
  const schedule = makeSchedule(kind, T);
  const steps = Math.min(ctx.tiny ? 2 : Math.round(ctx.number('steps')), T - 1);
  const eta = ctx.number('eta');
  const w = ctx.number('w');
  const size = config.imageChannels === 1 ? 28 : 32; // MNIST or CIFAR-10
  const batch = ctx.tiny ? 1 : 8;
  const label = ctx.value('label');
  const labels = label === '' || config.classes === null
    ? undefined : Array<number>(batch).fill(Number(label) % config.classes);
  const io = config.imageChannels;
  ctx.show('model', `${name}: ${config.channels} channels, ${io} image channel${io > 1 ? 's' : ''}`
    + `, ${config.classes === null ? 'unconditional' : `${config.classes} classes`}; ${kind}, `
    + `T = ${T}${why}`);
  const start = performance.now();
  const recording = await startRecording(ctx);
  // the step-through recomputes eps_c and eps_u of image 0: the network with labels [y, none]
  const pair = labels && w !== 1 ? plainEps(params, config, [labels[0], null]) : undefined;
  const phase = recording.phase({ name: 'DDIM', sampler: 'ddim', steps, eta, schedule,
    w: pair ? w : undefined });
  // the plain conditional eps at w = 1
  const epsFn = phase.wrap(guidedEps(params, config, labels, w), pair);
  const x0 = await phase.recording(ddimSample(epsFn, schedule, [batch, size, size, io], {
    seed: ctx.seed, steps, eta, signal: ctx.signal,
    onStep: async (info) => {
      await phase.record(info);
      ctx.progress(info.step, info.steps);
      await yieldToPage();
    },
  }));
  try {
    drawImages(ctx.canvas('samples'), await x0.data(), batch, size, size,
      { range: [-1, 1], cols: 8, channels: io as 1 | 3 });
    const guided = labels ? `, class ${labels[0]}, w = ${w}` : '';
    ctx.show('caption', `${batch} DDIM samples, ${steps} steps, eta ${eta}${guided}, `
      + `${elapsedMs(start)} ms`);
  } finally {
    x0.dispose();
  }
}
