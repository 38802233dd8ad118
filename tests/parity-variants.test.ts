// Parity at other widths, T, batch sizes, image sizes and without the class embedding: fixtures in the PyTorch
// fixture's format, made by an independent float64 reference (tests/helpers/reference.ts), checked through the CLI.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeSafetensors } from '../src/lib/diffusion/weights';
import { maxAbsDiff } from './helpers/backend';
import { refEps, uniform, type RefModel } from './helpers/reference';

interface Variant { io: number; C: number; classes: number | null; size: number; T: number; B: number; steps: number }

function shapes(v: Variant): Record<string, number[]> {
  const { io, C } = v;
  const convs: [string, number, number][] = [['down_block1', io, C], ['down_block2.conv', C, C], ['down_block3', C, 2 * C],
    ['down_block4.conv', 2 * C, 2 * C], ['middle_block.conv1', 2 * C, 2 * C], ['middle_block.conv2', 2 * C, 2 * C],
    ['up_block1.conv', 2 * C, 2 * C], ['up_block2', 2 * C, C], ['up_block3.conv', C, C], ['up_block4', C, io]];
  const s: Record<string, number[]> = { 'noise_embedding.weight': [2 * C, C], 'noise_embedding.bias': [2 * C] };
  for (const [n, i, o] of convs) Object.assign(s, { [`${n}.weight`]: [o, i, 3, 3], [`${n}.bias`]: [o] });
  if (v.classes !== null) s['class_emb.weight'] = [v.classes, 2 * C];
  return s;
}

/** Writes weights.safetensors and case.json for a variant; returns the directory and the expected values. */
function makeFixture(v: Variant, seed: number) {
  const rand = uniform(seed);
  const m: RefModel = { io: v.io, C: v.C, classes: v.classes, size: v.size, w: {} };
  for (const [name, shape] of Object.entries(shapes(v))) {
    const fanIn = name.startsWith('class_emb') ? 1 : shape.slice(1).reduce((a, b) => a * b, 1) || 1;
    const bound = name.startsWith('class_emb') ? 1 : name.endsWith('bias') ? 0.1 : 1.5 / Math.sqrt(name === 'noise_embedding.bias' ? v.C : fanIn);
    const n = shape.reduce((a, b) => a * b, 1);
    m.w[name] = { shape, data: Float64Array.from({ length: n }, () => rand(-bound, bound)) };
  }
  const n = v.B * v.io * v.size * v.size;
  const img = () => Float64Array.from({ length: n }, () => rand(-1, 1));
  const T = v.T;
  const beta = Array.from({ length: T }, (_, i) => 0.0003 * (1000 / T) + (i * (0.03 - 0.0003) * (1000 / T)) / (T - 1));
  const abar: number[] = [];
  beta.reduce((p, b, i) => (abar[i] = p * (1 - b)), 1);
  const labels = v.classes === null ? null : Array.from({ length: v.B }, (_, i) => (i * 7 + 3) % v.classes!);
  const ts = Array.from({ length: v.B }, (_, i) => Math.floor(((i + 1) * (T - 1)) / v.B));
  const x = img();
  const eps = refEps(m, x, v.B, ts, labels);
  // one DDIM step and the whole DDIM loop, as the paper's code runs them (eta 0, x0 clamped)
  const ddimStep = (xin: Float64Array, t: number, tp: number) => {
    const e = refEps(m, xin, v.B, Array(v.B).fill(t), labels);
    return xin.map((xi, k) => {
      const x0 = Math.min(1, Math.max(-1, (xi - Math.sqrt(1 - abar[t]) * e[k]) / Math.sqrt(abar[t])));
      return Math.sqrt(abar[tp]) * x0 + Math.sqrt(1 - abar[tp]) * e[k];
    });
  };
  const c = Math.floor(T / v.steps);
  const seq = Array.from({ length: v.steps }, (_, i) => i * c + 1);
  const prev = [0, ...seq.slice(0, -1)];
  const xT = Float64Array.from({ length: n }, () => rand(-2, 2));
  let xs = xT;
  for (let i = v.steps - 1; i >= 0; i--) xs = ddimStep(xs, seq[i], prev[i]);
  const tStep = Math.floor(T / 2);
  const nest = (a: ArrayLike<number>) => {
    const out: number[][][][] = [];
    for (let b = 0; b < v.B; b++) {
      out.push([]);
      for (let ch = 0; ch < v.io; ch++) {
        out[b].push([]);
        for (let i = 0; i < v.size; i++) out[b][ch].push(Array.from(a).slice(((b * v.io + ch) * v.size + i) * v.size, ((b * v.io + ch) * v.size + i + 1) * v.size));
      }
    }
    return out;
  };
  const dir = mkdtempSync(join(tmpdir(), 'parity-variant-'));
  writeFileSync(join(dir, 'weights.safetensors'), writeSafetensors(Object.fromEntries(
    Object.entries(m.w).map(([k, t]) => [k, { shape: t.shape, data: Float32Array.from(t.data) }]))));
  writeFileSync(join(dir, 'case.json'), JSON.stringify({
    model: { io_channels: v.io, model_channels: v.C, class_num: v.classes, image_size: v.size },
    schedule: { kind: 'paper-linear', timesteps: T, beta_start: 0.0003 * (1000 / T), beta_end: 0.03 * (1000 / T) },
    q_sample: { x0: nest(x), t: ts, noise: nest(x) },
    eps: { xt: nest(x), t: ts, label: labels },
    ddim_step: { x: nest(x), t: tStep, t_prev: tStep - 5, label: labels },
    ddim: { steps: v.steps, label: labels, eta: 0, clip_x0: true, xT: nest(xT) },
  }));
  const expected = { eps, step: ddimStep(x, tStep, tStep - 5), x0: xs, seq, prev, abar };
  return { dir, expected };
}

const variants: [string, Variant][] = [
  ['64 channels, RGB 32x32, no class embedding, T = 100, batch 3', { io: 3, C: 64, classes: null, size: 32, T: 100, B: 3, steps: 4 }],
  ['32 channels, 5 classes, T = 500, batch 5', { io: 1, C: 32, classes: 5, size: 12, T: 500, B: 5, steps: 6 }],
  ['96 channels, 3 classes, T = 31 (the smallest the paper schedule allows), batch 1', { io: 1, C: 96, classes: 3, size: 8, T: 31, B: 1, steps: 3 }],
];

describe.each(variants)('parity with the float64 reference: %s', (_, v) => {
  const { dir, expected } = makeFixture(v, 1234 + v.C);
  const out = join(dir, 'out.json');
  execFileSync('npm', ['run', '-s', 'parity', '--', '--fixture', dir, '--out', out]);
  const got = JSON.parse(readFileSync(out, 'utf8'));
  const flat = (a: unknown) => (a as unknown[]).flat(3) as number[];
  it('schedule within 1e-7', () => expect(maxAbsDiff(got.schedule.alphas_cumprod, expected.abar)).toBeLessThan(1e-7));
  it('eps within 1e-4', () => expect(maxAbsDiff(flat(got.eps.eps), expected.eps)).toBeLessThan(1e-4));
  it('one DDIM step within 1e-4', () => expect(maxAbsDiff(flat(got.ddim_step.x_prev), expected.step)).toBeLessThan(1e-4));
  it('the DDIM loop: same sequences, x0 within 5e-3', () => {
    expect(got.ddim.timestep_seq).toEqual(expected.seq);
    expect(got.ddim.prev_seq).toEqual(expected.prev);
    expect(maxAbsDiff(flat(got.ddim.x0), expected.x0)).toBeLessThan(5e-3);
  });
});
