// Editable code panes in headless Chromium, on webgpu (SwiftShader) and wasm, at `?cells=tiny`:
// an edit of a library region takes effect in the cells of its page, also where other library
// functions call it (guidedEps calls guide, ddimSample calls ddimStep); a syntax or runtime error
// shows in the pane and ends the run in the error state; Reset draws the library's pixels again;
// and twenty runs with an edited region leak no tensor.
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { getRegion } from '../src/lib/site/regions';
import { canvasPng, runCell, useSiteBrowser } from './helpers/site-browser';

const GUIDANCE = '/chapters/07-guidance/';
const DDIM = '/chapters/06-ddim/';

const site = useSiteBrowser();

const open = site.open;

const figure = (page: Page, ref: string) => page.locator(`figure:has([data-region="${ref}"])`).first();

/** Opens the pane's editor and replaces its code. */
async function edit(page: Page, ref: string, code: string) {
  const pane = figure(page, ref);
  if (await pane.locator('button[data-edit]').isVisible()) await pane.locator('button[data-edit]').click();
  await pane.locator('textarea[data-editor]').fill(code);
}

async function reset(page: Page, ref: string) {
  await figure(page, ref).locator('button[data-reset]').click();
}

const paneError = (page: Page, ref: string) => figure(page, ref).locator('[data-edit-error]');

const tensors = (page: Page) => page.evaluate(() => (window as unknown as { __tfMemory(): { numTensors: number } }).__tfMemory().numTensors);

describe.each(['webgpu', 'wasm'])('editable code panes on %s', (backend) => {
  it('run an edited guide through guidedEps, show errors in the pane, and Reset restores the pixels', async () => {
    const { page, errors } = await open(`${GUIDANCE}?backend=${backend}&cells=tiny`);
    const ref = 'guidance.ts#guide';
    const library = getRegion(ref).code;
    expect(await runCell(page, 'guidance')).toMatchObject({ state: 'done', backend });
    const before = await canvasPng(page, 'guidance', 'samples');

    // the editor holds the region's exact source, and says nothing until the code changes
    const pane = figure(page, ref);
    await expect(pane.locator('textarea[data-editor]').isVisible()).resolves.toBe(false);
    await pane.locator('button[data-edit]').click();
    expect(await pane.locator('textarea[data-editor]').inputValue()).toBe(library);
    expect(await pane.locator('[data-edited-note]').isVisible()).toBe(false);

    // swap eps_c and eps_u: guidance pushes away from the class
    const swapped = library.replace('tf.sub(epsC, epsU)', 'tf.sub(epsU, epsC)');
    expect(swapped).not.toBe(library);
    await edit(page, ref, swapped);
    expect(await pane.locator('[data-edited-note]').isVisible()).toBe(true);
    expect(await runCell(page, 'guidance')).toMatchObject({ state: 'done', error: '', blank: [] });
    const edited = await canvasPng(page, 'guidance', 'samples');
    expect(edited).not.toBe(before);

    // a syntax error shows in the pane while typing, and the run ends in the error state
    await edit(page, ref, library.replace('return tf.tidy(', 'return tf.tidy(+*'));
    await paneError(page, ref).waitFor({ state: 'visible' });
    expect(await paneError(page, ref).textContent()).toMatch(/^syntax error on line \d+, column \d+: /);
    const bad = await runCell(page, 'guidance');
    expect(bad.state).toBe('error');
    expect(bad.error).toMatch(/the edited code does not compile: guidance\.ts#guide: syntax error/);

    // an error thrown by the edited code
    await edit(page, ref, library.replace('return tf.tidy(', "throw new Error('no guidance today');\n  return tf.tidy("));
    const thrown = await runCell(page, 'guidance');
    expect(thrown.state).toBe('error');
    expect(thrown.error).toMatch(/no guidance today \(with the edited guidance\.ts#guide\)/);
    expect(await paneError(page, ref).textContent()).toBe('this run failed in the edited code: no guidance today');

    // the same edit again draws the same pixels; Reset gives the library's pixels back
    await edit(page, ref, swapped);
    expect(await paneError(page, ref).isVisible()).toBe(false);
    expect((await runCell(page, 'guidance')).state).toBe('done');
    expect(await canvasPng(page, 'guidance', 'samples')).toBe(edited);
    await reset(page, ref);
    expect(await pane.locator('textarea[data-editor]').isVisible()).toBe(false);
    expect(await pane.locator('[data-edited-note]').isVisible()).toBe(false);
    expect((await runCell(page, 'guidance')).state).toBe('done');
    expect(await canvasPng(page, 'guidance', 'samples')).toBe(before);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);

  it('run an edited ddimStep in ddimSample, leaving DDPM alone', async () => {
    const { page, errors } = await open(`${DDIM}?backend=${backend}&cells=tiny`);
    const ref = 'ddim.ts#ddim-step';
    expect((await runCell(page, 'ddim-vs-ddpm')).state).toBe('done');
    const [ddim, ddpm] = [await canvasPng(page, 'ddim-vs-ddpm', 'ddim'), await canvasPng(page, 'ddim-vs-ddpm', 'ddpm')];
    const library = getRegion(ref).code;
    const negated = library.replace('tf.mul(Math.sqrt(aPrev), x0)', 'tf.mul(Math.sqrt(aPrev), tf.neg(x0))');
    expect(negated).not.toBe(library);
    await edit(page, ref, negated);
    expect((await runCell(page, 'ddim-vs-ddpm')).state).toBe('done');
    expect(await canvasPng(page, 'ddim-vs-ddpm', 'ddim')).not.toBe(ddim);
    expect(await canvasPng(page, 'ddim-vs-ddpm', 'ddpm')).toBe(ddpm);
    await reset(page, ref);
    expect((await runCell(page, 'ddim-vs-ddpm')).state).toBe('done');
    expect(await canvasPng(page, 'ddim-vs-ddpm', 'ddim')).toBe(ddim);
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);

  // twenty on wasm; five on SwiftShader, where a run takes seconds
  const runs = backend === 'wasm' ? 20 : 5;
  it(`leak no tensor over ${runs} runs with an edited region`, async () => {
    const { page, errors } = await open(`${GUIDANCE}?backend=${backend}&cells=tiny`);
    const ref = 'guidance.ts#guide';
    await edit(page, ref, getRegion(ref).code.replace('tf.sub(epsC, epsU)', 'tf.sub(epsU, epsC)'));
    expect((await runCell(page, 'guidance')).state).toBe('done');
    const counts: number[] = [];
    for (let i = 0; i < runs; i++) {
      expect((await runCell(page, 'guidance')).state).toBe('done');
      counts.push(await tensors(page));
    }
    expect(counts).toEqual(Array(runs).fill(counts[0]));
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);
});
