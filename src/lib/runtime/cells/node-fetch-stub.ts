// Stands in for `node-fetch` in the browser (astro.config.mjs aliases it here). tfjs-core only
// requires it on Node, but Vite's dev pre-bundler keeps the import and fails on it; production
// builds never reach it.
export default {};
