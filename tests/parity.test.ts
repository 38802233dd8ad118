// The library against values computed by the paper's own PyTorch code (tests/fixtures/pytorch-parity).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { maxAbsDiff } from './helpers/backend';

const FIXTURE = join(__dirname, 'fixtures/pytorch-parity');
const flat = (v: unknown): number[] => (Array.isArray(v) ? v.flat(Infinity) : [v]) as number[];

describe('npm run parity on the PyTorch fixture', () => {
  const out = join(mkdtempSync(join(tmpdir(), 'parity-')), 'out.json');
  execFileSync('npm', ['run', '-s', 'parity', '--', '--fixture', FIXTURE, '--out', out]);
  const got = JSON.parse(readFileSync(out, 'utf8'));
  const want = JSON.parse(readFileSync(join(FIXTURE, 'case.json'), 'utf8'));
  const err = (section: string, field: string) => maxAbsDiff(flat(got[section][field]), flat(want[section][field]));

  it('schedule arrays within 1e-7', () => {
    for (const f of ['betas', 'alphas_cumprod', 'posterior_variance', 'posterior_mean_coef1', 'posterior_mean_coef2']) {
      expect(err('schedule', f), f).toBeLessThan(1e-7);
    }
  });
  it('q_sample, eps and p_mean_variance within 1e-4', () => {
    expect(err('q_sample', 'xt')).toBeLessThan(1e-4);
    expect(err('eps', 'eps')).toBeLessThan(1e-4);
    for (const f of ['mean', 'variance', 'log_variance']) expect(err('p_mean_variance', f), f).toBeLessThan(1e-4);
  });
  it('one DDIM step within 1e-4', () => expect(err('ddim_step', 'x_prev')).toBeLessThan(1e-4));
  it('the whole DDIM loop: same timesteps, final x0 within 5e-3', () => {
    expect(got.ddim.timestep_seq).toEqual(want.ddim.timestep_seq);
    expect(got.ddim.prev_seq).toEqual(want.ddim.prev_seq);
    expect(err('ddim', 'x0')).toBeLessThan(5e-3);
  });
});

describe('npm run parity on bad input', () => {
  const run = (...args: string[]) => {
    try {
      execFileSync('npm', ['run', '-s', 'parity', '--', ...args], { stdio: 'pipe' });
      return { code: 0, stderr: '' };
    } catch (e) {
      const err = e as { status: number; stderr: Buffer };
      return { code: err.status, stderr: err.stderr.toString() };
    }
  };
  it('missing fixture: non-zero exit and one line', () => {
    const r = run('--fixture', '/nonexistent', '--out', join(tmpdir(), 'never.json'));
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot read/);
  });
  it('missing --out: non-zero exit naming the flag', () => {
    const r = run('--fixture', FIXTURE);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe('error: missing --out <value>');
  });
});
