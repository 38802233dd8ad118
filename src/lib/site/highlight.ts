// Shiki highlighting for the code panes, done at build time. Two changes to Shiki's HTML:
// identifiers that compute a symbol get data-sym (see ./symbols.ts), and lines are block
// elements without "\n" text nodes between them, so wrapped lines keep a hanging indent.
import { codeToHtml, type ShikiTransformer } from 'shiki';
import type { Element, ElementContent } from 'hast';
import { SYMBOLS } from './symbols';

/** [start, end) offsets of comments and string literals, where identifiers are not code. */
export function nonCodeRanges(code: string): [number, number][] {
  const ranges: [number, number][] = [];
  let i = 0;
  while (i < code.length) {
    const two = code.slice(i, i + 2);
    if (two === '//' || two === '/*') {
      const end = two === '//' ? code.indexOf('\n', i) : code.indexOf('*/', i + 2) + 2;
      const stop = end <= 1 || end === -1 ? code.length : end;
      ranges.push([i, stop]);
      i = stop;
    } else if (code[i] === "'" || code[i] === '"' || code[i] === '`') {
      const quote = code[i];
      let j = i + 1;
      while (j < code.length && code[j] !== quote) j += code[j] === '\\' ? 2 : 1;
      // identifiers inside template substitutions are code; keep it simple and treat `${...}` as code
      if (quote === '`') {
        let k = i + 1;
        let from = i;
        while (k < j) {
          if (code[k] === '$' && code[k + 1] === '{') {
            ranges.push([from, k + 2]);
            const close = code.indexOf('}', k);
            k = from = close === -1 ? j : close;
          }
          k++;
        }
        ranges.push([from, j + 1]);
      } else ranges.push([i, j + 1]);
      i = j + 1;
    } else i++;
  }
  return ranges;
}

const IDENT = /[A-Za-z_$][\w$]*/g;

function symbolTransformer(code: string, symbols: Record<string, string>): ShikiTransformer {
  const skip = nonCodeRanges(code);
  const inSkip = (at: number) => skip.some(([a, b]) => at >= a && at < b);
  return {
    name: 'diffusion-executed:symbols',
    span(node, _line, _col, _lineElement, token) {
      const text = node.children.length === 1 && node.children[0].type === 'text' ? node.children[0].value : null;
      if (text === null || inSkip(token.offset)) return;
      const parts: ElementContent[] = [];
      let last = 0;
      for (const m of text.matchAll(IDENT)) {
        const sym = Object.hasOwn(symbols, m[0]) ? symbols[m[0]] : undefined;
        // a property key before ':' or a member after '.' named like a symbol still computes it
        if (!sym) continue;
        if (m.index! > last) parts.push({ type: 'text', value: text.slice(last, m.index) });
        parts.push({ type: 'element', tagName: 'span', properties: { dataSym: sym }, children: [{ type: 'text', value: m[0] }] });
        last = m.index! + m[0].length;
      }
      if (!parts.length) return;
      if (last < text.length) parts.push({ type: 'text', value: text.slice(last) });
      if (parts.length === 1 && parts[0].type === 'element') {
        node.properties.dataSym = (parts[0] as Element).properties.dataSym;
        return;
      }
      node.children = parts;
    },
    code(node) {
      node.children = node.children.filter((c) => !(c.type === 'text' && c.value === '\n'));
    },
  };
}

/** Highlighted HTML of TypeScript `code`: a <pre class="shiki"> whose .line elements hold the lines. */
export async function highlightTs(code: string, symbols: Record<string, string> = SYMBOLS): Promise<string> {
  return codeToHtml(code, {
    lang: 'ts',
    themes: { light: 'github-light', dark: 'github-dark' },
    defaultColor: 'light',
    transformers: [symbolTransformer(code, symbols)],
  });
}
