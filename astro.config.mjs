// @ts-check
import { defineConfig } from 'astro/config';
import starlight from '@astrojs/starlight';
import remarkMath from 'remark-math';
import rehypeKatex from 'rehype-katex';

export default defineConfig({
  site: 'https://diffusion-executed.example',
  markdown: {
    remarkPlugins: [remarkMath],
    rehypePlugins: [[rehypeKatex, { trust: true, strict: false }]],
  },
  integrations: [
    starlight({
      title: 'Diffusion, Executed',
      description: 'DDPM, DDIM and classifier-free guidance: every equation beside the code that runs it.',
      customCss: ['katex/dist/katex.min.css'],
    }),
  ],
});
