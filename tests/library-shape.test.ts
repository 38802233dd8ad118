// The copyable core stays small, self-contained and well-marked for the site.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRegions } from '../src/lib/site/regions';

const DIR = join(__dirname, '../src/lib/diffusion');
const files = readdirSync(DIR).filter((f) => f.endsWith('.ts'));
const source = (f: string) => readFileSync(join(DIR, f), 'utf8');

describe('src/lib/diffusion', () => {
  it('has at most 540 code lines (blank and comment lines not counted)', () => {
    const comment = /^\s*$|^\s*(\/\/|\/\*|\*)/;
    const code = files.flatMap((f) => source(f).split('\n')).filter((l) => !comment.test(l));
    expect(code.length).toBeLessThanOrEqual(540);
  });
  it('imports nothing but @tensorflow/tfjs-core and its own files', () => {
    for (const f of files) {
      const imports = [...source(f).matchAll(/from '([^']+)'|import '([^']+)'/g)].map((m) => m[1] ?? m[2]);
      for (const spec of imports) expect(spec === '@tensorflow/tfjs-core' || spec.startsWith('./'), `${f}: ${spec}`).toBe(true);
    }
  });
  it('has balanced, uniquely named #region markers, each 3 to 16 lines', () => {
    // the site's own parser (src/lib/site/regions.ts) throws on nested, unbalanced or duplicate markers
    const names = new Set<string>();
    for (const f of files) {
      for (const r of parseRegions(f, source(f))) {
        names.add(r.ref);
        const length = r.code.split('\n').length;
        expect(length, `${r.ref} has ${length} lines`).toBeGreaterThanOrEqual(3);
        expect(length, `${r.ref} has ${length} lines`).toBeLessThanOrEqual(16);
      }
    }
    expect(names.size).toBeGreaterThanOrEqual(20);
  });
});
