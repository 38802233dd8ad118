// Everything a chapter may use, from one place.
export { default as EquationCode } from './EquationCode.astro';
export { default as ScheduleFigure } from './ScheduleFigure.astro';
export { default as UNetDiagram } from './UNetDiagram.astro';
export { default as NoisingStrip } from './NoisingStrip.astro';
export { default as CardNumber } from './CardNumber.astro';
export { default as EvalTable } from './EvalTable.astro';
