// The values of one sampling step, as a cell publishes them to the page (a CustomEvent on
// document) and the code panes show them (./client.ts). No tfjs here: the page loads this with
// the panes, the cells with their runtime (src/lib/runtime/cells/record.ts).

/** The event a cell dispatches on document when its scrubber picks a step (or a run starts). */
export const STEP_EVENT = 'diffusion:step';

/** Image 0 of the batch, [H, W, C] row-major, as read with `await tensor.data()`. */
export interface StepImage { data: Float32Array; height: number; width: number; channels: number }

export type StepValue = number | StepImage;

export interface StepValues {
  /** The cell's data-run-cell name; a later event of the same cell replaces the earlier. */
  cell: string;
  /** Which step, for the reader: "DDIM step 3 of 50, t = 61". Empty with no step (a new run). */
  label: string;
  /** The "FILE#REGION" panes whose code this step ran. */
  regions: readonly string[];
  /** By symbol name (the names of data-sym, src/lib/site/symbols.ts). */
  values: Record<string, StepValue>;
  /** Where a name means something else in one region: its value there, or null for none. */
  byRegion?: Record<string, Record<string, StepValue | null>>;
  /** A few words on a value ("clipped to [-1, 1]"), by symbol name. */
  notes?: Record<string, string>;
}

export const isImage = (v: StepValue | null | undefined): v is StepImage =>
  typeof v === 'object' && v !== null;
