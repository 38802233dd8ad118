// The code panes show the library's regions exactly, every region is shown somewhere, and a chapter that
// names a missing region fails the build with a message that says which chapter and which region.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, beforeAll } from 'vitest';
import { fromHtml } from 'hast-util-from-html';
import { selectAll } from 'hast-util-select';
import { toString } from 'hast-util-to-string';
import { getRegion, listRegions, parseRegions } from '../src/lib/site/regions';
import { highlightTs } from '../src/lib/site/highlight';
import { symbolsFor } from '../src/lib/site/symbols';
import { siteDist } from './helpers/site-dist';

/** The chapter pages, in reading order: src/content/docs/chapters/NN-slug.mdx is built to chapters/NN-slug/index.html. */
const CHAPTERS = readdirSync(join(process.cwd(), 'src/content/docs/chapters')).filter((f) => f.endsWith('.mdx')).sort().map((f) => f.slice(0, -4));

const DOCS = join(process.cwd(), 'src/content/docs');
const mdxFiles = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? mdxFiles(join(dir, e.name)) : e.name.endsWith('.mdx') ? [join(dir, e.name)] : []);
const shownIn = (file: string) => [...readFileSync(file, 'utf8').matchAll(/<EquationCode\s+region="([^"]+)"/g)].map((m) => m[1]);

describe('the region extractor', () => {
  it('returns the text between the markers, dedented, markers excluded', () => {
    const source = ['a', '  // #region r1', '  if (x) {', '    y();', '  }', '  // #endregion', 'b'].join('\n');
    expect(parseRegions('f.ts', source)).toEqual([{ file: 'f.ts', name: 'r1', ref: 'f.ts#r1', code: 'if (x) {\n  y();\n}', startLine: 3 }]);
  });

  it('rejects unbalanced and duplicate markers', () => {
    expect(() => parseRegions('f.ts', '// #region a\nx')).toThrow(/region "a" has no \/\/ #endregion/);
    expect(() => parseRegions('f.ts', 'x\n// #endregion')).toThrow(/without a matching #region/);
    expect(() => parseRegions('f.ts', '// #region a\n// #endregion\n// #region a\n// #endregion')).toThrow(/defined twice/);
  });

  it('names the chapter and the missing FILE#REGION', () => {
    expect(() => getRegion('forward.ts#no-such-region', 'the chapter /chapters/02-forward-diffusion/'))
      .toThrow(/the chapter \/chapters\/02-forward-diffusion\/ names region "forward.ts#no-such-region", which does not exist: src\/lib\/diffusion\/forward.ts has "q-sample"/);
    expect(() => getRegion('nowhere.ts#q-sample', 'the chapter X')).toThrow(/the chapter X names region "nowhere.ts#q-sample", but src\/lib\/diffusion\/nowhere.ts does not exist/);
    expect(() => getRegion('q-sample', 'the chapter X')).toThrow(/expected "FILE#REGION"/);
  });

  it('is what every pair uses, so a missing region fails the build', () => {
    const component = readFileSync(join(process.cwd(), 'src/components/EquationCode.astro'), 'utf8');
    expect(component).toMatch(/getRegion\(region, `the chapter \$\{Astro\.url\.pathname\}`\)/);
  });
});

describe('the symbol links of a pane', () => {
  const tagged = async (ref: string) => {
    const html = await highlightTs(getRegion(ref).code, symbolsFor(ref));
    return [...html.matchAll(/data-sym="([^"]+)"[^>]*>([^<]*)</g)].map((m) => `${m[2]}=${m[1]}`);
  };

  it('give a name the meaning it has in its region', async () => {
    expect(await tagged('unet.ts#group-norm')).toContain('mean=groupMean');
    expect(await tagged('unet.ts#group-norm')).not.toContain('mean=mu');
    expect(await tagged('unet.ts#group-norm')).not.toContain('eps=eps'); // GroupNorm's 1e-5
    expect(await tagged('ddpm.ts#posterior')).toContain('mean=mu');
  });

  it('leave comments and strings alone and tag code in a template\'s ${...}', async () => {
    const code = "// eta here is prose\nconst s = `eta ${eta}`, q = 'eta';";
    const html = await highlightTs(code, { eta: 'eta' });
    expect([...html.matchAll(/data-sym="eta"/g)], 'only the eta inside ${...}').toHaveLength(1);
  });
});

describe('region coverage', () => {
  const regions = listRegions();
  const shown = new Set(mdxFiles(DOCS).flatMap(shownIn));

  it('finds the library regions', () => {
    expect(regions.length).toBeGreaterThanOrEqual(20);
  });

  it('shows every library region in some chapter', () => {
    const unshown = regions.map((r) => r.ref).filter((ref) => !shown.has(ref));
    expect(unshown, `regions of src/lib/diffusion that no chapter shows: ${unshown.join(', ')}`).toEqual([]);
  });

  it('names only regions that exist', () => {
    const refs = new Set(regions.map((r) => r.ref));
    const missing = [...shown].filter((ref) => !refs.has(ref));
    expect(missing, `chapters name regions that do not exist: ${missing.join(', ')}`).toEqual([]);
  });
});

describe('the built code panes', () => {
  let dist = '';
  beforeAll(async () => {
    dist = siteDist();
  }, 600_000);

  it('show exactly the current source of their region, at least 20 of them across the chapters', () => {
    let panes = 0;
    const mismatches: string[] = [];
    for (const slug of CHAPTERS) {
      const file = join(dist, 'chapters', slug, 'index.html');
      expect(existsSync(file), `${file} was not built`).toBe(true);
      const tree = fromHtml(readFileSync(file, 'utf8'));
      for (const pane of selectAll('[data-region]', tree)) {
        panes++;
        const ref = String(pane.properties.dataRegion);
        const lines = selectAll('.line', pane).map((l) => toString(l)).join('\n');
        const expected = getRegion(ref).code;
        if (lines !== expected || toString(pane) !== expected.replace(/\n/g, '')) mismatches.push(`${slug}: ${ref}`);
      }
      const pairs = selectAll('.eq-pair', tree);
      expect(pairs.length, `${slug} has no equation/code pair`).toBeGreaterThan(0);
      for (const pair of pairs) {
        expect(selectAll('.eq-side', pair).length).toBe(1);
        expect(selectAll('[data-region]', pair).length).toBe(1);
      }
    }
    expect(mismatches, `panes whose text differs from the region source: ${mismatches.join(', ')}`).toEqual([]);
    expect(panes).toBeGreaterThanOrEqual(20);
  });
});
