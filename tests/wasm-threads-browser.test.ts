// The cells' wasm threads in headless Chromium: the site ships the cross-origin isolation headers
// (public/_headers; astro.config.mjs sends src/lib/site/isolation.ts's in dev and preview).
// Served with them, the page is isolated and wasm runs 2 threads; served without, one thread.
// Both draw the same pixels.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ISOLATION_HEADERS } from '../src/lib/site/isolation';
import {
  canvasPng, launchChromium, parseHeadersFile, runCell, serveDir,
} from './helpers/site-browser';
import { siteDist } from './helpers/site-dist';

const PAGE = '/lab/?backend=wasm&cells=tiny&threads=2';
let browser: Browser;
const servers: Server[] = [];

beforeAll(async () => {
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  servers.forEach((s) => s.close());
});

/** Runs the guidance cell on a server with or without the _headers file's headers. */
async function guidanceRun(headersFile: boolean) {
  const { origin, server } = await serveDir(siteDist(), { headersFile });
  servers.push(server);
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(origin + PAGE);
  const result = await runCell(page, 'guidance');
  const seen = await page.evaluate(() => ({
    isolated: globalThis.crossOriginIsolated,
    threads: (window as unknown as { __tfWasmThreads?: number }).__tfWasmThreads,
  }));
  const png = await canvasPng(page, 'guidance', 'samples');
  await page.close();
  return { result, errors, png, ...seen };
}

describe('wasm threads in the page', () => {
  it('ships the isolation headers that astro.config.mjs sends in dev and preview', () => {
    const file = readFileSync(join(siteDist(), '_headers'), 'utf8');
    expect(parseHeadersFile(file)).toEqual(ISOLATION_HEADERS);
  });

  it('runs 2 threads when isolated, 1 when not, and draws the same pixels', async () => {
    const isolated = await guidanceRun(true);
    const plain = await guidanceRun(false);
    for (const run of [isolated, plain]) {
      expect(run.result).toMatchObject({ state: 'done', backend: 'wasm', error: '' });
      expect(run.errors).toEqual([]);
    }
    expect([isolated.isolated, isolated.threads]).toEqual([true, 2]);
    expect([plain.isolated, plain.threads]).toEqual([false, 1]);
    expect(isolated.png).toBe(plain.png);
  });
});
