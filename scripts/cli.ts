// Shared command-line plumbing: flags, one-line errors, atomic writes.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

/** Parses `--name value` pairs; a flag with no value (or followed by another flag) is `true`. */
export function parseFlags(argv: string[], known: string[]): Record<string, string | true> {
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}": flags look like --name value`);
    const name = arg.slice(2);
    if (!known.includes(name)) throw new Error(`unknown flag --${name}; known flags: ${known.map((k) => `--${k}`).join(', ')}`);
    const next = argv[i + 1];
    flags[name] = next === undefined || next.startsWith('--') ? true : (i++, next);
  }
  return flags;
}

/** A required string flag. */
export function need(flags: Record<string, string | true>, name: string): string {
  const v = flags[name];
  if (typeof v !== 'string') throw new Error(`missing --${name} <value>`);
  return v;
}

/** A numeric flag with a default and a check. */
export function num(flags: Record<string, string | true>, name: string, fallback: number, ok: (n: number) => boolean = Number.isFinite): number {
  const v = flags[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !ok(n)) throw new Error(`--${name} must be a valid number here, received ${JSON.stringify(v)}`);
  return n;
}

/** A yes/no flag with a default: `--name`, `--name true` or `--name false`. */
export function bool(flags: Record<string, string | true>, name: string, fallback: boolean): boolean {
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
