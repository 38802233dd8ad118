// The built site of tests/global-setup-build.ts: its folder, or an error saying why the build failed.
import { inject } from 'vitest';

export function siteDist(): string {
  const error = inject('siteBuildError');
  if (error) throw new Error(error);
  return inject('siteDist');
}
