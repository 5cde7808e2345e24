/**
 * Operations routes: `/healthz` (the process is alive: no database call), `/readyz` (the database
 * answers and every migration this code knows is applied; 503 with the reason otherwise) and
 * `/metrics` (Prometheus text). `/metrics` is never public: on the main listener it exists only
 * with FLEETCAST_METRICS_TOKEN and wants it as a bearer token (without one it answers 404); on the
 * admin listener (FLEETCAST_METRICS_PORT) it needs the token only when one is set.
 */
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Engine } from '../engine/engine.js';
import type { FleetcastMetrics } from '../services/metrics/registry.js';
import type { Db } from '../store/db.js';
import { pendingMigrations } from '../store/migrate.js';
import { installErrorHandling, sendError } from './errors.js';

export interface HealthSources {
  db: Db;
  engine?: Engine | undefined;
}

function sameToken(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function healthRoutes(app: FastifyInstance, s: HealthSources): void {
  app.get('/healthz', { schema: { hide: true }, config: { auth: 'public' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true }, config: { auth: 'public' } }, async (_req, reply) => {
    let pending: number[];
    try {
      pending = await pendingMigrations(s.db);
    } catch (err) {
      return reply.status(503).send({ status: 'unavailable', reason: `the database does not answer: ${(err as Error).message}` });
    }
    if (pending.length > 0) {
      return reply.status(503).send({ status: 'unavailable', reason: `migrations not applied: ${pending.join(', ')} (run fleetcast migrate)` });
    }
    const d = s.engine?.dispatcher;
    return {
      status: 'ok',
      store: s.db.profile.kind,
      devices: d?.deviceIds.length ?? 0,
      messages: d ? { claimed: d.stats.claimed, sent: d.stats.sent, failed: d.stats.failed, recorded: d.stats.recorded } : null,
    };
  });
}

export function metricsRoute(app: FastifyInstance, metrics: FleetcastMetrics, token: string | undefined): void {
  app.get('/metrics', { schema: { hide: true }, config: { auth: 'public' } }, async (req, reply) => {
    if (token !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (!m || !sameToken(m[1]!, token)) {
        void reply.header('www-authenticate', 'Bearer');
        return sendError(reply, 401, 'UNAUTHENTICATED', 'metrics need the metrics token as "Authorization: Bearer <token>"');
      }
    }
    const text = await metrics.text();
    return reply.type(metrics.contentType).send(text);
  });
}

/** The admin-only listener: metrics and health on their own port, for the scraper's network. */
export async function startAdminListener(
  o: HealthSources & { metrics: FleetcastMetrics; token: string | undefined; host: string; port: number; logger?: FastifyBaseLogger | undefined },
): Promise<{ address: string; close(): Promise<void> }> {
  const app = Fastify({ loggerInstance: o.logger, disableRequestLogging: true });
  installErrorHandling(app);
  healthRoutes(app, o);
  metricsRoute(app, o.metrics, o.token);
  const address = await app.listen({ port: o.port, host: o.host });
  return { address, close: () => app.close() };
}
