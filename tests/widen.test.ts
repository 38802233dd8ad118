// Net2WiderNet for the paper's UNet (scripts/widen.ts): the wider network computes the same eps_theta, its copies
// of a channel drift apart only through the added noise, and a width that is not a whole multiple is refused.
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { epsTheta, initParams, type UNetConfig } from '../src/lib/diffusion';
import { widenParams } from '../scripts/widen';
import { backend, maxAbsDiff } from './helpers/backend';

const c: UNetConfig = { imageChannels: 1, channels: 32, classes: 10 };
const t = [0, 17, 150, 299];
const y = [1, null, 5, 9];

describe('widenParams', () => {
  beforeAll(() => backend('wasm'));

  it.each([64, 96, 128])('widens 32 channels to %i with the same eps_theta, for labelled and unlabelled images', async (C) => {
    const p = initParams(c, 3);
    const x = tf.randomNormal([4, 28, 28, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
    const wide = widenParams(p, c, C);
    expect(wide['middle_block.conv1.weight'].shape).toEqual([3, 3, 2 * C, 2 * C]);
    expect(wide['noise_embedding.weight'].shape).toEqual([C, 2 * C]);
    const [a, b] = [await epsTheta(p, c, x, t, y).data(), await epsTheta(wide, { ...c, channels: C }, x, t, y).data()];
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-4);
    expect(maxAbsDiff(a, new Float32Array(a.length))).toBeGreaterThan(0.1); // not two zero outputs
    tf.dispose([x, ...Object.values(p), ...Object.values(wide)]);
  });

  it('noise makes the copies of a channel differ, by about noise x the tensor\'s spread', async () => {
    const p = initParams(c, 3);
    const wide = widenParams(p, c, 64, { noise: 0.01, seed: 5 });
    const w = await wide['down_block3.weight'].data(); // HWIO [3, 3, 64, 128]: outputs 2j and 2j + 1 copy old output j
    const gaps = Array.from({ length: w.length / 2 }, (_, i) => Math.abs(w[2 * i] - w[2 * i + 1]));
    const std = Math.sqrt((await tf.moments(p['down_block3.weight']).variance.data())[0]);
    const meanGap = gaps.reduce((s, g) => s + g, 0) / gaps.length;
    expect(meanGap / std).toBeGreaterThan(0.005); // E|N(0, 2 (0.01 std)^2)| = 0.011 std
    expect(meanGap / std).toBeLessThan(0.03);
    tf.dispose([...Object.values(p), ...Object.values(wide)]);
  });

  it('refuses a width that is not a whole multiple', () => {
    const p = initParams(c, 3);
    expect(() => widenParams(p, c, 48)).toThrow(/cannot widen 32 channels to 48: the new width must be a whole multiple/);
    tf.dispose(Object.values(p));
  });
});
