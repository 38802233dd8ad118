// No line over 100 columns in src/ and scripts/, whatever the language: a code pane beside its
// equation shows about 100 columns at 1440 px, and prose in the chapters is read as source too.
// ESLint's max-len covers the TypeScript; this covers .mdx, .astro, .css and .mjs as well.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..');
const MAX = 100;
const TEXT = /\.(ts|mts|js|mjs|mdx|md|astro|css)$/;

const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? files(join(dir, e.name)) : TEXT.test(e.name) ? [join(dir, e.name)] : []);

describe('line width', () => {
  it(`has no line over ${MAX} columns in src/ and scripts/`, () => {
    const long = ['src', 'scripts'].flatMap((d) => files(join(ROOT, d))).flatMap((f) =>
      readFileSync(f, 'utf8').split('\n').flatMap((line, i) => {
        const width = [...line.replace(/\t/g, '  ')].length;
        return width > MAX ? [`${relative(ROOT, f)}:${i + 1} (${width})`] : [];
      }));
    expect(long, `lines over ${MAX} columns:\n${long.join('\n')}`).toEqual([]);
  });
});
