// Load a checkpoint: a .safetensors file of the paper's UNet (PyTorch state_dict names), checked by loadUNet,
// then sampled with DDIM. The schedule comes from the file's metadata when it has one, else from the controls.
import { ddimSample, guidedEps, loadUNet, makeSchedule, type Params, type ScheduleKind, type UNetConfig } from '../../diffusion';
import type { CellContext } from './controller';
import { drawImages } from './draw';
import { startEngine, yieldToPage } from './engine';
import { elapsedMs } from './sampling';

interface Loaded { key: string; name: string; config: UNetConfig; params: Params; metadata: Record<string, string> }
/** The last file loaded by each cell; its tensors are disposed when another file replaces it. */
const loaded = new WeakMap<HTMLElement, Loaded>();

/** The __metadata__ of a safetensors header (strings only), or {} if there is none or the header is unreadable. */
function readMetadata(bytes: Uint8Array): Record<string, string> {
  try {
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
    return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))).__metadata__ ?? {};
  } catch {
    return {};
  }
}

async function loadFile(ctx: CellContext, file: File): Promise<Loaded> {
  const key = `${file.name}:${file.size}:${file.lastModified}`;
  const previous = loaded.get(ctx.root);
  if (previous?.key === key) return previous;
  if (!/\.safetensors$/i.test(file.name)) ctx.note(`${file.name} does not end in .safetensors; trying to read it anyway.`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  let model: ReturnType<typeof loadUNet>;
  try {
    model = loadUNet(bytes);
  } catch (error) {
    throw new Error(`${file.name} is not a compatible model: ${error instanceof Error ? error.message : error}`);
  }
  if (previous) Object.values(previous.params).forEach((t) => t.dispose());
  const next = { key, name: file.name, ...model, metadata: readMetadata(bytes) };
  loaded.set(ctx.root, next);
  return next;
}

export async function run(ctx: CellContext) {
  const file = ctx.root.querySelector<HTMLInputElement>('input[type="file"]')?.files?.[0];
  if (!file) throw new Error('choose or drop a .safetensors file first');
  await startEngine(ctx);
  const { name, config, params, metadata } = await loadFile(ctx, file);
  const kind = (['paper-linear', 'ddpm-linear', 'cosine'].includes(metadata.schedule) ? metadata.schedule : ctx.value('schedule')) as ScheduleKind;
  const T = Number.isInteger(Number(metadata.T)) && Number(metadata.T) > 1 ? Number(metadata.T) : Math.round(ctx.number('T'));
  const schedule = makeSchedule(kind, T);
  const steps = Math.min(ctx.tiny ? 2 : Math.round(ctx.number('steps')), T - 1);
  const size = config.imageChannels === 1 ? 28 : 32; // MNIST or CIFAR-10
  const batch = ctx.tiny ? 1 : 8;
  const label = ctx.value('label');
  const labels = label === '' || config.classes === null ? undefined : Array<number>(batch).fill(Number(label) % config.classes);
  ctx.show('model', `${name}: ${config.channels} channels, ${config.imageChannels} image channel${config.imageChannels > 1 ? 's' : ''}, `
    + `${config.classes === null ? 'unconditional' : `${config.classes} classes`}; ${kind}, T = ${T}${metadata.T ? ' (from the file)' : ''}`);
  const start = performance.now();
  const x0 = await ddimSample(guidedEps(params, config, labels), schedule, [batch, size, size, config.imageChannels], {
    seed: ctx.seed, steps, signal: ctx.signal,
    onStep: async ({ step, steps: n }) => {
      ctx.progress(step, n);
      await yieldToPage();
    },
  });
  try {
    drawImages(ctx.canvas('samples'), await x0.data(), batch, size, size, { range: [-1, 1], cols: 8, channels: config.imageChannels as 1 | 3 });
    ctx.show('caption', `${batch} DDIM samples, ${steps} steps${labels ? `, class ${labels[0]}` : ''}, ${elapsedMs(start)} ms`);
  } finally {
    x0.dispose();
  }
}
