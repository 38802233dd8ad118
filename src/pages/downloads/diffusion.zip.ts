// The library as a zip, built from src/lib/diffusion and src/lib/runtime at build time.
import type { APIRoute } from 'astro';
import { libraryZip } from '../../lib/site/zip';

export const prerender = true;

export const GET: APIRoute = () =>
  new Response(libraryZip(), { headers: { 'Content-Type': 'application/zip' } });
