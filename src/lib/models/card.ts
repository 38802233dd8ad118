// The model card, public/models/NAME.json beside NAME.safetensors: one schema and one parser for
// the scripts (train, sample, eval), the models page and the cells. Browser-safe: no Node imports.
import type { ScheduleKind } from '../diffusion/schedule';

export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['paper-linear', 'ddpm-linear', 'cosine'];

export interface Architecture {
  imageChannels: number;
  channels: number;
  classes: number | null;
  imageSize: number;
}

export interface Recommended {
  sampler: 'ddpm' | 'ddim';
  steps: number;
  eta: number; // absent in older cards: 0, the paper's deterministic DDIM
  guidance: number;
  recomputeEps: boolean; // DDIM re-derives eps from the clipped x_0 (absent in older cards: false)
  chosen?: string; // how eval --tune chose these settings
}

export interface LossPoint { imagesSeen: number; loss: number }

/** How the run went, as scripts/train.ts writes it. */
export interface TrainingRecord {
  command: string;
  dataset: string; images: number; split: string;
  epochs: number; steps: number; imagesSeen: number; batch: number; seed: number;
  lr: number; warmupSteps?: number; lrFrom?: { step: number; lr: number }[];
  labelDropout: number; emaDecay: number | null; weights: string;
  finalLoss: number | null; finalLossWindow: number; lossCurve: LossPoint[];
  wallSeconds: number; machine: string;
  initFrom?: {
    checkpoint: string; channels: number; steps: number; imagesSeen: number; widenNoise: number;
  };
}

export interface EvalRow {
  guidance: number; recognised: number; perClass: number[]; frechet: number; grid?: string;
}

/** What `npm run eval` measured, as scripts/eval.ts writes it. */
export interface EvalRecord {
  command: string; classifier: string; classifierHeldOutAccuracy: number | null;
  sampler: string; steps: number; eta?: number; recomputeEps?: boolean;
  seed: number; samplesPerClass: number; imagesSeen: number | null; heldOutImages: number;
  floor: { images: number; recognised: number; frechet: number };
  defaultGuidance: number; defaultEta?: number; defaultRecomputeEps?: boolean;
  target: number | null; targetMet: boolean | null;
  results: EvalRow[];
  date: string;
}

export interface ModelCard {
  name: string;
  dataset: string;
  architecture: Architecture;
  schedule: { kind: ScheduleKind; T: number };
  classNames: string[];
  recommended: Recommended;
  training?: TrainingRecord;
  eval?: EvalRecord;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const shown = (v: unknown) => (v === undefined ? 'missing' : JSON.stringify(v).slice(0, 60));

/** Reads the fields of one object; the first bad one throws "SOURCE: PATH is X; expected Y". */
function reader(source: string, obj: Json, at: string) {
  const check = <T>(key: string, ok: (v: unknown) => boolean, expected: string): T => {
    if (ok(obj[key])) return obj[key] as T;
    throw new Error(`${source}: ${at}${key} is ${shown(obj[key])}; expected ${expected}`);
  };
  const isInt = (min: number) => (v: unknown) => Number.isInteger(v) && (v as number) >= min;
  return {
    int: (key: string, min = 0) => check<number>(key, isInt(min), `an integer >= ${min}`),
    num: (key: string) => check<number>(key, Number.isFinite, 'a number'),
    str: (key: string) => check<string>(key, (v) => typeof v === 'string' && v !== '', 'a string'),
    bool: (key: string) => check<boolean>(key, (v) => typeof v === 'boolean', 'true or false'),
    oneOf: <T extends string>(key: string, values: readonly T[]) =>
      check<T>(key, (v) => values.includes(v as T), `one of ${values.join(', ')}`),
    object: (key: string) => check<Json>(key, isObject, 'an object'),
    array: (key: string) => check<unknown[]>(key, Array.isArray, 'an array'),
    strings: (key: string) => check<string[]>(key,
      (v) => Array.isArray(v) && v.every((s) => typeof s === 'string'), 'an array of strings'),
    /** `fallback` where the field is absent or null, else the field as `read` reads it. */
    optional: <T>(key: string, read: () => T, fallback: T) =>
      (obj[key] == null ? fallback : read()),
  };
}

/**
 * A model card from its parsed JSON, validated (`source` names the file in errors), with what older
 * cards lack filled in: recommended.eta (0) and recommended.recomputeEps (false). Training and eval
 * blocks, when present, are checked for the fields the models page reads.
 */
export function parseModelCard(json: unknown, source: string): ModelCard {
  if (!isObject(json)) throw new Error(`${source}: ${shown(json)} is not a model card (an object)`);
  const card = reader(source, json, '');
  const [name, dataset] = [card.str('name'), card.str('dataset')];
  const classNames = card.strings('classNames');
  const a = reader(source, card.object('architecture'), 'architecture.');
  const architecture: Architecture = {
    imageChannels: a.int('imageChannels', 1),
    channels: a.int('channels', 1),
    classes: a.optional<number | null>('classes', () => a.int('classes', 1), null),
    imageSize: a.int('imageSize', 1),
  };
  const s = reader(source, card.object('schedule'), 'schedule.');
  const schedule = { kind: s.oneOf('kind', SCHEDULE_KINDS), T: s.int('T', 2) };
  const r = reader(source, card.object('recommended'), 'recommended.');
  const chosen = r.optional<string | undefined>('chosen', () => r.str('chosen'), undefined);
  const recommended: Recommended = {
    sampler: r.oneOf('sampler', ['ddpm', 'ddim'] as const),
    steps: r.int('steps', 1),
    eta: r.optional('eta', () => r.num('eta'), 0),
    guidance: r.num('guidance'),
    recomputeEps: r.optional('recomputeEps', () => r.bool('recomputeEps'), false),
    ...(chosen === undefined ? {} : { chosen }),
  };
  const out: ModelCard = { name, dataset, architecture, schedule, classNames, recommended };
  if (json.training !== undefined) out.training = checkTraining(source, card.object('training'));
  if (json.eval !== undefined) out.eval = checkEval(source, card.object('eval'));
  return out;
}

function checkTraining(source: string, t: Json): TrainingRecord {
  const r = reader(source, t, 'training.');
  ['imagesSeen', 'images', 'steps', 'batch', 'seed', 'wallSeconds'].forEach((k) => r.int(k));
  ['lr', 'labelDropout'].forEach((k) => r.num(k));
  ['command', 'machine'].forEach((k) => r.str(k));
  r.array('lossCurve').forEach((p, i) => {
    const point = reader(source, isObject(p) ? p : {}, `training.lossCurve[${i}].`);
    point.int('imagesSeen');
    point.num('loss');
  });
  return t as unknown as TrainingRecord;
}

function checkEval(source: string, e: Json): EvalRecord {
  const r = reader(source, e, 'eval.');
  ['samplesPerClass', 'steps'].forEach((k) => r.int(k, 1));
  r.str('classifier');
  const floor = reader(source, r.object('floor'), 'eval.floor.');
  ['recognised', 'frechet'].forEach((k) => floor.num(k));
  r.array('results').forEach((row, i) => {
    const q = reader(source, isObject(row) ? row : {}, `eval.results[${i}].`);
    ['guidance', 'recognised', 'frechet'].forEach((k) => q.num(k));
  });
  return e as unknown as EvalRecord;
}
