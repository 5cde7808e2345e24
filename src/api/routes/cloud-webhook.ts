/**
 * The Cloud API: a device's credentials (PUT, never shown again) and the webhook Meta calls.
 * The webhook is public (no session, no token): GET answers the verify-token handshake, POST takes
 * statuses and incoming messages and does nothing unless X-Hub-Signature-256 signs the raw body.
 */
import { z } from 'zod';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { idParams, security, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';

const cloudNumber = z
  .object({
    device_id: z.number().int(),
    phone_number_id: z.string(),
    has_app_secret: z.boolean(),
    has_verify_token: z.boolean(),
    updated_at: timestamp,
  })
  .meta({ id: 'CloudApiNumber' });

const secret = z.string().min(1).max(1000);

export function cloudApiRoutes(app: Api, s: Services): void {
  app.put('/api/v1/devices/:id/cloud-api', {
    schema: {
      tags: ['devices'],
      summary: "Set a Cloud API device's credentials",
      description:
        'The phone-number id and access token of a WhatsApp Business number, the Meta app secret (to check webhook ' +
        'signatures) and the verify token given to Meta for the webhook. Stored encrypted; never returned.',
      security,
      params: idParams,
      body: z.strictObject({
        phone_number_id: z.string().regex(/^\d{5,30}$/, 'the numeric phone-number id from WhatsApp Manager'),
        access_token: secret,
        app_secret: secret.nullable().optional(),
        verify_token: z.string().min(8).max(200).nullable().optional(),
      }),
      response: { 200: cloudNumber, 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema },
    },
    handler: async (req) => s.cloudApi.setCredentials(actorOf(req), req.params.id, req.body),
  });

  void app.register(async (scope) => {
    // The signature is over the exact bytes Meta sent: the body is kept raw and parsed after the check.
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    const api = scope as unknown as Api;
    api.get('/api/v1/cloud-api/webhook', {
      config: { auth: 'public' },
      schema: {
        tags: ['cloud-api'],
        summary: 'Webhook verification (Meta)',
        security: [],
        querystring: z.object({ 'hub.mode': z.string().optional(), 'hub.verify_token': z.string().optional(), 'hub.challenge': z.string().max(200).optional() }),
        response: { 200: z.string(), 403: errorSchema },
      },
      handler: async (req, reply) => {
        const q = req.query;
        const challenge = await s.cloudApi.handshake(q['hub.mode'], q['hub.verify_token'], q['hub.challenge']);
        return reply.type('text/plain').send(challenge);
      },
    });
    api.post('/api/v1/cloud-api/webhook', {
      config: { auth: 'public' },
      bodyLimit: 1_048_576,
      schema: {
        tags: ['cloud-api'],
        summary: 'Webhook events (Meta): message statuses and incoming messages',
        description: 'Signed by Meta with the app secret (X-Hub-Signature-256); unsigned or wrongly signed calls change nothing.',
        security: [],
        response: {
          200: z.object({ receipts: z.number().int(), failed: z.number().int(), replies: z.number().int(), ignored: z.number().int() }),
          400: errorSchema,
          401: errorSchema,
          415: errorSchema,
        },
      },
      handler: async (req) => {
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.from(typeof req.body === 'string' ? req.body : '');
        const sig = req.headers['x-hub-signature-256'];
        return s.cloudApi.receive(raw, typeof sig === 'string' ? sig : undefined);
      },
    });
  });
}
