// The part of every run-this-cell island that loads with the page: it wires the Run and Cancel
// buttons, the state attributes the tests read, progress, elapsed time and error messages. It
// imports no tfjs: the cell's own code (and with it tfjs and the library) is a dynamic import made
// on the first Run.

/** What a cell's code gets for one run. */
export interface CellContext {
  root: HTMLElement;
  signal: AbortSignal;
  seed: number;
  /** `?cells=tiny`: the smallest settings (one image, a few steps, a random 32-channel model), for
   * tests. */
  tiny: boolean;
  search: string;
  progress(step: number, steps: number, label?: string): void;
  canvas(name: string): HTMLCanvasElement;
  /** The value of the control named `name` inside the cell (input or select). */
  value(name: string): string;
  number(name: string): number;
  /** Writes text into the element marked data-out="name". */
  show(name: string, text: string): void;
  /** A visible note that stays after the run (e.g. "no trained model: random weights"); several
   * notes are shown one after the other, each once. */
  note(text: string): void;
  setBackend(name: string): void;
  /** Set by the engine (engine.ts, startEngine): after a failed run, resolves true when the cell
   * should run again because the engine fell back (fused kernels failed, WebGPU device lost). */
  recover?(error: unknown): Promise<boolean>;
}

export interface CellModule {
  run(ctx: CellContext): Promise<void>;
  /** Re-run on every change of a control once loaded (cheap cells such as forward noising). */
  live?: boolean;
}

export type CellLoader = () => Promise<CellModule>;

/** Turns any failure into one sentence a reader can act on. */
export function describeError(error: unknown, backend: string): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/out of memory|OOM|allocation failed|Failed to allocate/i.test(message)) {
    return `Out of memory on the ${backend || 'current'} backend: try fewer images or another `
      + `backend (?backend=wasm). (${message})`;
  }
  if (/webgpu/i.test(message) && /not available|no gpu|navigator\.gpu/i.test(message)) {
    return `WebGPU is not available here: ${message}. `
      + 'Remove ?backend=webgpu to fall back to WebGL or wasm.';
  }
  return message || 'the cell stopped without a message';
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Mounts every cell named `name` on the page. */
export function mountCells(name: string, load: CellLoader) {
  for (const root of document.querySelectorAll<HTMLElement>(`[data-run-cell="${name}"]`)) {
    if (root.dataset.mounted) continue;
    root.dataset.mounted = 'true';
    mountCell(root, load);
  }
}

function mountCell(root: HTMLElement, load: CellLoader) {
  const q = <T extends Element>(sel: string) => root.querySelector<T>(sel);
  const runButton = q<HTMLButtonElement>('button[data-run]')!;
  const cancelButton = q<HTMLButtonElement>('button[data-cancel]')!;
  const seedInput = q<HTMLInputElement>('input[data-seed]')!;
  const bar = q<HTMLProgressElement>('progress[data-progress]')!;
  const progressText = q<HTMLElement>('[data-progress-text]')!;
  const status = q<HTMLElement>('[data-status]')!;
  const errorBox = q<HTMLElement>('[data-error]')!;
  const noteBox = q<HTMLElement>('[data-note]')!;
  const backendLabel = q<HTMLElement>('[data-backend-label]')!;
  let module: CellModule | null = null;
  let controller: AbortController | null = null;
  let rerun = false;

  const setState = (state: 'idle' | 'running' | 'done' | 'error' | 'cancelled') => {
    root.dataset.state = state;
    root.setAttribute('aria-busy', String(state === 'running'));
    runButton.disabled = state === 'running';
    cancelButton.disabled = state !== 'running';
  };

  async function run() {
    if (root.dataset.state === 'running') return;
    const seed = Math.trunc(Number(seedInput.value)) >>> 0;
    seedInput.value = String(seed);
    root.dataset.seed = String(seed);
    controller = new AbortController();
    const started = performance.now();
    let progressLabel = 'loading tfjs and the model';
    const elapsed = () => seconds(performance.now() - started);
    const tick = () => (progressText.textContent = `${progressLabel} · ${elapsed()}`);
    const timer = setInterval(tick, 100);
    setState('running');
    errorBox.hidden = true;
    errorBox.textContent = '';
    noteBox.textContent = '';
    const notes = new Set<string>();
    status.textContent = `Running with seed ${seed}…`;
    bar.removeAttribute('value');
    tick();
    const ctx: CellContext = {
      root, seed, signal: controller.signal, search: location.search,
      tiny: new URLSearchParams(location.search).get('cells') === 'tiny',
      progress(step, steps, label = 'step') {
        progressLabel = `${label} ${step} of ${steps}`;
        bar.max = steps;
        bar.value = step;
        tick();
      },
      canvas: (name) => {
        const c = q<HTMLCanvasElement>(`canvas[data-out="${name}"]`);
        if (!c) throw new Error(`this cell has no canvas named "${name}"`);
        return c;
      },
      value: (name) => {
        const el = q<HTMLInputElement | HTMLSelectElement>(`[data-controls] [name="${name}"]`);
        if (!el) throw new Error(`this cell has no control named "${name}"`);
        return el.value;
      },
      number: (name) => Number(ctx.value(name)),
      show: (name, text) => {
        const el = q<HTMLElement>(`[data-out="${name}"]`);
        if (el) el.textContent = text;
      },
      note: (text) => {
        notes.add(text);
        noteBox.textContent = [...notes].join(' ');
      },
      setBackend: (name) => {
        root.dataset.backend = name;
        backendLabel.textContent = `backend: ${name}`;
      },
    };
    try {
      module ??= await load();
      // a run the engine fell back from runs again, at most twice (fused kernels, then device)
      for (let attempt = 1; ; attempt++) {
        try {
          await module.run(ctx);
          break;
        } catch (error) {
          const again = attempt <= 2 && !controller.signal.aborted && ctx.recover;
          if (!again || !(await again(error))) throw error;
        }
      }
      setState('done');
      status.textContent = `Done in ${seconds(performance.now() - started)} (seed ${seed}).`;
    } catch (error) {
      const abort = error instanceof DOMException && error.name === 'AbortError';
      if (controller.signal.aborted || abort) {
        setState('cancelled');
        status.textContent = `Cancelled after ${elapsed()} (${progressLabel}).`;
      } else {
        console.error(error);
        setState('error');
        status.textContent = '';
        errorBox.textContent = describeError(error, root.dataset.backend ?? '');
        errorBox.hidden = false;
      }
    } finally {
      clearInterval(timer);
      const loading = progressLabel === 'loading tfjs and the model';
      progressText.textContent = loading ? '' : progressLabel;
      if (bar.max > 0 && !bar.hasAttribute('value')) bar.value = 0;
      controller = null;
      if (rerun) {
        rerun = false;
        queueMicrotask(run);
      }
    }
  }

  runButton.addEventListener('click', run);
  cancelButton.addEventListener('click', () => controller?.abort());
  root.querySelector('button[data-reseed]')?.addEventListener('click', () => {
    seedInput.value = String(Math.floor(Math.random() * 100000));
    if (module?.live) void run();
  });
  root.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && controller) controller.abort();
  });
  q('[data-controls]')?.addEventListener('input', () => {
    if (!module?.live) return;
    if (root.dataset.state === 'running') rerun = true;
    else void run();
  });
}
