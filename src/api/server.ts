/**
 * The HTTP server: JSON REST under /api/v1 (zod-validated, described by the OpenAPI document at
 * /docs/json with an interactive page at /docs) and GET /healthz. The engine runs beside it in the
 * same process; the server only reads its figures.
 */
import fastifyCookie from '@fastify/cookie';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { installAuth } from './auth.js';
import { installErrorHandling } from './errors.js';
import { accountRoutes } from './routes/accounts.js';
import { campaignRoutes } from './routes/campaigns.js';
import { deviceRoutes } from './routes/devices.js';
import { importRoutes } from './routes/imports.js';
import { leadRoutes } from './routes/leads.js';
import { mediaRoutes } from './routes/media.js';
import { sequenceRoutes } from './routes/sequences.js';
import { webhookRoutes } from './routes/webhooks.js';
import type { Api, Services } from './types.js';

export interface ServerOptions {
  /** Trust X-Forwarded-* from a proxy in front (needed to see HTTPS and client addresses). */
  trustProxy?: boolean | string | undefined;
  /** Largest JSON body accepted, in bytes. */
  bodyLimit?: number | undefined;
  logger?: FastifyBaseLogger | undefined;
  version?: string | undefined;
  /** Serve the API and its documents (default); false: only the health routes (a worker process). */
  api?: boolean | undefined;
}

export async function buildServer(s: Services, opts: ServerOptions = {}): Promise<Api> {
  const app = Fastify({
    loggerInstance: opts.logger,
    bodyLimit: opts.bodyLimit ?? 1_048_576,
    trustProxy: opts.trustProxy ?? false,
    // Our ids are numbers in the path; a trailing slash or case difference is not another route.
    routerOptions: { ignoreTrailingSlash: true },
    // One line per request would be most of the log at thousands of requests a second; errors are logged.
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandling(app);
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
  healthRoutes(app, s);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  accountRoutes(app, s);
  deviceRoutes(app, s);
  leadRoutes(app, s);
  importRoutes(app, s);
  campaignRoutes(app, s);
  sequenceRoutes(app, s);
  mediaRoutes(app, s);
  webhookRoutes(app, s);
  await app.ready();
  return app;
}

function healthRoutes(app: Api, s: Services): void {
  app.get('/healthz', { schema: { hide: true } }, async () => {
    await s.db.query('select 1');
    const d = s.engine?.dispatcher;
    return {
      status: 'ok',
      store: s.db.profile.kind,
      devices: d?.deviceIds.length ?? 0,
      messages: d ? { claimed: d.stats.claimed, sent: d.stats.sent, failed: d.stats.failed, recorded: d.stats.recorded } : null,
    };
  });
}
