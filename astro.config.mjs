// @ts-check
import { defineConfig } from 'astro/config';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, URL } from 'node:url';
import starlight from '@astrojs/starlight';
import remarkMath from 'remark-math';
import rehypeKatex from 'rehype-katex';
import { ISOLATION_HEADERS } from './src/lib/site/isolation.ts';

/**
 * Symbol macros for the chapters: each wraps the symbol in a span with data-sym, the same name that
 * src/lib/site/symbols.ts gives the identifiers that compute it, so hovering one highlights the
 * other.
 */
const sym = (name, tex) => `\\htmlData{sym=${name}}{${tex}}`;
const macros = {
  '\\sBeta': sym('beta', '\\beta'),
  '\\sAlpha': sym('alpha', '\\alpha'),
  '\\sAlphaBar': sym('alphaBar', '\\bar\\alpha'),
  '\\sAlphaBarPrev': sym('alphaBarPrev', '\\bar\\alpha'),
  '\\sBetaTilde': sym('betaTilde', '\\tilde\\beta'),
  '\\sMu': sym('mu', '\\tilde\\mu'),
  '\\sEps': sym('eps', '\\epsilon'),
  '\\sEpsTheta': sym('epsTheta', '\\epsilon_\\theta'),
  '\\sEpsU': sym('epsU', '\\epsilon_\\varnothing'),
  '\\sEpsC': sym('epsC', '\\epsilon_y'),
  '\\sX': sym('x0', 'x_0'),
  '\\sXt': sym('xt', 'x_t'),
  '\\sZ': sym('z', 'z'),
  '\\sSigma': sym('sigma', '\\sigma'),
  '\\sMuG': sym('groupMean', '\\mu_g'), // GroupNorm's mean and variance of group g
  '\\sSigmaG': sym('groupVariance', '\\sigma_g^2'),
  '\\sEta': sym('eta', '\\eta'),
  '\\sW': sym('w', 'w'),
  '\\sT': sym('t', 't'),
  '\\sTau': sym('tau', '\\tau'),
  '\\sLoss': sym('loss', 'L_{\\text{simple}}'),
  '\\sCoefX': sym('coefX0', '\\tfrac{\\sqrt{\\bar\\alpha_{t-1}}\\,\\beta_t}{1-\\bar\\alpha_t}'),
  '\\sCoefXt': sym('coefXt',
    '\\tfrac{\\sqrt{\\alpha_t}\\,(1-\\bar\\alpha_{t-1})}{1-\\bar\\alpha_t}'),
  '\\sSqrtAB': sym('sqrtAlphaBar', '\\sqrt{\\bar\\alpha_{#1}}'),
  '\\sSqrtOmAB': sym('sqrtOneMinusAlphaBar', '\\sqrt{1-\\bar\\alpha_{#1}}'),
  '\\sRecipAB': sym('sqrtRecipAlphaBar', '\\sqrt{1/\\bar\\alpha_{#1}}'),
  '\\sRecipABm': sym('sqrtRecipAlphaBarMinusOne', '\\sqrt{1/\\bar\\alpha_{#1}-1}'),
  '\\E': '\\mathbb{E}',
  '\\N': '\\mathcal{N}',
};

const nodeFetchStub = new URL('./src/lib/runtime/cells/node-fetch-stub.ts', import.meta.url);

/**
 * Every page's Content-Security-Policy (a <meta> that Astro writes, with the hashes of the scripts
 * it renders inline): scripts, workers, wasm and fetches from the site's own origin only, plus
 * blob: modules for the code a reader edits (src/lib/runtime/edit/graph.ts) and
 * 'wasm-unsafe-eval' for tfjs's wasm backend. Style elements need Astro's hashes; style attributes
 * (KaTeX, Shiki and Starlight write them) need style-src-attr, a directive that Astro's list does
 * not know, so it rides in the same string as form-action (CSP separates directives by ';').
 */
const csp = {
  scriptDirective: { resources: ["'self'", 'blob:', "'wasm-unsafe-eval'"] },
  directives: [
    "default-src 'self'",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'; style-src-attr 'unsafe-inline'",
  ],
};

/** `policy` with `hashes` added to its directive `name` (kept once each). */
function withHashes(policy, name, hashes) {
  return policy.split(';').map((directive) => {
    const [head, ...values] = directive.trim().split(/\s+/);
    if (head !== name) return directive;
    return ` ${[head, ...new Set([...values, ...hashes])].join(' ')}`;
  }).join(';');
}

/**
 * Astro hashes the scripts it bundles but not every inline <script> and <style> that ends up in
 * a page (Starlight's theme and sidebar scripts, inlined component styles): after the build, each
 * page's policy gets the hashes of its own inline elements, so that they run and nothing else
 * inline does.
 */
const inlineHashes = {
  name: 'diffusion-executed:csp-inline-hashes',
  hooks: {
    'astro:build:done': async ({ dir }) => {
      const root = fileURLToPath(dir);
      const files = (await readdir(root, { recursive: true })).filter((f) => f.endsWith('.html'));
      const hash = (text) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
      const inline = (html, tag) =>
        [...html.matchAll(new RegExp(`<${tag}(?![^>]*\\ssrc=)[^>]*>([\\s\\S]*?)</${tag}>`, 'g'))]
          .map((m) => hash(m[1]));
      for (const file of files) {
        const html = await readFile(join(root, file), 'utf8');
        const meta = /(<meta http-equiv="content-security-policy" content=")([^"]*)"/;
        const out = html.replace(meta, (_, start, policy) => `${start}${withHashes(withHashes(
          policy, 'script-src', inline(html, 'script')), 'style-src', inline(html, 'style'))}"`);
        if (out !== html) await writeFile(join(root, file), out);
      }
    },
  },
};

export default defineConfig({
  site: 'https://diffusion-executed.example',
  // cross-origin isolation in dev and preview, for the wasm backend's threads
  server: { headers: ISOLATION_HEADERS },
  experimental: { csp },
  // The run-this-cell islands load tfjs on first Run. In `astro dev`, pre-bundle it at start-up (no
  // reload on that first Run) and stub node-fetch, which tfjs-core needs only on Node but Vite's
  // pre-bundler would try to load.
  vite: {
    resolve: { alias: { 'node-fetch': fileURLToPath(nodeFetchStub) } },
    optimizeDeps: {
      include: ['@tensorflow/tfjs-core', '@tensorflow/tfjs-core/dist/register_all_gradients',
        '@tensorflow/tfjs-backend-webgpu', '@tensorflow/tfjs-backend-webgl',
        '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-cpu'],
    },
  },
  markdown: {
    remarkPlugins: [remarkMath],
    rehypePlugins: [[rehypeKatex, { trust: true, strict: false, macros }]],
  },
  integrations: [
    starlight({
      title: 'Diffusion, Executed',
      description:
        'DDPM, DDIM and classifier-free guidance: every equation beside the code that runs it.',
      customCss: ['katex/dist/katex.min.css', './src/styles/site.css'],
      // wrap long lines in the chapters' usage examples instead of scrolling them sideways
      expressiveCode: { defaultProps: { wrap: true } },
      sidebar: [
        { label: 'Home', link: '/' },
        { label: 'Chapters', autogenerate: { directory: 'chapters' } },
        { label: 'Pretrained models', link: '/models/' },
      ],
    }),
    inlineHashes,
  ],
});
