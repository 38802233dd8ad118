// The `// #region NAME` ... `// #endregion` markers of src/lib/diffusion and the "FILE#REGION"
// names the pages give them: one definition for the build (./regions.ts) and for the page's code
// editor (../runtime/edit/source.ts), which cannot import node:fs.

/** A line that opens region NAME (group 1). */
export const REGION_START = /^\s*\/\/ #region (\S+)\s*$/;
/** A line that closes the open region. */
export const REGION_END = /^\s*\/\/ #endregion\b/;
/** "FILE#REGION": FILE (group 1) relative to src/lib/diffusion, REGION (group 2). */
export const REGION_REF = /^([\w./-]+\.ts)#([\w-]+)$/;
