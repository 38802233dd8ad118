// The pure text work behind editable code panes: put a reader's version of a region into its file,
// find and rewrite a module's imports, and order the library's files so that each module's imports
// exist before it. No DOM and no tfjs, so Node tests can check it.
import { REGION_END, REGION_REF, REGION_START } from '../../site/region-markers';

/** "ddim.ts#ddim-step" as its file and region name. */
export function splitRef(ref: string): { file: string; name: string } {
  const m = REGION_REF.exec(ref);
  if (!m) {
    throw new Error(`region "${ref}" is not of the form "FILE#REGION", e.g. "ddim.ts#ddim-step"`);
  }
  return { file: m[1], name: m[2] };
}

/** Where one region's code sits in a file after its edits: lines start..end, 1-based, inclusive. */
export interface Span { name: string; start: number; end: number }


/**
 * `source` with the code between `// #region NAME` and its `// #endregion` replaced by
 * `edits[NAME]`, re-indented by the indentation that the original code had in common (the panes
 * show regions dedented). The markers stay, so the result can be edited again. Also returns where
 * each edited region's code now is, to say which region a compile error is in.
 */
export function applyEdits(file: string, source: string, edits: Record<string, string>) {
  const lines = source.replace(/\r\n/g, '\n').split('\n');
  const out: string[] = [];
  const spans: Span[] = [];
  const pending = new Set(Object.keys(edits));
  for (let i = 0; i < lines.length; i++) {
    out.push(lines[i]);
    const name = REGION_START.exec(lines[i])?.[1];
    if (!name || !pending.has(name)) continue;
    let end = i + 1;
    while (end < lines.length && !REGION_END.test(lines[end])) end++;
    if (end === lines.length) throw new Error(`${file}: region "${name}" has no // #endregion`);
    const body = lines.slice(i + 1, end);
    const indents = body.filter((l) => l.trim()).map((l) => /^[ \t]*/.exec(l)![0]);
    const indent = indents.reduce((a, b) => (b.length < a.length ? b : a), indents[0] ?? '');
    const code = edits[name].replace(/\r\n/g, '\n').replace(/\s+$/, '').split('\n');
    spans.push({ name, start: out.length + 1, end: out.length + code.length });
    out.push(...code.map((l) => (l ? indent + l : l)));
    pending.delete(name);
    i = end - 1;
  }
  if (pending.size) {
    const names = [...pending].map((n) => `"${n}"`).join(', ');
    throw new Error(`src/lib/diffusion/${file} has no region ${names}`);
  }
  return { source: out.join('\n'), spans };
}

/**
 * Module specifiers of `import ... from 'x'`, `import 'x'`, `export ... from 'x'` and
 * `import('x')` in JavaScript (after types are stripped), as [start, end) offsets of the quoted
 * text without its quotes.
 */
function specifiers(code: string): { spec: string; start: number; end: number }[] {
  const pattern = /(\bimport\s*(?:\(\s*)?|\bfrom\s*)(['"])([^'"\n]+)\2/g;
  return [...code.matchAll(pattern)].map((m) => {
    const start = m.index + m[1].length + 1;
    return { spec: m[3], start, end: start + m[3].length };
  });
}

/** The distinct module specifiers that `code` imports or re-exports from, in order. */
export function importsOf(code: string): string[] {
  return [...new Set(specifiers(code).map((s) => s.spec))];
}

/** `code` with every module specifier replaced by `resolve(specifier)`. */
export function rewriteImports(code: string, resolve: (spec: string) => string): string {
  let out = '';
  let at = 0;
  for (const { spec, start, end } of specifiers(code)) {
    out += code.slice(at, start) + resolve(spec);
    at = end;
  }
  return out + code.slice(at);
}

/** The library file that a relative specifier names: './ddpm' -> 'ddpm.ts'; else null. */
export function libraryFile(spec: string): string | null {
  const m = /^\.\/([\w.-]+?)(\.ts|\.js)?$/.exec(spec);
  return m ? `${m[1]}.ts` : null;
}

/**
 * The files in an order where each comes after every file it imports (`deps[file]`), from
 * `entry`. Throws on an import cycle or on a file that is not in `deps`.
 */
export function dependencyOrder(entry: string, deps: Record<string, string[]>): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'visiting') {
      throw new Error(`the library's imports form a cycle: ${[...path, file].join(' -> ')}`);
    }
    if (!Object.hasOwn(deps, file)) {
      const from = path.length ? path[path.length - 1] : 'the entry';
      throw new Error(`${from} imports ${file}, which is not a file of the library`);
    }
    state.set(file, 'visiting');
    for (const dep of deps[file]) visit(dep, [...path, file]);
    state.set(file, 'done');
    order.push(file);
  };
  visit(entry, []);
  return order;
}

/**
 * A module's source that re-exports the namespace object at `globalThis[key]` (the page's own
 * tfjs) under each of `names`, and as its default export.
 */
export function reexportModule(key: string, names: string[]): string {
  const valid = names.filter((n) => /^[A-Za-z_$][\w$]*$/.test(n)
    && !['default', 'eval', 'arguments'].includes(n));
  return `const ns = globalThis[${JSON.stringify(key)}];\nexport default ns;\n`
    + `export const { ${valid.join(', ')} } = ns;\n`;
}
