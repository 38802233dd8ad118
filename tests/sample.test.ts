// npm run sample: the JSON format, the PNG grid, defaults from the model card, and one-line errors with no file left behind.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PNG_SIGNATURE } from '../src/lib/data/png';
import { makeMnistJson, npmRun, tempDir } from './helpers/tiny-datasets';

const work = tempDir('sample-');
const models = join(work, 'models');
const sample = (...args: string[]) => npmRun('sample', ['--model', 'tiny', '--models', models, ...args]);

beforeAll(() => {
  const data = makeMnistJson(1);
  const r = npmRun('train', ['--dataset', 'mnist', '--data', data, '--channels', '32', '--timesteps', '40', '--batch', '2', '--epochs', '1',
    '--stop-at', '1', '--out', 'tiny', '--checkpoints', join(work, 'ck'), '--models', models]);
  if (r.code !== 0) throw new Error(r.stderr);
});

describe('npm run sample', () => {
  it('writes exactly {labels, shape, images} with N*784 values in [-1, 1], label-major', () => {
    const out = join(work, 'a.json');
    const r = sample('--labels', '3,7', '--per-label', '2', '--steps', '2', '--guidance', '2', '--seed', '4', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(Object.keys(json)).toEqual(['labels', 'shape', 'images']);
    expect(json.labels).toEqual([3, 3, 7, 7]);
    expect(json.shape).toEqual([4, 28, 28]);
    expect(json.images).toHaveLength(4 * 784);
    expect(json.images.every((v: unknown) => typeof v === 'number' && v >= -1 && v <= 1)).toBe(true);
    const again = join(work, 'b.json');
    sample('--labels', '3,7', '--per-label', '2', '--steps', '2', '--guidance', '2', '--seed', '4', '--out', again);
    expect(readFileSync(again, 'utf8')).toBe(readFileSync(out, 'utf8')); // the seed fixes every value
  });

  it('writes a PNG grid, one row per label, and takes its defaults from the model card', () => {
    const card = JSON.parse(readFileSync(join(models, 'tiny.json'), 'utf8'));
    writeFileSync(join(models, 'tiny.json'), JSON.stringify({ ...card, recommended: { ...card.recommended, steps: 3, eta: 0.5, recomputeEps: false, guidance: 1.5 } }));
    const out = join(work, 'grid.png');
    const r = sample('--labels', '0,1,2', '--per-label', '2', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/6 images from tiny with ddim-3 \(eta 0\.5\), guidance 1\.5/);
    const png = readFileSync(out);
    expect(Array.from(png.subarray(0, 8))).toEqual(Array.from(PNG_SIGNATURE));
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([10 + 2 * 58 + 2, 3 * 58 + 2]); // margin + 2 columns, 3 rows of 56 + 2
  });

  it('recomputes DDIM\'s eps from the clipped x_0 as the card says, unless --recompute-eps says otherwise', () => {
    const run = (...flags: string[]) => {
      const out = join(work, `eps${flags.join('')}.json`);
      const r = sample('--labels', '4', '--steps', '3', '--guidance', '3', '--seed', '2', ...flags, '--out', out);
      expect(r.code, r.stderr).toBe(0);
      return { stderr: r.stderr, images: JSON.parse(readFileSync(out, 'utf8')).images as number[] };
    };
    const card = JSON.parse(readFileSync(join(models, 'tiny.json'), 'utf8'));
    writeFileSync(join(models, 'tiny.json'), JSON.stringify({ ...card, recommended: { ...card.recommended, eta: 1, recomputeEps: true } }));
    const byCard = run();
    expect(byCard.stderr).toMatch(/with ddim-3 \(eta 1, eps recomputed\)/);
    expect(run('--recompute-eps', 'true').images).toEqual(byCard.images);
    const paper = run('--recompute-eps', 'false');
    expect(paper.stderr).toMatch(/with ddim-3 \(eta 1\), guidance 3/);
    expect(paper.images).not.toEqual(byCard.images); // an untrained model's x_0 estimates are clipped, so eps changes
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
    const cases: [string[], RegExp][] = [
      [['--labels', '3,x', '--out', out], /--labels must be integers in 0\.\.9/],
      [['--labels', '10', '--out', out], /--labels must be integers in 0\.\.9/],
      [['--out', join(work, 'x.txt')], /--out must end in \.png .* or \.json/],
      [['--out', join(work, 'no-such-folder', 'x.json')], /the folder .* does not exist/],
      [['--sampler', 'euler', '--out', out], /--sampler must be ddpm or ddim/],
      [['--sampler', 'ddpm', '--steps', '5', '--out', out], /--steps, --eta and --recompute-eps apply to --sampler ddim only/],
      [['--sampler', 'ddpm', '--recompute-eps', '--out', out], /--steps, --eta and --recompute-eps apply to --sampler ddim only/],
      [['--recompute-eps', 'yes', '--out', out], /--recompute-eps must be true or false, received "yes"/],
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
});
