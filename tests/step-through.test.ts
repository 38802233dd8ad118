// Step-through of the sampling cells in headless Chromium, on wasm and on webgpu (SwiftShader), at
// ?cells=tiny: a run records its steps, the scrubber (input[data-scrub], from the keyboard) picks
// one, and hovering or focusing a symbol in a pane of a region that step ran, or in the equation
// beside it, opens a popover ([data-value]) with that step's value. Recording leaks no tensors.
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { runCell, useSiteBrowser } from './helpers/site-browser';

const DDIM_PAGE = '/chapters/06-ddim/';
const GUIDANCE_PAGE = '/chapters/07-guidance/';
const STEP_PANE = '[data-region="ddim.ts#ddim-step"]';

const site = useSiteBrowser();

const open = site.open;

type Popover = { open: boolean; sym: string; step: string; hash: string; text: string; png: string };

/** What the popover shows now. */
function popover(page: Page): Promise<Popover> {
  return page.evaluate(() => {
    const p = document.querySelector<HTMLElement>('[data-value]');
    const canvas = p?.querySelector('canvas');
    return {
      open: !!p && !p.hidden && p.getAttribute('role') === 'tooltip',
      sym: p?.dataset.value ?? '', step: p?.dataset.step ?? '', hash: p?.dataset.hash ?? '',
      text: p?.textContent ?? '', png: canvas?.toDataURL() ?? '',
    };
  });
}

/** Hovers the first element with `sym` under `within`, and returns the popover it opens. */
async function hover(page: Page, within: string, sym: string): Promise<Popover> {
  await page.mouse.move(0, 0);
  await page.locator(`${within} [data-sym~="${sym}"]`).first().hover();
  await page.waitForFunction(() => !document.querySelector<HTMLElement>('[data-value]')?.hidden);
  return popover(page);
}

/** Moves the cell's scrubber with the keyboard: Home, then `right` presses of ArrowRight. */
async function scrubTo(page: Page, cell: string, right: number) {
  const scrub = page.locator(`[data-run-cell="${cell}"] input[type="range"][data-scrub]`);
  await scrub.focus();
  await page.keyboard.press('Home');
  for (let i = 0; i < right; i++) await page.keyboard.press('ArrowRight');
  return scrub.evaluate((el: HTMLInputElement) => ({
    value: el.value, max: el.max, text: el.getAttribute('aria-valuetext') ?? '',
    label: el.closest('[data-run-cell]')?.querySelector('[data-scrub-label]')?.textContent ?? '',
  }));
}

const numTensors = (page: Page) => page.evaluate(() =>
  (window as unknown as { __tfMemory(): { numTensors: number } }).__tfMemory().numTensors);

describe.each(['wasm', 'webgpu'])('step-through on %s', (backend) => {
  it('the scrubber picks a DDIM step and the panes show its values', async () => {
    const { page, errors } = await open(`${DDIM_PAGE}?backend=${backend}&cells=tiny`);
    const scrub = page.locator('[data-run-cell="ddim-vs-ddpm"] input[data-scrub]');
    expect(await scrub.isDisabled()).toBe(true);
    expect(await runCell(page, 'ddim-vs-ddpm')).toMatchObject({ state: 'done', backend });
    // tiny: T = 5, DDIM's 2 steps visit t = 3 then t = 1; then DDPM's 5 steps; the last is shown
    expect(await scrub.evaluate((el: HTMLInputElement) => [el.max, el.value])).toEqual(['6', '6']);

    expect(await scrubTo(page, 'ddim-vs-ddpm', 0)).toEqual({ value: '0', max: '6',
      text: 'DDIM step 1 of 2, t = 3', label: 'DDIM step 1 of 2, t = 3' });
    const first = await hover(page, STEP_PANE, 'x0');
    expect(first).toMatchObject({ open: true, sym: 'x0', step: 'DDIM step 1 of 2, t = 3' });
    expect(first.hash).toMatch(/^[0-9a-f]{8}$/);
    expect(first.text).toMatch(/min -?\d.* · max -?\d.* · mean -?\d/);
    expect(first.png).toMatch(/^data:image\/png/);
    // the equation beside the pane shows the same step: its x_t is the pane's
    const xt = await hover(page, STEP_PANE, 'xt');
    const xtEquation = await hover(page, `.eq-pair:has(${STEP_PANE}) .katex`, 'xt');
    expect(xtEquation).toMatchObject({ sym: 'xt', hash: xt.hash });
    expect((await hover(page, STEP_PANE, 't')).text).toMatch(/t = 3\b/);

    expect((await scrubTo(page, 'ddim-vs-ddpm', 1)).text).toBe('DDIM step 2 of 2, t = 1');
    const second = await hover(page, STEP_PANE, 'x0');
    expect(second).toMatchObject({ open: true, sym: 'x0', step: 'DDIM step 2 of 2, t = 1' });
    expect(second.hash).not.toBe(first.hash);
    expect(second.png).not.toBe(first.png);
    expect((await hover(page, STEP_PANE, 't')).text).toMatch(/t = 1\b/);
    // scalars by focus, and Escape closes the popover
    await page.locator(`${STEP_PANE} [data-sym~="alphaBarPrev"]`).first().focus();
    const prev = await popover(page);
    expect(prev).toMatchObject({ open: true, sym: 'alphaBarPrev', hash: '' });
    expect(prev.text).toMatch(/alphaBarPrev = 0\.\d+/);
    await page.keyboard.press('Escape');
    expect((await popover(page)).open).toBe(false);

    // a DDPM step ran no DDIM region: the DDIM pane has nothing to show
    await scrubTo(page, 'ddim-vs-ddpm', 4);
    await page.mouse.move(0, 0);
    await page.locator(`${STEP_PANE} [data-sym~="x0"]`).first().hover();
    expect((await popover(page)).open).toBe(false);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);

  it('the guidance cell shows eps_c, eps_u and w in the guide pane', async () => {
    const { page, errors } = await open(`${GUIDANCE_PAGE}?backend=${backend}&cells=tiny`);
    await page.evaluate(() => document.addEventListener('diffusion:step',
      (e) => Object.assign(window, { lastStep: (e as CustomEvent).detail })));
    expect(await runCell(page, 'guidance')).toMatchObject({ state: 'done', backend });
    await scrubTo(page, 'guidance', 0);
    // the recomputed branches are the ones the guided eps came from: eps = eps_u + w (eps_c - eps_u)
    const worst = await page.evaluate(() => {
      type Image = { data: Float32Array };
      const { values } = (window as unknown as { lastStep: { values: Record<string, Image> } }).lastStep;
      const w = values.w as unknown as number;
      const [c, u, eps] = [values.epsC.data, values.epsU.data, values.eps.data];
      return Math.max(...eps.map((e, i) => Math.abs(e - (u[i] + w * (c[i] - u[i])))));
    });
    expect(worst).toBeLessThan(1e-4);
    const guide = '[data-region="guidance.ts#guide"]';
    const [epsC, epsU] = [await hover(page, guide, 'epsC'), await hover(page, guide, 'epsU')];
    expect([epsC.sym, epsU.sym]).toEqual(['epsC', 'epsU']);
    expect(epsC.hash).not.toBe(epsU.hash);
    expect((await hover(page, guide, 'w')).text).toMatch(/^w = 3(?![\d.])/);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);
});

// webgpu's ten recorded DDPM runs are in browser-cells.test.ts; SwiftShader is too slow for 20 here
describe.each([[DDIM_PAGE, 'ddim-vs-ddpm'], [GUIDANCE_PAGE, 'guidance']])('recording on %s', (path, cell) => {
  it(`keeps tf.memory() flat over 20 runs of ${cell} on wasm`, async () => {
    const { page, errors } = await open(`${path}?backend=wasm&cells=tiny`);
    const counts: number[] = [];
    for (let i = 0; i < 21; i++) {
      expect((await runCell(page, cell)).state).toBe('done');
      counts.push(await numTensors(page));
    }
    expect(counts.slice(1)).toEqual(Array(20).fill(counts[0]));
    // the last run's steps are all kept: 2 DDIM steps (and 5 DDPM steps)
    const max = await page.locator(`[data-run-cell="${cell}"] input[data-scrub]`).getAttribute('max');
    expect(max).toBe(cell === 'guidance' ? '1' : '6');
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);
});
