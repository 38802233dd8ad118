// The step recorder of the sampling cells (src/lib/runtime/cells/record.ts) in Node, on wasm, with
// a stand-in for the cell's DOM: it keeps within MAX_STEPS steps and MAX_BYTES bytes by thinning
// the longest sampler's steps, always keeps a run's last step, publishes what the scrubber picks,
// and leaves no tensor behind.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { ddimSample, ddpmSample, makeSchedule, type EpsFn, type Shape4D } from '../src/lib/diffusion';
import type { CellContext } from '../src/lib/runtime/cells/controller';
import { MAX_BYTES, MAX_STEPS, startRecording } from '../src/lib/runtime/cells/record';
import { STEP_EVENT, type StepValues } from '../src/lib/site/step-values';
import { backend } from './helpers/backend';

class FakeInput extends EventTarget {
  max = '0';
  value = '0';
  disabled = true;
  attributes: Record<string, string> = {};
  setAttribute(name: string, value: string) {
    this.attributes[name] = value;
  }
}

const events: StepValues[] = [];

beforeAll(async () => {
  await backend('wasm');
  const page = globalThis as unknown as { document?: EventTarget };
  page.document ??= new EventTarget();
  page.document.addEventListener(STEP_EVENT, (e) => events.push((e as CustomEvent<StepValues>).detail));
});

/** A cell root with a scrubber, as Cell.astro renders it with `scrub`. */
function fakeCell() {
  const input = new FakeInput();
  const label = { textContent: '' };
  const root = {
    dataset: { runCell: 'test-cell' },
    querySelector: (sel: string) => (sel === 'input[data-scrub]' ? input : sel === '[data-scrub-label]' ? label : null),
  };
  return { input, label, ctx: { root } as unknown as CellContext };
}

const pick = (input: FakeInput, index: number) => {
  input.value = String(index);
  input.dispatchEvent(new Event('input'));
  return events.at(-1)!;
};

/** A stand-in network: eps = x_t / 2, so that every step's x_0 estimate differs. */
const halfEps: EpsFn = (xt) => tf.mul(xt, 0.5) as tf.Tensor4D;

describe('the step recorder', () => {
  it('keeps DDIM\'s steps whole and thins DDPM\'s to fit MAX_STEPS, leaking nothing', async () => {
    const { input, label, ctx } = fakeCell();
    const before = tf.memory().numTensors;
    const schedule = makeSchedule('ddpm-linear', 2500);
    const shape: Shape4D = [2, 8, 8, 1];
    const rec = await startRecording(ctx);
    const ddim = rec.phase({ name: 'DDIM', sampler: 'ddim', steps: 50, eta: 0.5, schedule });
    const ddpm = rec.phase({ name: 'DDPM', sampler: 'ddpm', steps: 2500, schedule });
    const a = await ddim.recording(ddimSample(ddim.wrap(halfEps), schedule, shape,
      { seed: 1, steps: 50, eta: 0.5, onStep: (info) => ddim.record(info) }));
    const b = await ddpm.recording(ddpmSample(ddpm.wrap(halfEps), schedule, shape,
      { seed: 1, onStep: (info) => ddpm.record(info) }));
    tf.dispose([a, b]);
    expect(tf.memory().numTensors).toBe(before);
    const kept = Number(input.max) + 1;
    expect(kept).toBeLessThanOrEqual(MAX_STEPS);
    expect(kept).toBeGreaterThan(MAX_STEPS / 2);
    expect(input.value).toBe(input.max); // it followed the run to its last step
    expect(label.textContent).toMatch(/^DDPM step 2500 of 2500, t = 0 \(one step in \d+ kept\)$/);
    const step50 = pick(input, 49);
    expect(step50.label).toBe('DDIM step 50 of 50, t = 1');
    expect(step50.values).toMatchObject({ t: 1, tauPrev: 0, eta: 0.5, alphaBarPrev: 1 - 1e-4 });
    expect(step50.regions).toContain('ddim.ts#ddim-step');
    const x0 = step50.values.x0 as { data: Float32Array; height: number };
    expect([x0.data.length, x0.height]).toEqual([64, 8]);
    expect(pick(input, 50).label).toBe('DDPM step 1 of 2500, t = 2499');
    expect(pick(input, 50).regions).toContain('ddpm.ts#ddpm-step');
    expect(Object.keys(pick(input, 50).values)).toEqual(expect.arrayContaining(['xt', 'eps', 'x0', 'mu', 'sigma', 'betaTilde']));
  }, 120_000);

  it('keeps within MAX_BYTES for large images', async () => {
    const { input, ctx } = fakeCell();
    const schedule = makeSchedule('ddpm-linear', 400);
    const shape: Shape4D = [1, 64, 64, 3];
    const rec = await startRecording(ctx);
    const ddpm = rec.phase({ name: 'DDPM', sampler: 'ddpm', steps: 400, schedule });
    tf.dispose(await ddpm.recording(ddpmSample(ddpm.wrap(halfEps), schedule, shape,
      { seed: 1, onStep: (info) => ddpm.record(info) })));
    // xt, eps, x0, x0 before clipping and mu: five images of 64 x 64 x 3 floats a step
    const perStep = 5 * 64 * 64 * 3 * 4;
    const kept = Number(input.max) + 1;
    expect(kept * perStep).toBeLessThanOrEqual(MAX_BYTES);
    expect(kept).toBeGreaterThan(MAX_BYTES / perStep / 2);
    expect(events.at(-1)!.label).toMatch(/^DDPM step 400 of 400, t = 0/);
  }, 120_000);
});
