import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Builds the site once for the browser tests (tests/global-setup-build.ts).
    globalSetup: ['tests/global-setup-build.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: run test files two at a time at most, each in its own process.
    pool: 'forks',
    maxWorkers: 2,
    // the CLIs the tests spawn use one core each (scripts/cli.ts defaultCores): two test files
    // run at once on two cores
    env: { DIFFUSION_CORES: '1' },
  },
});
