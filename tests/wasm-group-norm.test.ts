// The fused GroupNorm block on wasm (src/lib/runtime/wasm-group-norm.ts, WebAssembly SIMD from
// src/lib/runtime/wasm-simd/group-norm.wat) against the core's plain ops: values and gradients,
// the UNet, the PyTorch parity fixture, tf.memory() over 50 steps, and the assembled module being
// the one its source makes. (Threads: tests/wasm-threads.test.ts draws the same samples with the
// CLI on 1 and 2 threads, which runs this kernel on the shared heap.)
import { beforeAll, describe, expect, it } from 'vitest';
import { useNodeBackend } from '../src/lib/runtime/node';
import { hasFusedKernels } from '../src/lib/runtime/fused-unet';
import {
  checkFusedEps, checkFusedParity, checkGroupNormCase, checkMemoryFlat, GROUP_NORM_CASES,
} from './helpers/fused';
import { npmRun } from './helpers/tiny-datasets';

beforeAll(() => useNodeBackend('wasm', { threads: 1 }));

describe('groupNormRelu on wasm: WebAssembly SIMD against the core ops', () => {
  for (const [name, shape, o] of GROUP_NORM_CASES) {
    it(`${name} [${shape}]: values and gradients within 1e-4`, async () => {
      expect(hasFusedKernels()).toBe(true);
      const errors = await checkGroupNormCase(shape, o);
      console.log(`wasm groupNormRelu ${name}: ${errors.map((e) => e.toExponential(1))}`);
    });
  }

  for (const [channels, B] of [[32, 3], [64, 2]]) {
    it(`fusedEpsTheta, ${channels} channels, batch ${B}: eps and gradients within 1e-4`,
      async () => {
        const errors = await checkFusedEps(channels, B);
        console.log(`wasm fusedEpsTheta ${channels} ch, B = ${B}: eps `
          + `${errors[0].toExponential(1)}, gradients ${Math.max(...errors.slice(1)).toExponential(1)}`);
      });
  }

  it('tf.memory() is flat over 50 fused training steps and 50 guided sampling steps', () =>
    checkMemoryFlat(32, [28, 28, 1]), 120_000);
});

describe('the assembled module and the parity fixture', () => {
  it('the -wasm.ts modules are what npm run build-wasm makes of the .wat files', () => {
    const r = npmRun('build-wasm', ['--check']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('npm run parity --fused on wasm: eps and a DDIM step within 1e-4, the loop within 5e-3', () => {
    const errors = checkFusedParity('wasm');
    console.log('fused parity on wasm:', JSON.stringify(errors));
  }, 120_000);
});
