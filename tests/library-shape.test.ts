// The copyable core stays small, self-contained and well-marked for the site.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const DIR = join(__dirname, '../src/lib/diffusion');
const files = readdirSync(DIR).filter((f) => f.endsWith('.ts'));
const source = (f: string) => readFileSync(join(DIR, f), 'utf8');

describe('src/lib/diffusion', () => {
  it('has at most 450 code lines (blank and comment lines not counted)', () => {
    const code = files.flatMap((f) => source(f).split('\n')).filter((l) => !/^\s*$|^\s*(\/\/|\/\*|\*)/.test(l));
    expect(code.length).toBeLessThanOrEqual(450);
  });
  it('imports nothing but @tensorflow/tfjs-core and its own files', () => {
    for (const f of files) {
      const imports = [...source(f).matchAll(/from '([^']+)'|import '([^']+)'/g)].map((m) => m[1] ?? m[2]);
      for (const spec of imports) expect(spec === '@tensorflow/tfjs-core' || spec.startsWith('./'), `${f}: ${spec}`).toBe(true);
    }
  });
  it('has balanced, uniquely named #region markers, each 3 to 16 lines', () => {
    const names = new Set<string>();
    for (const f of files) {
      let open: { name: string; line: number } | null = null;
      source(f).split('\n').forEach((l, i) => {
        const start = l.match(/^\s*\/\/ #region (\S+)\s*$/);
        if (start) {
          expect(open, `${f}:${i + 1} nested region`).toBeNull();
          expect(names.has(`${f}#${start[1]}`), `${f}#${start[1]} twice`).toBe(false);
          names.add(`${f}#${start[1]}`);
          open = { name: start[1], line: i };
        } else if (/^\s*\/\/ #endregion\s*$/.test(l)) {
          expect(open, `${f}:${i + 1} #endregion without #region`).not.toBeNull();
          const length = i - open!.line - 1;
          expect(length, `${f}#${open!.name} has ${length} lines`).toBeGreaterThanOrEqual(3);
          expect(length, `${f}#${open!.name} has ${length} lines`).toBeLessThanOrEqual(16);
          open = null;
        }
      });
      expect(open, `${f}: unclosed region`).toBeNull();
    }
    expect(names.size).toBeGreaterThanOrEqual(20);
  });
});
