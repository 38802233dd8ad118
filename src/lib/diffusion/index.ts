// The public API of the diffusion library: copy this folder into a project that has
// @tensorflow/tfjs-core.
export * from './schedule';
export * from './forward';
export * from './unet';
export * from './weights';
export * from './random';
export * from './sampler';
export * from './ddpm';
export * from './ddim';
export * from './guidance';
export * from './adam';
export * from './train';
