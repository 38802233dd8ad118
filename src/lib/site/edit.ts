// Editable code panes: Edit turns a pane into a textarea holding its region's code (rendered with
// the page, hidden), every change goes into the page's store of edits, which the next Run of a
// cell builds into the library it runs (../runtime/cells/engine.ts, library()), and Reset puts
// the library's code back. Syntax errors show in the pane while typing (sucrase, loaded on the
// first edit); compile and run errors come back from the cells as EDIT_ERROR events.
import { EDIT_ERROR, pageEdits, type EditErrorDetail } from '../runtime/edit/store';

const INDENT = '  ';

interface Pane {
  ref: string;
  figure: HTMLElement;
  code: HTMLElement;
  editor: HTMLTextAreaElement;
  error: HTMLElement;
}

/** The pane (a figure) around `el`: its highlighted code, editor and error line. */
function paneOf(el: Element): Pane | null {
  const figure = el.closest<HTMLElement>('figure');
  const code = figure?.querySelector<HTMLElement>('[data-region]');
  const editor = figure?.querySelector<HTMLTextAreaElement>('textarea[data-editor]');
  const error = figure?.querySelector<HTMLElement>('[data-edit-error]');
  if (!figure || !code || !editor || !error) return null;
  return { ref: code.dataset.region!, figure, code, editor, error };
}

const panesOf = (ref: string) => [...document.querySelectorAll(`[data-region="${ref}"]`)]
  .map(paneOf).filter((p): p is Pane => p !== null);

const button = (pane: Pane, name: string) =>
  pane.figure.querySelector<HTMLButtonElement>(`button[data-${name}]`)!;

/** Shows `message` under the pane; `syntax`: from the check while typing, which may clear it. */
function showError(pane: Pane, message: string, syntax = false) {
  pane.error.textContent = message;
  pane.error.hidden = !message;
  pane.error.toggleAttribute('data-syntax', syntax && !!message);
}

/** Shows whether the pane's code differs from the library's, on the pane and in its caption. */
function markEdited(pane: Pane, edited: boolean) {
  pane.figure.toggleAttribute('data-edited', edited);
  const note = pane.figure.querySelector<HTMLElement>('[data-edited-note]');
  if (!note) return;
  note.hidden = !edited;
  if (!document.querySelector('[data-run-cell]')) {
    note.textContent = 'edited, but no cell on this page runs it (an edit stays on its page)';
  }
}

function open(pane: Pane) {
  const lines = pane.editor.value.split('\n').length;
  pane.editor.rows = lines + 1;
  pane.code.hidden = true;
  pane.editor.hidden = false;
  button(pane, 'edit').hidden = true;
  button(pane, 'reset').hidden = false;
  pane.editor.focus();
}

function reset(pane: Pane) {
  pageEdits().delete(pane.ref);
  for (const p of panesOf(pane.ref)) {
    p.editor.value = p.editor.defaultValue;
    p.editor.hidden = true;
    p.code.hidden = false;
    button(p, 'edit').hidden = false;
    button(p, 'reset').hidden = true;
    markEdited(p, false);
    showError(p, '');
  }
  button(pane, 'edit').focus();
}

let checking: ReturnType<typeof setTimeout> | undefined;

/** Shows the syntax errors of every edited pane, a moment after the reader stops typing. */
function checkSoon() {
  clearTimeout(checking);
  checking = setTimeout(async () => {
    const { checkEdits } = await import('../runtime/edit/graph');
    const edits = pageEdits();
    const errors = checkEdits(edits);
    for (const pane of [...edits.keys()].flatMap(panesOf)) {
      // a run's error stays until the code changes; a syntax error goes once it is fixed
      if (errors[pane.ref]) showError(pane, errors[pane.ref], true);
      else if (pane.error.hasAttribute('data-syntax')) showError(pane, '');
    }
  }, 300);
}

function changed(pane: Pane) {
  const { value, defaultValue } = pane.editor;
  if (value === defaultValue) pageEdits().delete(pane.ref);
  else pageEdits().set(pane.ref, value);
  for (const p of panesOf(pane.ref)) {
    if (p !== pane) p.editor.value = value;
    markEdited(p, value !== defaultValue);
    showError(p, '');
  }
  pane.editor.rows = value.split('\n').length + 1;
  checkSoon();
}

/** Tab indents (two spaces) instead of leaving the editor, unless Escape came just before. */
let escaped = false;
function keydown(pane: Pane, event: KeyboardEvent) {
  if (event.key === 'Escape') {
    escaped = true;
    return;
  }
  const tab = event.key === 'Tab' && !event.shiftKey && !event.altKey && !event.ctrlKey;
  if (tab && !escaped) {
    event.preventDefault();
    const { editor } = pane;
    editor.setRangeText(INDENT, editor.selectionStart, editor.selectionEnd, 'end');
    changed(pane);
  }
  escaped = false;
}

document.addEventListener('click', (event) => {
  const target = event.target instanceof Element ? event.target : null;
  const clicked = target?.closest<HTMLButtonElement>('button[data-edit], button[data-reset]');
  const pane = clicked && paneOf(clicked);
  if (!clicked || !pane) return;
  if (clicked.hasAttribute('data-edit')) open(pane);
  else reset(pane);
});

document.addEventListener('input', (event) => {
  const target = event.target instanceof HTMLTextAreaElement ? event.target : null;
  const pane = target?.matches('[data-editor]') ? paneOf(target) : null;
  if (pane) changed(pane);
});

document.addEventListener('keydown', (event) => {
  const target = event.target instanceof HTMLTextAreaElement ? event.target : null;
  const pane = target?.matches('[data-editor]') ? paneOf(target) : null;
  if (pane) keydown(pane, event);
});

document.addEventListener(EDIT_ERROR, (event) => {
  const { messages } = (event as CustomEvent<EditErrorDetail>).detail;
  for (const [ref, message] of Object.entries(messages)) {
    panesOf(ref).forEach((p) => showError(p, message));
  }
});
