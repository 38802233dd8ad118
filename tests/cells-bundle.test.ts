// First-load weight of the pages with run-this-cell islands, from the built site: the JavaScript and CSS that
// the HTML references directly (plus the chunks those scripts import statically, which load with them) must stay
// under 150 KB gzip, and none of it may contain tfjs, which only the first Run loads (a dynamic import).
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { siteDist } from './helpers/site-dist';

const LIMIT = 150 * 1024;
const TFJS_MARKER = 'TENSORLIKE_CHECK_SHAPE_CONSISTENCY'; // a tfjs-core flag name that survives minification

/** Static imports of an ES module: `import ... from "x"`, `import "x"`, `export ... from "x"`; never `import("x")`. */
function staticImports(code: string): string[] {
  const found = [...code.matchAll(/(?:^|[;\s}])(?:import|export)\s*(?:[\w$*{},\s]+?\s*from\s*)?["']([^"']+\.js)["']/g)];
  return found.map((m) => m[1]);
}

function firstLoad(dist: string, page: string) {
  const html = readFileSync(join(dist, page), 'utf8');
  const files = new Map<string, string>();
  const visit = (url: string, from: string) => {
    const file = url.startsWith('/') ? join(dist, url) : join(dirname(from), url);
    if (files.has(file) || !existsSync(file)) return;
    const body = readFileSync(file, 'utf8');
    files.set(file, body);
    if (file.endsWith('.js')) staticImports(body).forEach((u) => visit(u, file));
  };
  for (const [, src] of html.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)) visit(src, join(dist, page));
  for (const [tag, href] of html.matchAll(/<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"[^>]*>/g)) {
    if (!/media="print"/.test(tag)) visit(href, join(dist, page));
  }
  const inline = [...html.matchAll(/<(script|style)(?![^>]*\ssrc=)[^>]*>([\s\S]*?)<\/\1>/g)].map((m) => m[2]).join('\n');
  const gzip = (s: string) => gzipSync(s, { level: 9 }).length;
  const bytes = [...files.values()].reduce((sum, body) => sum + gzip(body), 0) + gzip(inline);
  return { bytes, files: [...files.keys()], tfjs: [...files.values(), inline].some((b) => b.includes(TFJS_MARKER)) };
}

describe('pages with cells', () => {
  it('load under 150 KB of JS and CSS (gzip) and no tfjs', () => {
    const dist = siteDist();
    const chapters = existsSync(join(dist, 'chapters')) ? readdirSync(join(dist, 'chapters')).map((c) => `chapters/${c}/index.html`) : [];
    const pages = [...chapters, 'lab/index.html'].filter((p) => existsSync(join(dist, p)));
    const withCells = pages.filter((p) => readFileSync(join(dist, p), 'utf8').includes('data-run-cell='));
    expect(withCells.length).toBeGreaterThan(0);
    for (const page of withCells) {
      const { bytes, tfjs } = firstLoad(dist, page);
      console.log(`${page}: ${(bytes / 1024).toFixed(1)} KB gzip first load`);
      expect({ page, tfjs, under: bytes < LIMIT }).toEqual({ page, tfjs: false, under: true });
    }
  });
});
