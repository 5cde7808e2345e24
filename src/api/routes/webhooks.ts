/** /api/v1/webhooks: outbound webhooks, their secrets, test events and delivery log (docs/webhooks.md). */
import { z } from 'zod';
import { WEBHOOK_EVENTS } from '../../store/sql/webhooks.js';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { cursorOf, emptyReply, id, idParams, page, pageOf, pageQuery, security, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';

const eventType = z.enum(WEBHOOK_EVENTS);

const subscription = z
  .object({
    id: z.number().int(),
    url: z.string(),
    events: z.array(z.string()),
    description: z.string(),
    active: z.boolean(),
    created_at: timestamp,
    updated_at: timestamp,
    secret_rotated_at: timestamp.nullable(),
  })
  .meta({ id: 'Webhook' });

const withSecret = subscription
  .extend({ secret: z.string().describe('the signing secret: shown in this answer only, store it') })
  .meta({ id: 'WebhookWithSecret' });

const deliveryStatus = z.enum(['pending', 'delivering', 'delivered', 'failed']);

const delivery = z
  .object({
    id: z.number().int().describe('also sent as X-Fleetcast-Delivery'),
    subscription_id: z.number().int(),
    event_id: z.string().describe('the body’s `id`: the same on every attempt'),
    event_type: z.string(),
    status: deliveryStatus,
    attempts: z.number().int(),
    next_attempt_at: timestamp.nullable().describe('when a pending delivery is tried next'),
    last_status_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    occurred_at: timestamp,
    created_at: timestamp,
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'WebhookDelivery' });

const deliveryDetail = delivery
  .extend({
    payload: z.record(z.string(), z.unknown()).describe('the event’s `data`'),
    attempt_log: z.array(
      z.object({
        attempt: z.number().int(),
        started_at: timestamp,
        duration_ms: z.number().int(),
        status_code: z.number().int().nullable(),
        error: z.string().nullable(),
        response_excerpt: z.string().nullable().describe('the first 1 KB of the answer'),
      }),
    ),
  })
  .meta({ id: 'WebhookDeliveryDetail' });

const url = z.string().trim().min(1).max(2048).describe('http or https; private and loopback addresses are refused');
const events = z.array(eventType).min(1).max(WEBHOOK_EVENTS.length);
const description = z.string().max(500);

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 422: errorSchema };

export function webhookRoutes(app: Api, s: Services): void {
  app.get('/api/v1/webhooks', {
    schema: { tags: ['webhooks'], summary: 'Your webhook subscriptions', security, querystring: z.strictObject(pageQuery), response: { 200: page(subscription), ...errors } },
    handler: async (req) => pageOf(await s.webhooks.list(actorOf(req), { after: cursorOf(req.query.cursor), limit: req.query.limit }), req.query.limit),
  });
  app.post('/api/v1/webhooks', {
    schema: {
      tags: ['webhooks'],
      summary: 'Subscribe a URL to events',
      description: 'The answer carries the signing `secret`, shown this once. Deliveries are signed: see X-Fleetcast-Signature in docs/webhooks.md.',
      security,
      body: z.strictObject({ url, events, description: description.optional(), active: z.boolean().optional() }),
      response: { 201: withSecret, ...errors },
    },
    handler: async (req, reply) => reply.status(201).send(await s.webhooks.create(actorOf(req), req.body)),
  });
  app.get('/api/v1/webhooks/:id', {
    schema: { tags: ['webhooks'], summary: 'A webhook subscription', security, params: idParams, response: { 200: subscription, ...errors } },
    handler: async (req) => s.webhooks.get(actorOf(req), req.params.id),
  });
  app.patch('/api/v1/webhooks/:id', {
    schema: {
      tags: ['webhooks'],
      summary: 'Change the URL, events or description, or (de)activate',
      description: 'Deactivating stops queuing events and fails the deliveries still waiting.',
      security,
      params: idParams,
      body: z.strictObject({ url: url.optional(), events: events.optional(), description: description.optional(), active: z.boolean().optional() }),
      response: { 200: subscription, ...errors },
    },
    handler: async (req) => s.webhooks.update(actorOf(req), req.params.id, req.body),
  });
  app.delete('/api/v1/webhooks/:id', {
    schema: { tags: ['webhooks'], summary: 'Delete a subscription and its delivery log', security, params: idParams, response: { 204: emptyReply, ...errors } },
    handler: async (req, reply) => {
      await s.webhooks.remove(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });
  app.post('/api/v1/webhooks/:id/rotate-secret', {
    schema: {
      tags: ['webhooks'],
      summary: 'Replace the signing secret',
      description: 'The new secret is shown in this answer only; every delivery from now on is signed with it.',
      security,
      params: idParams,
      response: { 200: withSecret, ...errors },
    },
    handler: async (req) => s.webhooks.rotateSecret(actorOf(req), req.params.id),
  });
  app.post('/api/v1/webhooks/:id/test', {
    schema: {
      tags: ['webhooks'],
      summary: 'Queue a webhook.test event for this subscription',
      description: 'Delivered like any event (signed, retried); follow it in the delivery log.',
      security,
      params: idParams,
      response: { 202: delivery, ...errors },
    },
    handler: async (req, reply) => reply.status(202).send(await s.webhooks.test(actorOf(req), req.params.id)),
  });
  app.get('/api/v1/webhooks/:id/deliveries', {
    schema: {
      tags: ['webhooks'],
      summary: 'The delivery log, newest first',
      security,
      params: idParams,
      querystring: z.strictObject({ ...pageQuery, status: deliveryStatus.optional(), event: z.string().max(64).optional() }),
      response: { 200: page(delivery), ...errors },
    },
    handler: async (req) =>
      pageOf(
        await s.webhooks.deliveries(actorOf(req), req.params.id, {
          status: req.query.status,
          event: req.query.event,
          before: cursorOf(req.query.cursor),
          limit: req.query.limit,
        }),
        req.query.limit,
      ),
  });
  app.get('/api/v1/webhooks/:id/deliveries/:deliveryId', {
    schema: {
      tags: ['webhooks'],
      summary: 'One delivery with its payload and every attempt',
      security,
      params: z.strictObject({ id, deliveryId: id }),
      response: { 200: deliveryDetail, ...errors },
    },
    handler: async (req) => s.webhooks.delivery(actorOf(req), req.params.id, req.params.deliveryId),
  });
}
