// The run-this-cell islands that chapters may use:
// `import { DdpmSampling } from '../../components/cells'`. Every cell reads these URL parameters:
// ?backend=webgpu|webgl|wasm|cpu forces a backend; ?model=random samples from random 32-channel
// weights instead of public/models/mnist.{json,safetensors}; ?cells=tiny runs the smallest settings
// (one image, a few steps, a random model with T = 5), which the browser tests use; ?threads=N sets
// wasm's threads; ?fused=off runs the plain library on webgpu too (?fused=fail, for tests: the
// first fused UNet call throws, and the cell falls back to the plain library with a note).
export { default as ForwardNoising } from './ForwardNoising.astro';
export { default as NetworkTrace } from './NetworkTrace.astro';
export { default as LiveTraining } from './LiveTraining.astro';
export { default as DdpmSampling } from './DdpmSampling.astro';
export { default as DdimVsDdpm } from './DdimVsDdpm.astro';
export { default as Guidance } from './Guidance.astro';
export { default as LoadCheckpoint } from './LoadCheckpoint.astro';
