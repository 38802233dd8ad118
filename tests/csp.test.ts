// The Content-Security-Policy every page ships (astro.config.mjs, experimental.csp): scripts,
// workers, wasm and fetches from the site's own origin only, plus blob: modules for edited code.
// In headless Chromium on wasm at `?cells=tiny`, every page loads, every cell runs, a .pth loads
// and an edited region runs, with no `securitypolicyviolation` reported.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { rngFromSeed, torchShapes } from '../src/lib/diffusion';
import { getRegion } from '../src/lib/site/regions';
import { fromHost, writePth } from './helpers/pth-writer';
import { runCell, useSiteBrowser } from './helpers/site-browser';
import { siteDist } from './helpers/site-dist';

const site = useSiteBrowser();

function htmlPages(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? htmlPages(path) : e.name.endsWith('.html') ? [path] : [];
  });
}

const policyOf = (html: string) =>
  /<meta http-equiv="content-security-policy" content="([^"]*)"/.exec(html)?.[1] ?? '';

/** A page that records CSP violations (and page errors) from before its first script. */
async function open(path: string): Promise<{ page: Page; violations: string[]; errors: string[] }> {
  const page = await site.browser.newPage();
  const violations: string[] = [];
  const errors: string[] = [];
  await page.exposeFunction('__cspViolation', (v: string) => violations.push(v));
  await page.addInitScript(() => document.addEventListener('securitypolicyviolation', (e) =>
    (window as unknown as { __cspViolation(v: string): void }).__cspViolation(
      `${e.effectiveDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`)));
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(site.origin + path);
  return { page, violations, errors };
}

/** A .pth of random weights for the paper's UNet at 32 channels, as torch.save writes it. */
function randomPth(): Buffer {
  const rng = rngFromSeed(3);
  const shapes = Object.entries(torchShapes({ imageChannels: 1, channels: 32, classes: 10 }));
  const tensors = new Map(shapes.map(([name, shape]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const scale = 1 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1) || 1);
    const data = Float32Array.from({ length: size }, () => (rng() / 2 ** 32 - 0.5) * 2 * scale);
    return [name, { shape, data }];
  }));
  return Buffer.from(writePth(fromHost(tensors)));
}

describe('the Content-Security-Policy', () => {
  it('is on every page: own origin only, blob: modules and wasm, no unsafe-eval', () => {
    const dist = siteDist();
    const pages = htmlPages(dist).filter((p) => !p.includes(`${join(dist, 'pagefind')}`));
    expect(pages.length).toBeGreaterThan(10);
    for (const file of pages) {
      const policy = policyOf(readFileSync(file, 'utf8'));
      const directive = (name: string) => new RegExp(`(?:^|;)\\s*${name} ([^;]*)`).exec(policy)?.[1].trim();
      expect({ page: relative(dist, file), policy: !!policy }).toEqual({ page: relative(dist, file), policy: true });
      expect(directive('default-src')).toBe("'self'");
      expect(directive('connect-src')).toBe("'self'");
      expect(directive('worker-src')).toBe("'self' blob:");
      expect(directive('script-src')).toMatch(/^'self' blob: 'wasm-unsafe-eval'( 'sha256-[\w+/=]+')*$/);
      expect(policy).not.toMatch(/unsafe-eval'(?<!wasm-unsafe-eval')|\*/);
    }
  });

  it('reports no violation while every page loads, every cell runs, a .pth loads and an edit runs', async () => {
    const dist = siteDist();
    const chapters = existsSync(join(dist, 'chapters')) ? readdirSync(join(dist, 'chapters')).map((c) => `/chapters/${c}/`) : [];
    const pth = randomPth();
    let ranEdit = false;
    let ranPth = false;
    for (const path of ['/', '/models/', '/lab/', ...chapters]) {
      const { page, violations, errors } = await open(`${path}?backend=wasm&cells=tiny`);
      const cells = await page.locator('[data-run-cell]').evaluateAll((els) => els.map((e) => e.getAttribute('data-run-cell')!));
      if (cells.includes('load-checkpoint')) {
        await page.locator('[data-run-cell="load-checkpoint"] input[type="file"]').setInputFiles({ name: 'model.pth', mimeType: 'application/octet-stream', buffer: pth });
        ranPth = true;
      }
      for (const name of cells) expect({ path, name, state: (await runCell(page, name)).state }).toEqual({ path, name, state: 'done' });
      const ref = 'guidance.ts#guide';
      if (cells.includes('guidance') && await page.locator(`[data-region="${ref}"]`).count()) {
        const pane = page.locator(`figure:has([data-region="${ref}"])`).first();
        await pane.locator('button[data-edit]').click();
        await pane.locator('textarea[data-editor]').fill(getRegion(ref).code.replace('tf.sub(epsC, epsU)', 'tf.sub(epsU, epsC)'));
        expect((await runCell(page, 'guidance')).state).toBe('done');
        ranEdit = true;
      }
      expect({ path, violations, errors }).toEqual({ path, violations: [], errors: [] });
      await page.close();
    }
    expect({ ranEdit, ranPth }).toEqual({ ranEdit: true, ranPth: true });
  }, 600_000);
});
