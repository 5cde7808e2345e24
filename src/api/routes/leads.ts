/** /api/v1/leads: listing with filters, the intake upsert, edits, deletes and bulk actions. */
import { z } from 'zod';
import type { LeadFilter } from '../../store/sql/lead-filter.js';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { booleanQuery, cursorOf, emptyReply, id, idList, idParams, nullableTimestamp, page, pageOf, pageQuery, security, stringList, tag, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';

export const leadSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    phone: z.string().describe('E.164'),
    niches: z.array(z.string()),
    status: z.string(),
    triggers: z.array(z.string()),
    source: z.string().nullable(),
    attributes: z.record(z.string(), z.unknown()),
    device_id: z.number().int().nullable().describe('null: in the shared pool'),
    opted_out_at: nullableTimestamp,
    last_reply_at: nullableTimestamp,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Lead' });

const attributes = z
  .record(z.string().min(1).max(64), z.union([z.string().max(2000), z.number(), z.boolean(), z.null()]))
  .refine((r) => Object.keys(r).length <= 100, 'at most 100 attributes');

const leadFields = {
  name: z.string().trim().max(200),
  phone: z.string().trim().min(1).max(40).describe('any common format; national numbers use your default country'),
  device_id: id.nullable().describe('null: the shared pool'),
  niches: z.array(tag).max(100),
  status: tag.describe('prospect, customer, or your own'),
  triggers: z.array(tag).max(100),
  source: z.string().trim().max(200).nullable(),
  attributes,
};

/** The filter every lead listing, export and bulk action shares, as query parameters. */
export const leadFilterQuery = {
  q: z.string().max(200).optional().describe('part of the name, or at least 3 digits of the phone'),
  niche: stringList.optional().describe('any of these niches (repeat or comma-separate)'),
  status: stringList.optional(),
  trigger: stringList.optional(),
  device_id: idList.optional(),
  pool: booleanQuery.optional().describe('true: only leads without a device'),
  opted_out: booleanQuery.optional(),
  source: z.string().max(200).optional(),
  created_after: timestamp.optional(),
  created_before: timestamp.optional(),
};

type FilterQuery = {
  q?: string | undefined;
  niche?: string[] | undefined;
  status?: string[] | undefined;
  trigger?: string[] | undefined;
  device_id?: number[] | undefined;
  pool?: boolean | undefined;
  opted_out?: boolean | undefined;
  source?: string | undefined;
  created_after?: string | undefined;
  created_before?: string | undefined;
};

export function filterOf(q: FilterQuery): LeadFilter {
  return {
    q: q.q,
    niches: q.niche,
    statuses: q.status,
    triggers: q.trigger,
    deviceIds: q.device_id,
    pool: q.pool,
    optedOut: q.opted_out,
    source: q.source,
    createdAfter: q.created_after ? new Date(q.created_after) : undefined,
    createdBefore: q.created_before ? new Date(q.created_before) : undefined,
  };
}

/** The lead filter as a JSON body spells it (plural names); bulk actions and sequence enrollment share it. */
export const bodyFilter = z.strictObject({
  q: z.string().max(200).optional(),
  niches: z.array(tag).max(100).optional(),
  statuses: z.array(tag).max(100).optional(),
  triggers: z.array(tag).max(100).optional(),
  device_ids: z.array(id).max(1000).optional(),
  pool: z.boolean().optional(),
  opted_out: z.boolean().optional(),
  source: z.string().max(200).optional(),
  created_after: timestamp.optional(),
  created_before: timestamp.optional(),
});

/** The body spells the filter in plurals; it means exactly what the query-string filter means. */
export function bodyFilterOf(f: z.infer<typeof bodyFilter>): LeadFilter {
  return filterOf({ ...f, niche: f.niches, status: f.statuses, trigger: f.triggers, device_id: f.device_ids });
}

const values = z.array(tag).min(1).max(100);
const bulkAction = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('set_status'), value: tag }),
  z.strictObject({ op: z.literal('add_niches'), values }),
  z.strictObject({ op: z.literal('remove_niches'), values }),
  z.strictObject({ op: z.literal('set_niches'), values: z.array(tag).max(100) }),
  z.strictObject({ op: z.literal('add_triggers'), values }),
  z.strictObject({ op: z.literal('remove_triggers'), values }),
  z.strictObject({ op: z.literal('set_triggers'), values: z.array(tag).max(100) }),
  z.strictObject({ op: z.literal('assign_device'), device_id: id.nullable() }),
  z.strictObject({ op: z.literal('opt_out') }),
  z.strictObject({ op: z.literal('delete') }),
]);

const e = (...codes: (400 | 401 | 403 | 404 | 409 | 422)[]) => Object.fromEntries(codes.map((c) => [c, errorSchema]));

export function leadRoutes(app: Api, s: Services): void {
  app.get('/api/v1/leads', {
    schema: {
      tags: ['leads'],
      summary: 'List leads, newest first',
      security,
      querystring: z.strictObject({ ...pageQuery, ...leadFilterQuery }),
      response: { 200: page(leadSchema), ...e(400, 401) },
    },
    // The hottest read of the API: its rows are built field by field by leadView, so checking them
    // against the response schema again (zod parses every lead of the page) only costs time:
    // about 6% of the server's CPU under the lead-list benchmark. The schema still documents it.
    serializerCompiler: () => (data) => JSON.stringify(data),
    handler: async (req) => {
      const q = req.query;
      return pageOf(await s.leads.list(actorOf(req), filterOf(q), { before: cursorOf(q.cursor), limit: q.limit }), q.limit);
    },
  });
  app.get('/api/v1/leads/count', {
    schema: {
      tags: ['leads'],
      summary: 'Count leads',
      description: 'How many leads the filters of `GET /leads` select (e.g. a campaign audience as you narrow it).',
      security,
      querystring: z.strictObject(leadFilterQuery),
      response: { 200: z.object({ count: z.number().int() }), ...e(400, 401) },
    },
    handler: async (req) => ({ count: await s.leads.count(actorOf(req), filterOf(req.query)) }),
  });
  app.post('/api/v1/leads', {
    schema: {
      tags: ['leads'],
      summary: 'Add a lead (intake)',
      description:
        'Idempotent on the phone: a lead whose phone the tenant already has is merged (niches and triggers added, ' +
        'attributes merged, an empty name, source or device filled in) and answered with 200; a new lead is 201. ' +
        'With an `Idempotency-Key` header, a retry of the same request gets the first answer again (24 h).',
      security,
      headers: z.object({ 'idempotency-key': z.string().min(1).max(200).optional() }),
      body: z.strictObject({ ...leadFields, name: leadFields.name.optional(), device_id: leadFields.device_id.optional(), niches: leadFields.niches.optional(), status: leadFields.status.optional(), triggers: leadFields.triggers.optional(), source: leadFields.source.optional(), attributes: attributes.optional() }),
      response: { 200: leadSchema, 201: leadSchema, ...e(400, 401, 403, 404, 409, 422) },
    },
    handler: async (req, reply) => {
      const actor = actorOf(req);
      const run = async () => {
        const r = await s.leads.upsert(actor, req.body);
        return { status: r.created ? 201 : 200, body: r.lead };
      };
      const key = req.headers['idempotency-key'];
      if (key === undefined) {
        const r = await run();
        return reply.status(r.status as 200 | 201).send(r.body);
      }
      const r = await s.leads.idempotent(actor, key, req.body, run);
      if (r.replayed) void reply.header('idempotent-replayed', 'true');
      return reply.status(r.status as 200 | 201).send(r.body as z.infer<typeof leadSchema>);
    },
  });
  app.post('/api/v1/leads/bulk', {
    schema: {
      tags: ['leads'],
      summary: 'One action on many leads',
      description:
        'Selects leads by `ids` and/or `filter` (at least one; `filter: {}` means every lead you can see) and applies ' +
        '`action` in one transaction. opt_out and delete cancel what waits in the outbox for those leads.',
      security,
      body: z
        .strictObject({ ids: z.array(id).min(1).max(10_000).optional(), filter: bodyFilter.optional(), action: bulkAction })
        .refine((b) => b.ids !== undefined || b.filter !== undefined, { message: 'give ids or a filter', path: ['filter'] }),
      response: { 200: z.object({ affected: z.number().int(), cancelled_messages: z.number().int() }), ...e(400, 401, 403, 404) },
    },
    handler: async (req) => {
      const f = req.body.filter;
      const filter = f && bodyFilterOf(f);
      return s.leads.bulk(actorOf(req), { ids: req.body.ids, filter }, req.body.action);
    },
  });
  app.get('/api/v1/leads/:id', {
    schema: { tags: ['leads'], summary: 'Get a lead', security, params: idParams, response: { 200: leadSchema, ...e(400, 401, 404) } },
    handler: async (req) => s.leads.get(actorOf(req), req.params.id),
  });
  app.patch('/api/v1/leads/:id', {
    schema: {
      tags: ['leads'],
      summary: 'Change a lead',
      description: '`opted_out: true` opts the lead out and cancels what waits for it; `false` clears an opt-out.',
      security,
      params: idParams,
      body: z.strictObject({
        name: leadFields.name.optional(),
        phone: leadFields.phone.optional(),
        device_id: leadFields.device_id.optional(),
        niches: leadFields.niches.optional(),
        status: leadFields.status.optional(),
        triggers: leadFields.triggers.optional(),
        source: leadFields.source.optional(),
        attributes: attributes.optional(),
        opted_out: z.boolean().optional(),
      }),
      response: { 200: leadSchema, ...e(400, 401, 403, 404, 409, 422) },
    },
    handler: async (req) => s.leads.update(actorOf(req), req.params.id, req.body),
  });
  app.delete('/api/v1/leads/:id', {
    schema: { tags: ['leads'], summary: 'Delete a lead', description: 'Cancels what waits for it in the outbox.', security, params: idParams, response: { 204: emptyReply, ...e(400, 401, 403, 404) } },
    handler: async (req, reply) => {
      await s.leads.delete(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });
}
