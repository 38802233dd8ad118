// Shared command-line plumbing: flags, one-line errors, atomic writes.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { NodeBackend } from '../src/lib/runtime/node';
import { coreCount, MAX_WASM_THREADS } from '../src/lib/runtime/wasm-threads';

/** Parsed flags: a value flag's string, or `true` for a switch or a value flag given bare. */
export type Flags = Record<string, string | true>;

/**
 * Parses `--name value` pairs (node:util parseArgs) for the value flags `known` and the `switches`
 * (`--name` alone). A value flag followed by another flag, or by nothing, is bare: `true`. An
 * unknown flag, a stray argument or a switch given a value is one clear error.
 */
export function parseFlags(argv: string[], known: string[], switches: string[] = []): Flags {
  const options = Object.fromEntries([
    ...known.map((name) => [name, { type: 'string' as const }]),
    ...switches.map((name) => [name, { type: 'boolean' as const }]),
  ]);
  // not strict: parseArgs splits and types the tokens, and the checks below word the errors
  const parsed = parseArgs({
    args: argv, options, tokens: true, strict: false, allowPositionals: true,
  });
  const all = [...known, ...switches];
  const list = all.map((k) => `--${k}`).join(', ');
  const flags: Flags = {};
  let last = '';
  for (const token of parsed.tokens) {
    if (token.kind !== 'option' || !token.rawName.startsWith('--')) {
      const arg = token.kind === 'option' ? token.rawName
        : token.kind === 'positional' ? token.value : '--';
      if (switches.includes(last)) throw new Error(`--${last} takes no value, received "${arg}"`);
      throw new Error(`unexpected argument "${arg}": flags look like --name value`);
    }
    const { name, value, inlineValue } = token;
    if (!all.includes(name)) {
      throw new Error(`unknown flag --${name}; known flags: ${list}`);
    }
    if (switches.includes(name) && value !== undefined) {
      throw new Error(`--${name} takes no value, received "${value}"`);
    }
    if (value?.startsWith('--') && !inlineValue) {
      // parseArgs took the next flag for this one's value: this one is bare, the rest parsed anew
      const rest = parseFlags(argv.slice(token.index + 1), known, switches);
      return { ...flags, [name]: true, ...rest };
    }
    flags[name] = value ?? true;
    last = name;
  }
  return flags;
}

/** --backend NAME, wasm unless given (useNodeBackend checks the name). */
export function backendFlag(flags: Flags): NodeBackend {
  return (typeof flags.backend === 'string' ? flags.backend : 'wasm') as NodeBackend;
}

/** A required string flag. */
export function need(flags: Flags, name: string): string {
  const v = flags[name];
  if (typeof v !== 'string') throw new Error(`missing --${name} <value>`);
  return v;
}

/** A numeric flag with a default and a check. */
export function num(flags: Flags, name: string, fallback: number,
  ok: (n: number) => boolean = Number.isFinite): number {
  const v = flags[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !ok(n)) {
    throw new Error(`--${name} must be a valid number here, received ${JSON.stringify(v)}`);
  }
  return n;
}

/**
 * The cores a CLI uses by default: DIFFUSION_CORES from the environment, else every core. The
 * tests set DIFFUSION_CORES=1: they run two processes at once on two cores, and XNNPACK's threads
 * wait by spinning, so threads that share a core are slower than one.
 */
export function defaultCores(): number {
  const env = process.env.DIFFUSION_CORES;
  if (env === undefined) return coreCount();
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1 || n > 1024) {
    const got = JSON.stringify(env);
    throw new Error(`DIFFUSION_CORES must be a whole number of cores, received ${got}`);
  }
  return n;
}

/** Data-parallel workers by default: on wasm one per core (defaultCores), as many as divide the
 * batch; 1 on other backends. */
export function defaultWorkers(backend: string, batch: number): number {
  const cores = backend === 'wasm' ? defaultCores() : 1;
  return Array.from({ length: cores }, (_, i) => cores - i).find((w) => batch % w === 0) ?? 1;
}

/**
 * --threads N: the wasm backend's threads; by default the cores (defaultCores) shared out among
 * `workers` data-parallel workers, each with its own backend, at most MAX_WASM_THREADS. Other
 * backends run on 1.
 */
export function threadsFlag(flags: Flags, { backend, workers = 1 }:
  { backend: string; workers?: number }): number {
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= MAX_WASM_THREADS;
  const all = Math.min(MAX_WASM_THREADS, Math.max(1, Math.floor(defaultCores() / workers)));
  const threads = num(flags, 'threads', backend === 'wasm' ? all : 1, ok);
  if (threads > 1 && backend !== 'wasm') {
    throw new Error(`--threads ${threads} applies to the wasm backend only, received --backend `
      + backend);
  }
  return threads;
}

/** A yes/no flag with a default: `--name`, `--name true` or `--name false`. */
export function bool(flags: Flags, name: string, fallback: boolean): boolean {
  const v = flags[name];
  if (v === undefined) return fallback;
  if (v === true || v === 'true') return true;
  if (v === 'false') return false;
  throw new Error(`--${name} must be true or false, received ${JSON.stringify(v)}`);
}

/** Writes via a temporary file and rename, so a failure never leaves a half-written file. */
export function writeAtomic(path: string, data: string | Uint8Array) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Runs a CLI's main; any error becomes one line on stderr and exit code 1 (no stack trace). */
export function runMain(main: () => Promise<void>) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}

/** Reads and parses a JSON file; one clear error if it is missing or not JSON. */
export function readJsonFile<T>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`cannot read ${path}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
}
