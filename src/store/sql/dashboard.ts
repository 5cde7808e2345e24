/**
 * The dashboard's and the monitoring page's figures. Every statement is scoped by the tenant and,
 * for a team member, by its devices; each reaches the outbox through a device-led index, so its
 * cost follows today's rows (or the live ones) of the devices asked about, never the history.
 * Plans measured on a tenant with 1,000,000 leads and 3,000,000 messages: docs/dashboard.md.
 */
import type { Queryable } from '../db.js';

export interface DashboardDeviceRow {
  id: number;
  name: string;
  phone: string | null;
  status: string;
  linked: boolean;
  paused_until: Date | null;
  restricted_until: Date | null;
  pause_reason: string | null;
  last_seen_at: Date | null;
}

/** The tenant's devices (a team member's: its own), not deleted, by id. */
export async function dashboardDevices(db: Queryable, tenantId: number, scope: readonly number[] | null): Promise<DashboardDeviceRow[]> {
  const res = await db.query<DashboardDeviceRow>(
    `select id, name, phone, status, linked, paused_until, restricted_until, pause_reason, last_seen_at
       from devices
      where user_id = $1 and deleted_at is null and ($2::bigint[] is null or id = any($2::bigint[]))
      order by id`,
    [tenantId, scope],
  );
  return res.rows;
}

/**
 * Every device id whose messages count for the viewer: a team member's devices, or all of the
 * tenant's, deleted ones included (their sends today still happened).
 */
export async function countedDeviceIds(db: Queryable, tenantId: number, scope: readonly number[] | null): Promise<number[]> {
  const res = await db.query<{ id: number }>(
    `select id from devices where user_id = $1 and ($2::bigint[] is null or id = any($2::bigint[]))`,
    [tenantId, scope],
  );
  return res.rows.map((r) => Number(r.id));
}

export interface DeviceDayCounts {
  device_id: number;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
}

/**
 * Messages attempted since `since`, by device: sent (and how many of those were delivered, read)
 * and failed. A message counts on the day of its last attempt.
 *
 * Shape: one range scan of messages_device_attempt_idx per device (`device_id = any`, then
 * `last_attempt_at >= since`), so the cost is today's rows only, never the history (measured: 29 ms
 * for 15,000 rows attempted today among 3,000,000, PGlite; `bench dashboard --explain`).
 */
export async function dayCountsByDevice(db: Queryable, tenantId: number, deviceIds: readonly number[], since: Date): Promise<DeviceDayCounts[]> {
  if (deviceIds.length === 0) return [];
  const res = await db.query<DeviceDayCounts>(
    `select device_id,
            (count(*) filter (where status in ('sent', 'delivered', 'read')))::int as sent,
            (count(*) filter (where status in ('delivered', 'read')))::int as delivered,
            (count(*) filter (where status = 'read'))::int as read,
            (count(*) filter (where status = 'failed'))::int as failed
       from messages
      where device_id = any($2::bigint[]) and last_attempt_at >= $3 and user_id = $1
      group by device_id`,
    [tenantId, deviceIds, since],
  );
  return res.rows.map((r) => ({ ...r, device_id: Number(r.device_id) }));
}

/** Leads that replied since `since` (leads_reply_idx: only today's repliers are read; 0.7 ms for 1,000 of 1,000,000 leads). */
export async function repliesSince(db: Queryable, tenantId: number, scope: readonly number[] | null, since: Date): Promise<number> {
  const res = await db.query<{ n: number }>(
    `select count(*)::int as n from leads
      where user_id = $1 and last_reply_at >= $2 and ($3::bigint[] is null or device_id = any($3::bigint[]))`,
    [tenantId, since, scope],
  );
  return res.rows[0]!.n;
}

/**
 * Sends per minute since `since`: the minute (epoch minutes) and how many were sent in it. The
 * same device-led range scan as dayCountsByDevice, over the last hour's attempts.
 */
export async function sentPerMinute(db: Queryable, tenantId: number, deviceIds: readonly number[], since: Date): Promise<Map<number, number>> {
  if (deviceIds.length === 0) return new Map();
  const res = await db.query<{ minute: number; n: number }>(
    `select floor(extract(epoch from sent_at) / 60)::bigint as minute, count(*)::int as n
       from messages
      where device_id = any($2::bigint[]) and last_attempt_at >= $3 and user_id = $1
        and sent_at >= $3 and status in ('sent', 'delivered', 'read')
      group by 1`,
    [tenantId, deviceIds, since],
  );
  return new Map(res.rows.map((r) => [Number(r.minute), r.n]));
}

export interface OutboxDepth {
  pending: number;
  held: number;
  sending: number;
}

/**
 * What waits in the viewer's outbox. Each count is an index-only walk of a partial index of live
 * rows led by the device (pending: messages_pending_idx; held: messages_held_idx; sending:
 * messages_sending_idx). There is no `user_id` condition on purpose: the device ids are the
 * tenant's (countedDeviceIds), a device's messages are its owner's, and the column would send
 * every count to the table. Measured on 85,000 pending rows among 3,000,000 (PGlite, EXPLAIN
 * ANALYZE): with `user_id` and without messages_held_idx, bitmap heap scans over 4,282 buffers (the
 * held count read all 86,000 waiting rows of every tenant); now index-only, no heap fetch, 730.
 */
export async function outboxDepthOf(db: Queryable, deviceIds: readonly number[]): Promise<OutboxDepth> {
  if (deviceIds.length === 0) return { pending: 0, held: 0, sending: 0 };
  const res = await db.query<OutboxDepth>(
    `select (select count(*)::int from messages where status = 'pending' and device_id = any($1::bigint[])) as pending,
            (select count(*)::int from messages where status = 'held' and device_id = any($1::bigint[])) as held,
            (select count(*)::int from messages where status = 'sending' and device_id = any($1::bigint[])) as sending`,
    [deviceIds],
  );
  return res.rows[0]!;
}

export interface FailureRow {
  id: number;
  device_id: number;
  device_name: string | null;
  lead_id: number;
  lead_name: string | null;
  phone: string;
  campaign_id: number | null;
  enrollment_id: number | null;
  error_code: string | null;
  error: string | null;
  failed_at: Date;
}

/**
 * The latest failed messages of these devices, newest first: at most `perDevice` of each device
 * and `limit` in all. Shape: each device's newest from messages_failed_idx (a backward walk of that
 * device's failures only), then the newest of those; no sent row is ever visited (measured: 1.9 ms
 * over 60,000 failures among 3,000,000 messages, PGlite).
 */
export async function recentFailures(db: Queryable, tenantId: number, deviceIds: readonly number[], perDevice: number, limit: number): Promise<FailureRow[]> {
  if (deviceIds.length === 0) return [];
  const res = await db.query<FailureRow>(
    `select f.id, f.device_id, d.name as device_name, f.lead_id, l.name as lead_name, f.phone, f.campaign_id,
            f.enrollment_id, f.error_code, f.error, f.finished_at as failed_at
       from unnest($2::bigint[]) as u(id)
       cross join lateral (
         select m.id, m.device_id, m.lead_id, m.phone, m.campaign_id, m.enrollment_id, m.error_code, m.error, m.finished_at
           from messages m
          where m.device_id = u.id and m.status = 'failed' and m.finished_at is not null and m.user_id = $1
          order by m.finished_at desc
          limit $4) f
       left join devices d on d.id = f.device_id and d.user_id = $1
       left join leads l on l.id = f.lead_id and l.user_id = $1
      order by f.finished_at desc, f.id desc
      limit $3`,
    [tenantId, deviceIds, limit, perDevice],
  );
  return res.rows.map((r) => ({
    ...r,
    id: Number(r.id),
    device_id: Number(r.device_id),
    lead_id: Number(r.lead_id),
    campaign_id: r.campaign_id === null ? null : Number(r.campaign_id),
    enrollment_id: r.enrollment_id === null ? null : Number(r.enrollment_id),
  }));
}

export interface CampaignProgressRow {
  id: number;
  name: string;
  status: string;
  mode: string;
  audience_size: number | null;
  started_at: Date | null;
  total: number;
  waiting: number;
  sending: number;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  other: number;
}

/**
 * Running and paused campaigns (or the ones named, whatever their state) with their messages by state. Shape: the tenant's live campaigns
 * from campaigns_user_idx, then each one's rows through messages_campaign_lead_key; the cost is
 * the size of the campaigns running now (measured: 174 ms for a running campaign of 100,000
 * messages, PGlite), so `campaignIds` narrows it to the campaigns a live event names and the live
 * relay paces itself by what it costs.
 */
export async function liveCampaignProgress(db: Queryable, tenantId: number, campaignIds: readonly number[] | null = null): Promise<CampaignProgressRow[]> {
  const res = await db.query<CampaignProgressRow>(
    `select c.id, c.name, c.status, c.mode, c.audience_size, c.started_at, k.*
       from campaigns c
       cross join lateral (
         select count(*)::int as total,
                (count(*) filter (where m.status in ('pending', 'held')))::int as waiting,
                (count(*) filter (where m.status = 'sending'))::int as sending,
                (count(*) filter (where m.status in ('sent', 'delivered', 'read')))::int as sent,
                (count(*) filter (where m.status in ('delivered', 'read')))::int as delivered,
                (count(*) filter (where m.status = 'read'))::int as read,
                (count(*) filter (where m.status = 'failed'))::int as failed,
                (count(*) filter (where m.status in ('cancelled', 'skipped', 'unknown')))::int as other
           from messages m where m.campaign_id = c.id) k
      where c.user_id = $1
        and (($2::bigint[] is null and c.status in ('running', 'paused')) or c.id = any($2::bigint[]))
      order by c.id`,
    [tenantId, campaignIds],
  );
  return res.rows.map((r) => ({ ...r, id: Number(r.id) }));
}

export interface SequenceProgressRow {
  id: number;
  name: string;
  status: string;
  trigger: string;
  active: number;
  paused: number;
  completed: number;
  exited: number;
}

/** Active sequences with their enrollments by state (an index-only count on enrollments_sequence_idx). */
export async function activeSequenceProgress(db: Queryable, tenantId: number): Promise<SequenceProgressRow[]> {
  const res = await db.query<SequenceProgressRow>(
    `select s.id, s.name, s.status, s.trigger, k.*
       from sequences s
       cross join lateral (
         select (count(*) filter (where e.status = 'active'))::int as active,
                (count(*) filter (where e.status = 'paused'))::int as paused,
                (count(*) filter (where e.status = 'completed'))::int as completed,
                (count(*) filter (where e.status = 'exited'))::int as exited
           from enrollments e where e.sequence_id = s.id) k
      where s.user_id = $1 and s.status = 'active'
      order by s.id`,
    [tenantId],
  );
  return res.rows.map((r) => ({ ...r, id: Number(r.id) }));
}

/** The tenant of each device (live events name the tenant; engine events only the device). */
export async function tenantsOfDevices(db: Queryable, deviceIds: readonly number[]): Promise<Map<number, number>> {
  if (deviceIds.length === 0) return new Map();
  const res = await db.query<{ id: number; user_id: number }>(`select id, user_id from devices where id = any($1::bigint[])`, [deviceIds]);
  return new Map(res.rows.map((r) => [Number(r.id), Number(r.user_id)]));
}

export interface CampaignTenantRow {
  id: number;
  user_id: number;
  status: string;
}

export async function campaignsByIds(db: Queryable, ids: readonly number[]): Promise<CampaignTenantRow[]> {
  if (ids.length === 0) return [];
  const res = await db.query<CampaignTenantRow>(`select id, user_id, status from campaigns where id = any($1::bigint[])`, [ids]);
  return res.rows.map((r) => ({ id: Number(r.id), user_id: Number(r.user_id), status: r.status }));
}
