// The evaluation classifier and npm run eval on a tiny model: numbers per guidance in the model
// card, grids beside it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backend } from './helpers/backend';
import {
  DEFAULT_CLASSIFIER, classify, classifierLoss, initClassifier, loadClassifier, saveClassifier,
} from '../src/lib/classifier/cnn';
import { makeMnistJson, npmRun, tempDir } from './helpers/tiny-datasets';

const work = tempDir('eval-');
const models = join(work, 'models');
const data = makeMnistJson(10); // 9 training and 1 held-out image per digit

describe('the evaluation classifier', () => {
  it('classifies and embeds without leaking tensors, and round-trips through safetensors',
    async () => {
      const tf = await backend('wasm');
      const p = initClassifier(DEFAULT_CLASSIFIER, 1);
      const before = tf.memory().numTensors;
      const images = new Float32Array(3 * 784).map((_, i) => Math.sin(i));
      const { predicted, features } = await classify(p, DEFAULT_CLASSIFIER, images, 2);
      const x = tf.tensor4d(images, [3, 28, 28, 1]);
      const loss = classifierLoss(p, DEFAULT_CLASSIFIER, x, [0, 1, 2]);
      expect((await loss.data())[0]).toBeGreaterThan(0);
      tf.dispose(loss);
      expect(tf.memory().numTensors).toBe(before + 1); // only the input tensor made above
      expect(predicted).toHaveLength(3);
      expect(features).toHaveLength(3 * DEFAULT_CLASSIFIER.features);
      const back = loadClassifier(await saveClassifier(p), DEFAULT_CLASSIFIER);
      expect((await classify(back, DEFAULT_CLASSIFIER, images)).features).toEqual(features);
      const partial = await saveClassifier({ 'conv1.weight': p['conv1.weight'] });
      expect(() => loadClassifier(partial, DEFAULT_CLASSIFIER)).toThrow(/lack tensor "conv1.bias"/);
    });
});

describe('npm run eval', () => {
  beforeAll(() => {
    for (const [name, args] of [
      ['train', [
        '--dataset', 'mnist', '--channels', '32', '--timesteps', '40', '--batch', '4',
        '--epochs', '1', '--stop-at', '1', '--out', 'tiny', '--checkpoints', join(work, 'ck'),
      ]],
      ['train-classifier', ['--dataset', 'mnist', '--epochs', '1', '--batch', '30']],
    ] as const) {
      const r = npmRun(name, [...args, '--data', data, '--models', models]);
      if (r.code !== 0) throw new Error(r.stderr);
    }
  });

  const scoresTitle = 'scores samples per guidance against the floor of real images and writes '
    + 'them into the model card';
  it(scoresTitle, () => {
    const r = npmRun('eval', ['--model', 'tiny', '--models', models, '--data', data,
      '--per-class', '2', '--steps', '2', '--guidance', '0,1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/real training images/);
    const card = JSON.parse(readFileSync(join(models, 'tiny.json'), 'utf8'));
    expect(card.eval).toMatchObject({
      classifier: 'classifier-mnist', sampler: 'ddim', steps: 2, samplesPerClass: 2,
      heldOutImages: 10, defaultGuidance: 3,
    });
    expect(card.eval.results.map((x: { guidance: number }) => x.guidance)).toEqual([3, 0, 1]);
    for (const x of card.eval.results) {
      expect(x.recognised).toBeGreaterThanOrEqual(0);
      expect(x.recognised).toBeLessThanOrEqual(1);
      expect(x.perClass).toHaveLength(10);
      expect(Number.isFinite(x.frechet)).toBe(true);
      expect(existsSync(join(models, x.grid))).toBe(true);
    }
    expect(card.eval.floor.images).toBe(20);
    expect(card.training.steps).toBe(1); // the rest of the card is kept
  });

  const etaTitle = 'samples at the card\'s recommended eta and recompute-eps unless told '
    + 'otherwise, and training keeps a tuned recommendation';
  it(etaTitle, () => {
    const path = join(models, 'tiny.json');
    const tuned = JSON.parse(readFileSync(path, 'utf8'));
    tuned.recommended = {
      ...tuned.recommended, eta: 0.5, recomputeEps: false, guidance: 2, chosen: 'chosen on seed 1',
    };
    writeFileSync(path, JSON.stringify(tuned));
    const args = ['--model', 'tiny', '--models', models, '--data', data, '--per-class', '2',
      '--steps', '2', '--guidance', '0'];
    expect(npmRun('eval', args).code).toBe(0);
    let card = JSON.parse(readFileSync(path, 'utf8'));
    expect(card.eval).toMatchObject({
      eta: 0.5, defaultEta: 0.5, recomputeEps: false, defaultRecomputeEps: false,
      defaultGuidance: 2, command: 'npm run eval -- --model tiny',
    });
    const recomputed = npmRun('eval', [...args, '--recompute-eps', 'true']);
    expect(recomputed.stdout).toMatch(/DDIM-2 \(eta 0\.5, eps recomputed\), w = 2/);
    card = JSON.parse(readFileSync(path, 'utf8'));
    expect(card.eval).toMatchObject({
      recomputeEps: true, defaultRecomputeEps: false,
      command: 'npm run eval -- --model tiny --recompute-eps true', targetMet: false,
    });
    const r = npmRun('eval', [...args, '--eta', '0']);
    expect(r.stdout).toMatch(/DDIM-2 \(eta 0\), w = 2/);
    card = JSON.parse(readFileSync(path, 'utf8'));
    expect(card.eval).toMatchObject({
      eta: 0, defaultEta: 0.5, command: 'npm run eval -- --model tiny --eta 0', targetMet: false,
    });
    const resumed = npmRun('train', ['--resume', '--out', 'tiny', '--stop-at', '2',
      '--checkpoints', join(work, 'ck'), '--models', models, '--data', data]);
    expect(resumed.code, resumed.stderr).toBe(0);
    card = JSON.parse(readFileSync(path, 'utf8'));
    expect(card.training.steps).toBe(2);
    expect(card.recommended)
      .toMatchObject({ eta: 0.5, recomputeEps: false, guidance: 2, chosen: 'chosen on seed 1' });
    expect(card.eval.eta).toBe(0);
    expect(npmRun('eval', [...args, '--eta', '2']).stderr).toMatch(/--eta must be a valid number/);
    expect(npmRun('eval', [...args, '--recompute-eps', '1']).stderr)
      .toMatch(/--recompute-eps must be true or false/);
  });

  const tuneTitle = '--tune chooses the default guidance on other seeds, writes it into the card, '
    + 'then reports at it';
  it(tuneTitle, () => {
    const path = join(models, 'tiny.json');
    const args = ['--model', 'tiny', '--models', models, '--data', data, '--per-class', '2',
      '--steps', '2', '--guidance', '4'];
    const r = npmRun('eval', [...args, '--tune', '0,1,2', '--tune-seeds', '3', '--eta', '0.5',
      '--recompute-eps', 'true']);
    expect(r.code, r.stderr).toBe(0);
    const card = JSON.parse(readFileSync(path, 'utf8'));
    const { guidance, eta, recomputeEps, chosen } = card.recommended;
    expect([eta, recomputeEps]).toEqual([0.5, true]);
    expect(chosen).toMatch(new RegExp(
      String.raw`^η = 0\.5, eps recomputed from the clipped x̂0, and w = \d chosen by npm run eval `
      + String.raw`-- --tune on seeds 3 \(20 samples each\), recognised for w = 0 \/ 1 \/ 2: `
      + String.raw`[\d.]+ \/ [\d.]+ \/ [\d.]+%; npm run eval reports seed 0$`));
    const shares = chosen.match(/: ([\d.]+) \/ ([\d.]+) \/ ([\d.]+)%/).slice(1).map(Number);
    expect(shares[guidance]).toBe(Math.max(...shares)); // w = 0, 1, 2 sit at index w
    for (const w of [0, 1, 2]) {
      expect(r.stderr).toContain(`tune w = ${w}: recognised ${shares[w].toFixed(1)}% on seeds 3`);
    }
    expect(card.eval).toMatchObject({
      defaultGuidance: guidance, defaultEta: 0.5, eta: 0.5, defaultRecomputeEps: true,
      recomputeEps: true,
    });
    expect(card.eval.results.map((x: { guidance: number }) => x.guidance)).toEqual([guidance, 4]);
    expect(card.training.steps).toBe(2); // the rest of the card is kept
    const clash = npmRun('eval', [...args, '--tune', '1', '--tune-seeds', '0,1']);
    expect(clash.code).toBe(1);
    const reuse = '^error: --tune-seeds must not reuse the noise of the reported --seed 0: ';
    expect(clash.stderr).toMatch(new RegExp(`${reuse}keep them 1 or more away`));
    // chunks of 100 use seeds 0 and 1
    const chunked = npmRun('eval',
      [...args, '--per-class', '20', '--tune', '1', '--tune-seeds', '1']);
    expect(chunked.stderr).toMatch(new RegExp(`${reuse}keep them 2 or more away`));
    expect(npmRun('eval', [...args, '--tune', '1,x']).stderr)
      .toMatch(/--tune must be numbers separated by commas, received "1,x"/);
  });

  it('says how to get a missing classifier', () => {
    const r = npmRun('eval',
      ['--model', 'tiny', '--models', models, '--data', data, '--classifier', 'nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/classifier "nope" not found: .*npm run train-classifier/);
  });
});
