// Ctrl-C and SIGTERM during npm run train: finish the step, save a checkpoint, then exit.
import { spawn } from 'node:child_process';

/**
 * `npm run train` runs `node --import tsx scripts/train.ts`: one process, which sees a Ctrl-C once
 * and handles it between two steps. Started with the tsx command instead (`tsx scripts/train.ts`,
 * as the Ctrl-C test does), the script runs in a child of tsx, and on a signal tsx waits 30 ms for
 * that child to acknowledge it, sends it again, waits 30 ms more and then SIGKILLs the child; one
 * training step blocks the event loop far longer, so the run would be lost. So under tsx this
 * process (the child, started with tsx's preflight) trains in a plain `node --import tsx` child of
 * its own and only relays signals to it. Returns whether it did.
 */
export function relayedFromTsx(): boolean {
  if (!process.execArgv.some((a) => a.includes('tsx/dist/preflight'))) return false;
  const args = ['--import', 'tsx', ...process.argv.slice(1)];
  const child = spawn(process.execPath, args, { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGTERM' ? 143 : 130)));
  return true;
}

/**
 * Listens for SIGINT and SIGTERM; the returned function gives the first one's name (stop after
 * this step and save), or null. Under tsx a Ctrl-C arrives twice, from the terminal and relayed,
 * so only a later one, 2 s on, quits at once without saving.
 */
export function stopSignals(): () => string | null {
  let stopping: string | null = null;
  let since = 0;
  const onSignal = (signal: string) => () => {
    if (stopping && Date.now() - since > 2000) process.exit(130);
    if (stopping) return;
    [stopping, since] = [signal, Date.now()];
    process.stderr.write(`\n${signal}: saving a checkpoint before exiting `
      + '(Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSignal('SIGINT'));
  process.on('SIGTERM', onSignal('SIGTERM'));
  return () => stopping;
}
