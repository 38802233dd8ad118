// Builds the site once per `vitest run` for every test that needs the built pages (the browser tests),
// into a temporary folder whose path tests read with inject('siteDist'). SITE_DIST=<folder> skips the build
// and uses that folder (for re-running browser tests quickly after one `astro build --outDir <folder>`).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  /** siteBuildError: why the build failed ('' if it did not), so that only the tests that need the site fail. */
  export interface ProvidedContext { siteDist: string; siteBuildError: string }
}

export default function setup(project: TestProject) {
  project.provide('siteBuildError', '');
  if (process.env.SITE_DIST) {
    project.provide('siteDist', process.env.SITE_DIST);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'site-dist-'));
  project.provide('siteDist', dir);
  try {
    execFileSync('npx', ['astro', 'build', '--outDir', dir], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim().split('\n').slice(-15).join('\n');
    project.provide('siteBuildError', `astro build failed: ${stderr || (error as Error).message}`);
  }
  return () => rmSync(dir, { recursive: true, force: true });
}
