// The first step of `npm test` (scripts/setup-tests.ts): its decisions on machines it only imagines.
import { describe, expect, it } from 'vitest';
import { mesaMajor, plan, type Machine, type Probe } from '../scripts/setup-tests';

const ICD = '/usr/share/vulkan/icd.d/lvp_icd.json';
const FASHION = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz',
  't10k-labels-idx1-ubyte.gz'].map((f) => `/usr/share/datasets/fashion-mnist/${f}`);
const ALL = ['/usr/bin/chromium', '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', ICD, ...FASHION];

/** A machine with these files, this Mesa package version (null: no dpkg) and this lavapipe ICD. */
const probe = (files: string[], mesa: string | null = '25.0.7-2~bpo12+1', api = '1.4.305'): Probe => ({
  exists: (p) => files.includes(p),
  read: (p) => (p === ICD ? JSON.stringify({ ICD: { api_version: api } }) : ''),
  dpkgVersion: (pkg) => (pkg === 'mesa-vulkan-drivers' && files.includes(ICD) ? mesa : null),
});
const debianRoot: Machine = { root: true, bookworm: true, apt: true, backports: true };

describe('setup-tests', () => {
  it('does nothing when everything is there', () => {
    expect(plan(probe(ALL), debianRoot).action).toBe('none');
    expect(plan(probe(ALL), { root: false, bookworm: false, apt: false, backports: false }).action).toBe('none');
  });

  it('installs what is missing as root on Debian 12, adding bookworm-backports when the sources lack it', () => {
    const d = plan(probe(['/usr/bin/chromium']), { ...debianRoot, backports: false });
    expect(d.action).toBe('install');
    if (d.action !== 'install') return;
    expect(d.commands).toEqual([
      ['add-source', '/etc/apt/sources.list.d/bookworm-backports.list', 'deb http://deb.debian.org/debian bookworm-backports main'],
      ['apt-get', 'update', '-q'],
      ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'fonts-dejavu-core', 'dataset-fashion-mnist'],
      ['apt-get', 'install', '-y', '-q', '--no-install-recommends', '-t', 'bookworm-backports', 'mesa-vulkan-drivers'],
    ]);
    const onlyData = plan(probe(ALL.filter((f) => !FASHION.includes(f))), { ...debianRoot, backports: false });
    expect(onlyData.action === 'install' && onlyData.commands).toEqual([
      ['apt-get', 'update', '-q'],
      ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'dataset-fashion-mnist'],
    ]);
  });

  it("replaces Debian 12's own Mesa 22 lavapipe with Mesa 25's", () => {
    const d = plan(probe(ALL, '22.3.6-1+deb12u1'), debianRoot);
    expect(d.action === 'install' && d.commands.at(-1)).toEqual(
      ['apt-get', 'install', '-y', '-q', '--no-install-recommends', '-t', 'bookworm-backports', 'mesa-vulkan-drivers']);
    // without dpkg, the Vulkan version lavapipe reports tells Mesa 25 (1.4) from Mesa 22 (1.3)
    expect(mesaMajor(probe(ALL, null, '1.4.305'))).toBe(25);
    expect(mesaMajor(probe(ALL, null, '1.3.230'))).toBeLessThan(25);
    expect(mesaMajor(probe([], null))).toBe(0);
  });

  it('stops with one message naming exactly what to install where it cannot install', () => {
    const missing = probe(['/usr/bin/chromium', ...FASHION], '22.3.6-1+deb12u1');
    for (const [machine, why] of [
      [{ ...debianRoot, root: false }, 'not root'],
      [{ ...debianRoot, bookworm: false }, 'not Debian 12'],
      [{ root: true, bookworm: false, apt: false, backports: false }, 'not Debian 12, no apt-get'],
    ] as const) {
      const d = plan(missing, machine);
      expect(d.action).toBe('stop');
      if (d.action !== 'stop') continue;
      expect(d.message).toContain(`(${why})`);
      expect(d.message).toContain('apt-get install fonts-dejavu-core; then apt-get install -t bookworm-backports mesa-vulkan-drivers');
      expect(d.message).not.toContain('dataset-fashion-mnist');
      expect(d.message).not.toMatch(/chromium \(/);
      expect(d.message.split('\n')).toHaveLength(1);
    }
  });
});
