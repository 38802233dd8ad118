// The one client script of the equation/code pairs: symbol hover linking, copy buttons, and the
// values of a sampling step. A sampling cell's scrubber publishes the picked step (STEP_EVENT,
// from src/lib/runtime/cells/record.ts); then hovering or focusing a symbol (data-sym) in a pane
// of a region that step ran, or in the equation beside it, opens a popover ([data-value],
// role=tooltip) with its value: a small image with its min, max and mean, or a number.
import {
  STEP_EVENT, isImage, type StepImage, type StepValue, type StepValues,
} from './step-values';

const scope = (el: Element) => el.closest('[data-sym-scope]') ?? document;
const symOf = (target: EventTarget | null) =>
  target instanceof Element ? target.closest<HTMLElement>('[data-sym]') : null;

function mark(target: EventTarget | null, on: boolean) {
  const el = symOf(target);
  if (!el) return;
  const primary = el.dataset.sym!.split(' ')[0];
  scope(el).querySelectorAll(`[data-sym~="${primary}"]`)
    .forEach((s) => s.classList.toggle('sym-on', on));
}

/** The latest step each cell published, by cell name, the most recent last. */
const steps = new Map<string, StepValues>();

/** The regions whose values an element shows: its pane's, or for an equation its pair's panes. */
function regionsOf(el: Element): string[] {
  const pane = el.closest<HTMLElement>('[data-region]');
  if (pane) return [pane.dataset.region!];
  const pair = el.closest('[data-sym-scope]');
  return pair ? [...pair.querySelectorAll<HTMLElement>('[data-region]')]
    .map((p) => p.dataset.region!) : [];
}

interface Found { sym: string; value: StepValue; step: StepValues; note?: string }

/** The value of the first of an element's symbols that the latest step of its regions has. */
function valueFor(el: HTMLElement): Found | null {
  const regions = regionsOf(el);
  const syms = el.dataset.sym!.split(' ');
  for (const step of [...steps.values()].reverse()) {
    for (const region of regions.filter((r) => step.regions.includes(r))) {
      for (const sym of syms) {
        const own = step.byRegion?.[region];
        const value = own && sym in own ? own[sym] : step.values[sym];
        if (value === null || value === undefined) continue;
        return { sym, value, step, note: step.notes?.[`${region} ${sym}`] ?? step.notes?.[sym] };
      }
    }
  }
  return null;
}

const number = (v: number) => (Number.isInteger(v) ? String(v)
  : Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(4) : v.toPrecision(5));

/** FNV-1a of the image's float bits: the tests compare it between steps. */
function hash(data: Float32Array): string {
  let h = 0x811c9dc5;
  for (const bits of new Uint32Array(data.buffer, data.byteOffset, data.length)) {
    h = Math.imul(h ^ bits, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** The image on a canvas: [-1, 1] to black..white, widened to the values' range if beyond it. */
function drawImage({ data, height, width, channels }: StepImage, stats: number[]) {
  const canvas = document.createElement('canvas');
  [canvas.width, canvas.height] = [width, height];
  const ctx = canvas.getContext('2d')!;
  const pixels = ctx.createImageData(width, height);
  const [lo, hi] = [Math.min(stats[0], -1), Math.max(stats[1], 1)];
  for (let p = 0; p < width * height; p++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = data[p * channels + (channels === 3 ? ch : 0)];
      pixels.data[p * 4 + ch] = Math.round(((v - lo) / (hi - lo)) * 255);
    }
    pixels.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}

let popover: HTMLElement | null = null;
let anchor: HTMLElement | null = null;

function popoverElement(): HTMLElement {
  if (popover) return popover;
  popover = document.createElement('div');
  popover.className = 'step-value';
  popover.id = 'step-value';
  popover.setAttribute('role', 'tooltip');
  popover.hidden = true;
  document.body.append(popover);
  return popover;
}

function line(className: string, text: string) {
  const el = document.createElement('div');
  el.className = className;
  el.textContent = text;
  return el;
}

function hide() {
  anchor?.removeAttribute('aria-describedby');
  anchor = null;
  if (popover) popover.hidden = true;
}

/** Opens the popover at `el` with its value at the picked step; closes it if there is none. */
function show(el: HTMLElement) {
  const found = valueFor(el);
  if (!found) return hide();
  const { sym, value, step, note } = found;
  const p = popoverElement();
  p.dataset.value = sym;
  p.dataset.step = step.label;
  const parts: HTMLElement[] = [line('sv-step', step.label)];
  if (isImage(value)) {
    const { data } = value;
    let [min, max, sum] = [Infinity, -Infinity, 0];
    for (const v of data) [min, max, sum] = [Math.min(min, v), Math.max(max, v), sum + v];
    const mean = sum / data.length;
    p.dataset.hash = hash(data);
    const canvas = drawImage(value, [min, max]);
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `${sym}, image 0 of the batch`);
    const shape = `${value.height}×${value.width}×${value.channels}`;
    parts.unshift(line('sv-head', `${sym} (${shape}, image 0)`));
    parts.push(canvas, line('sv-num',
      `min ${number(min)} · max ${number(max)} · mean ${number(mean)}`));
  } else {
    delete p.dataset.hash;
    parts.unshift(line('sv-head', `${sym} = `));
    parts[0].append(Object.assign(document.createElement('span'),
      { className: 'sv-num', textContent: number(value) }));
  }
  if (note) parts.push(line('sv-note', note));
  p.replaceChildren(...parts);
  anchor?.removeAttribute('aria-describedby');
  anchor = el;
  el.setAttribute('aria-describedby', p.id);
  p.hidden = false;
  const rect = el.getBoundingClientRect();
  const left = Math.min(rect.left, document.documentElement.clientWidth - p.offsetWidth - 8);
  p.style.left = `${Math.max(left, 4) + scrollX}px`;
  p.style.top = `${rect.bottom + 6 + scrollY}px`;
}

/** Which cells' steps the marks were drawn for: redrawn only when that changes. */
let marked = '';

/** Underlines (and lets the keyboard reach) the symbols that have a value at the picked steps. */
function markValues() {
  const key = JSON.stringify([...steps.values()].map((s) =>
    [s.regions, Object.keys(s.values), s.byRegion ?? {}].map((v) => JSON.stringify(v))));
  if (key === marked) return;
  marked = key;
  for (const el of document.querySelectorAll<HTMLElement>('[data-sym-scope] [data-sym]')) {
    const has = valueFor(el) !== null;
    el.classList.toggle('has-value', has);
    if (el.closest('[data-region]')) {
      if (has) el.tabIndex = 0;
      else el.removeAttribute('tabindex');
    }
  }
}

document.addEventListener(STEP_EVENT, (e) => {
  const detail = (e as CustomEvent<StepValues>).detail;
  steps.delete(detail.cell);
  if (detail.regions.length) steps.set(detail.cell, detail);
  markValues();
  if (anchor && popover && !popover.hidden) show(anchor);
});

document.addEventListener('pointerover', (e) => {
  mark(e.target, true);
  const el = symOf(e.target);
  if (el && el !== anchor) show(el);
});
document.addEventListener('pointerout', (e) => {
  mark(e.target, false);
  const el = symOf(e.target);
  const into = e.relatedTarget instanceof Node ? e.relatedTarget : null;
  if (el && el === anchor && !(into && el.contains(into))) hide();
});
document.addEventListener('focusin', (e) => {
  mark(e.target, true);
  const el = symOf(e.target);
  if (el) show(el);
});
document.addEventListener('focusout', (e) => {
  mark(e.target, false);
  if (symOf(e.target) === anchor) hide();
});
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && anchor) hide();
});
document.querySelectorAll<HTMLElement>('.katex [data-sym]').forEach((s) => (s.tabIndex = 0));

document.addEventListener('click', async (e) => {
  const target = e.target instanceof Element ? e.target : null;
  const button = target?.closest<HTMLButtonElement>('[data-copy]');
  const pane = button?.closest('figure')?.querySelector('[data-region]');
  if (!button || !pane) return;
  const editor = button.closest('figure')?.querySelector<HTMLTextAreaElement>('[data-editor]');
  const text = editor && !editor.hidden ? editor.value // an edited pane copies the reader's code
    : [...pane.querySelectorAll('.line')].map((l) => l.textContent).join('\n');
  await navigator.clipboard.writeText(text);
  button.textContent = 'Copied';
  setTimeout(() => (button.textContent = 'Copy'), 1500);
});
