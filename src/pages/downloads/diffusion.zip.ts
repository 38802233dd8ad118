// The library as a zip, built from src/lib/diffusion at build time: unzip it into your project.
import type { APIRoute } from 'astro';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LIBRARY_DIR } from '../../lib/site/regions';
import { zip } from '../../lib/site/zip';

export const prerender = true;

export const GET: APIRoute = () => {
  const files = Object.fromEntries(readdirSync(LIBRARY_DIR).filter((f) => f.endsWith('.ts')).sort()
    .map((f) => [`diffusion/${f}`, readFileSync(join(LIBRARY_DIR, f))]));
  return new Response(zip(files), { headers: { 'Content-Type': 'application/zip' } });
};
