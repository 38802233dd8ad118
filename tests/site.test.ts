// Every chapter page, built and opened in headless Chromium at 1440 px and 390 px: typeset math and no raw TeX,
// equation/code pairs side by side on wide screens and stacked on narrow ones, nothing overflowing the page or
// overlapping; code panes that show 100 columns unwrapped at 1440 px and scroll sideways on a phone with their
// line numbers fixed. Full-page screenshots go to tmp/screenshots (git-ignored) for a human to look at.
import type { Server } from 'node:http';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { siteDist } from './helpers/site-dist';
import { serveDir } from './helpers/site-browser';

/** The chapter pages, in reading order: src/content/docs/chapters/NN-slug.mdx is built to chapters/NN-slug/index.html. */
const CHAPTERS = readdirSync(join(process.cwd(), 'src/content/docs/chapters')).filter((f) => f.endsWith('.mdx')).sort().map((f) => f.slice(0, -4));

const SHOTS = join(process.cwd(), 'tmp', 'screenshots');
let server: Server;
let origin = '';
let browser: Browser;

beforeAll(async () => {
  const dist = siteDist();
  ({ origin, server } = await serveDir(dist));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-quic',
    '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  mkdirSync(SHOTS, { recursive: true });
}, 600_000);

afterAll(async () => {
  await browser?.close();
  server?.close();
});

type Report = {
  katex: number; katexErrors: number; rawTex: string[]; pairs: number; panes: number; scrollWidth: number; innerWidth: number;
  overlaps: string[]; outside: string[]; sideBySide: number; stacked: number; clipped: string[];
  wrapped: string[]; paneOverflow: string[]; unstuck: string[]; pageScrollWidth: number;
};

/** What the page looks like, measured in the browser. */
function measure(): Report {
  const hidden = 'pre, code, script, style, .katex, .expressive-code, [data-region], svg, textarea, input';
  const text: string[] = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (!n.parentElement?.closest(hidden) && /\$/.test(n.textContent ?? '')) text.push((n.textContent ?? '').trim().slice(0, 80));
  }
  const boxes = (el: Element | null) => el?.getBoundingClientRect();
  const overlaps: string[] = [];
  const outside: string[] = [];
  let sideBySide = 0;
  let stacked = 0;
  document.querySelectorAll('.eq-pair').forEach((pair, i) => {
    const eq = boxes(pair.querySelector('.eq-side'))!;
    const code = boxes(pair.querySelector('.code-side'))!;
    const apart = eq.right <= code.left + 0.5 || code.right <= eq.left + 0.5 || eq.bottom <= code.top + 0.5 || code.bottom <= eq.top + 0.5;
    if (!apart) overlaps.push(`pair ${i}: equation ${JSON.stringify(eq)} and code ${JSON.stringify(code)}`);
    if (eq.right <= code.left + 0.5) sideBySide++;
    else if (eq.bottom <= code.top + 0.5) stacked++;
    if (code.right > innerWidth + 0.5 || eq.right > innerWidth + 0.5 || code.left < -0.5 || eq.left < -0.5) outside.push(`pair ${i}`);
  });
  // Anything in the chapter that the reader would have to scroll sideways (equations, figures) counts as clipped;
  // code panes scroll sideways by design on a phone, and are measured on their own below.
  const clipped = [...document.querySelectorAll('main *')]
    .filter((el) => !el.closest('[data-region]'))
    .filter((el) => el.scrollWidth > el.clientWidth + 1 && ['auto', 'scroll'].includes(getComputedStyle(el).overflowX))
    .map((el) => `${el.tagName.toLowerCase()}.${el.classList[0] ?? ''} ${el.scrollWidth} > ${el.clientWidth}: ${(el.querySelector('annotation')?.textContent ?? el.textContent ?? '').trim().slice(0, 60)}`);
  // Code panes: no line wraps (each .line is one line high), what is hidden to the right, and a line-number
  // gutter that stays at the left edge while the pane scrolls (position: sticky in a scrolling <pre>).
  const wrapped: string[] = [];
  const paneOverflow: string[] = [];
  const unstuck: string[] = [];
  document.querySelectorAll<HTMLElement>('[data-region]').forEach((pane) => {
    const ref = pane.dataset.region ?? '';
    const pre = pane.querySelector('pre')!;
    const lineHeight = parseFloat(getComputedStyle(pre).lineHeight);
    const lines = [...pane.querySelectorAll<HTMLElement>('.line')];
    const tall = lines.filter((l) => l.getBoundingClientRect().height > lineHeight * 1.5);
    if (tall.length) wrapped.push(`${ref}: ${tall.length} wrapped, e.g. ${tall[0].textContent?.trim().slice(0, 50)}`);
    if (pre.scrollWidth > pre.clientWidth + 1) paneOverflow.push(`${ref}: ${pre.scrollWidth} > ${pre.clientWidth}`);
    const gutter = getComputedStyle(lines[0], '::before');
    const scrolls = ['auto', 'scroll'].includes(getComputedStyle(pre).overflowX);
    if (gutter.position !== 'sticky' || gutter.content === 'none' || !scrolls) unstuck.push(ref);
  });
  return {
    clipped,
    wrapped,
    paneOverflow,
    unstuck,
    pageScrollWidth: document.scrollingElement!.scrollWidth,
    katex: document.querySelectorAll('.katex').length,
    katexErrors: document.querySelectorAll('.katex-error').length,
    rawTex: text,
    pairs: document.querySelectorAll('.eq-pair').length,
    panes: document.querySelectorAll('[data-region]').length,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth,
    overlaps,
    outside,
    sideBySide,
    stacked,
  };
}

describe.each([
  { width: 1440, height: 900, wide: true },
  { width: 390, height: 844, wide: false },
])('every chapter at $width px', ({ width, height, wide }) => {
  it.each(CHAPTERS)('%s', async (slug) => {
    const page = await browser.newPage({ viewport: { width, height }, deviceScaleFactor: 1 });
    try {
      const response = await page.goto(`${origin}/chapters/${slug}/`, { waitUntil: 'load' });
      expect(response?.status()).toBe(200);
      await page.evaluate(() => document.fonts.ready);
      const r = await page.evaluate(measure);
      expect(r.katex, 'typeset math').toBeGreaterThan(0);
      expect(r.katexErrors, 'KaTeX error spans').toBe(0);
      expect(r.rawTex, 'text with a raw $ left over from TeX').toEqual([]);
      expect(r.pairs, 'equation/code pairs').toBeGreaterThan(0);
      expect(r.panes).toBe(r.pairs);
      expect(r.scrollWidth, 'horizontal overflow of the page').toBeLessThanOrEqual(r.innerWidth);
      expect(r.overlaps).toEqual([]);
      expect(r.outside).toEqual([]);
      expect(r.clipped, 'equations or code wider than their column').toEqual([]);
      expect(r.wrapped, 'code lines that wrap').toEqual([]);
      expect(r.unstuck, 'panes whose line numbers do not stay put as they scroll').toEqual([]);
      expect(r.pageScrollWidth, 'a pane makes the page scroll sideways').toBeLessThanOrEqual(r.innerWidth);
      if (wide) expect(r.paneOverflow, 'panes that hide columns at 1440 px (100 columns must fit)').toEqual([]);
      if (wide) expect(r.sideBySide, 'pairs side by side at >= 1200 px').toBe(r.pairs);
      else expect(r.stacked, 'pairs stacked on a phone').toBe(r.pairs);
      await page.screenshot({ path: join(SHOTS, `${slug}-${width}.png`), fullPage: true });
    } finally {
      await page.close();
    }
  });
});

it('hovering a symbol in an equation highlights the code that computes it, and the reverse', async () => {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  try {
    await page.goto(`${origin}/chapters/06-ddim/`, { waitUntil: 'load' });
    const pairOf = (ref: string) => page.locator('.eq-pair', { has: page.locator(`[data-region="${ref}"]`) });
    const step = pairOf('ddim.ts#ddim-step');
    await step.locator('.katex [data-sym="sigma"]').first().hover({ timeout: 5000 });
    expect(await step.locator('[data-region] [data-sym~="sigma"].sym-on').count()).toBeGreaterThan(0);
    expect(await pairOf('ddim.ts#ddim-sigma').locator('.sym-on').count(), 'highlighting stays within one pair').toBe(0);
    const sigma = pairOf('ddim.ts#ddim-sigma');
    await sigma.locator('[data-region] [data-sym="eta"]').first().hover({ timeout: 5000 });
    expect(await sigma.locator('.katex [data-sym="eta"].sym-on').count()).toBeGreaterThan(0);
    expect(await step.locator('.sym-on').count(), 'the previous highlight is gone').toBe(0);
  } finally {
    await page.close();
  }
});

it('offers the library as a zip holding every file of src/lib/diffusion unchanged', async () => {
  const zip = Buffer.from(await (await fetch(`${origin}/downloads/diffusion.zip`)).arrayBuffer());
  expect(zip.readUInt32LE(0), 'a zip local file header').toBe(0x04034b50);
  const dir = join(process.cwd(), 'src/lib/diffusion');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    expect(zip.includes(Buffer.from(`diffusion/${file}`)), `${file} is in the zip`).toBe(true);
    expect(zip.includes(readFileSync(join(dir, file))), `${file} is stored unchanged`).toBe(true);
  }
});
