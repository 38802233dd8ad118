// The "Pretrained models" page: one card per shipped diffusion model, rebuilt from its public/models/NAME.json.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';

const MODELS = join(__dirname, '../public/models');
const cards = readdirSync(MODELS).filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(join(MODELS, f), 'utf8'))).filter((c) => c.architecture && c.training?.lossCurve);

describe('the built models page', () => {
  const buildError = inject('siteBuildError');
  const html = () => {
    if (buildError) throw new Error(buildError);
    return readFileSync(join(inject('siteDist'), 'models', 'index.html'), 'utf8');
  };
  it('ships at least one diffusion model card', () => expect(cards.length).toBeGreaterThanOrEqual(1));
  it('has a card per model with its images seen, loss curve and every eval row with its sample grid', () => {
    const page = html();
    for (const c of cards) {
      expect(page).toContain(`id="${c.name}"`);
      expect(page).toContain(c.training.imagesSeen.toLocaleString('en'));
      expect(page).toMatch(new RegExp(`aria-label="Training loss of ${c.name}`));
      for (const { step, lr } of c.training.lrFrom ?? []) expect(page).toContain(step ? `${lr} from step ${step.toLocaleString('en')}` : String(lr));
      if (c.recommended.chosen) expect(page).toContain(c.recommended.chosen);
      if (c.recommended.recomputeEps) expect(page).toMatch(new RegExp(`η = ${c.recommended.eta}, ε recomputed from the clipped x̂₀,\\s+guidance w = ${c.recommended.guidance}`));
      const init = c.training.initFrom;
      if (init) expect(page).toContain(`${(init.imagesSeen + c.training.imagesSeen).toLocaleString('en')} images seen in all`);
      if (init) expect(page).toContain(`>${init.checkpoint}</code>, a ${init.channels}-channel`);
      for (const r of c.eval?.results ?? []) {
        expect(page).toContain(`${Math.round(r.recognised * 100)}%`);
        expect(page).toContain(r.frechet.toFixed(1));
        if (r.grid) expect(page).toContain(`src="/models/${r.grid}"`);
      }
    }
  });
  it('links files that exist', () => {
    for (const c of cards) for (const ext of ['safetensors', 'json']) expect(readdirSync(MODELS)).toContain(`${c.name}.${ext}`);
  });
});
