// The cells on webgpu (SwiftShader, forced) run the UNet through the fused kernels of
// src/lib/runtime/fused-unet.ts; `?fused=off` runs the plain library. In headless Chromium: the
// guidance cell draws the same pixels both ways and records the same values (eps, x_t and the x_0
// estimate of image 0 at every step, within 1e-4); `?fused=fail` makes the first fused call throw,
// and the cell reruns on the plain library with a note; a lost WebGPU device moves the page to
// the next backend (wasm here), also with a note. No timing is asserted; the runs' times are
// printed (the cell's own caption, in ms).
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { runCell, useSiteBrowser, type CellResult } from './helpers/site-browser';

const PAGE = '/chapters/07-guidance/';
const CELL = '[data-run-cell="guidance"]';
const TOLERANCE = 1e-4;

const site = useSiteBrowser();

type Steps = Record<string, number[]>[];

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
      type Image = { data?: Float32Array };
      const { values } = (window as unknown as { lastStep: { values: Record<string, Image> } })
        .lastStep;
      return Object.fromEntries(Object.entries(values).filter(([, v]) => v?.data)
        .map(([name, v]) => [name, Array.from(v.data!)]));
    }));
  }
  return steps;
}

const maxDiff = (a: number[], b: number[]) => {
  expect(a.length).toBe(b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
};

/** The largest difference between two runs' recorded values, over every step and image. */
function stepsDiff(a: Steps, b: Steps): number {
  expect(a.length).toBe(b.length);
  expect(a.length).toBeGreaterThan(0);
  return Math.max(...a.map((step, k) => {
    expect(Object.keys(step).sort()).toEqual(Object.keys(b[k]).sort());
    return Math.max(...Object.keys(step).map((name) => maxDiff(step[name], b[k][name])));
  }));
}

const blank = (pixels: number[]) => pixels.every((v, i) => v === pixels[i % 4]);

async function openRun(query: string, runs = 1) {
  const { page, errors } = await site.open(`${PAGE}?backend=webgpu&${query}`);
  const all: Run[] = [];
  for (let i = 0; i < runs; i++) all.push(await guidanceRun(page));
  return { page, errors, runs: all };
}

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

  it('the trained model at 4 DDIM steps, batch 8: the same values both ways, and the times',
    async () => {
      const settings = async (page: Page) => {
        await page.locator(`${CELL} [data-controls] [name="steps"]`).fill('4');
      };
      const runs: Record<string, Run[]> = {};
      for (const [name, extra] of [['fused', ''], ['plain', '&fused=off']]) {
        const { page, errors } = await site.open(`${PAGE}?backend=webgpu${extra}`);
        await settings(page);
        runs[name] = [await guidanceRun(page), await guidanceRun(page)];
        expect(errors).toEqual([]);
        await page.close();
      }
      for (const run of [...runs.fused, ...runs.plain]) {
        expect(run.result).toMatchObject({ state: 'done', backend: 'webgpu', blank: [] });
      }
      expect(runs.fused.map((r) => r.fused)).toEqual([true, true]);
      expect(runs.plain.map((r) => r.fused)).toEqual([false, false]);
      const values = stepsDiff(runs.fused[1].steps, runs.plain[1].steps);
      const pixels = maxDiff(runs.fused[1].pixels, runs.plain[1].pixels);
      const times = (r: Run[]) => r.map((x) => `${x.ms} ms`).join(' then ');
      console.log(`trained guidance (8 images, w = 3, 4 DDIM steps) on SwiftShader: fused `
        + `${times(runs.fused)}, plain ${times(runs.plain)}; max |value difference| `
        + `${values.toExponential(2)}, max pixel difference ${pixels} of 255`);
      expect(values).toBeLessThan(TOLERANCE);
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
});
