/**
 * The dashboard's built files (`vite build` into dist/web), served by the API's own server:
 * - `/` and every other GET of a path that is not the API's and asks for HTML answer index.html
 *   (the app routes in the browser); an unknown /api/* path still answers the JSON 404;
 * - `/assets/*` carry a content hash in their names, so they are cached for a year, immutable;
 *   index.html is never cached, so a new build is seen at the next load;
 * - HTML answers carry a Content-Security-Policy of this origin only (images may also be `data:`
 *   URLs, as QR codes and previews are), nosniff and a same-origin referrer policy.
 * Without a build, `/` says so and how to make one; the API works the same either way.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** dist/web beside the compiled server (dist/src/api/web-app.js -> dist/web). */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url));

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Paths the app never owns: the API, its documents, health and metrics. */
const SERVER_PATHS = /^\/(api|docs|openapi\.json|metrics|healthz|readyz)(\/|$|\?)/;

function htmlHeaders(reply: FastifyReply): void {
  void reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
  void reply.header('x-content-type-options', 'nosniff');
  void reply.header('referrer-policy', 'same-origin');
  void reply.header('x-frame-options', 'DENY');
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fleetcast</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>Fleetcast</h1>
<p>The dashboard was not built. Run <code>npm run build</code> and start the server again.</p>
<p>The API is running: see <a href="/docs">/docs</a>.</p></body></html>
`;

export interface WebApp {
  /** The not-found handler's first look: true when it answered (the app's index.html). */
  fallback(req: FastifyRequest, reply: FastifyReply): boolean;
}

export async function installWebApp(app: FastifyInstance, root: string): Promise<WebApp> {
  if (!existsSync(join(root, 'index.html'))) {
    app.get('/', { schema: { hide: true } }, async (_req, reply) => {
      htmlHeaders(reply);
      return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(NOT_BUILT);
    });
    return { fallback: () => false };
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/',
    // One route per file of the build, found at start: every other path stays the server's own.
    wildcard: false,
    cacheControl: false,
    etag: true,
    setHeaders(reply, path) {
      if (path.includes('/assets/')) {
        void reply.header('cache-control', 'public, max-age=31536000, immutable');
      } else {
        void reply.header('cache-control', 'no-cache');
      }
      void reply.header('x-content-type-options', 'nosniff');
      if (path.endsWith('.html')) htmlHeaders(reply);
    },
  });
  return {
    fallback(req, reply) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      if (SERVER_PATHS.test(req.url)) return false;
      if (!(req.headers.accept ?? '').includes('text/html')) return false;
      void reply.code(200).sendFile('index.html');
      return true;
    },
  };
}
