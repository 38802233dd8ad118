// Cross-origin isolation: with these two headers a page may use SharedArrayBuffer, which the wasm
// backend's threads need (src/lib/runtime/browser.ts). astro.config.mjs sends them from `astro
// dev` and `astro preview`; public/_headers says the same to static hosts that read it (Netlify,
// Cloudflare Pages), and a test checks that the two agree. Without them the cells run one thread.
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};
