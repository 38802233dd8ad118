// Build-time access to the `// #region NAME` ... `// #endregion` blocks of src/lib/diffusion.
// The site prints these blocks beside the equations, so a page can never drift from the code.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { REGION_END, REGION_REF, REGION_START } from './region-markers';

/**
 * src/lib/diffusion: next to this file when run from source (vitest, tsx), else under the project
 * root (astro build bundles this file).
 */
const besideThisFile = fileURLToPath(new URL('../diffusion/', import.meta.url));
export const LIBRARY_DIR = existsSync(join(besideThisFile, 'index.ts')) ? besideThisFile
  : join(process.cwd(), 'src/lib/diffusion');

export interface Region {
  file: string; // relative to src/lib/diffusion, e.g. "forward.ts"
  name: string; // e.g. "q-sample"
  ref: string; // "forward.ts#q-sample"
  code: string; // the lines between the markers, dedented, without a trailing newline
  startLine: number; // 1-based line of the first code line in the file
}


/** Removes the indentation common to every non-blank line. */
export function dedent(lines: string[]): string[] {
  const indents = lines.filter((l) => l.trim()).map((l) => l.match(/^[ \t]*/)![0].length);
  const cut = indents.length ? Math.min(...indents) : 0;
  return lines.map((l) => l.slice(cut));
}

/** Every region of one source text, in file order. Throws on unbalanced or duplicate markers. */
export function parseRegions(file: string, source: string): Region[] {
  const lines = source.replace(/\r\n/g, '\n').split('\n');
  const regions: Region[] = [];
  let open: { name: string; start: number } | null = null;
  lines.forEach((line, i) => {
    const start = line.match(REGION_START);
    if (start) {
      if (open) {
        throw new Error(`${file}:${i + 1}: region "${start[1]}" starts inside region `
          + `"${open.name}"; nested regions are not supported`);
      }
      open = { name: start[1], start: i + 1 };
    } else if (REGION_END.test(line)) {
      if (!open) throw new Error(`${file}:${i + 1}: #endregion without a matching #region`);
      const { name } = open;
      if (regions.some((r) => r.name === name)) {
        throw new Error(`${file}: region "${name}" is defined twice`);
      }
      const code = dedent(lines.slice(open.start, i)).join('\n').replace(/\s+$/, '');
      regions.push({ file, name, ref: `${file}#${name}`, code, startLine: open.start + 1 });
      open = null;
    }
  });
  if (open) {
    throw new Error(`${file}: region "${(open as { name: string }).name}" has no // #endregion`);
  }
  return regions;
}

/** All regions of every .ts file in the library directory. */
export function listRegions(dir = LIBRARY_DIR): Region[] {
  return readdirSync(dir).filter((f) => f.endsWith('.ts')).sort()
    .flatMap((file) => parseRegions(file, readFileSync(join(dir, file), 'utf8')));
}

/**
 * The region named by `ref` ("FILE#REGION", FILE relative to src/lib/diffusion).
 * `where` names the page that asked, so that a build error says which chapter to fix.
 */
export function getRegion(ref: string, where = 'a page', dir = LIBRARY_DIR): Region {
  const m = REGION_REF.exec(ref);
  if (!m) {
    throw new Error(`${where} names region "${ref}"; expected "FILE#REGION" with FILE relative `
      + 'to src/lib/diffusion, e.g. "forward.ts#q-sample"');
  }
  const [, file, name] = m;
  let source: string;
  try {
    source = readFileSync(join(dir, file), 'utf8');
  } catch {
    throw new Error(`${where} names region "${ref}", but src/lib/diffusion/${file} does not exist`);
  }
  const regions = parseRegions(file, source);
  const region = regions.find((r) => r.name === name);
  if (!region) {
    const has = regions.map((r) => `"${r.name}"`).join(', ') || 'no regions';
    throw new Error(`${where} names region "${ref}", which does not exist: `
      + `src/lib/diffusion/${file} has ${has}`);
  }
  return region;
}
