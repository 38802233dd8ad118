// Schedules and the equations that use them, at non-default settings.
import { describe, expect, it } from 'vitest';
import { betas, ddimSigma, ddimTimesteps, makeSchedule } from '../src/lib/diffusion';

describe('beta schedules', () => {
  it("the paper's linear schedule is DDPM's 1000-step range scaled by 1000/T", () => {
    const b = betas('paper-linear', 250);
    expect(b[0]).toBeCloseTo(0.0003 * 4, 15);
    expect(b[249]).toBeCloseTo(0.03 * 4, 15);
    expect(b[1] - b[0]).toBeCloseTo((0.12 - 0.0012) / 249, 15);
  });
  it("DDPM's linear schedule runs 1e-4 .. 0.02 whatever T", () => {
    const b = betas('ddpm-linear', 50);
    expect(b[0]).toBe(1e-4);
    expect(b[49]).toBeCloseTo(0.02, 15);
  });
  it('cosine: alphaBar follows cos^2 and the last beta is clipped at 0.999', () => {
    const T = 40;
    const s = makeSchedule('cosine', T);
    const f = (t: number) => Math.cos(((t / T + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    expect(s.beta[0]).toBeCloseTo(1 - f(1) / f(0), 15);
    expect(s.beta[T - 1]).toBe(0.999);
    for (const t of [0, 7, 20, 38]) expect(s.alphaBar[t]).toBeCloseTo(f(t + 1) / f(0), 12);
  });
  it('a single timestep works', () => {
    const s = makeSchedule('ddpm-linear', 1);
    expect(s.alphaBar[0]).toBeCloseTo(1 - 1e-4, 15);
    expect(s.betaTilde[0]).toBe(0);
  });
  it("the paper's schedule needs T > 30, since its last beta is 30/T", () => {
    expect(() => makeSchedule('paper-linear', 30)).toThrow(/beta_29 = 1; every beta must be in \(0, 1\) \(the paper's schedule ends at 30\/T, so it needs T > 30\)/);
    expect(makeSchedule('paper-linear', 31).beta[30]).toBeCloseTo(30 / 31, 15);
  });
  it('rejects a bad T with a clear message', () => {
    expect(() => makeSchedule('cosine', 0)).toThrow(/timesteps must be a positive integer, received 0/);
    expect(() => makeSchedule('paper-linear', 2.5)).toThrow(/positive integer/);
  });
});

describe('derived quantities (T = 17, ddpm-linear)', () => {
  const s = makeSchedule('ddpm-linear', 17);
  it('alphaBar is the running product of 1 - beta, alphaBarPrev is it shifted right with 1 in front', () => {
    let prod = 1;
    for (let t = 0; t < 17; t++) {
      expect(s.alphaBarPrev[t]).toBeCloseTo(prod, 15);
      prod *= 1 - s.beta[t];
      expect(s.alphaBar[t]).toBeCloseTo(prod, 15);
    }
  });
  it('posterior variance and its clipped log at t = 0 and t = 9', () => {
    expect(s.betaTilde[0]).toBe(0);
    expect(s.logBetaTilde[0]).toBeCloseTo(Math.log(1e-20), 12);
    const want = (s.beta[9] * (1 - s.alphaBar[8])) / (1 - s.alphaBar[9]);
    expect(s.betaTilde[9]).toBeCloseTo(want, 15);
    expect(s.logBetaTilde[9]).toBeCloseTo(Math.log(want), 12);
  });
  it('posterior mean coefficients reproduce x_t when x_0 is the noiseless x_t / sqrt(alphaBar_t) chain', () => {
    // mu(x_0, x_t) = coefX0 x_0 + coefXt x_t; for x_t = sqrt(alphaBar_t) x_0 (no noise) it must equal sqrt(alphaBar_{t-1}) x_0.
    for (const t of [1, 5, 16]) {
      const mu = s.posteriorCoefX0[t] + s.posteriorCoefXt[t] * Math.sqrt(s.alphaBar[t]);
      expect(mu).toBeCloseTo(Math.sqrt(s.alphaBarPrev[t]), 12);
    }
  });
});

describe('DDIM timesteps and sigma', () => {
  it("the paper's spacing: range(0, T, T // S) + 1, previous 0 for the first", () => {
    expect(ddimTimesteps(100, 4, 'paper')).toEqual({ timesteps: [1, 26, 51, 76], prev: [0, 1, 26, 51] });
    // S that does not divide T: the first S entries of range(0, T, T // S) + 1
    expect(ddimTimesteps(100, 7, 'paper').timesteps).toEqual([1, 15, 29, 43, 57, 71, 85]);
  });
  it('even spacing ends at T - 1 and goes to alphaBar = 1 from the first', () => {
    expect(ddimTimesteps(100, 4, 'even')).toEqual({ timesteps: [24, 49, 74, 99], prev: [-1, 24, 49, 74] });
    expect(ddimTimesteps(5, 5, 'even').timesteps).toEqual([0, 1, 2, 3, 4]);
  });
  it('rejects step counts the spacing cannot make', () => {
    expect(() => ddimTimesteps(10, 10, 'paper')).toThrow(/1\.\.9/);
    expect(() => ddimTimesteps(10, 0, 'even')).toThrow(/integer in 1\.\.10/);
  });
  it('eta = 1 over all T steps gives exactly the DDPM posterior variance (DDIM eq. 16)', () => {
    for (const kind of ['paper-linear', 'cosine', 'ddpm-linear'] as const) {
      const s = makeSchedule(kind, 60);
      const { timesteps, prev } = ddimTimesteps(60, 60, 'even');
      timesteps.forEach((t, i) => {
        const sigma = ddimSigma(s, t, prev[i], 1);
        expect(sigma ** 2).toBeCloseTo(s.betaTilde[t], 14);
      });
    }
  });
  it('eta = 0 is deterministic and sigma scales linearly with eta', () => {
    const s = makeSchedule('paper-linear', 300);
    expect(ddimSigma(s, 151, 121, 0)).toBe(0);
    expect(ddimSigma(s, 151, 121, 0.5) * 2).toBeCloseTo(ddimSigma(s, 151, 121, 1), 15);
  });
});
