/**
 * /api/v1/devices/{id}/link and /logout: pairing a device with a WhatsApp account by QR code or
 * pairing code, following it, cancelling it, logging the device out; and, for simulator devices,
 * a simulated scan. The same state is pushed as `device.link` live events.
 */
import { z } from 'zod';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { emptyReply, idParams, nullableTimestamp, security, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';
import { device } from './devices.js';

export const linkState = z
  .object({
    device_id: z.number().int(),
    state: z.enum(['idle', 'starting', 'waiting_for_scan', 'waiting_for_code', 'linked', 'failed', 'expired']),
    method: z.enum(['qr', 'pairing_code']).nullable(),
    qr: z.string().nullable().describe('the raw QR text, what WhatsApp scans'),
    qr_svg: z.string().nullable().describe('the same QR code as an SVG document'),
    pairing_code: z.string().nullable().describe('to type on the phone, e.g. "ABCD-EFGH"'),
    expires_at: nullableTimestamp.describe('when the QR code or pairing code on show stops working'),
    error: z.object({ code: z.string(), message: z.string() }).nullable(),
    updated_at: timestamp,
  })
  .meta({ id: 'LinkState' });

const linkRequest = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('qr') }),
  z.strictObject({
    method: z.literal('pairing_code'),
    phone: z.string().min(1).max(40).describe('the phone’s full number with its country code, e.g. +60123456789'),
  }),
]);

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema };

export function deviceLinkRoutes(app: Api, s: Services): void {
  app.post('/api/v1/devices/:id/link', {
    schema: {
      tags: ['devices'],
      summary: 'Link a device to a WhatsApp account',
      description:
        'Starts a link by QR code (scan it in WhatsApp > Linked devices) or by pairing code (WhatsApp > Linked devices > ' +
        'Link with phone number instead). The codes follow as `device.link` live events and from GET. A new request ' +
        'replaces a link in progress.',
      security,
      params: idParams,
      body: linkRequest,
      response: { 202: linkState, ...errors, 409: errorSchema, 422: errorSchema },
    },
    handler: async (req, reply) => reply.status(202).send(await s.deviceLinks.link(actorOf(req), req.params.id, req.body)),
  });
  app.get('/api/v1/devices/:id/link', {
    schema: { tags: ['devices'], summary: "A device's link", security, params: idParams, response: { 200: linkState, ...errors } },
    handler: async (req) => s.deviceLinks.get(actorOf(req), req.params.id),
  });
  app.delete('/api/v1/devices/:id/link', {
    schema: { tags: ['devices'], summary: 'Cancel a link in progress', security, params: idParams, response: { 204: emptyReply, ...errors } },
    handler: async (req, reply) => {
      await s.deviceLinks.cancel(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });
  app.post('/api/v1/devices/:id/logout', {
    schema: {
      tags: ['devices'],
      summary: 'Log a device out',
      description: 'Unlinks it from its WhatsApp account and wipes its auth state; it is `logged_out` until linked again. Messages wait for it.',
      security,
      params: idParams,
      response: { 200: device, ...errors },
    },
    handler: async (req) => s.deviceLinks.logout(actorOf(req), req.params.id),
  });
  app.post('/api/v1/devices/:id/link/simulate-scan', {
    schema: {
      tags: ['devices'],
      summary: 'Scan the QR code of a simulator device',
      description: 'Simulator devices only: completes a QR link as a phone would, with this number (or a fictional one).',
      security,
      params: idParams,
      body: z.strictObject({ phone: z.string().min(1).max(40).optional() }).default({}),
      response: { 200: linkState, ...errors, 409: errorSchema, 422: errorSchema },
    },
    handler: async (req) => s.deviceLinks.simulateScan(actorOf(req), req.params.id, req.body.phone),
  });
}
