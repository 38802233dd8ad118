// Every run-this-cell island in headless Chromium, on the webgpu backend (SwiftShader, forced)
// and on wasm, at the `?cells=tiny` settings: one image, a few steps, a random 32-channel model,
// through the readers' code path.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import {
  readSafetensors, rngFromSeed, torchShapes, writeSafetensors, type HostTensor, type UNetConfig,
} from '../src/lib/diffusion';
import { callPickle, fromHost, withPickle, writePth } from './helpers/pth-writer';
import {
  canvasPng, CHROMIUM_ARGS, runCell, useSiteBrowser,
} from './helpers/site-browser';
import { siteDist } from './helpers/site-dist';

const CELLS = ['forward-noising', 'network-trace', 'live-training', 'ddpm-sampling', 'ddim-vs-ddpm',
  'guidance', 'load-checkpoint'];
const LAB = '/lab/';

/** A checkpoint of the paper's UNet with random weights, written as PyTorch would (pure JS, no
 * tfjs backend). */
function randomCheckpoint(config: UNetConfig): Buffer {
  const rng = rngFromSeed(3);
  const tensors: Record<string, HostTensor> = {};
  for (const [name, shape] of Object.entries(torchShapes(config))) {
    const size = shape.reduce((a, b) => a * b, 1);
    const scale = 1 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1) || 1);
    tensors[name] = {
      shape, data: Float32Array.from({ length: size }, () => (rng() / 2 ** 32 - 0.5) * 2 * scale),
    };
  }
  return Buffer.from(writeSafetensors(tensors, { schedule: 'cosine', T: '20' }));
}

const site = useSiteBrowser();

const open = site.open;

async function chooseCheckpoint(page: Page, buffer: Buffer, name = 'model.safetensors') {
  await page.locator('[data-run-cell="load-checkpoint"] input[type="file"]')
    .setInputFiles({ name, mimeType: 'application/octet-stream', buffer });
}

/** The chapter pages with cells, each with the cells it holds; the playground page until chapters
 * have any. */
function pagesWithCells(): { path: string; cells: string[] }[] {
  const dist = siteDist();
  const chapters = existsSync(join(dist, 'chapters'))
    ? readdirSync(join(dist, 'chapters')).map((c) => `/chapters/${c}/`) : [];
  const found = (paths: string[]) => paths.map((path) => {
    const file = join(dist, path, 'index.html');
    const html = existsSync(file) ? readFileSync(file, 'utf8') : '';
    return { path, cells: [...html.matchAll(/data-run-cell="([^"]+)"/g)].map((m) => m[1]) };
  }).filter((p) => p.cells.length > 0);
  const inChapters = found(chapters);
  return inChapters.length ? inChapters : found([LAB]);
}

describe.each(['webgpu', 'wasm'])('every cell of every chapter on %s', (backend) => {
  it('runs to done with drawn canvases and no page error', async () => {
    const pages = pagesWithCells();
    expect(pages.flatMap((p) => p.cells).sort()).toEqual([...CELLS].sort());
    for (const { path, cells } of pages) {
      const { page, errors } = await open(`${path}?backend=${backend}&cells=tiny`);
      if (cells.includes('load-checkpoint')) {
        const config = { imageChannels: 1, channels: 32, classes: 10 };
        await chooseCheckpoint(page, randomCheckpoint(config));
      }
      for (const name of cells) {
        const result = await runCell(page, name);
        expect({ path, name, ...result })
          .toEqual({ path, name, state: 'done', backend, error: '', blank: [] });
      }
      expect({ path, errors }).toEqual({ path, errors: [] });
      await page.close();
    }
  }, 600_000);
});

describe.each(['webgpu', 'wasm'])('the sampling cell on %s', (backend) => {
  it('keeps tf.memory() flat over ten runs', async () => {
    const { page, errors } = await open(`${LAB}?backend=${backend}&cells=tiny`);
    const counts: number[] = [];
    for (let i = 0; i < 11; i++) {
      expect((await runCell(page, 'ddpm-sampling')).state).toBe('done');
      counts.push(await page.evaluate(() =>
        (window as unknown as { __tfMemory(): { numTensors: number } }).__tfMemory().numTensors));
    }
    expect(counts.slice(1)).toEqual(Array(10).fill(counts[0]));
    expect(errors).toEqual([]);
    await page.close();
  }, 300_000);
});

describe.each(['webgpu', 'wasm'])('the load-checkpoint cell on %s', (backend) => {
    it('draw the same pixels from a .pth (cpu or cuda:0 storages) as from its .safetensors', async () => {
      const { page, errors } = await open(`${LAB}?backend=${backend}&cells=tiny`);
      const random = randomCheckpoint({ imageChannels: 1, channels: 32, classes: 10 });
      const host = readSafetensors(new Uint8Array(random)).tensors;
      const files: [string, Uint8Array][] = [
        ['plain.safetensors', writeSafetensors(Object.fromEntries(host))], // no metadata, as a .pth
        ['cpu.pth', writePth(fromHost(host))],
        ['cuda.pth', writePth(fromHost(host), { location: 'cuda:0' })],
      ];
      const drawn: string[] = [];
      for (const [name, bytes] of files) {
        await chooseCheckpoint(page, Buffer.from(bytes), name);
        expect(await runCell(page, 'load-checkpoint')).toMatchObject({ state: 'done', blank: [] });
        drawn.push(await canvasPng(page, 'load-checkpoint', 'samples'));
      }
      expect(drawn[1]).toBe(drawn[0]);
      expect(drawn[2]).toBe(drawn[0]);
      for (const [module, name] of [['os', 'system'], ['builtins', 'eval']]) {
        await chooseCheckpoint(page, Buffer.from(withPickle(callPickle(module, name, 'id'))), 'evil.pth');
        const evil = await runCell(page, 'load-checkpoint');
        expect(evil.state).toBe('error');
        expect(evil.error).toMatch(new RegExp(`^evil\\.pth is not a compatible model: .*${module}\\.${name}`));
      }
      expect(errors).toEqual([]);
      await page.close();
    });
});

describe('cells on wasm', () => {
  it('keep tf.memory() flat over repeated and cancelled runs of the other cells', async () => {
    const { page, errors } = await open(`${LAB}?backend=wasm&cells=tiny`);
    await chooseCheckpoint(page, randomCheckpoint({ imageChannels: 1, channels: 32, classes: 10 }));
    const tensors = () => page.evaluate(() => (window as unknown as { __tfMemory(): { numTensors: number } }).__tfMemory().numTensors);
    const others = CELLS.filter((c) => c !== 'ddpm-sampling');
    for (const name of others) expect((await runCell(page, name)).state).toBe('done'); // loads the model and the checkpoint
    const before = await tensors();
    for (let i = 0; i < 2; i++) {
      for (const name of others) expect((await runCell(page, name)).state).toBe('done');
    }
    expect(await tensors()).toBe(before);
    await page.goto(`${site.origin}${LAB}?backend=wasm`); // full settings, so that there is time to cancel
    const root = page.locator('[data-run-cell="live-training"]');
    await root.locator('button[data-run]').click();
    await page.waitForFunction(() => /step [2-9]/.test(document.querySelector('[data-run-cell="live-training"] [data-progress-text]')?.textContent ?? ''), null, { timeout: 120_000 });
    await root.locator('button[data-cancel]').click();
    await page.waitForFunction(() => document.querySelector('[data-run-cell="live-training"]')?.getAttribute('data-state') === 'cancelled');
    expect(await tensors()).toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('are reproducible from the seed, also when two cells run at once', async () => {
    const { page, errors } = await open(`${LAB}?backend=wasm&cells=tiny`);
    expect((await runCell(page, 'ddpm-sampling')).state).toBe('done');
    const alone = await canvasPng(page, 'ddpm-sampling', 'samples');
    const [a, b] = await Promise.all([runCell(page, 'ddpm-sampling'), runCell(page, 'ddim-vs-ddpm')]);
    expect([a.state, b.state]).toEqual(['done', 'done']);
    expect(await canvasPng(page, 'ddpm-sampling', 'samples')).toBe(alone);
    await page.locator('[data-run-cell="ddpm-sampling"] input[data-seed]').fill('2');
    expect((await runCell(page, 'ddpm-sampling')).state).toBe('done');
    expect(await canvasPng(page, 'ddpm-sampling', 'samples')).not.toBe(alone);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('run from the keyboard, and every control and canvas has an accessible name', async () => {
    const { page, errors } = await open(`${LAB}?backend=wasm&cells=tiny`);
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('[data-run-cell] :is(input, select, button, canvas, progress)')]
      .filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label') && !(el.tagName === 'BUTTON' && el.textContent?.trim()))
      .map((el) => el.outerHTML.slice(0, 80)));
    expect(unnamed).toEqual([]);
    await page.locator('[data-run-cell="guidance"] button[data-run]').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('[data-run-cell="guidance"]')?.getAttribute('data-state') === 'done');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('say clearly when a checkpoint is not a compatible model', async () => {
    const { page, errors } = await open(`${LAB}?backend=wasm&cells=tiny`);
    await chooseCheckpoint(page, Buffer.from('this is not a safetensors file'), 'notes.safetensors');
    const bad = await runCell(page, 'load-checkpoint');
    expect(bad.state).toBe('error');
    expect(bad.error).toMatch(/^notes\.safetensors is not a compatible model: /);
    await chooseCheckpoint(page, randomCheckpoint({ imageChannels: 3, channels: 32, classes: null }), 'cifar.safetensors');
    const rgb = await runCell(page, 'load-checkpoint');
    expect(rgb).toMatchObject({ state: 'done', blank: [] });
    expect(await page.locator('[data-run-cell="load-checkpoint"] [data-out="model"]').textContent()).toMatch(/3 image channels, unconditional; cosine, T = 20 \(from the file\)/);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('load checkpoints with the paper\'s defaults, and w and eta change the pixels', async () => {
    const { page, errors } = await open(`${LAB}?backend=wasm&cells=tiny`);
    const root = page.locator('[data-run-cell="load-checkpoint"]');
    const controls = ['schedule', 'T', 'steps', 'w', 'eta'];
    const values = await Promise.all(controls.map((n) => root.locator(`[name="${n}"]`).inputValue()));
    expect(values).toEqual(['paper-linear', '300', '50', '1', '0']);
    const random = randomCheckpoint({ imageChannels: 1, channels: 32, classes: 10 });
    const host = readSafetensors(new Uint8Array(random)).tensors;
    const plain = Buffer.from(writeSafetensors(Object.fromEntries(host))); // no metadata
    await chooseCheckpoint(page, plain, 'plain.safetensors');
    await root.locator('select[name="label"]').selectOption('3');
    const draw = async (w: number, eta: number) => {
      await root.locator('input[name="w"]').fill(String(w));
      await root.locator('input[name="eta"]').evaluate((el, v) => {
        (el as HTMLInputElement).value = v;
      }, String(eta));
      expect(await runCell(page, 'load-checkpoint')).toMatchObject({ state: 'done', blank: [] });
      return canvasPng(page, 'load-checkpoint', 'samples');
    };
    const plainPixels = await draw(1, 0);
    expect(await root.locator('[data-out="model"]').textContent())
      .toMatch(/paper-linear, T = 300 \(from the controls: .*paper's defaults/);
    expect(await root.locator('[data-out="caption"]').textContent())
      .toMatch(/2 steps, eta 0, class 3, w = 1,/);
    expect(await draw(3, 0)).not.toBe(plainPixels);
    expect(await draw(1, 1)).not.toBe(plainPixels);
    expect(await draw(1, 0)).toBe(plainPixels);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('offer the live-training weights as a .safetensors in PyTorch\'s names and layouts', async () => {
    const { page, errors } = await open(`${LAB}?backend=wasm&cells=tiny`);
    const link = page.locator('[data-run-cell="live-training"] a[data-download]');
    expect(await link.isVisible()).toBe(false);
    expect((await runCell(page, 'live-training')).state).toBe('done');
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    expect(download.suggestedFilename()).toBe('live-training.safetensors');
    const bytes = readFileSync(await download.path());
    const { tensors, metadata } = readSafetensors(new Uint8Array(bytes));
    const shapes = Object.fromEntries([...tensors].map(([name, t]) => [name, t.shape]));
    expect(shapes).toEqual(torchShapes({ imageChannels: 1, channels: 32, classes: 10 }));
    expect(metadata).toMatchObject({ schedule: 'ddpm-linear', T: '5', steps: '3' });
    await chooseCheckpoint(page, bytes, 'live-training.safetensors');
    expect(await runCell(page, 'load-checkpoint')).toMatchObject({ state: 'done', blank: [] });
    expect(await page.locator('[data-run-cell="load-checkpoint"] [data-out="model"]').textContent())
      .toMatch(/ddpm-linear, T = 5 \(from the file\)/);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('cancel a long run from the Cancel button', async () => {
    const { page } = await open(`${LAB}?backend=wasm&model=random`);
    const root = page.locator('[data-run-cell="ddpm-sampling"]');
    await root.locator('input[name="batch"]').fill('1');
    await root.locator('button[data-run]').click();
    await page.waitForFunction(() => /step [2-9]\d* of 1000/.test(document.querySelector('[data-run-cell="ddpm-sampling"] [data-progress-text]')?.textContent ?? ''), null, { timeout: 120_000 });
    await root.locator('button[data-cancel]').click();
    await page.waitForFunction(() => document.querySelector('[data-run-cell="ddpm-sampling"]')?.getAttribute('data-state') === 'cancelled', null, { timeout: 10_000 });
    expect(await root.locator('[data-status]').textContent()).toMatch(/^Cancelled after/);
    await page.close();
  });
});

describe('the site model', () => {
  const hasModel = () => existsSync(join(siteDist(), 'models', 'mnist.json'));
  it.skipIf(!hasModel())('is fetched once for all cells and sampled from on wasm', async () => {
    const { page, errors } = await open(`${LAB}?backend=wasm`);
    const fetched: string[] = [];
    page.on('request', (r) => r.url().includes('/models/') && fetched.push(new URL(r.url()).pathname));
    await page.locator('[data-run-cell="guidance"] input[name="steps"]').fill('2');
    const [guided, traced] = await Promise.all([runCell(page, 'guidance'), runCell(page, 'network-trace')]);
    expect([guided, traced]).toMatchObject([{ state: 'done', blank: [] }, { state: 'done', blank: [] }]);
    expect(await page.locator('[data-run-cell="guidance"] [data-out="source"]').textContent()).toMatch(/^trained MNIST model/);
    expect(fetched.sort()).toEqual(['/models/mnist.json', '/models/mnist.safetensors']);
    await page.locator('[data-run-cell="guidance"] select[name="model"]').selectOption('fashion-mnist');
    await page.locator('[data-run-cell="guidance"] select[name="label"]').selectOption('7');
    expect(await runCell(page, 'guidance')).toMatchObject({ state: 'done', blank: [] });
    expect(await page.locator('[data-run-cell="guidance"] [data-out="source"]').textContent()).toMatch(/^trained Fashion-MNIST model fashion-mnist \(32 channels/);
    expect(await page.locator('[data-run-cell="guidance"] [data-out="caption"]').textContent()).toMatch(/^class 7 \(Sneaker\), w = 3, 2 DDIM steps, eta 1, ε recomputed/);
    expect(fetched.filter((f) => f.includes('fashion')).sort()).toEqual(['/models/fashion-mnist.json', '/models/fashion-mnist.safetensors']);
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('a page with cells', () => {
  it('says so when WebGPU is forced in a browser without it', async () => {
    const plain = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
      args: CHROMIUM_ARGS.filter((a) => a !== '--enable-unsafe-webgpu').concat('--disable-features=WebGPU') });
    try {
      const page = await plain.newPage();
      await page.goto(`${site.origin}${LAB}?backend=webgpu&cells=tiny`);
      const result = await runCell(page, 'forward-noising');
      expect(result.state).toBe('error');
      expect(result.error).toMatch(/^WebGPU is not available here: .*Remove \?backend=webgpu/);
    } finally {
      await plain.close();
    }
  });

  it('skips the software (SwiftShader) WebGPU adapter and WebGL renderer when no backend is forced', async () => {
    const { page, errors } = await open(`${LAB}?cells=tiny`);
    const result = await runCell(page, 'forward-noising');
    expect(result.state).toBe('done');
    expect(result.backend).toBe('wasm');
    expect(await page.locator('[data-run-cell="forward-noising"] [data-backend-label]').textContent()).toBe(`backend: ${result.backend}`);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('loads no tfjs code until the first run', async () => {
    const page = await site.browser.newPage();
    // each script is recorded as it arrives and read later, so none is missed while its body loads
    const responses: Promise<{ url: string; tfjs: boolean }>[] = [];
    page.on('response', (response) => {
      if (!response.url().endsWith('.js')) return;
      responses.push(response.text().catch(() => '').then((body) =>
        ({ url: response.url(), tfjs: body.includes('TENSORLIKE_CHECK_SHAPE_CONSISTENCY') })));
    });
    const { path, cells } = pagesWithCells().find((p) => p.cells.some((c) => c !== 'load-checkpoint'))!;
    await page.goto(`${site.origin}${path}?backend=wasm&cells=tiny`, { waitUntil: 'networkidle' });
    let scripts = await Promise.all(responses);
    const before = scripts.length;
    expect(before).toBeGreaterThan(0);
    expect(scripts.filter((s) => s.tfjs)).toEqual([]);
    expect((await runCell(page, cells.find((c) => c !== 'load-checkpoint')!)).state).toBe('done');
    await page.waitForLoadState('networkidle');
    scripts = await Promise.all(responses);
    expect(scripts.slice(before).some((s) => s.tfjs)).toBe(true);
    await page.close();
  });
});
