/** GET /api/v1/audit: the audit log, for admins. */
import { z } from 'zod';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { cursorOf, id, page, pageOf, pageQuery, security, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';

const entry = z
  .object({
    id: z.number().int(),
    at: timestamp,
    tenant_id: z.number().int().nullable().describe('the account whose data it touched'),
    actor: z.object({
      id: z.number().int().nullable().describe('null: no one signed in (a failed sign-in)'),
      email: z.string().nullable().describe('for a failed sign-in, the e-mail tried'),
      via: z.enum(['session', 'token', 'anonymous']),
      credential_id: z.number().int().nullable().describe('the session or API token used'),
    }),
    action: z.string().describe('e.g. campaign.create, campaign.pause, auth.login, auth.login_failed, lead.export'),
    target: z.object({ type: z.string(), id: z.number().int().nullable() }).nullable(),
    method: z.string(),
    route: z.string().describe('the route pattern, e.g. /api/v1/campaigns/:id/pause'),
    status_code: z.number().int(),
    request_id: z.string().nullable().describe('the X-Request-Id of the request, as in the server log'),
    ip: z.string().nullable(),
  })
  .meta({ id: 'AuditEntry' });

export function auditRoutes(app: Api, s: Services): void {
  app.get('/api/v1/audit', {
    schema: {
      tags: ['audit'],
      summary: 'The audit log, newest first (admin)',
      description: 'Who did what, when: every change made through the API, sign-ins (failed ones too), sign-outs and lead exports.',
      security,
      querystring: z.strictObject({
        ...pageQuery,
        tenant_id: id.optional(),
        actor_id: id.optional(),
        action: z.string().max(100).optional().describe('an action, or a prefix ending in a dot: `campaign.`'),
        target_type: z.string().max(50).optional(),
        target_id: id.optional(),
        since: timestamp.optional(),
        until: timestamp.optional(),
      }),
      response: { 200: page(entry), 400: errorSchema, 401: errorSchema, 403: errorSchema },
    },
    handler: async (req) => {
      const q = req.query;
      const rows = await s.audit.list(actorOf(req), {
        tenantId: q.tenant_id,
        actorId: q.actor_id,
        action: q.action,
        targetType: q.target_type,
        targetId: q.target_id,
        since: q.since ? new Date(q.since) : undefined,
        until: q.until ? new Date(q.until) : undefined,
        before: cursorOf(q.cursor),
        limit: q.limit,
      });
      return pageOf(rows, q.limit);
    },
  });
}
