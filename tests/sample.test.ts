// npm run sample: the JSON format, the PNG grid, defaults from the model card, and one-line errors
// with no file left behind.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PNG_SIGNATURE } from '../src/lib/data/png';
import { makeMnistJson, npmRun, tempDir } from './helpers/tiny-datasets';
import { readSafetensors } from '../src/lib/diffusion';
import { callPickle, fromHost, withPickle, writePth } from './helpers/pth-writer';

const work = tempDir('sample-');
const models = join(work, 'models');
const sample = (...args: string[]) =>
  npmRun('sample', ['--model', 'tiny', '--models', models, ...args]);
/** Rewrites the tiny model's card with `recommended` changed. */
const recommend = (changes: Record<string, unknown>) => {
  const card = JSON.parse(readFileSync(join(models, 'tiny.json'), 'utf8'));
  const recommended = { ...card.recommended, ...changes };
  writeFileSync(join(models, 'tiny.json'), JSON.stringify({ ...card, recommended }));
};

beforeAll(() => {
  const data = makeMnistJson(1);
  const r = npmRun('train', [
    '--dataset', 'mnist', '--data', data, '--channels', '32', '--timesteps', '40', '--batch', '2',
    '--epochs', '1', '--stop-at', '1', '--out', 'tiny', '--checkpoints', join(work, 'ck'),
    '--models', models,
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
});

describe('npm run sample', () => {
  it('writes exactly {labels, shape, images} with N*784 values in [-1, 1], label-major', () => {
    const out = join(work, 'a.json');
    const args = ['--labels', '3,7', '--per-label', '2', '--steps', '2', '--guidance', '2'];
    const r = sample(...args, '--seed', '4', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(Object.keys(json)).toEqual(['labels', 'shape', 'images']);
    expect(json.labels).toEqual([3, 3, 7, 7]);
    expect(json.shape).toEqual([4, 28, 28]);
    expect(json.images).toHaveLength(4 * 784);
    const inRange = (v: unknown) => typeof v === 'number' && v >= -1 && v <= 1;
    expect(json.images.every(inRange)).toBe(true);
    const again = join(work, 'b.json');
    sample(...args, '--seed', '4', '--out', again);
    // the seed fixes every value
    expect(readFileSync(again, 'utf8')).toBe(readFileSync(out, 'utf8'));
  });

  it('writes a PNG grid, one row per label, and takes its defaults from the model card', () => {
    recommend({ steps: 3, eta: 0.5, recomputeEps: false, guidance: 1.5 });
    const out = join(work, 'grid.png');
    const r = sample('--labels', '0,1,2', '--per-label', '2', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/6 images from tiny with ddim-3 \(eta 0\.5\), guidance 1\.5/);
    const png = readFileSync(out);
    expect(Array.from(png.subarray(0, 8))).toEqual(Array.from(PNG_SIGNATURE));
    // margin + 2 columns, 3 rows of 56 + 2
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([10 + 2 * 58 + 2, 3 * 58 + 2]);
  });

  const epsTitle = 'recomputes DDIM\'s eps from the clipped x_0 as the card says, '
    + 'unless --recompute-eps says otherwise';
  it(epsTitle, () => {
    const run = (...flags: string[]) => {
      const out = join(work, `eps${flags.join('')}.json`);
      const r = sample('--labels', '4', '--steps', '3', '--guidance', '3', '--seed', '2', ...flags,
        '--out', out);
      expect(r.code, r.stderr).toBe(0);
      return { stderr: r.stderr, images: JSON.parse(readFileSync(out, 'utf8')).images as number[] };
    };
    recommend({ eta: 1, recomputeEps: true });
    const byCard = run();
    expect(byCard.stderr).toMatch(/with ddim-3 \(eta 1, eps recomputed\)/);
    expect(run('--recompute-eps', 'true').images).toEqual(byCard.images);
    const paper = run('--recompute-eps', 'false');
    expect(paper.stderr).toMatch(/with ddim-3 \(eta 1\), guidance 3/);
    // an untrained model's x_0 estimates are clipped, so eps changes
    expect(paper.images).not.toEqual(byCard.images);
  });

  it('runs DDPM over all T steps', () => {
    const out = join(work, 'ddpm.json');
    const r = sample('--labels', '5', '--sampler', 'ddpm', '--guidance', '0', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/with ddpm \(40 steps\)/);
    expect(JSON.parse(readFileSync(out, 'utf8')).shape).toEqual([1, 28, 28]);
  });

  it('fails with one line and writes nothing on bad input', () => {
    const out = join(work, 'never.json');
    const ddimOnly = /--steps, --eta and --recompute-eps apply to --sampler ddim only/;
    const cases: [string[], RegExp][] = [
      [['--labels', '3,x', '--out', out], /--labels must be integers in 0\.\.9/],
      [['--labels', '10', '--out', out], /--labels must be integers in 0\.\.9/],
      [['--out', join(work, 'x.txt')], /--out must end in \.png .* or \.json/],
      [['--out', join(work, 'no-such-folder', 'x.json')], /the folder .* does not exist/],
      [['--sampler', 'euler', '--out', out], /--sampler must be ddpm or ddim/],
      [['--sampler', 'ddpm', '--steps', '5', '--out', out], ddimOnly],
      [['--sampler', 'ddpm', '--recompute-eps', '--out', out], ddimOnly],
      [['--recompute-eps', 'yes', '--out', out],
        /--recompute-eps must be true or false, received "yes"/],
      [['--steps', '45', '--out', out], /DDIM steps must be an integer in 1\.\.39/],
      [['--guidance', 'strong', '--out', out], /--guidance must be a valid number/],
      [['--per-label', '0', '--out', out], /--per-label must be a valid number/],
      [['--model', 'missing', '--out', out], /model "missing" not found/],
      [['--labels', '1'], /missing --out/],
    ];
    for (const [args, message] of cases) {
      const r = sample(...args);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    expect(existsSync(out)).toBe(false);
  });

  it('--weights reads a .pth (cpu or cuda:0 storages) and draws what the same model draws', () => {
    const bytes = new Uint8Array(readFileSync(join(models, 'tiny.safetensors')));
    const host = readSafetensors(bytes).tensors;
    writeFileSync(join(work, 'cpu.pth'), writePth(fromHost(host)));
    writeFileSync(join(work, 'gpu.pth'), writePth(fromHost(host), { location: 'cuda:0' }));
    const images = (args: string[]) => {
      const out = join(work, 'w.json');
      const r = npmRun('sample', [...args, '--labels', '2,5', '--seed', '3', '--out', out]);
      expect(r.code, r.stderr).toBe(0);
      return { stderr: r.stderr, images: JSON.parse(readFileSync(out, 'utf8')).images };
    };
    // the paper's sampling, which --weights uses: DDIM with T - 1 = 39 steps here, eta 0, w = 1
    const card = images(['--model', 'tiny', '--models', models, '--steps', '39', '--eta', '0',
      '--guidance', '1', '--recompute-eps', 'false']);
    for (const file of ['cpu.pth', 'gpu.pth']) {
      const pth = images(['--weights', join(work, file), '--timesteps', '40']);
      expect(pth.images).toEqual(card.images);
      expect(pth.stderr).toMatch(/paper-linear, T = 40 \(as told\)/);
    }
    const paper = images(['--weights', join(work, 'cpu.pth'), '--steps', '2']);
    expect(paper.stderr).toMatch(/paper-linear, T = 300 \(the paper's/);
    writeFileSync(join(work, 'evil.pth'), withPickle(callPickle('os', 'system', 'touch pwned')));
    const cases: [string[], RegExp][] = [
      [['--weights', join(work, 'evil.pth')], /refusing to load this \.pth: .*os\.system/],
      [['--weights', join(work, 'none.pth')], /weights file not found/],
      [['--weights', join(work, 'cpu.pth'), '--schedule', 'sigmoid'], /--schedule must be one of/],
      [['--model', 'tiny', '--weights', join(work, 'cpu.pth')], /either --model NAME .* or --weights/],
      [['--model', 'tiny', '--models', models, '--timesteps', '40'], /go with --weights/],
    ];
    for (const [args, message] of cases) {
      const r = npmRun('sample', [...args, '--out', join(work, 'e.json')]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    expect(existsSync(join(work, 'e.json'))).toBe(false);
    expect(existsSync('pwned')).toBe(false);
  });
});
