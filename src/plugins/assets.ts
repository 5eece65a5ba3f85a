/**
 * Serves the browser bundle, the stylesheet and the icon. The bundle is built with esbuild
 * in memory when the server starts (about 100 ms), so there is no build step
 * to forget and no stale file to serve. esbuild's service (a child process of
 * its own, ~16 MiB resident) is stopped once the bundle is made: nothing else
 * in a running server builds, and a later build would start it again.
 */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { build, stop } from 'esbuild';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

const webDir = fileURLToPath(new URL('../web/', import.meta.url));

let cachedBundle: Promise<string> | undefined;
/** Build once per process: tests start many apps. */
export function buildBrowserBundle(): Promise<string> {
  cachedBundle ??= build({
    entryPoints: [webDir + 'app.ts'],
    bundle: true,
    write: false,
    format: 'iife',
    target: ['es2020'],
    minify: true,
    legalComments: 'none',
  })
    .then((r) => r.outputFiles[0]!.text)
    .finally(() => stop());
  return cachedBundle;
}

export const assetsPlugin = fp(
  async (app: FastifyInstance) => {
    const js = await buildBrowserBundle();
    const css = readFileSync(webDir + 'app.css', 'utf8');
    const favicon = readFileSync(webDir + 'favicon.svg', 'utf8');
    const etag = (s: string) => `"${createHash('sha256').update(s).digest('base64url').slice(0, 16)}"`;
    const assets = {
      'app.js': { body: js, type: 'text/javascript; charset=utf-8', etag: etag(js) },
      'app.css': { body: css, type: 'text/css; charset=utf-8', etag: etag(css) },
      'favicon.svg': { body: favicon, type: 'image/svg+xml', etag: etag(favicon) },
    };
    for (const [name, asset] of Object.entries(assets)) {
      app.get(`/assets/${name}`, async (request, reply) => {
        reply.header('cache-control', 'no-cache').header('etag', asset.etag).type(asset.type);
        if (request.headers['if-none-match'] === asset.etag) return reply.status(304).send();
        return asset.body;
      });
    }
    // Pages link /assets/favicon.svg; a browser or crawler that asks for the old default path gets no icon rather than
    // a 404 in its console and the error log.
    app.get('/favicon.ico', async (_request, reply) => reply.header('cache-control', 'public, max-age=86400').status(204).send());
  },
  { name: 'assets' },
);
