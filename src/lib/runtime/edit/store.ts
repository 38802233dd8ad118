// The page's edited regions, shared by the panes' script (../../site/edit.ts) and the cells'
// engine (../cells/engine.ts), which Vite may bundle apart (or inline): so the store lives on the
// window, one per page, and errors travel as DOM events. Loads with the page: no tfjs, no sucrase.

/** Region ref ("ddim.ts#ddim-step") to the reader's code for it, dedented as the pane shows it. */
export type Edits = Map<string, string>;

const KEY = '__diffusionExecutedEdits';

/** The page's edits; empty until a reader edits a pane. */
export function pageEdits(): Edits {
  const page = globalThis as unknown as Record<string, Edits | undefined>;
  return (page[KEY] ??= new Map());
}

/** Fired on document when edited code fails to compile or to run. */
export const EDIT_ERROR = 'diffusion-executed:edit-error';

export interface EditErrorDetail {
  /** The regions whose panes show `message`: ref to message. */
  messages: Record<string, string>;
}

export function reportEditErrors(messages: Record<string, string>) {
  if (typeof document === 'undefined' || !Object.keys(messages).length) return;
  const detail: EditErrorDetail = { messages };
  document.dispatchEvent(new CustomEvent(EDIT_ERROR, { detail }));
}
