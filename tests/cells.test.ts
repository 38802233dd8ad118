// The cells' plain logic, in Node: backend choice, error wording, model cards, step picks.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { forcedBackend, isSoftwareAdapter } from '../src/lib/runtime/browser';
import { describeError } from '../src/lib/runtime/cells/controller';
import { scheduleFromJson, siteModel } from '../src/lib/runtime/cells/engine';
import type { CellContext } from '../src/lib/runtime/cells/controller';
import { labelsFor, snapshotSteps } from '../src/lib/runtime/cells/sampling';
import type { Model } from '../src/lib/runtime/cells/engine';
import { parseModelCard } from '../src/lib/models/card';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

describe('backend choice', () => {
  it('reads ?backend= and rejects unknown names with the known ones', () => {
    expect(forcedBackend('?backend=wasm&cells=tiny')).toBe('wasm');
    expect(forcedBackend('?cells=tiny')).toBeNull();
    expect(() => forcedBackend('?backend=metal')).toThrow('?backend=metal is not a backend: expected one of webgpu, webgl, wasm, cpu');
  });

  it('calls an adapter software when it says it is a fallback or names SwiftShader, llvmpipe or lavapipe', () => {
    expect(isSoftwareAdapter({ info: { vendor: 'google', architecture: 'swiftshader' } })).toBe(true);
    expect(isSoftwareAdapter({ info: { vendor: 'mesa', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' } })).toBe(true);
    expect(isSoftwareAdapter({ info: { device: 'lavapipe' } })).toBe(true);
    expect(isSoftwareAdapter({ isFallbackAdapter: true, info: {} })).toBe(true);
    expect(isSoftwareAdapter({ info: { isFallbackAdapter: true } })).toBe(true);
    expect(isSoftwareAdapter({ info: { vendor: 'nvidia', architecture: 'ampere' } })).toBe(false);
  });
});

describe('cell messages', () => {
  it('turn out-of-memory errors into advice and keep other messages', () => {
    expect(describeError(new Error('Failed to allocate buffer'), 'webgpu')).toMatch(/^Out of memory on the webgpu backend: try fewer images/);
    expect(describeError(new Error('tensor "x" has shape [1]; expected [2]'), 'wasm')).toBe('tensor "x" has shape [1]; expected [2]');
    expect(describeError('plain', 'cpu')).toBe('plain');
  });
});

describe('model cards and sampling picks', () => {
  it('take the schedule from a model card, or the paper default', () => {
    const s = scheduleFromJson({ schedule: { kind: 'cosine', T: 400 } });
    expect([s.kind, s.T]).toEqual(['cosine', 400]);
    const d = scheduleFromJson({});
    expect([d.kind, d.T]).toEqual(['paper-linear', 1000]);
    const flat = scheduleFromJson({ schedule: 'ddpm-linear', T: 50 });
    expect([flat.kind, flat.T]).toEqual(['ddpm-linear', 50]);
  });

  it('spread snapshot steps over the chain and always end at the last', () => {
    expect(snapshotSteps(1000, 8)).toEqual([125, 250, 375, 500, 625, 750, 875, 1000]);
    expect(snapshotSteps(3, 8)).toEqual([1, 2, 3]);
  });

  it('turn the class select into labels, and refuse a class for an unconditional model', () => {
    const conditional = { config: { imageChannels: 1, channels: 32, classes: 10 } } as Model;
    expect(labelsFor(conditional, '', 3)).toBeUndefined();
    expect(labelsFor(conditional, '7', 2)).toEqual([7, 7]);
    expect(() => labelsFor(conditional, '12', 1)).toThrow('class 12 is out of range: expected 0..9');
    expect(() => labelsFor({ config: { ...conditional.config, classes: null } } as Model, '3', 1)).toThrow(/no class embedding/);
  });
});

describe('the model card parser', () => {
  const MODELS = join(__dirname, '../public/models');
  const shipped = readdirSync(MODELS).filter((f) => f.endsWith('.json'))
    .map((f) => ({ f, json: JSON.parse(readFileSync(join(MODELS, f), 'utf8')) }))
    .filter(({ json }) => json.kind !== 'classifier');
  const base = shipped[0].json;

  it('accepts every shipped card as it is', () => {
    expect(shipped.length).toBeGreaterThanOrEqual(1);
    for (const { f, json } of shipped) {
      const card = parseModelCard(json, f);
      expect(card.recommended).toEqual(json.recommended);
      expect(card.schedule).toEqual(json.schedule);
    }
  });

  it('fills an older card with eta 0 and the paper\'s DDIM loop', () => {
    const { eta: _eta, recomputeEps: _r, ...older } = base.recommended;
    const card = parseModelCard({ ...base, recommended: older }, 'old.json');
    expect([card.recommended.eta, card.recommended.recomputeEps]).toEqual([0, false]);
  });

  it('names the file and the missing or bad field', () => {
    const { schedule: _s, ...noSchedule } = base;
    expect(() => parseModelCard(noSchedule, 'public/models/x.json'))
      .toThrow('public/models/x.json: schedule is missing; expected an object');
    expect(() => parseModelCard({ ...base, schedule: { kind: 'cosine' } }, 'x.json'))
      .toThrow('x.json: schedule.T is missing; expected an integer >= 2');
    expect(() => parseModelCard({ ...base, schedule: { kind: 'linear', T: 10 } }, 'x.json'))
      .toThrow('x.json: schedule.kind is "linear"; expected one of paper-linear, ddpm-linear, cosine');
    const badEta = { ...base, recommended: { ...base.recommended, eta: 'one' } };
    expect(() => parseModelCard(badEta, 'x.json')).toThrow('x.json: recommended.eta is "one"');
    expect(() => parseModelCard([], 'x.json')).toThrow('x.json: [] is not a model card');
  });
});

describe('a site model whose card is missing or bad', () => {
  afterEach(() => vi.unstubAllGlobals());
  const ctx = { tiny: false, search: '' } as CellContext;
  const serve = (card: unknown) => {
    vi.stubGlobal('location', { href: 'http://site.test/chapters/x/' });
    vi.stubGlobal('fetch', async (url: URL) => (card === undefined || !String(url).endsWith('.json')
      ? new Response('not found', { status: 404 }) : Response.json(card)));
  };

  it('is an error on the cell that names the card, not a silent default schedule', async () => {
    serve(undefined);
    await expect(siteModel(ctx, 'mnist')).rejects.toThrow('could not fetch the model card /models/mnist.json: HTTP 404');
    const card = JSON.parse(readFileSync(join(__dirname, '../public/models/mnist.json'), 'utf8'));
    serve({ ...card, schedule: { kind: 'paper-linear' } });
    await expect(siteModel(ctx, 'mnist')).rejects.toThrow('/models/mnist.json: schedule.T is missing; expected an integer >= 2');
  });
});
