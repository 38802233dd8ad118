// Shiki highlighting for the code panes, done at build time. Two changes to Shiki's HTML:
// identifiers that compute a symbol get data-sym (see ./symbols.ts), and lines are block elements
// without "\n" text nodes between them. Shiki's own TextMate scopes say what is code: identifiers
// in comments and strings are left alone, those in a template's ${...} are code.
import { codeToHtml, type ShikiTransformer, type ThemedToken } from 'shiki';
import type { ElementContent } from 'hast';
import { SYMBOLS } from './symbols';

const IDENT = /[A-Za-z_$][\w$]*/g;

/** Whether a piece of a token is code, from its TextMate scopes (outermost first). */
export function isCode(scopes: readonly string[]): boolean {
  let code = true;
  for (const scope of scopes) {
    if (scope.startsWith('comment') || scope.startsWith('string')) code = false;
    else if (scope.startsWith('meta.template.expression')) code = true;
  }
  return code;
}

/**
 * [start, end) offsets within a token's text of the identifiers that are code. A token is one or
 * more pieces of the grammar in order, each with its scopes (whitespace between may be left out).
 */
function codeIdentifiers(token: ThemedToken): [number, number][] {
  const out: [number, number][] = [];
  let at = 0;
  for (const piece of token.explanation ?? []) {
    const start = token.content.indexOf(piece.content, at);
    if (start < 0) break;
    if (isCode(piece.scopes.map((s) => s.scopeName))) {
      for (const m of piece.content.matchAll(IDENT)) {
        out.push([start + m.index, start + m.index + m[0].length]);
      }
    }
    at = start + piece.content.length;
  }
  return out;
}

function symbolTransformer(symbols: Record<string, string>): ShikiTransformer {
  return {
    name: 'diffusion-executed:symbols',
    span(node, _line, _col, _lineElement, token) {
      const only = node.children.length === 1 ? node.children[0] : null;
      if (only?.type !== 'text') return;
      const text = only.value;
      const parts: ElementContent[] = [];
      let last = 0;
      for (const [start, end] of codeIdentifiers(token)) {
        const name = text.slice(start, end);
        // a property key before ':' or a member after '.' named like a symbol still computes it
        if (!Object.hasOwn(symbols, name)) continue;
        if (start > last) parts.push({ type: 'text', value: text.slice(last, start) });
        parts.push({ type: 'element', tagName: 'span', properties: { dataSym: symbols[name] },
          children: [{ type: 'text', value: name }] });
        last = end;
      }
      if (!parts.length) return;
      if (last < text.length) parts.push({ type: 'text', value: text.slice(last) });
      if (parts.length === 1 && parts[0].type === 'element') {
        node.properties.dataSym = parts[0].properties.dataSym;
        return;
      }
      node.children = parts;
    },
    code(node) {
      node.children = node.children.filter((c) => !(c.type === 'text' && c.value === '\n'));
    },
  };
}

/**
 * Highlighted HTML of TypeScript `code`: a <pre class="shiki"> whose .line elements hold the
 * lines, identifiers tagged by `symbols` (a region's table: symbolsFor(ref)).
 */
export async function highlightTs(code: string, symbols: Record<string, string> = SYMBOLS) {
  return codeToHtml(code, {
    lang: 'ts',
    themes: { light: 'github-light', dark: 'github-dark' },
    defaultColor: 'light',
    includeExplanation: true,
    // no time limit: on a busy machine a line cut off at Shiki's 500 ms loses its explanation
    tokenizeTimeLimit: 0,
    transformers: [symbolTransformer(symbols)],
  });
}
