/**
 * /api/v1/dashboard and /api/v1/monitoring: the figures of the dashboard's home and monitoring
 * pages, of the viewer's tenant (a team member: of its devices). What each number counts is stated
 * in services/dashboard.ts.
 */
import { z } from 'zod';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { nullableTimestamp, security, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';

const count = z.number().int();

const today = z
  .object({ sent: count, delivered: count, read: count, replies: count, failed: count })
  .describe("messages attempted since local midnight (the user's time zone) by how far they got; replies: leads that replied today");

export const deviceStates = z
  .object({ online: count, offline: count, restricted: count, paused: count, logged_out: count, unlinked: count })
  .describe('devices (not deleted) by state: the first of logged_out, unlinked, restricted, paused, online, offline that applies');

export const outbox = z.object({ pending: count, held: count, sending: count }).describe('messages waiting: claimable, held by a pause, in flight');

const throughput = z
  .array(z.object({ minute: timestamp, sent: count }))
  .describe('messages sent in each of the last 60 minutes, oldest first; the last entry is the current minute so far');

const campaignProgress = z
  .object({
    id: count,
    name: z.string(),
    status: z.string(),
    mode: z.string(),
    audience_size: count.nullable(),
    started_at: nullableTimestamp,
    total: count.describe('messages written so far'),
    waiting: count,
    sending: count,
    sent: count.describe('sent, delivered or read'),
    delivered: count.describe('delivered or read'),
    read: count,
    failed: count,
    other: count.describe('cancelled, skipped or unknown'),
  })
  .meta({ id: 'CampaignProgress' });

const sequenceProgress = z.object({ id: count, name: z.string(), trigger: z.string(), active: count, paused: count, completed: count, exited: count });

const dashboard = z
  .object({
    time_zone: z.string(),
    day_start: timestamp,
    generated_at: timestamp,
    today,
    devices: deviceStates,
    outbox,
    campaigns: z.array(campaignProgress).describe('running and paused campaigns (none for a team member)'),
    sequences: z.array(sequenceProgress).describe('active sequences (none for a team member)'),
    throughput,
  })
  .meta({ id: 'Dashboard' });

const monitoring = z
  .object({
    generated_at: timestamp,
    outbox,
    throughput,
    devices: z.array(
      z.object({
        id: count,
        name: z.string(),
        phone: z.string().nullable(),
        status: z.string().describe('the connection status'),
        state: z.enum(['online', 'offline', 'restricted', 'paused', 'logged_out', 'unlinked']),
        paused_until: nullableTimestamp,
        restricted_until: nullableTimestamp,
        last_seen_at: nullableTimestamp,
        sent_today: count,
        failed_today: count,
        last_error: z.object({ code: z.string().nullable(), message: z.string().nullable(), at: timestamp }).nullable(),
      }),
    ),
    recent_errors: z
      .array(
        z.object({
          message_id: count,
          device_id: count,
          device_name: z.string().nullable(),
          lead_id: count,
          lead_name: z.string().nullable(),
          phone: z.string(),
          campaign_id: count.nullable(),
          enrollment_id: count.nullable(),
          code: z.string().nullable(),
          reason: z.string().nullable(),
          at: timestamp,
        }),
      )
      .describe('the last 50 failed messages, newest first'),
  })
  .meta({ id: 'Monitoring' });

const errors = { 401: errorSchema, 403: errorSchema };

export function dashboardRoutes(app: Api, s: Services): void {
  app.get('/api/v1/dashboard', {
    schema: { tags: ['dashboard'], summary: "Today's figures, devices, running campaigns and sequences, throughput", security, response: { 200: dashboard, ...errors } },
    handler: async (req) => s.dashboard.home(actorOf(req)),
  });
  app.get('/api/v1/monitoring', {
    schema: { tags: ['dashboard'], summary: 'Outbox depth, messages per minute, each device, recent errors', security, response: { 200: monitoring, ...errors } },
    handler: async (req) => s.dashboard.monitoring(actorOf(req)),
  });
}
