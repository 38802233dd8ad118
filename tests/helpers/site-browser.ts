// Serves the built site with node:http and drives Debian's chromium through playwright-core (the flags of issue 4).
import { createServer, type Server } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { siteDist } from './site-dist';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json',
  '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.png': 'image/png', '.woff2': 'font/woff2', '.bin': 'application/octet-stream',
  '.safetensors': 'application/octet-stream', '.xml': 'application/xml', '.txt': 'text/plain',
};

/** The headers of the `/*` block of a Netlify-style `_headers` file (what public/_headers
 * ships). */
export function parseHeadersFile(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  let inAll = false;
  for (const line of text.split('\n')) {
    if (/^\S/.test(line)) inAll = line.trim() === '/*';
    const m = /^\s+([\w-]+):\s*(.+)$/.exec(line);
    if (inAll && m) headers[m[1]] = m[2].trim();
  }
  return headers;
}

/** A static server for `root` on a free port; resolves to its origin. With `headersFile`, it sends
 * the headers of root/_headers as a static host would (cross-origin isolation). */
export async function serveDir(root: string, { headersFile = false } = {})
  : Promise<{ origin: string; server: Server }> {
  const extra = headersFile ? parseHeadersFile(await readFile(join(root, '_headers'), 'utf8')) : {};
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    let file = join(root, path);
    try {
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      res.writeHead(200,
        { ...extra, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the test server has no port');
  return { origin: `http://127.0.0.1:${address.port}`, server };
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu'];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true });
}

export type CellResult = { state: string; backend: string; error: string; blank: string[] };

/** Clicks the cell's Run and waits for done, error or cancelled; returns the state, backend, error text and blank canvases. */
export async function runCell(page: Page, name: string, timeout = 240_000): Promise<CellResult> {
  const root = page.locator(`[data-run-cell="${name}"]`).first();
  await root.locator('button[data-run]').click();
  await page.waitForFunction((n) => {
    const state = document.querySelector(`[data-run-cell="${n}"]`)?.getAttribute('data-state');
    return state === 'done' || state === 'error' || state === 'cancelled';
  }, name, { timeout, polling: 100 });
  return root.evaluate((el) => ({
    state: el.getAttribute('data-state') ?? '',
    backend: el.getAttribute('data-backend') ?? '',
    error: el.querySelector('[data-error]')?.textContent ?? '',
    blank: [...el.querySelectorAll('canvas')].filter((c) => {
      if (!c.width || !c.height) return true;
      const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      for (let i = 4; i < data.length; i += 4) {
        if (data[i] !== data[0] || data[i + 1] !== data[1] || data[i + 2] !== data[2] || data[i + 3] !== data[3]) return false;
      }
      return true;
    }).map((c) => c.dataset.out ?? c.getAttribute('aria-label') ?? 'canvas'),
  }));
}

/** A PNG data URL of a cell's canvas, to compare two runs. */
export function canvasPng(page: Page, name: string, out: string): Promise<string> {
  return page.locator(`[data-run-cell="${name}"] canvas[data-out="${out}"]`).evaluate((c: HTMLCanvasElement) => c.toDataURL());
}

/** One test file's built site and browser: serves the site and launches Chromium before its tests
 * and closes both after them. `open` makes a fresh page that records page errors. */
export function useSiteBrowser() {
  let server: Server | undefined;
  const site = {
    origin: '',
    browser: undefined as unknown as Browser,
    async open(path: string): Promise<{ page: Page; errors: string[] }> {
      const page = await site.browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(site.origin + path);
      return { page, errors };
    },
  };
  beforeAll(async () => {
    ({ origin: site.origin, server } = await serveDir(siteDist()));
    site.browser = await launchChromium();
  });
  afterAll(async () => {
    await site.browser?.close();
    server?.close();
  });
  return site;
}
