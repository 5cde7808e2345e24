/**
 * Authentication for every route under /api/v1 but the public ones: a bearer token
 * (`Authorization: Bearer fct_...`) or the session cookie. A request that names a token is judged
 * by that token alone; it never falls back to a cookie.
 *
 * CSRF: a browser sends the cookie with any request, including one a hostile page forges, so
 * every cookie-authenticated write must also carry the session's CSRF token in `X-CSRF-Token`
 * (returned by login and by GET /me). A forged page cannot read it. Tokens need no such check:
 * a browser never attaches them on its own.
 */
import { timingSafeEqual } from 'node:crypto';
import type {} from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Actor } from '../services/actor.js';
import type { AuthService, Credential } from '../services/accounts/auth.js';
import { AppError } from '../services/errors.js';

export const SESSION_COOKIE = 'fleetcast_session';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor | null;
    credential: Credential | null;
  }
  interface FastifyContextConfig {
    /** 'public' routes need no credentials; everything else does. */
    auth?: 'public';
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function installAuth(app: FastifyInstance, auth: AuthService): void {
  app.decorateRequest('actor', null);
  app.decorateRequest('credential', null);
  app.addHook('onRequest', async (req: FastifyRequest) => {
    if (!req.url.startsWith('/api/')) return;
    if (req.routeOptions.config?.auth === 'public' || req.routeOptions.url === undefined) return;
    const header = req.headers.authorization;
    let found: Awaited<ReturnType<AuthService['byToken']>> = null;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!m) throw new AppError('UNAUTHENTICATED', 401, 'the Authorization header must be "Bearer <token>"');
      found = await auth.byToken(m[1]!);
      if (!found) throw new AppError('UNAUTHENTICATED', 401, 'this token is not valid (unknown, revoked or expired)');
    } else {
      const secret = req.cookies[SESSION_COOKIE];
      if (secret) found = await auth.bySession(secret);
      if (!found) throw new AppError('UNAUTHENTICATED', 401, 'sign in or send an API token');
      if (!SAFE_METHODS.has(req.method)) {
        const sent = req.headers['x-csrf-token'];
        if (typeof sent !== 'string' || !found.credential.csrfToken || !sameSecret(sent, found.credential.csrfToken)) {
          throw new AppError('CSRF_TOKEN_INVALID', 403, 'a signed-in write needs the X-CSRF-Token header from login or GET /me');
        }
      }
    }
    req.actor = found.actor;
    req.credential = found.credential;
  });
}

/** The actor of an authenticated route (the hook has run, so it is there). */
export function actorOf(req: FastifyRequest): Actor {
  if (!req.actor) throw new AppError('UNAUTHENTICATED', 401, 'sign in or send an API token');
  return req.actor;
}

export function credentialOf(req: FastifyRequest): Credential {
  if (!req.credential) throw new AppError('UNAUTHENTICATED', 401, 'sign in or send an API token');
  return req.credential;
}

export function setSessionCookie(req: FastifyRequest, reply: FastifyReply, secret: string, expires: Date): void {
  void reply.setCookie(SESSION_COOKIE, secret, {
    httpOnly: true,
    sameSite: 'lax',
    secure: req.protocol === 'https',
    path: '/',
    expires,
  });
}

export function clearSessionCookie(req: FastifyRequest, reply: FastifyReply): void {
  void reply.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'lax', secure: req.protocol === 'https', path: '/' });
}
