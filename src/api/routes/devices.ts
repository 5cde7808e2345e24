/** /api/v1/devices: the tenant's WhatsApp numbers (a team member sees its assigned ones). */
import { z } from 'zod';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { cursorOf, emptyReply, idParams, nullableTimestamp, page, pageOf, pageQuery, security, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';

export const device = z
  .object({
    id: z.number().int(),
    name: z.string(),
    phone: z.string().nullable(),
    transport: z.string(),
    status: z.string(),
    min_delay_ms: z.number().int(),
    max_delay_ms: z.number().int(),
    hourly_limit: z.number().int().nullable(),
    daily_limit: z.number().int().nullable(),
    paused_until: nullableTimestamp,
    pause_reason: z.string().nullable(),
    last_seen_at: nullableTimestamp,
    created_at: timestamp,
    linked: z.boolean().describe('paired with a WhatsApp account (or, for the Cloud API, given its credentials)'),
  })
  .meta({ id: 'Device' });

const delay = z.number().int().min(0).max(24 * 3600_000);
const limit = z.number().int().min(1).max(1_000_000).nullable();

const deviceInput = z.strictObject({
  name: z.string().trim().min(1).max(100),
  phone: z.string().max(40).nullable().optional(),
  transport: z.string().max(40).optional(),
  min_delay_ms: delay.optional().describe('shortest random gap between two sends (ms)'),
  max_delay_ms: delay.optional().describe('longest random gap between two sends (ms)'),
  hourly_limit: limit.optional().describe('most sends in any rolling hour; null: no cap'),
  daily_limit: limit.optional().describe("most sends in one of the owner's local days; null: no cap"),
  linked: z.boolean().optional().describe('simulator only (default true): false creates it unlinked, to link through /devices/{id}/link'),
});

const stats = z.object({
  leads: z.number().int(),
  pending: z.number().int(),
  sent_today: z.number().int(),
  failed_today: z.number().int(),
  last_sent_at: nullableTimestamp,
});

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 422: errorSchema };

export function deviceRoutes(app: Api, s: Services): void {
  app.get('/api/v1/devices', {
    schema: {
      tags: ['devices'],
      summary: 'List devices',
      security,
      querystring: z.strictObject({ ...pageQuery, status: z.enum(['offline', 'connecting', 'online', 'logged_out', 'replaced']).optional() }),
      response: { 200: page(device), ...errors },
    },
    handler: async (req) => {
      const q = req.query;
      return pageOf(await s.devices.list(actorOf(req), { after: cursorOf(q.cursor), limit: q.limit, status: q.status }), q.limit);
    },
  });
  app.post('/api/v1/devices', {
    schema: { tags: ['devices'], summary: 'Add a device', security, body: deviceInput, response: { 201: device, ...errors } },
    handler: async (req, reply) => reply.status(201).send(await s.devices.create(actorOf(req), req.body)),
  });
  app.get('/api/v1/devices/:id', {
    schema: { tags: ['devices'], summary: 'Get a device', security, params: idParams, response: { 200: device, ...errors } },
    handler: async (req) => s.devices.get(actorOf(req), req.params.id),
  });
  app.patch('/api/v1/devices/:id', {
    schema: { tags: ['devices'], summary: 'Change a device', security, params: idParams, body: deviceInput.omit({ linked: true }).partial(), response: { 200: device, ...errors } },
    handler: async (req) => s.devices.update(actorOf(req), req.params.id, req.body),
  });
  app.delete('/api/v1/devices/:id', {
    schema: {
      tags: ['devices'],
      summary: 'Delete a device',
      description: 'Cancels its waiting messages and returns its leads to the shared pool.',
      security,
      params: idParams,
      response: { 204: emptyReply, ...errors },
    },
    handler: async (req, reply) => {
      await s.devices.delete(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });
  app.post('/api/v1/devices/:id/pause', {
    schema: {
      tags: ['devices'],
      summary: 'Pause a device',
      description: 'Holds its messages (nothing is cancelled) until `until`, or until resumed.',
      security,
      params: idParams,
      body: z.strictObject({ until: timestamp.optional(), reason: z.string().max(200).optional() }).default({}),
      response: { 200: device, ...errors },
    },
    handler: async (req) => s.devices.pause(actorOf(req), req.params.id, req.body.until ? new Date(req.body.until) : null, req.body.reason),
  });
  app.post('/api/v1/devices/:id/resume', {
    schema: { tags: ['devices'], summary: 'Resume a paused device', security, params: idParams, response: { 200: device, ...errors } },
    handler: async (req) => s.devices.resume(actorOf(req), req.params.id),
  });
  app.get('/api/v1/devices/:id/stats', {
    schema: { tags: ['devices'], summary: "A device's figures", security, params: idParams, response: { 200: stats, ...errors } },
    handler: async (req) => s.devices.stats(actorOf(req), req.params.id),
  });
}
