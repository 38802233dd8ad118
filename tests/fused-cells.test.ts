// The cells on webgpu (SwiftShader, forced) and on wasm run the UNet through the fused kernels of
// src/lib/runtime/fused-unet.ts; `?fused=off` runs the plain library. In headless Chromium: the
// guidance cell draws the same pixels both ways (within 1 of 255) and records the same values
// (image 0 at every step: x_t, eps, eps_c and eps_u within 1e-4, and the x_0 estimate, which
// divides by sqrt(alphaBar_t), within 1e-4 / sqrt(alphaBar_t); with the trained model, the first
// step within 1e-4 and the later ones within 1e-3); `?fused=fail` makes the first fused call
// throw, and the cell reruns on the plain library with a note; a lost WebGPU device moves the
// page to the next backend (wasm here), also with a note. No timing is asserted; the runs' times
// are printed (the cell's own caption, in ms).
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { fusedMode } from '../src/lib/runtime/browser';
import { runCell, useSiteBrowser, type CellResult } from './helpers/site-browser';

const PAGE = '/chapters/07-guidance/';
const CELL = '[data-run-cell="guidance"]';
const TOLERANCE = 1e-4;

const site = useSiteBrowser();

/** Each recorded step's images by name, and its 1 / sqrt(alphaBar_t). */
type Steps = { images: Record<string, number[]>; scale: number }[];

interface Run {
  result: CellResult; fused: boolean; note: string; pixels: number[]; steps: Steps; ms: number;
}

/** Runs the guidance cell once on `page` and reads what it drew and recorded. */
async function guidanceRun(page: Page): Promise<Run> {
  const result = await runCell(page, 'guidance');
  const read = await page.evaluate((cell) => {
    const root = document.querySelector(cell)!;
    const canvas = root.querySelector<HTMLCanvasElement>('canvas[data-out="samples"]')!;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    const hooks = window as unknown as { __fusedPath?: () => boolean };
    const caption = root.querySelector('[data-out="caption"]')?.textContent ?? '';
    return {
      fused: hooks.__fusedPath?.() ?? false, pixels: Array.from(data),
      note: root.querySelector('[data-note]')?.textContent ?? '',
      ms: Number(/, (\d+) ms/.exec(caption)?.[1] ?? NaN),
    };
  }, CELL);
  return { result, ...read, steps: await recordedSteps(page) };
}

/** Every recorded step's images (image 0), picked with the scrubber from the keyboard. */
async function recordedSteps(page: Page): Promise<Steps> {
  await page.evaluate(() => document.addEventListener('diffusion:step',
    (e) => Object.assign(window, { lastStep: (e as CustomEvent).detail })));
  const scrub = page.locator(`${CELL} input[type="range"][data-scrub]`);
  const max = Number(await scrub.getAttribute('max'));
  await scrub.focus();
  await page.keyboard.press('Home');
  const steps: Steps = [];
  for (let k = 0; k <= max; k++) {
    if (k > 0) await page.keyboard.press('ArrowRight');
    steps.push(await page.evaluate(() => {
      type Value = { data?: Float32Array } | number;
      const { values } = (window as unknown as { lastStep: { values: Record<string, Value> } })
        .lastStep;
      const images = Object.fromEntries(Object.entries(values)
        .flatMap(([name, v]) => (typeof v === 'object' && v.data ? [[name, Array.from(v.data)]]
          : [])));
      return { images, scale: values.sqrtRecipAlphaBar as number };
    }));
  }
  return steps;
}

const maxDiff = (a: number[], b: number[]) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
};

/** The largest difference between two runs' recorded values at each step, over its images, the
 * x_0 estimate's divided by the step's 1 / sqrt(alphaBar_t); logged by step and name. */
function stepDiffs(a: Steps, b: Steps): number[] {
  expect(a.length).toBe(b.length);
  expect(a.length).toBeGreaterThan(0);
  return a.map(({ images, scale }, k) => {
    expect(Object.keys(images).sort()).toEqual(Object.keys(b[k].images).sort());
    expect(scale).toBeGreaterThanOrEqual(1);
    const step: string[] = [];
    let worst = 0;
    for (const name of Object.keys(images)) {
      const d = maxDiff(images[name], b[k].images[name]) / (name === 'x0' ? scale : 1);
      const size = Math.max(...images[name].map(Math.abs));
      step.push(`${name} ${d.toExponential(2)} (max |v| ${size.toFixed(2)})`);
      worst = Math.max(worst, d);
    }
    console.log(`step ${k + 1}: ${step.join(', ')}`);
    return worst;
  });
}

const stepsDiff = (a: Steps, b: Steps) => Math.max(...stepDiffs(a, b));

const blank = (pixels: number[]) => pixels.every((v, i) => v === pixels[i % 4]);

async function openRun(query: string, runs = 1) {
  const { page, errors } = await site.open(`${PAGE}?backend=webgpu&${query}`);
  const all: Run[] = [];
  for (let i = 0; i < runs; i++) all.push(await guidanceRun(page));
  return { page, errors, runs: all };
}

describe('?fused=', () => {
  it('is on by default, off or fail when asked, and an error that lists them otherwise', () => {
    expect(['', '?fused=', '?fused=on', '?fused=off', '?fused=fail'].map(fusedMode))
      .toEqual(['on', 'on', 'on', 'off', 'fail']);
    expect(() => fusedMode('?fused=yes'))
      .toThrow('?fused=yes is not a mode: expected one of on, off, fail');
  });
});

describe('the guidance cell on wasm, fused (WebAssembly SIMD GroupNorm) and plain', () => {
  it('draws the same pixels and records the same values with ?fused=off', async () => {
    const runs: Run[] = [];
    for (const extra of ['', '&fused=off']) {
      const { page, errors } = await site.open(`${PAGE}?backend=wasm&cells=tiny${extra}`);
      runs.push(await guidanceRun(page));
      expect(errors).toEqual([]);
      await page.close();
    }
    for (const run of runs) {
      expect(run.result).toMatchObject({ state: 'done', backend: 'wasm', error: '', blank: [] });
      expect(run.note).toBe('');
    }
    expect(runs.map((r) => r.fused)).toEqual([true, false]);
    const values = stepsDiff(runs[0].steps, runs[1].steps);
    const pixels = maxDiff(runs[0].pixels, runs[1].pixels);
    console.log(`tiny guidance on wasm, fused vs plain: max |value difference| `
      + `${values.toExponential(2)}, max pixel difference ${pixels} of 255`);
    expect(values).toBeLessThan(TOLERANCE);
    expect(pixels).toBeLessThanOrEqual(1);
  }, 300_000);
});

describe('the guidance cell on webgpu, fused and plain', () => {
  it('draws the same pixels and records the same values with ?fused=off', async () => {
    const fused = await openRun('cells=tiny');
    const plain = await openRun('cells=tiny&fused=off');
    for (const { runs: [run], errors, page } of [fused, plain]) {
      expect(run.result).toMatchObject({ state: 'done', backend: 'webgpu', error: '', blank: [] });
      expect(run.note).toBe('');
      expect(errors).toEqual([]);
      await page.close();
    }
    expect([fused.runs[0].fused, plain.runs[0].fused]).toEqual([true, false]);
    const values = stepsDiff(fused.runs[0].steps, plain.runs[0].steps);
    const pixels = maxDiff(fused.runs[0].pixels, plain.runs[0].pixels);
    console.log(`tiny guidance, fused vs plain: max |value difference| ${values.toExponential(2)}`
      + `, max pixel difference ${pixels} of 255`);
    expect(values).toBeLessThan(TOLERANCE);
    expect(pixels).toBeLessThanOrEqual(1);
  }, 300_000);

  it('the trained model at 2 DDIM steps, batch 8: the same values both ways, and the times',
    async () => {
      const settings = async (page: Page) => {
        await page.locator(`${CELL} [data-controls] [name="steps"]`).fill('2');
      };
      const runs: Record<string, Run[]> = {};
      for (const [name, extra] of [['fused', ''], ['plain', '&fused=off']]) {
        const { page, errors } = await site.open(`${PAGE}?backend=webgpu${extra}`);
        await settings(page);
        runs[name] = [await guidanceRun(page)];
        expect(errors).toEqual([]);
        await page.close();
      }
      for (const run of [...runs.fused, ...runs.plain]) {
        expect(run.result).toMatchObject({ state: 'done', backend: 'webgpu', blank: [] });
      }
      expect([runs.fused[0].fused, runs.plain[0].fused]).toEqual([true, false]);
      const diffs = stepDiffs(runs.fused[0].steps, runs.plain[0].steps);
      const values = Math.max(...diffs);
      const pixels = maxDiff(runs.fused[0].pixels, runs.plain[0].pixels);
      const times = (r: Run[]) => r.map((x) => `${x.ms} ms`).join(' then ');
      console.log(`trained guidance (8 images, w = 3, 2 DDIM steps) on SwiftShader: fused `
        + `${times(runs.fused)}, plain ${times(runs.plain)}; max |value difference| `
        + `${values.toExponential(2)}, max pixel difference ${pixels} of 255`);
      // the first step's network sees the same x_T both ways; later steps start from x_t that
      // differ by the earlier steps' rounding, which the trained network amplifies (about 8x)
      expect(diffs[0]).toBeLessThan(TOLERANCE);
      expect(values).toBeLessThan(10 * TOLERANCE);
      expect(pixels).toBeLessThanOrEqual(1);
    }, 600_000);

  it('falls back to the plain library with a note when the fused kernels fail', async () => {
    const plain = await openRun('cells=tiny&fused=off');
    await plain.page.close();
    const { page, errors, runs } = await openRun('cells=tiny&fused=fail', 2);
    for (const run of runs) {
      expect(run.result).toMatchObject({ state: 'done', backend: 'webgpu', error: '', blank: [] });
      expect(run.note).toBe('Fused WebGPU kernels failed (forced by ?fused=fail): ran the plain '
        + 'library.');
      expect(run.fused).toBe(false);
      expect(blank(run.pixels)).toBe(false);
      // the plain library: the numbers of ?fused=off
      expect(stepsDiff(run.steps, plain.runs[0].steps)).toBeLessThan(TOLERANCE);
    }
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);

  it('moves to the next backend with a note when the WebGPU device is lost', async () => {
    const { page, errors, runs: [first] } = await openRun('cells=tiny');
    expect(first.result).toMatchObject({ state: 'done', backend: 'webgpu' });
    expect(first.fused).toBe(true);
    await page.evaluate(() => {
      (window as unknown as { __loseWebGPUDevice(): void }).__loseWebGPUDevice();
    });
    const after = await guidanceRun(page);
    expect(after.result).toMatchObject({ state: 'done', backend: 'wasm', error: '', blank: [] });
    expect(after.note).toMatch(/^The WebGPU device was lost \(.+\): this cell ran on wasm\.$/);
    expect(after.fused).toBe(false);
    expect(stepsDiff(after.steps, first.steps)).toBeLessThan(TOLERANCE);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);

  it('reruns on the next backend when the WebGPU device is lost during a run', async () => {
    const { page, errors } = await site.open(`${PAGE}?backend=webgpu&cells=tiny`);
    await page.locator(`${CELL} button[data-run]`).click();
    // lose the device once the sampler is stepping
    await page.waitForFunction((cell) => /step \d/.test(document.querySelector(cell)
      ?.querySelector('[data-progress-text]')?.textContent ?? ''), CELL, { polling: 20 });
    await page.evaluate(() => {
      (window as unknown as { __loseWebGPUDevice(): void }).__loseWebGPUDevice();
    });
    await page.waitForFunction((cell) => ['done', 'error', 'cancelled']
      .includes(document.querySelector(cell)?.getAttribute('data-state') ?? ''), CELL,
    { timeout: 240_000 });
    const seen = await page.evaluate((cell) => {
      const root = document.querySelector<HTMLElement>(cell)!;
      const text = (sel: string) => root.querySelector(sel)?.textContent ?? '';
      return { state: root.dataset.state, backend: root.dataset.backend,
        error: text('[data-error]'), note: text('[data-note]') };
    }, CELL);
    expect(seen).toMatchObject({ state: 'done', backend: 'wasm', error: '' });
    expect(seen.note).toMatch(/^The WebGPU device was lost \(.+\): this cell ran on wasm\.$/);
    const again = await guidanceRun(page);
    expect(again.result).toMatchObject({ state: 'done', backend: 'wasm', error: '', blank: [] });
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);
});
