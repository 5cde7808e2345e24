/**
 * One webhook attempt over HTTP: POST the signed body, wait at most `timeoutMs` (real time: a
 * network timeout is about the wall clock, whatever clock schedules the retries) and keep the
 * start of the answer. Redirects are not followed: a receiver answers for itself.
 */
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { guardedLookup } from '../media/fetch.js';

export const EXCERPT_BYTES = 1024;

export interface PostOptions {
  timeoutMs: number;
  allowPrivateAddresses: boolean;
}

export interface PostResult {
  /** The HTTP status, or null when no answer came (network error, timeout). */
  statusCode: number | null;
  error: string | null;
  excerpt: string | null;
  /** Retry-After of a 429 or 503, in ms. */
  retryAfterMs: number | null;
  durationMs: number;
}

export function parseRetryAfter(value: string | undefined, nowMs: number): number | null {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

export function postWebhook(url: string, body: string, headers: Record<string, string>, o: PostOptions): Promise<PostResult> {
  const started = performance.now();
  const took = () => Math.round(performance.now() - started);
  return new Promise<PostResult>((resolve) => {
    let done = false;
    let refused: string | null = null;
    const finish = (r: Omit<PostResult, 'durationMs'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...r, durationMs: took() });
    };
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      finish({ statusCode: null, error: 'INVALID_URL: the URL is not valid', excerpt: null, retryAfterMs: null });
      return;
    }
    const client = u.protocol === 'https:' ? https : http;
    const req = client.request(u, {
      method: 'POST',
      agent: false,
      lookup: guardedLookup(o.allowPrivateAddresses, (a) => {
        refused = a;
      }),
      headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ statusCode: null, error: `TIMEOUT: no answer within ${o.timeoutMs} ms`, excerpt: null, retryAfterMs: null });
    }, o.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      const error = refused !== null ? `ADDRESS_FORBIDDEN: ${u.hostname} resolves to an internal address (${refused})` : `CONNECTION_FAILED: ${err.code ?? err.message}`;
      finish({ statusCode: null, error, excerpt: null, retryAfterMs: null });
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const settle = () => {
        const status = res.statusCode ?? 0;
        const excerpt = size > 0 ? Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8') : null;
        const retryAfterMs = status === 429 || status === 503 ? parseRetryAfter(res.headers['retry-after'], Date.now()) : null;
        const error = status >= 200 && status < 300 ? null : `HTTP_${status}`;
        finish({ statusCode: status, error, excerpt, retryAfterMs });
        res.destroy();
      };
      res.on('data', (c: Buffer) => {
        if (size < EXCERPT_BYTES) chunks.push(c);
        size += c.length;
        // Enough to show; the rest of a long answer is not waited for.
        if (size >= EXCERPT_BYTES) settle();
      });
      res.on('end', settle);
      res.on('error', settle);
    });
    req.end(body);
  });
}
