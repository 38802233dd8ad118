// The pure parts of editable code panes (src/lib/runtime/edit/source.ts): putting a region's
// edited code into its file, finding and rewriting imports, the order the edited modules are
// built in; and the syntax check the panes run while the reader types (graph.ts, checkEdits).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { transform } from 'sucrase';
import { describe, expect, it } from 'vitest';
import { checkEdits } from '../src/lib/runtime/edit/graph';
import {
  applyEdits, dependencyOrder, importsOf, libraryFile, reexportModule, rewriteImports, splitRef,
} from '../src/lib/runtime/edit/source';
import { LIBRARY_DIR, listRegions, parseRegions } from '../src/lib/site/regions';

const read = (file: string) => readFileSync(join(LIBRARY_DIR, file), 'utf8');
const strip = (code: string) =>
  transform(code, { transforms: ['typescript'], disableESTransforms: true }).code;

describe('applyEdits', () => {
  it('gives back the file itself when every region is "edited" to its own code', () => {
    const regions = listRegions();
    expect(regions.length).toBeGreaterThan(20);
    for (const file of new Set(regions.map((r) => r.file))) {
      const edits = Object.fromEntries(regions.filter((r) => r.file === file)
        .map((r) => [r.name, r.code]));
      expect(applyEdits(file, read(file), edits).source).toBe(read(file));
    }
  });

  it('puts the edited code between the markers, and the region parses back to it', () => {
    const code = 'export function guide(epsU: tf.Tensor4D, epsC: tf.Tensor4D, w: number) {\n'
      + '  return tf.tidy(() => tf.add(epsC, tf.mul(w, tf.sub(epsU, epsC))));\n}';
    const { source, spans } = applyEdits('guidance.ts', read('guidance.ts'), { guide: code });
    const guide = parseRegions('guidance.ts', source).find((r) => r.name === 'guide')!;
    expect(guide.code).toBe(code);
    expect(spans).toEqual([{ name: 'guide', start: guide.startLine, end: guide.startLine + 2 }]);
    // the rest of the file is untouched
    const other = parseRegions('guidance.ts', source).find((r) => r.name === 'guided-eps')!;
    expect(other.code).toBe(listRegions().find((r) => r.ref === 'guidance.ts#guided-eps')!.code);
  });

  it('re-indents the code by the indentation the region had', () => {
    const source = 'class A {\n  // #region m\n  f() {\n    return 1;\n  }\n  // #endregion\n}\n';
    const { source: out } = applyEdits('a.ts', source, { m: 'g() {\n  return 2;\n}' });
    expect(out).toBe('class A {\n  // #region m\n  g() {\n    return 2;\n  }\n'
      + '  // #endregion\n}\n');
  });

  it('says which region a file does not have', () => {
    expect(() => applyEdits('ddim.ts', read('ddim.ts'), { nope: 'x' }))
      .toThrow('src/lib/diffusion/ddim.ts has no region "nope"');
    expect(() => splitRef('ddim-step')).toThrow('"FILE#REGION"');
    expect(splitRef('ddim.ts#ddim-step')).toEqual({ file: 'ddim.ts', name: 'ddim-step' });
  });
});

describe('imports', () => {
  it('finds the runtime imports that sucrase leaves, and no type-only ones', () => {
    expect(importsOf(strip(read('ddim.ts'))))
      .toEqual(['@tensorflow/tfjs-core', './ddpm', './random', './sampler']);
    expect(importsOf(strip(read('guidance.ts')))).toEqual(['@tensorflow/tfjs-core', './unet']);
    expect(importsOf(read('index.ts'))).toContain('./schedule');
    expect(importsOf('const a = await import("./x");\nimport "./y";\nexport * from \'./z\';'))
      .toEqual(['./x', './y', './z']);
  });

  it('rewrites every specifier and nothing else', () => {
    const code = "import * as tf from '@tensorflow/tfjs-core';\n"
      + "import { predictX0 } from './ddpm';\nexport * from \"./random\";\nconst from = 'x';";
    const out = rewriteImports(code, (spec) => `blob:${spec.replace(/\W/g, '')}`);
    expect(out).toBe("import * as tf from 'blob:tensorflowtfjscore';\n"
      + "import { predictX0 } from 'blob:ddpm';\nexport * from \"blob:random\";\n"
      + "const from = 'x';");
  });

  it('maps relative specifiers to library files', () => {
    expect(libraryFile('./ddpm')).toBe('ddpm.ts');
    expect(libraryFile('./ddpm.js')).toBe('ddpm.ts');
    expect(libraryFile('@tensorflow/tfjs-core')).toBeNull();
    expect(libraryFile('../models/card')).toBeNull();
  });

  it('orders the library so that every file comes after what it imports', () => {
    const files = listRegions().map((r) => r.file).concat('index.ts', 'random.ts', 'adam.ts');
    const deps = Object.fromEntries([...new Set(files)].map((file) => [file,
      importsOf(strip(read(file))).map(libraryFile).filter((f): f is string => f !== null)]));
    const order = dependencyOrder('index.ts', deps);
    expect(order[order.length - 1]).toBe('index.ts');
    for (const [file, imports] of Object.entries(deps)) {
      for (const dep of imports) expect(order.indexOf(dep)).toBeLessThan(order.indexOf(file));
    }
    expect(() => dependencyOrder('a.ts', { 'a.ts': ['b.ts'], 'b.ts': ['a.ts'] }))
      .toThrow('cycle: a.ts -> b.ts -> a.ts');
    expect(() => dependencyOrder('a.ts', { 'a.ts': ['c.ts'] }))
      .toThrow('a.ts imports c.ts, which is not a file of the library');
  });

  it('re-exports a global namespace under its valid names', () => {
    const code = reexportModule('__tf', ['add', 'mul', 'default', 'eval', 'not-a-name']);
    expect(code).toBe('const ns = globalThis["__tf"];\nexport default ns;\n'
      + 'export const { add, mul } = ns;\n');
  });
});

describe('checkEdits', () => {
  it('passes the library\'s own code and an edit that compiles', () => {
    const guide = listRegions().find((r) => r.ref === 'guidance.ts#guide')!;
    expect(checkEdits(new Map([[guide.ref, guide.code]]))).toEqual({});
    expect(checkEdits(new Map([[guide.ref, guide.code.replace('epsC, epsU', 'epsU, epsC')]])))
      .toEqual({});
  });

  it('names the region and its line of a syntax error', () => {
    const code = 'export function guide(a: number) {\n  return a +* 2;\n}';
    expect(checkEdits(new Map([['guidance.ts#guide', code]]))).toEqual({
      'guidance.ts#guide': 'syntax error on line 2, column 14: Unexpected token',
    });
    expect(checkEdits(new Map([['guidance.ts#nope', 'x']]))).toEqual({
      'guidance.ts#nope': 'src/lib/diffusion/guidance.ts has no region "nope"',
    });
  });
});
