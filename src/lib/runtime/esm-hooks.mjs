// Node ESM resolve hook: tfjs-core's ES modules (dist/**/*.js) import their siblings without the
// '.js' extension, which bundlers accept and Node does not. Needed to load
// '@tensorflow/tfjs-core/dist/register_all_gradients'.
export async function resolve(specifier, context, next) {
  const inTfjsCore = context.parentURL?.includes('/@tensorflow/tfjs-core/dist/');
  if (specifier.startsWith('.') && inTfjsCore && !specifier.endsWith('.js')) {
    return next(`${specifier}.js`, context);
  }
  return next(specifier, context);
}
