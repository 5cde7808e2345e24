/**
 * The HTTP server: JSON REST under /api/v1 (zod-validated, described by the OpenAPI document at
 * /docs/json with an interactive page at /docs), GET /healthz and /readyz, (with a token)
 * /metrics (see metrics.ts), and the dashboard's built files (web-app.ts). The engine runs beside it in the same process; the server only reads
 * its figures.
 */
import { randomUUID } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { installAuditTrail } from './audit-trail.js';
import { installAuth } from './auth.js';
import { installErrorHandling, type NotFoundHook } from './errors.js';
import { healthRoutes, metricsRoute } from './metrics.js';
import { accountRoutes } from './routes/accounts.js';
import { auditRoutes } from './routes/audit.js';
import { campaignRoutes } from './routes/campaigns.js';
import { deviceRoutes } from './routes/devices.js';
import { deviceLinkRoutes } from './routes/device-link.js';
import { cloudApiRoutes } from './routes/cloud-webhook.js';
import { importRoutes } from './routes/imports.js';
import { leadRoutes } from './routes/leads.js';
import { mediaRoutes } from './routes/media.js';
import { sequenceRoutes } from './routes/sequences.js';
import { webhookRoutes } from './routes/webhooks.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { liveRoutes, type LiveOptions } from './routes/live.js';
import { DEFAULT_WEB_ROOT, installWebApp } from './web-app.js';
import type { Api, Services } from './types.js';
import type { FleetcastMetrics } from '../services/metrics/registry.js';
import type { Logger } from '../logger.js';

export interface ServerOptions {
  /** Trust X-Forwarded-* from a proxy in front (needed to see HTTPS and client addresses). */
  trustProxy?: boolean | string | undefined;
  /** Largest JSON body accepted, in bytes. */
  bodyLimit?: number | undefined;
  logger?: FastifyBaseLogger | undefined;
  version?: string | undefined;
  /** Serve the API and its documents (default); false: only the health routes (a worker process). */
  api?: boolean | undefined;
  /** One log line per request (FLEETCAST_LOG_REQUESTS); default: errors only. */
  logRequests?: boolean | undefined;
  /** `/metrics` on this listener, behind this bearer token (absent: no such route, 404). */
  metrics?: { registry: FleetcastMetrics; token: string } | undefined;
  /** The built dashboard (index.html and assets/); default dist/web. Null: no dashboard at all. */
  webRoot?: string | null | undefined;
  /** The live stream's pace (figures, heartbeats). */
  live?: LiveOptions | undefined;
}

const SANE_REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

function requestId(req: { headers: Record<string, string | string[] | undefined> }): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
}

export async function buildServer(s: Services, opts: ServerOptions = {}): Promise<Api> {
  const app = Fastify({
    loggerInstance: opts.logger,
    bodyLimit: opts.bodyLimit ?? 1_048_576,
    trustProxy: opts.trustProxy ?? false,
    // Our ids are numbers in the path; a trailing slash or case difference is not another route.
    routerOptions: { ignoreTrailingSlash: true },
    // One line per request would be most of the log at thousands of requests a second; errors are logged.
    logController: new LogController({ disableRequestLogging: opts.logRequests !== true }),
    // Every log line of a request carries its id: the caller's X-Request-Id when it is sane, else a new one.
    requestIdHeader: false,
    genReqId: requestId,
  }).withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', async (req, reply) => {
    void reply.header('x-request-id', req.id);
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const notFound: NotFoundHook = {};
  installErrorHandling(app, notFound);
  if (opts.metrics) metricsRoute(app, opts.metrics.registry, opts.metrics.token);
  if (opts.api === false) {
    healthRoutes(app, s);
    await app.ready();
    return app;
  }
  await app.register(fastifyCookie);
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Fleetcast API',
        version: opts.version ?? '1',
        description:
          'Campaigns, pool campaigns and drip sequences over many paced WhatsApp devices. Authenticate with ' +
          '`POST /api/v1/auth/login` (a session cookie; writes then need the `X-CSRF-Token` header) or with an ' +
          'API token as `Authorization: Bearer <token>`. Errors are `{"error": {"code", "message", "details"}}`.',
      },
      components: {
        securitySchemes: {
          cookieAuth: { type: 'apiKey', in: 'cookie', name: 'fleetcast_session' },
          bearerAuth: { type: 'http', scheme: 'bearer' },
        },
      },
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });
  installAuth(app, s.auth);
  installAuditTrail(app, s.audit, opts.logger as Logger | undefined);
  healthRoutes(app, s);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  accountRoutes(app, s);
  deviceRoutes(app, s);
  leadRoutes(app, s);
  importRoutes(app, s);
  campaignRoutes(app, s);
  sequenceRoutes(app, s);
  mediaRoutes(app, s);
  deviceLinkRoutes(app, s);
  cloudApiRoutes(app, s);
  webhookRoutes(app, s);
  auditRoutes(app, s);
  dashboardRoutes(app, s);
  liveRoutes(app, s, opts.live);
  if (opts.webRoot !== null) notFound.first = (await installWebApp(app, opts.webRoot ?? DEFAULT_WEB_ROOT)).fallback;
  await app.ready();
  return app;
}

