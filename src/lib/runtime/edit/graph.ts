/// <reference types="vite/client" />
// The library as the reader edited it, built in the page: each edited region goes into its file,
// sucrase strips the types (no TypeScript compiler), and the files become ES modules at blob: URLs
// whose relative imports point at each other's URLs, so that library functions calling an edited
// one (guidedEps calls guide, the samplers call ddimStep) call the edited one. The modules import
// the page's own tfjs (one instance, one backend) through a small re-export module. Loaded by the
// first Run (or check) after an edit: neither sucrase nor the sources load with the page.
import { transform } from 'sucrase';
import type { Library } from '../cells/engine';
import {
  applyEdits, dependencyOrder, importsOf, libraryFile, reexportModule, rewriteImports, splitRef,
  type Span,
} from './source';
import { reportEditErrors, type Edits } from './store';

/** src/lib/diffusion/*.ts as shipped, file name to text (this chunk only). */
const RAW = import.meta.glob<string>('../../diffusion/*.ts',
  { query: '?raw', import: 'default', eager: true });
const SOURCES: Record<string, string> = Object.fromEntries(Object.entries(RAW)
  .map(([path, text]) => [path.slice(path.lastIndexOf('/') + 1), text]));

const ENTRY = 'index.ts';
const TFJS = '@tensorflow/tfjs-core';
const TF_KEY = '__diffusionExecutedTf';

/** Edited code that does not compile, load or run; `messages`: what each region's pane shows. */
export class EditError extends Error {
  constructor(message: string, readonly messages: Record<string, string>, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EditError';
  }
}

/** An EditError, after telling the panes. */
function failure(message: string, messages: Record<string, string>, cause?: unknown) {
  reportEditErrors(messages);
  return new EditError(message, messages, { cause });
}

/** The edits grouped by file: file to { region name: code }. */
function byFile(edits: Edits): Map<string, Record<string, string>> {
  const files = new Map<string, Record<string, string>>();
  for (const [ref, code] of edits) {
    const { file, name } = splitRef(ref);
    if (!Object.hasOwn(SOURCES, file)) {
      throw failure(`${ref}: src/lib/diffusion/${file} does not exist`, { [ref]: 'no such file' });
    }
    files.set(file, { ...files.get(file), [name]: code });
  }
  return files;
}

const compiled = new Map<string, string>(); // TypeScript source to its JavaScript

/** The syntax errors of one file with its edits, ref to message; empty when it compiles. */
function compileFile(file: string, edits: Record<string, string>) {
  const refs = Object.keys(edits).map((name) => `${file}#${name}`);
  let source: string;
  let spans: Span[];
  try {
    ({ source, spans } = applyEdits(file, SOURCES[file], edits));
  } catch (error) {
    const message = (error as Error).message;
    return { errors: Object.fromEntries(refs.map((ref) => [ref, message])) };
  }
  const cached = compiled.get(source);
  if (cached !== undefined) return { code: cached, errors: {} };
  try {
    const { code } = transform(source, { transforms: ['typescript'], disableESTransforms: true });
    compiled.set(source, code);
    return { code, errors: {} };
  } catch (error) {
    const raw = (error as Error).message.replace(/\s*\(\d+:\d+\)$/, '');
    const loc = (error as { loc?: { line: number; column: number } }).loc;
    const span = loc && spans.find((s) => loc.line >= s.start && loc.line <= s.end);
    const where = span ? `${file}#${span.name}`
      : refs.length === 1 ? refs[0] : null;
    const at = !loc ? '' : span ? ` on line ${loc.line - span.start + 1}, column ${loc.column + 1}`
      : ` at line ${loc.line} of ${file}`;
    const message = `syntax error${at}: ${raw}`;
    return { errors: Object.fromEntries((where ? [where] : refs).map((ref) => [ref, message])) };
  }
}

/** The syntax errors of the edits, ref to message (empty when all compile), for the panes to show
 * while the reader types. Loads nothing but this chunk. */
export function checkEdits(edits: Edits): Record<string, string> {
  const errors: Record<string, string> = {};
  try {
    for (const [file, fileEdits] of byFile(edits)) {
      Object.assign(errors, compileFile(file, fileEdits).errors);
    }
  } catch (error) {
    if (error instanceof EditError) return error.messages;
    throw error;
  }
  return errors;
}

const blobUrl = (code: string) =>
  URL.createObjectURL(new Blob([code], { type: 'text/javascript' }));

/**
 * The library with `edits` in place of the regions they name, running on `tf` (the page's
 * tfjs-core namespace). Throws an EditError (and tells the panes) when an edit does not compile
 * or the edited modules do not load; a function of the result that throws from edited code
 * throws an EditError too.
 */
export async function buildLibrary(edits: Edits, tf: object): Promise<Library> {
  const files = byFile(edits);
  const js: Record<string, string> = {};
  const errors: Record<string, string> = {};
  for (const file of Object.keys(SOURCES)) {
    const result = compileFile(file, files.get(file) ?? {});
    Object.assign(errors, result.errors);
    if (result.code !== undefined) js[file] = result.code;
  }
  if (Object.keys(errors).length) {
    const list = Object.entries(errors).map(([ref, m]) => `${ref}: ${m}`).join('; ');
    throw failure(`the edited code does not compile: ${list}`, errors);
  }
  const deps: Record<string, string[]> = {};
  for (const [file, code] of Object.entries(js)) {
    deps[file] = importsOf(code).filter((spec) => spec !== TFJS).map((spec) => {
      const dep = libraryFile(spec);
      if (dep) return dep;
      throw failure(`${file} imports "${spec}"; edited code may import only ${TFJS} and the `
        + 'library\'s own files', Object.fromEntries([...edits.keys()].map((r) => [r, spec])));
    });
  }
  const order = dependencyOrder(ENTRY, deps);
  (globalThis as Record<string, unknown>)[TF_KEY] = tf;
  const tfUrl = blobUrl(reexportModule(TF_KEY, Object.keys(tf)));
  const urls = new Map<string, string>();
  for (const file of order) {
    const code = rewriteImports(js[file], (spec) => (spec === TFJS ? tfUrl
      : urls.get(libraryFile(spec)!)!));
    urls.set(file, blobUrl(code));
  }
  let lib: Library;
  try {
    lib = await import(/* @vite-ignore */ urls.get(ENTRY)!);
  } catch (error) {
    const message = `the edited library does not load: ${(error as Error).message}`;
    throw failure(message, Object.fromEntries([...edits.keys()].map((r) => [r, message])), error);
  } finally {
    [tfUrl, ...urls.values()].forEach((url) => URL.revokeObjectURL(url));
  }
  const fileOfUrl = new Map([...urls].map(([file, url]) => [url, file]));
  return watched(lib, (error) => blame(error, fileOfUrl, edits));
}

/** An error thrown from the edited modules (its stack names their URLs) as an EditError for the
 * edited regions of the files in its stack (all edited regions if none is); others unchanged. */
function blame(error: unknown, fileOfUrl: Map<string, string>, edits: Edits): unknown {
  if (!(error instanceof Error) || error instanceof EditError || error.name === 'AbortError') {
    return error;
  }
  const stack = error.stack ?? '';
  const inStack = [...fileOfUrl].filter(([url]) => stack.includes(url)).map(([, file]) => file);
  if (!inStack.length) return error;
  const refs = [...edits.keys()];
  const named = refs.filter((ref) => inStack.includes(splitRef(ref).file));
  const blamed = named.length ? named : refs;
  const message = `this run failed in the edited code: ${error.message}`;
  return failure(`${error.message} (with the edited ${blamed.join(', ')})`,
    Object.fromEntries(blamed.map((ref) => [ref, message])), error);
}

type AnyFunction = (...args: unknown[]) => unknown;

/** The module's exports, each function wrapped so that what it throws (or rejects with, or what a
 * function it returns throws) goes through `onError`. */
function watched(lib: Library, onError: (error: unknown) => unknown): Library {
  const wrap = (f: AnyFunction): AnyFunction => function (this: unknown, ...args: unknown[]) {
    let result: unknown;
    try {
      result = f.apply(this, args);
    } catch (error) {
      throw onError(error);
    }
    if (result instanceof Promise) return result.catch((error) => Promise.reject(onError(error)));
    return typeof result === 'function' ? wrap(result as AnyFunction) : result;
  };
  return Object.fromEntries(Object.entries(lib).map(([name, value]) =>
    [name, typeof value === 'function' ? wrap(value as AnyFunction) : value])) as Library;
}
