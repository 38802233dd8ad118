// Which code identifiers compute which mathematical symbol. Equations mark a symbol with
// \htmlData{sym=NAME}{...}; the code pane wraps these identifiers in <span data-sym="NAME">, and
// src/lib/site/client.ts highlights both on hover and focus. A value may list several symbols,
// primary first: hovering an element highlights every element whose list contains its primary
// symbol, so hovering alphaBar in an equation also lights `sqrtAlphaBar` in the code.
// A name's meaning is the region's: SYMBOLS holds the names that mean one thing in every region,
// REGION_SYMBOLS what a name means (or that it means nothing) in one region; see symbolsFor.

/** Names with one meaning across the library. */
export const SYMBOLS: Record<string, string> = {
  beta: 'beta',
  alpha: 'alpha',
  alphaBar: 'alphaBar',
  alphaBarPrev: 'alphaBarPrev',
  aPrev: 'alphaBarPrev',
  sqrtAlphaBar: 'sqrtAlphaBar alphaBar',
  sqrtOneMinusAlphaBar: 'sqrtOneMinusAlphaBar alphaBar',
  sqrtRecipAlphaBar: 'sqrtRecipAlphaBar alphaBar',
  sqrtRecipAlphaBarMinusOne: 'sqrtRecipAlphaBarMinusOne alphaBar',
  betaTilde: 'betaTilde',
  logBetaTilde: 'logBetaTilde betaTilde',
  posteriorCoefX0: 'coefX0',
  posteriorCoefXt: 'coefXt',
  sigma: 'sigma',
  eta: 'eta',
  eps: 'eps',
  epsTheta: 'epsTheta',
  epsFn: 'epsTheta',
  epsU: 'epsU',
  epsC: 'epsC',
  w: 'w',
  x0: 'x0',
  xt: 'xt',
  z: 'z',
  t: 't',
  T: 'T',
  timesteps: 'tau',
  prev: 'tauPrev',
  tPrev: 'tauPrev',
  args: 'args',
  temb: 'temb',
  cemb: 'cemb',
  oneHot: 'oneHot',
  groupNorm: 'groupNorm',
  loss: 'loss',
  simpleLoss: 'loss',
  d: 'emaDecay',
  x1: 'x1', x2: 'x2', x3: 'x3', x4: 'x4', x5: 'x5', x6: 'x6', x7: 'x7',
  middle: 'middle',
};

/**
 * Per region ("FILE#REGION"): names whose meaning is the region's own, and names that compute no
 * symbol there (null). `mean` is the posterior mean in DDPM's regions and GroupNorm's group mean
 * in unet.ts; `eps` in GroupNorm is its 1e-5, not the noise.
 */
export const REGION_SYMBOLS: Record<string, Record<string, string | null>> = {
  'ddpm.ts#posterior': { mean: 'mu', variance: 'betaTilde' },
  'ddpm.ts#ddpm-step': { mean: 'mu' },
  'unet.ts#group-norm': { mean: 'groupMean', variance: 'groupVariance', eps: null },
  'unet.ts#timestep-embedding': { f: 'freq' },
  'unet.ts#layouts': { t: null },
};

/** The symbol table of one region: SYMBOLS with the region's own meanings applied. */
export function symbolsFor(ref: string): Record<string, string> {
  const table: Record<string, string> = { ...SYMBOLS };
  for (const [name, sym] of Object.entries(REGION_SYMBOLS[ref] ?? {})) {
    if (sym === null) delete table[name];
    else table[name] = sym;
  }
  return table;
}
