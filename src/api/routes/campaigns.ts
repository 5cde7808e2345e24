/** /api/v1/campaigns: one message to a filtered audience, started at a time, paced by the engine. */
import { z } from 'zod';
import { DAY_NAMES } from '../../services/campaigns.js';
import { MESSAGE_STATUSES } from '../../store/sql/campaign-admin.js';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { cursorOf, emptyReply, id, idList, idParams, nullableTimestamp, page, pageOf, pageQuery, security, stringList, tag, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';

// ---- Shared with the sequences routes ------------------------------------------------------

export const localTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a local time "HH:MM" from 00:00 to 23:59');

export const windowInput = z
  .strictObject({
    start: localTime.describe('local time the window opens, "HH:MM"'),
    end: z
      .string()
      .regex(/^(([01]\d|2[0-3]):[0-5]\d|24:00)$/, 'a local time "HH:MM" from 00:00 to 24:00')
      .describe('local time it closes; before `start` for an overnight window'),
    days: z.array(z.enum(DAY_NAMES)).min(1).max(7).optional().describe('weekdays it opens on; default every day'),
    time_zone: z.string().min(1).max(64).optional().describe("IANA zone of the times; default the account's"),
    overnight: z.boolean().optional().describe('required (true) for a window whose end is before its start, such as 22:00-06:00'),
  })
  .describe('a daily send window; null sends at any time');

export const windowView = z
  .object({ start: z.string(), end: z.string(), days: z.array(z.enum(DAY_NAMES)), time_zone: z.string() })
  .meta({ id: 'SendWindow' });

const mediaType = z.enum(['image', 'video', 'document']);

export const mediaInput = z
  .strictObject({
    type: mediaType,
    url: z.url({ protocol: /^https?$/ }).max(2048).optional().describe('fetched and checked when the campaign is scheduled'),
    media_id: id.optional().describe('a file uploaded to /api/v1/media'),
    filename: z.string().min(1).max(255).optional(),
    caption: z.string().max(1024).optional(),
  })
  .refine((m) => (m.url === undefined) !== (m.media_id === undefined), { error: 'give either url or media_id', path: ['url'] });

export const mediaView = z
  .object({
    type: mediaType,
    url: z.string().optional(),
    media_id: z.number().int().optional(),
    filename: z.string().optional(),
    caption: z.string().optional(),
    mime_type: z.string().optional().describe('once prepared (scheduled)'),
    bytes: z.number().int().optional(),
  })
  .meta({ id: 'MessageMedia' });

export const messageBody = z.string().min(1).max(4096);

// ---- Campaigns ------------------------------------------------------------------------------

const delayView = z.object({ min_seconds: z.number(), max_seconds: z.number() }).meta({ id: 'CampaignDelay' });

const statuses = ['draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled'] as const;

const counts = z.object(Object.fromEntries(MESSAGE_STATUSES.map((s) => [s, z.number().int()])) as Record<(typeof MESSAGE_STATUSES)[number], z.ZodNumber>).meta({ id: 'MessageCounts' });

const campaign = z
  .object({
    id: z.number().int(),
    name: z.string(),
    body: z.string(),
    media: mediaView.nullable(),
    audience: z.object({
      niches: z.array(z.string()).nullable(),
      statuses: z.array(z.string()).nullable(),
      device_ids: z.array(z.number().int()).nullable(),
      triggers: z.array(z.string()).nullable(),
    }),
    starts_at: nullableTimestamp.describe('null: as soon as it is scheduled'),
    window: windowView.nullable(),
    delivery: z.enum(['at_most_once', 'at_least_once']),
    mode: z.enum(['owned', 'pool']),
    device_hourly_quota: z.number().int().nullable(),
    device_daily_quota: z.number().int().nullable(),
    daily_limit: z.number().int().nullable(),
    delay: delayView.nullable(),
    status: z.enum(statuses),
    audience_size: z.number().int().nullable().describe('leads materialised at start (pool: queued)'),
    created_at: timestamp,
    updated_at: timestamp,
    started_at: nullableTimestamp,
    completed_at: nullableTimestamp,
    counts: counts.optional().describe("the campaign's messages by status; on single-campaign answers only"),
  })
  .meta({ id: 'Campaign' });

const tags = z.array(tag).max(100);
const seconds = z.number().min(0).max(86_400);
const cap = z.number().int().min(1).max(1_000_000).nullable();

const campaignInput = z.strictObject({
  name: z.string().trim().min(1).max(200),
  body: messageBody,
  media: mediaInput.nullable().optional(),
  audience: z
    .strictObject({
      niches: tags.optional().describe('leads with any of these niches'),
      statuses: tags.optional().describe('leads in any of these statuses'),
      device_ids: z.array(id).max(1000).optional().describe('leads of these devices'),
      triggers: tags.optional().describe('leads carrying any of these triggers'),
    })
    .optional()
    .describe('which leads; every given list must match, an empty or missing one matches all'),
  starts_at: timestamp.nullable().optional().describe('when to start; null or absent: as soon as scheduled'),
  window: windowInput.nullable().optional(),
  delivery: z.enum(['at_most_once', 'at_least_once']).optional().describe('a send cut short by a crash with no proof either way: at_most_once marks it unknown, at_least_once sends it again'),
  mode: z.enum(['owned', 'pool']).optional(),
  device_hourly_quota: cap.optional().describe('pool mode: most sends per device per hour'),
  device_daily_quota: cap.optional().describe('pool mode: most sends per device per day'),
  daily_limit: cap.optional().describe("pool mode: most sends of this campaign per day (the owner's day)"),
  delay: z
    .strictObject({ min_seconds: seconds, max_seconds: seconds })
    .nullable()
    .optional()
    .describe("a random gap between two of this campaign's sends on a device, replacing the device's own; null: the device's"),
});

const summary = {
  total: z.number().int(),
  pending: z.number().int(),
  sent: z.number().int(),
  delivered: z.number().int(),
  read: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
  other: z.number().int().describe('skipped and unknown'),
};

const stats = z
  .object({
    campaign_id: z.number().int(),
    status: z.enum(statuses),
    mode: z.enum(['owned', 'pool']),
    audience_size: z.number().int().nullable(),
    totals: z.object(summary),
    queued: z.number().int(),
    devices: z.array(z.object({ device_id: z.number().int(), ...summary })),
  })
  .meta({ id: 'CampaignStats' });

const forecast = z
  .object({
    campaign_id: z.number().int(),
    computed_at: timestamp,
    messages: z.number().int().describe("the campaign's messages still to send"),
    devices: z.number().int(),
    starts_at: timestamp,
    finishes_at: nullableTimestamp.describe('null: not within the horizon (e.g. no online device)'),
    per_device: z.array(
      z.object({ device_id: z.number().int(), name: z.string(), messages: z.number().int(), finishes_at: nullableTimestamp }),
    ),
    exact: z.boolean().describe('false when part of the timeline was extrapolated'),
    simulated_messages: z.number().int(),
    horizon_days: z.number().int(),
    notes: z.array(z.string()),
  })
  .meta({ id: 'CampaignForecast' });

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 422: errorSchema };

export function campaignRoutes(app: Api, s: Services): void {
  app.get('/api/v1/campaigns', {
    schema: {
      tags: ['campaigns'],
      summary: 'List campaigns',
      description: 'Oldest first; `status` takes one or more states (`?status=running,paused`).',
      security,
      querystring: z.strictObject({ ...pageQuery, status: stringList.pipe(z.array(z.enum(statuses))).optional() }),
      response: { 200: page(campaign), ...errors },
    },
    handler: async (req) => {
      const q = req.query;
      return pageOf(await s.campaigns.list(actorOf(req), { after: cursorOf(q.cursor), limit: q.limit, statuses: q.status }), q.limit);
    },
  });
  app.post('/api/v1/campaigns', {
    schema: {
      tags: ['campaigns'],
      summary: 'Create a campaign',
      description: 'A draft, or scheduled at once with `"schedule": true`.',
      security,
      body: campaignInput.extend({ schedule: z.boolean().optional() }),
      response: { 201: campaign, ...errors },
    },
    handler: async (req, reply) => reply.status(201).send(await s.campaigns.create(actorOf(req), req.body)),
  });
  app.get('/api/v1/campaigns/:id', {
    schema: { tags: ['campaigns'], summary: 'Get a campaign', security, params: idParams, response: { 200: campaign, ...errors } },
    handler: async (req) => s.campaigns.get(actorOf(req), req.params.id),
  });
  app.patch('/api/v1/campaigns/:id', {
    schema: {
      tags: ['campaigns'],
      summary: 'Change a campaign',
      description: 'Only a draft or scheduled campaign can change (409 CAMPAIGN_STATE otherwise).',
      security,
      params: idParams,
      body: campaignInput.partial(),
      response: { 200: campaign, ...errors },
    },
    handler: async (req) => s.campaigns.update(actorOf(req), req.params.id, req.body),
  });
  app.delete('/api/v1/campaigns/:id', {
    schema: {
      tags: ['campaigns'],
      summary: 'Delete a campaign',
      description: 'Only a draft, completed or cancelled campaign; cancel a live one first. Its sent messages stay in the history.',
      security,
      params: idParams,
      response: { 204: emptyReply, ...errors },
    },
    handler: async (req, reply) => {
      await s.campaigns.delete(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });

  const action = (name: 'schedule' | 'pause' | 'resume' | 'cancel', summary: string, description: string): void => {
    app.post(`/api/v1/campaigns/:id/${name}`, {
      schema: { tags: ['campaigns'], summary, description, security, params: idParams, response: { 200: campaign, ...errors } },
      handler: async (req) => s.campaigns[name](actorOf(req), req.params.id),
    });
  };
  action('schedule', 'Schedule a draft', 'draft -> scheduled: the engine starts it at `starts_at`.');
  action('pause', 'Pause a campaign', 'scheduled | running -> paused.');
  action('resume', 'Resume a paused campaign', 'paused -> running if it had started, else scheduled.');
  action('cancel', 'Cancel a campaign', 'draft | scheduled | running | paused -> cancelled; its waiting messages are cancelled with it.');
  app.post('/api/v1/campaigns/:id/retry', {
    schema: {
      tags: ['campaigns'],
      summary: 'Retry failed messages',
      description: 'Failed messages go back to pending (of one device with `device_id`); a completed campaign runs again.',
      security,
      params: idParams,
      body: z.strictObject({ device_id: id.optional() }).nullish(),
      response: { 200: z.object({ retried: z.number().int(), campaign }), ...errors },
    },
    handler: async (req) => s.campaigns.retryFailed(actorOf(req), req.params.id, req.body?.device_id ?? null),
  });
  app.get('/api/v1/campaigns/:id/stats', {
    schema: {
      tags: ['campaigns'],
      summary: 'Campaign statistics',
      description:
        'Counts from the outbox rows, for the campaign and per device. `sent` includes delivered and read; `pending` is everything not finished; `queued` is pool leads not yet handed to a device.',
      security,
      params: idParams,
      response: { 200: stats, ...errors },
    },
    handler: async (req) => s.campaigns.stats(actorOf(req), req.params.id),
  });
  const failure = z.object({
    id: z.number().int().describe('the message'),
    device_id: z.number().int(),
    device_name: z.string().nullable(),
    lead_id: z.number().int(),
    lead_name: z.string().nullable(),
    phone: z.string(),
    attempts: z.number().int(),
    error_code: z.string().nullable(),
    error: z.string().nullable(),
    failed_at: nullableTimestamp,
  });
  app.get('/api/v1/campaigns/:id/failures', {
    schema: {
      tags: ['campaigns'],
      summary: "A campaign's failed messages",
      description:
        'Newest first, in keyset pages; the first page also counts every failure of the campaign by reason (`reasons`, most frequent first; null on later pages). `POST /campaigns/{id}/retry` sends them again.',
      security,
      params: idParams,
      querystring: z.strictObject(pageQuery),
      response: {
        200: z.object({
          data: z.array(failure),
          next_cursor: z.string().nullable(),
          reasons: z.array(z.object({ code: z.string().nullable(), count: z.number().int(), example: z.string().nullable() })).nullable(),
        }),
        ...errors,
      },
    },
    handler: async (req) => {
      const out = await s.campaigns.failures(actorOf(req), req.params.id, { before: cursorOf(req.query.cursor), limit: req.query.limit });
      return { ...pageOf(out.data, req.query.limit), reasons: out.reasons };
    },
  });
  const preview = z.object({
    data: z.array(z.object({ lead_id: z.number().int(), name: z.string(), phone: z.string(), text: z.string() })),
  });
  app.get('/api/v1/campaigns/:id/preview', {
    schema: {
      tags: ['campaigns'],
      summary: 'Preview a campaign',
      description: 'Its body as the given leads (`?lead_ids=1,2`, at most 20) or its first five leads will receive it: the same rendering, the same spintax choices.',
      security,
      params: idParams,
      querystring: z.strictObject({ lead_ids: idList.pipe(z.array(z.number()).max(20)).optional() }),
      response: { 200: preview, ...errors },
    },
    handler: async (req) => ({ data: await s.campaigns.preview(actorOf(req), { campaignId: req.params.id, leadIds: req.query.lead_ids }) }),
  });
  app.post('/api/v1/campaigns/preview', {
    schema: {
      tags: ['campaigns'],
      summary: 'Preview a message body',
      description: 'Renders a body that is not saved yet for the given leads or your first five; an invalid template is a 400 with its position.',
      security,
      body: z.strictObject({ body: messageBody, lead_ids: z.array(id).max(20).optional() }),
      response: { 200: preview, ...errors },
    },
    handler: async (req) => ({ data: await s.campaigns.preview(actorOf(req), { body: req.body.body, leadIds: req.body.lead_ids }) }),
  });
  app.get('/api/v1/campaigns/:id/forecast', {
    schema: {
      tags: ['campaigns'],
      summary: 'Forecast when a campaign finishes',
      description:
        "Runs the engine on a virtual clock over a copy of the campaign's devices (pacing, caps, windows, pauses), the messages already waiting on them and its audience, and answers when each device and the campaign would finish. Takes seconds for thousands of messages; past 20,000 the rest is extrapolated (`exact: false`). See docs/api-campaigns.md.",
      security,
      params: idParams,
      response: { 200: forecast, ...errors },
    },
    handler: async (req) => s.campaigns.forecast(actorOf(req), req.params.id),
  });
  app.post('/api/v1/campaigns/:id/clone', {
    schema: {
      tags: ['campaigns'],
      summary: 'Copy a campaign',
      description: 'A new draft with the same content and settings, named "<name> (copy)".',
      security,
      params: idParams,
      response: { 201: campaign, ...errors },
    },
    handler: async (req, reply) => reply.status(201).send(await s.campaigns.clone(actorOf(req), req.params.id)),
  });
}
