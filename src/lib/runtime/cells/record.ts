// Step-through for the sampling cells. A recording keeps each step of a cell's last run: x_t, the
// network's eps (for guidance also both branches), the x_0 estimate and the step's scalars, all of
// image 0 of the batch, read with `await data()`. It keeps at most MAX_STEPS steps and MAX_BYTES
// bytes (thinning the longest sampler's steps to every other one when full), drives the cell's
// scrubber (input[data-scrub]) and publishes the picked step to the code panes (STEP_EVENT,
// shown by src/lib/site/client.ts).
import * as tf from '@tensorflow/tfjs-core';
import type * as Diffusion from '../../diffusion';
import type { EpsFn, Schedule, StepInfo } from '../../diffusion';
import {
  STEP_EVENT, type StepImage, type StepValue, type StepValues,
} from '../../site/step-values';
import type { CellContext } from './controller';
import { library } from './engine';

/** The library functions a recording recomputes with: those the cells run (edited or not). */
type RecordLib = Pick<typeof Diffusion, 'predictX0' | 'posterior' | 'ddimSigma' | 'ddimTimesteps'>;

export const MAX_STEPS = 1000;
export const MAX_BYTES = 32 * 2 ** 20;

/** The regions each sampler's step runs, as "FILE#REGION" (the chapters' panes). */
const SHARED = ['sampler.ts#run-sampler', 'ddpm.ts#predict-x0', 'guidance.ts#guided-eps'];
const REGIONS = {
  ddim: ['ddim.ts#ddim-sample', 'ddim.ts#ddim-step', 'ddim.ts#ddim-sigma', ...SHARED],
  ddpm: ['ddpm.ts#ddpm-sample', 'ddpm.ts#ddpm-step', 'ddpm.ts#posterior', ...SHARED],
};

export interface PhaseOptions {
  /** What the scrubber calls its steps: "DDIM", "DDPM". */
  name: string;
  sampler: 'ddim' | 'ddpm';
  /** The number of steps the sampler takes (DDIM's S; DDPM's T). */
  steps: number;
  schedule: Schedule;
  /** DDIM's eta (0 unless told). */
  eta?: number;
  /** Guidance w, when the eps is guided (adds the region guidance.ts#guide). */
  w?: number;
}

/** One kept step: image 0 of each image by symbol, and the scalars by symbol. */
interface Kept {
  phase: number; step: number; t: number; bytes: number;
  images: Record<string, Float32Array>; scalars: Record<string, number>;
}

/** An image capture made inside the sampler's step, read in its onStep. */
interface Pending { names: string[]; packed: tf.Tensor1D }
/** A step's images, not yet read: `names` of [H, W, C] each, one after another in `packed`. */
interface Unread extends Pending { step: number; t: number; shape: [number, number, number] }

/** Steps are read in batches, at least this often (ms) and at the last step: one read per step
 * would stall a GPU backend's queue at every step. */
const READ_EVERY_MS = 200;
const READ_BATCH = 32;

const first = (x: tf.Tensor4D): tf.Tensor4D => tf.slice(x, [0, 0, 0, 0], [1, -1, -1, -1]);
const flat = (x: tf.Tensor) => tf.reshape(x, [-1]);

/** The schedule's values at t that the panes name. */
function scheduleScalars(s: Schedule, t: number): Record<string, number> {
  return {
    t, alphaBar: s.alphaBar[t], beta: s.beta[t], alpha: s.alpha[t],
    sqrtAlphaBar: s.sqrtAlphaBar[t], sqrtOneMinusAlphaBar: s.sqrtOneMinusAlphaBar[t],
    sqrtRecipAlphaBar: s.sqrtRecipAlphaBar[t],
    sqrtRecipAlphaBarMinusOne: s.sqrtRecipAlphaBarMinusOne[t],
  };
}

/** One sampler run of a recording (the DDIM vs DDPM cell has two). */
export class Phase {
  private pending: Pending | null = null;
  private unread: Unread[] = [];
  private lastRead = performance.now();
  private calls = 0;
  private prevOf = new Map<number, number>();
  stride = 1;

  constructor(private rec: Recording, readonly index: number, readonly opts: PhaseOptions) {
    if (opts.sampler === 'ddim') {
      const { timesteps, prev } = rec.lib.ddimTimesteps(opts.schedule.T, opts.steps);
      timesteps.forEach((t, i) => this.prevOf.set(t, prev[i]));
    }
  }

  get regions(): string[] {
    const guided = this.opts.w !== undefined ? ['guidance.ts#guide'] : [];
    return [...REGIONS[this.opts.sampler], ...guided];
  }

  wants(step: number) {
    return (step - 1) % this.stride === 0 || step === this.opts.steps;
  }

  /**
   * `epsFn`, also keeping x_t and eps of image 0 of each step it computes. `pairEps`, given, is
   * the network with labels [y, null] (plainEps): it recomputes eps_c and eps_u of image 0.
   */
  wrap(epsFn: EpsFn, pairEps?: EpsFn): EpsFn {
    return (xt, t) => {
      const eps = epsFn(xt, t);
      this.calls += 1;
      this.drop();
      if (!this.wants(this.calls)) return eps;
      const names = ['xt', 'eps', ...(pairEps ? ['epsC', 'epsU'] : [])];
      this.pending = { names, packed: tf.keep(tf.tidy(() => {
        const x = first(xt);
        const parts: tf.Tensor[] = [x, first(eps)];
        if (pairEps) parts.push(...tf.split(pairEps(tf.concat([x, x]) as tf.Tensor4D, t), 2));
        return tf.concat(parts.map(flat)) as tf.Tensor1D;
      })) };
      return eps;
    };
  }

  /** Keeps this step (the sampler's onStep); awaits the read of the steps so far now and then. */
  async record(info: StepInfo) {
    const pending = this.pending;
    this.pending = null;
    try {
      if (!this.wants(info.step)) return;
      const { schedule: s } = this.opts;
      const lib = this.rec.lib;
      const [, h, w, c] = info.x0.shape;
      const names = [...(pending?.names ?? []), 'x0'];
      const packed = tf.tidy(() => {
        const x0 = first(info.x0);
        const parts = [...(pending ? [pending.packed] : []), flat(x0)];
        if (pending) {
          const [xt, eps] = tf.split(tf.slice(pending.packed, 0, 2 * h * w * c), 2)
            .map((p) => tf.reshape(p, [1, h, w, c]) as tf.Tensor4D);
          const ts = [info.t];
          names.push('x0Raw');
          parts.push(flat(lib.predictX0(s, { xt, t: ts, eps, clip: false })));
          if (this.opts.sampler === 'ddpm') {
            names.push('mu');
            parts.push(flat(lib.posterior(s, x0, xt, ts).mean));
          }
        }
        return tf.concat(parts) as tf.Tensor1D;
      });
      this.unread.push({ step: info.step, t: info.t, shape: [h, w, c], names, packed });
      const late = performance.now() - this.lastRead > READ_EVERY_MS;
      if (late || this.unread.length >= READ_BATCH || info.step === info.steps) await this.read();
    } finally {
      pending?.packed.dispose();
    }
  }

  /** Reads the steps not yet read, all at once, and keeps them. */
  private async read() {
    const unread = this.unread;
    this.unread = [];
    this.lastRead = performance.now();
    if (!unread.length) return;
    const sizes = unread.map((u) => u.packed.size);
    let data: Float32Array;
    try {
      const all = tf.concat(unread.map((u) => u.packed));
      try {
        data = await all.data() as Float32Array;
      } finally {
        all.dispose();
      }
    } finally {
      unread.forEach((u) => u.packed.dispose());
    }
    let at = 0;
    unread.forEach(({ step, t, shape, names }, j) => {
      const size = shape[0] * shape[1] * shape[2];
      const images = Object.fromEntries(
        names.map((name, k) => [name, data.slice(at + k * size, at + (k + 1) * size)]));
      at += sizes[j];
      this.rec.add({ phase: this.index, step, t, bytes: sizes[j] * 4, images,
        scalars: this.scalars(t) }, shape);
    });
  }

  /** Awaits the sampler's promise; then reads the steps still unread (as after a Cancel) and
   * frees a capture that no step took (an error mid-step). */
  async recording<T>(run: Promise<T>): Promise<T> {
    try {
      return await run;
    } finally {
      this.drop();
      await this.read().catch(() => undefined); // the run's own error, if any, is the one to show
    }
  }

  private drop() {
    this.pending?.packed.dispose();
    this.pending = null;
  }

  private scalars(t: number): Record<string, number> {
    const { schedule: s, eta = 0, w } = this.opts;
    const out = scheduleScalars(s, t);
    if (w !== undefined) out.w = w;
    if (this.opts.sampler === 'ddim') {
      const tPrev = this.prevOf.get(t) ?? t - 1;
      return { ...out, tauPrev: tPrev, eta, alphaBarPrev: tPrev < 0 ? 1 : s.alphaBar[tPrev],
        sigma: this.rec.lib.ddimSigma(s, t, tPrev, eta) };
    }
    return { ...out, alphaBarPrev: s.alphaBarPrev[t], betaTilde: s.betaTilde[t],
      logBetaTilde: s.logBetaTilde[t], coefX0: s.posteriorCoefX0[t],
      coefXt: s.posteriorCoefXt[t],
      // as ddpmStep: the standard deviation of the added noise, none at t = 0
      sigma: t > 0 ? Math.exp(0.5 * s.logBetaTilde[t]) : 0 };
  }
}

/** A cell's recording of its last run, and its scrubber. */
export class Recording {
  private kept: Kept[] = [];
  private phases: Phase[] = [];
  private shape: [number, number, number] = [28, 28, 1];
  private selected: Kept | null = null;
  private follow = true;
  private readonly input: HTMLInputElement | null;
  private readonly label: HTMLElement | null;

  constructor(private root: HTMLElement, public lib: RecordLib) {
    this.input = root.querySelector<HTMLInputElement>('input[data-scrub]');
    this.label = root.querySelector<HTMLElement>('[data-scrub-label]');
    this.input?.addEventListener('input', () => {
      const i = Number(this.input!.value);
      this.follow = i >= this.kept.length - 1;
      this.select(this.kept[i] ?? null);
    });
  }

  /** Forgets the last run (a new one starts). */
  reset() {
    this.kept = [];
    this.phases = [];
    this.follow = true;
    this.select(null);
  }

  /** The next sampler run of this cell's run. */
  phase(opts: PhaseOptions): Phase {
    const phase = new Phase(this, this.phases.length, opts);
    this.phases.push(phase);
    return phase;
  }

  add(step: Kept, shape: [number, number, number]) {
    this.shape = shape;
    this.kept.push(step);
    this.thin();
    this.select(this.follow ? step : this.selected);
  }

  /** While over budget, the phase with the most steps kept keeps every other one. */
  private thin() {
    const bytes = () => this.kept.reduce((sum, k) => sum + k.bytes, 0);
    while (this.kept.length > MAX_STEPS || bytes() > MAX_BYTES) {
      const counts = this.phases.map((p) => this.kept.filter((k) => k.phase === p.index).length);
      const longest = counts.indexOf(Math.max(...counts));
      const mine = this.kept.filter((k) => k.phase === longest);
      const gone = new Set(mine.filter((_, j) => j % 2 === 1 && j !== mine.length - 1));
      if (!gone.size) break;
      this.kept = this.kept.filter((k) => !gone.has(k));
      this.phases[longest].stride *= 2;
      const at = this.selected;
      if (at && gone.has(at)) { // the nearest kept step before it
        this.selected = this.kept.filter((k) => k.phase < at.phase
          || (k.phase === at.phase && k.step <= at.step)).at(-1) ?? this.kept[0] ?? null;
      }
    }
  }

  private describe(k: Kept): string {
    const { name, steps } = this.phases[k.phase].opts;
    return `${name} step ${k.step} of ${steps}, t = ${k.t}`;
  }

  /** Shows `k` on the scrubber and publishes its values to the page's panes. */
  private select(k: Kept | null) {
    this.selected = k;
    const index = k ? this.kept.indexOf(k) : -1;
    if (this.input) {
      this.input.max = String(Math.max(this.kept.length - 1, 0));
      this.input.value = String(Math.max(index, 0));
      this.input.disabled = this.kept.length === 0;
      this.input.setAttribute('aria-valuetext', k ? this.describe(k) : 'no steps recorded');
    }
    if (this.label) {
      const stride = k ? this.phases[k.phase].stride : 1;
      const thinned = stride > 1 ? ` (one step in ${stride} kept)` : '';
      this.label.textContent = k ? `${this.describe(k)}${thinned}` : 'no steps recorded yet';
    }
    const detail: StepValues = k ? this.values(k)
      : { cell: this.root.dataset.runCell ?? '', label: '', regions: [], values: {} };
    document.dispatchEvent(new CustomEvent(STEP_EVENT, { detail }));
  }

  private values(k: Kept): StepValues {
    const [height, width, channels] = this.shape;
    const image = (data: Float32Array): StepImage => ({ data, height, width, channels });
    const values: Record<string, StepValue> = { ...k.scalars };
    const { x0Raw, ...images } = k.images;
    for (const [name, data] of Object.entries(images)) values[name] = image(data);
    if (values.eps) values.epsTheta = values.eps;
    const byRegion: Record<string, Record<string, StepValue | null>> = {};
    if (x0Raw) byRegion['ddpm.ts#predict-x0'] = { x0: image(x0Raw) };
    // there, eps is the network's output for both branches at once
    if (images.epsC) byRegion['guidance.ts#guided-eps'] = { eps: null };
    return {
      cell: this.root.dataset.runCell ?? '', label: this.describe(k),
      regions: this.phases[k.phase].regions, values, byRegion,
      notes: {
        x0: 'the x_0 estimate, clipped to [-1, 1]',
        'ddpm.ts#predict-x0 x0': 'the x_0 estimate before clipping',
        xt: 'x_t, the input of this step', eps: 'the network\'s eps (guided, if w is set)',
        epsC: 'eps_c, recomputed for image 0', epsU: 'eps_u, recomputed for image 0',
      },
    };
  }
}

const recordings = new WeakMap<HTMLElement, Recording>();

/** The cell's recording, emptied for the run that starts, with the library that run uses. */
export async function startRecording(ctx: CellContext): Promise<Recording> {
  const lib = await library();
  let rec = recordings.get(ctx.root);
  if (!rec) recordings.set(ctx.root, (rec = new Recording(ctx.root, lib)));
  rec.lib = lib;
  rec.reset();
  return rec;
}
