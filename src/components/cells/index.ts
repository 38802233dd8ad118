// The run-this-cell islands that chapters may use: `import { DdpmSampling } from '../../components/cells'`.
export { default as ForwardNoising } from './ForwardNoising.astro';
export { default as NetworkTrace } from './NetworkTrace.astro';
export { default as LiveTraining } from './LiveTraining.astro';
export { default as DdpmSampling } from './DdpmSampling.astro';
export { default as DdimVsDdpm } from './DdimVsDdpm.astro';
export { default as Guidance } from './Guidance.astro';
export { default as LoadCheckpoint } from './LoadCheckpoint.astro';
