/** The HTTP server. The engine runs inside it; `GET /healthz` reports both. */
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import type { Engine } from '../engine/engine.js';

export function buildServer(engine: Engine): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1_048_576 });
  app.get('/healthz', async () => {
    await engine.db.query('select 1');
    const d = engine.dispatcher;
    return {
      status: 'ok',
      store: engine.db.profile.kind,
      devices: d.deviceIds.length,
      messages: { claimed: d.stats.claimed, sent: d.stats.sent, failed: d.stats.failed, recorded: d.stats.recorded },
    };
  });
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 503;
    void reply.status(status).send({ error: { code: status === 503 ? 'UNAVAILABLE' : 'BAD_REQUEST', message: err.message } });
  });
  return app;
}
