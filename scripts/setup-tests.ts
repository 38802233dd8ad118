// The first step of `npm test`: make sure the machine has what the tests need, before any test.
// - Debian's chromium (/usr/bin/chromium) and fonts-dejavu-core: the site and browser tests
// - Mesa 25's lavapipe (mesa-vulkan-drivers from bookworm-backports): WebGPU in Node through Dawn
// - dataset-fashion-mnist (/usr/share/datasets/fashion-mnist): the data-loader and training tests
// When all are there this only looks at a few files. When some are missing it installs them with
// apt-get as root on Debian 12 (adding bookworm-backports to the sources if needed); anywhere else
// it stops with one message naming what to install. `--dry-run` prints what it would do instead.
// Run as `node --import tsx scripts/setup-tests.ts [--dry-run]`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ICD = '/usr/share/vulkan/icd.d/lvp_icd.json';
const FASHION = '/usr/share/datasets/fashion-mnist';
const FASHION_FILES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
  't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'];
const BACKPORTS = 'deb http://deb.debian.org/debian bookworm-backports main';
const BACKPORTS_LIST = '/etc/apt/sources.list.d/bookworm-backports.list';

/** How the script sees the machine's files (a test passes its own). */
export interface Probe {
  exists(path: string): boolean;
  read(path: string): string;
  /** the installed version of a Debian package, or null */
  dpkgVersion(pkg: string): string | null;
}
/** What the script knows about the machine besides files. */
export interface Machine { root: boolean; bookworm: boolean; apt: boolean; backports: boolean }
export interface Need { pkg: string; what: string; backports?: boolean; ok(probe: Probe): boolean }
export type Decision =
  | { action: 'none'; missing: Need[] }
  | { action: 'install'; missing: Need[]; commands: string[][] }
  | { action: 'stop'; missing: Need[]; message: string };

/** Mesa's major version: dpkg's package version, or else the Vulkan version lavapipe reports
 * (Mesa 25 reports 1.4; Debian 12's own Mesa 22 reports 1.3). */
export function mesaMajor(probe: Probe): number {
  const version = probe.dpkgVersion('mesa-vulkan-drivers');
  if (version) return Number.parseInt(version.replace(/^\d+:/, ''), 10);
  if (!probe.exists(ICD)) return 0;
  const api = String(JSON.parse(probe.read(ICD)).ICD?.api_version ?? '0');
  const [major, minor] = api.split('.').map(Number);
  return major > 1 || (major === 1 && minor >= 4) ? 25 : 22;
}

/** What the tests need, each with its Debian package and how to tell it is there. */
export const NEEDS: Need[] = [
  { pkg: 'chromium', what: '/usr/bin/chromium', ok: (p) => p.exists('/usr/bin/chromium') },
  { pkg: 'fonts-dejavu-core', what: 'the DejaVu fonts',
    ok: (p) => p.exists('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf') },
  { pkg: 'mesa-vulkan-drivers', backports: true, what: `Mesa >= 25's lavapipe, ${ICD}`,
    ok: (p) => p.exists(ICD) && mesaMajor(p) >= 25 },
  { pkg: 'dataset-fashion-mnist', what: FASHION,
    ok: (p) => FASHION_FILES.every((f) => p.exists(join(FASHION, f))) },
];

/** The apt-get commands that install `missing` (a list of NEEDS entries), as argument lists. */
export function aptCommands(missing: Need[], hasBackports: boolean): string[][] {
  const plain = missing.filter((n) => !n.backports).map((n) => n.pkg);
  const back = missing.filter((n) => n.backports).map((n) => n.pkg);
  const install = ['apt-get', 'install', '-y', '-q', '--no-install-recommends'];
  return [
    ...(back.length && !hasBackports ? [['add-source', BACKPORTS_LIST, BACKPORTS]] : []),
    ['apt-get', 'update', '-q'],
    ...(plain.length ? [[...install, ...plain]] : []),
    ...(back.length ? [[...install, '-t', 'bookworm-backports', ...back]] : []),
  ];
}

/** The one message for a machine where this script cannot install `missing` itself. */
export function stopMessage(missing: Need[], why: string): string {
  const plain = missing.filter((n) => !n.backports).map((n) => n.pkg);
  const back = missing.filter((n) => n.backports).map((n) => n.pkg);
  const steps = [
    plain.length ? `apt-get install ${plain.join(' ')}` : '',
    back.length ? `apt-get install -t bookworm-backports ${back.join(' ')} (with '${BACKPORTS}'`
      + ' in the apt sources)' : '',
  ].filter(Boolean);
  return `npm test needs ${missing.map((n) => `${n.pkg} (${n.what})`).join(', ')}, and cannot `
    + `install ${missing.length > 1 ? 'them' : 'it'} here (${why}). On Debian 12, as root: `
    + `${steps.join('; then ')}. Or run npm test as root on Debian 12, which installs them.`;
}

/**
 * Decides what to do: { action: 'none' }, { action: 'install', commands } or
 * { action: 'stop', message }. `machine` says whether we are root, on Debian 12 with apt-get,
 * and whether bookworm-backports is in the apt sources.
 */
export function plan(probe: Probe, machine: Machine): Decision {
  const missing = NEEDS.filter((n) => !n.ok(probe));
  if (!missing.length) return { action: 'none', missing };
  const why = [!machine.root && 'not root', !machine.bookworm && 'not Debian 12',
    !machine.apt && 'no apt-get'].filter(Boolean).join(', ');
  if (why) return { action: 'stop', missing, message: stopMessage(missing, why) };
  return { action: 'install', missing, commands: aptCommands(missing, machine.backports) };
}

/** The real machine, read from the files that answer each question. */
export const realProbe: Probe = {
  exists: existsSync,
  read: (p: string) => readFileSync(p, 'utf8'),
  dpkgVersion(pkg: string) {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' });
    return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
  },
};

export function realMachine(): Machine {
  const release = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
  const sources = ['/etc/apt/sources.list', ...(existsSync('/etc/apt/sources.list.d')
    ? readdirSync('/etc/apt/sources.list.d').map((f) => join('/etc/apt/sources.list.d', f)) : [])];
  return {
    root: process.getuid?.() === 0,
    bookworm: /^ID=debian$/m.test(release) && /^VERSION_CODENAME=bookworm$/m.test(release),
    apt: existsSync('/usr/bin/apt-get'),
    backports: sources.some((f) => existsSync(f)
      && readFileSync(f, 'utf8').includes('bookworm-backports')),
  };
}

function main(argv: string[]): number {
  const dryRun = argv.includes('--dry-run');
  const decision = plan(realProbe, realMachine());
  if (decision.action === 'none') {
    if (dryRun) console.log('setup-tests: everything the tests need is installed');
    return 0;
  }
  if (decision.action === 'stop') {
    console.error(`setup-tests: ${decision.message}`);
    return 1;
  }
  const names = decision.missing.map((n) => n.pkg).join(', ');
  console.log(`setup-tests: installing ${names} for the tests (Debian 12, as root)`);
  for (const [cmd, ...args] of decision.commands) {
    console.log(`setup-tests: ${cmd === 'add-source' ? `adding '${args[1]}' to ${args[0]}`
      : [cmd, ...args].join(' ')}`);
    if (dryRun) continue;
    try {
      if (cmd === 'add-source') writeFileSync(args[0], `${args[1]}\n`);
      else execFileSync(cmd, args, { stdio: 'inherit', env: { ...process.env,
        DEBIAN_FRONTEND: 'noninteractive' } });
    } catch (error) {
      const why = `${cmd} failed: ${(error as Error).message.split('\n')[0]}`;
      console.error(`setup-tests: ${stopMessage(decision.missing, why)}`);
      return 1;
    }
  }
  if (dryRun) return 0;
  const still = NEEDS.filter((n) => !n.ok(realProbe));
  if (still.length) {
    console.error(`setup-tests: ${stopMessage(still, 'apt-get did not provide them')}`);
    return 1;
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
