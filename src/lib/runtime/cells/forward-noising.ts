// Forward noising: x_t = sqrt(alphaBar_t) x_0 + sqrt(1 - alphaBar_t) eps for a real digit, with
// each schedule's curves.
import * as tf from '@tensorflow/tfjs-core';
import type { ScheduleKind } from '../../diffusion';
import type { CellContext } from './controller';
import { drawCurves, drawImages } from './draw';
import { digitBatch, digits, library, startEngine } from './engine';

export const live = true;

const KINDS: { kind: ScheduleKind; color: string }[] = [
  { kind: 'paper-linear', color: '#1565c0' }, { kind: 'ddpm-linear', color: '#2e7d32' },
  { kind: 'cosine', color: '#c62828' },
];
const STRIP = 8;

export async function run(ctx: CellContext) {
  await startEngine(ctx);
  const { makeSchedule, qSample, randn, rngFromSeed } = await library();
  const d = await digits();
  const kind = ctx.value('schedule') as ScheduleKind;
  const T = Math.round(ctx.number('T'));
  const slider = ctx.root.querySelector<HTMLInputElement>('[name="t"]')!;
  slider.max = String(T - 1);
  const t = Math.min(T - 1, Math.max(0, Math.round(ctx.number('t'))));
  const index = Math.min(d.count - 1, Math.max(0, Math.round(ctx.number('digit'))));
  const schedules = KINDS.map(({ kind: k, color }) => ({ s: makeSchedule(k, T), color }));
  const s = schedules.find(({ s: sc }) => sc.kind === kind)?.s;
  if (!s) {
    throw new Error(`unknown schedule "${kind}": expected ${KINDS.map((k) => k.kind).join(', ')}`);
  }
  const stripTs = Array.from({ length: STRIP }, (_, j) => Math.round((j * (T - 1)) / (STRIP - 1)));
  const [xt, strip] = tf.tidy(() => {
    const x0 = digitBatch(d, [index]); // [1, 28, 28, 1]
    const eps = randn<tf.Rank.R4>([1, 28, 28, 1], rngFromSeed(ctx.seed));
    const x0s = tf.tile(x0, [STRIP, 1, 1, 1]); // [8, 28, 28, 1], one noise image for every t
    const epsStrip = tf.tile(eps, [STRIP, 1, 1, 1]);
    return [tf.concat([x0, qSample(s, x0, [t], eps)]), qSample(s, x0s, stripTs, epsStrip)];
  });
  try {
    const [xtData, stripData] = await Promise.all([xt.data(), strip.data()]);
    drawImages(ctx.canvas('xt'), xtData, 2, 28, 28, { range: [-1, 1], gap: 2 });
    drawImages(ctx.canvas('strip'), stripData, STRIP, 28, 28, { range: [-1, 1] });
  } finally {
    xt.dispose();
    strip.dispose();
  }
  drawCurves(ctx.canvas('alpha-bar'), schedules.map(({ s: sc, color }) => ({
    label: sc.kind, values: sc.alphaBar, color, dashed: sc !== s,
  })), { marker: t, title: 'alphaBar_t' });
  drawCurves(ctx.canvas('snr'), schedules.map(({ s: sc, color }) => ({
    label: sc.kind, values: sc.alphaBar.map((a) => a / (1 - a)), color, dashed: sc !== s,
  })), { marker: t, log: true, title: 'SNR = alphaBar / (1 - alphaBar), log scale' });
  const snr = s.alphaBar[t] / (1 - s.alphaBar[t]);
  ctx.show('stats', `digit #${index} (a ${d.labels[index]}), ${kind}, t = ${t}: `
    + `alphaBar = ${s.alphaBar[t].toPrecision(4)}, `
    + `sqrt(alphaBar) = ${s.sqrtAlphaBar[t].toPrecision(4)}, SNR = ${snr.toPrecision(3)}`);
  ctx.show('strip-caption', `x_t at t = ${stripTs.join(', ')} (same eps)`);
  ctx.show('t-value', String(t));
  ctx.progress(1, 1, 'drawn');
}
