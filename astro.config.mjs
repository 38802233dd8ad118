// @ts-check
import { defineConfig } from 'astro/config';
import { fileURLToPath, URL } from 'node:url';
import starlight from '@astrojs/starlight';
import remarkMath from 'remark-math';
import rehypeKatex from 'rehype-katex';

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

export default defineConfig({
  site: 'https://diffusion-executed.example',
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
  ],
});
