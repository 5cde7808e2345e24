/**
 * Campaign statements the API runs: create, read, edit, move between states, clone, delete, count.
 * Every statement names the tenant, and every state change carries its allowed source states in
 * its WHERE clause: two requests racing (or a request racing the starter) can never skip a state,
 * because the loser's guard no longer matches once the winner has committed.
 */
import type { Queryable } from '../db.js';
import type { Audience } from './campaigns.js';

export type CampaignStatus = 'draft' | 'scheduled' | 'running' | 'paused' | 'completed' | 'cancelled';
export type CampaignMode = 'owned' | 'pool';
export type Delivery = 'at_most_once' | 'at_least_once';

export interface CampaignRow {
  id: number;
  name: string;
  body: string;
  media: unknown;
  audience: Audience;
  mode: CampaignMode;
  /** Null: as soon as it is scheduled. */
  starts_at: Date | null;
  window_id: number | null;
  delivery: Delivery;
  device_hourly_quota: number | null;
  device_daily_quota: number | null;
  daily_limit: number | null;
  /** The campaign's own gap between two sends of a device (null: the device's). */
  min_delay_ms: number | null;
  max_delay_ms: number | null;
  status: CampaignStatus;
  /** Leads materialised (owned: outbox rows; pool: queued leads) once started. */
  audience_size: number | null;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
  /** The send window's fields (null without one), joined so a view needs no second read. */
  window_time_zone: string | null;
  window_start_minute: number | null;
  window_end_minute: number | null;
  window_days: number | null;
}

const columns = `c.id, c.name, c.body, c.media, c.audience, c.mode, c.starts_at, c.window_id, c.delivery, c.audience_size,
  c.device_hourly_quota, c.device_daily_quota, c.daily_limit, c.min_delay_ms, c.max_delay_ms, c.status, c.created_at, c.updated_at,
  c.started_at, c.completed_at, w.time_zone as window_time_zone, w.start_minute as window_start_minute,
  w.end_minute as window_end_minute, w.days as window_days`;

const from = `campaigns c left join send_windows w on w.id = c.window_id`;

export interface CampaignFields {
  name: string;
  body: string;
  /** Stored as the transport reads it (see MediaRef); null: text only. */
  media: unknown;
  audience: Audience;
  mode: CampaignMode;
  startsAt: Date | null;
  windowId: number | null;
  delivery: Delivery;
  deviceHourlyQuota: number | null;
  deviceDailyQuota: number | null;
  dailyLimit: number | null;
  /** Overrides the devices' gap for this campaign's messages; both null or both set. */
  minDelayMs: number | null;
  maxDelayMs: number | null;
}

const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

export async function insertCampaignRow(db: Queryable, tenantId: number, f: CampaignFields, status: 'draft' | 'scheduled', now: Date): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into campaigns (user_id, name, body, media, audience, mode, starts_at, window_id, delivery,
                            device_hourly_quota, device_daily_quota, daily_limit, min_delay_ms, max_delay_ms,
                            status, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) returning id`,
    [
      tenantId,
      f.name,
      f.body,
      json(f.media),
      JSON.stringify(f.audience),
      f.mode,
      f.startsAt,
      f.windowId,
      f.delivery,
      f.deviceHourlyQuota,
      f.deviceDailyQuota,
      f.dailyLimit,
      f.minDelayMs,
      f.maxDelayMs,
      status,
      now,
    ],
  );
  return res.rows[0]!.id;
}

export async function getCampaignRow(db: Queryable, tenantId: number, id: number): Promise<CampaignRow | null> {
  const res = await db.query<CampaignRow>(`select ${columns} from ${from} where c.user_id = $1 and c.id = $2`, [tenantId, id]);
  return res.rows[0] ?? null;
}

export async function listCampaignRows(
  db: Queryable,
  tenantId: number,
  page: { after?: number | undefined; limit: number; statuses?: readonly string[] | undefined },
): Promise<CampaignRow[]> {
  const p: unknown[] = [tenantId, page.after ?? 0, page.limit];
  let filter = '';
  if (page.statuses?.length) {
    p.push(page.statuses);
    filter = ` and c.status = any($${p.length}::text[])`;
  }
  const res = await db.query<CampaignRow>(
    `select ${columns} from ${from} where c.user_id = $1 and c.id > $2${filter} order by c.id limit $3`,
    p,
  );
  return res.rows;
}

/**
 * Applies the set fields if the campaign is still in one of `editable`; false when it is missing or
 * has moved on (the caller reads it again to tell which).
 */
export async function updateCampaignRow(
  db: Queryable,
  tenantId: number,
  id: number,
  f: Partial<CampaignFields>,
  editable: readonly CampaignStatus[],
  now: Date,
): Promise<boolean> {
  const p: unknown[] = [tenantId, id, editable, now];
  const sets = ['updated_at = $4'];
  const add = (col: string, v: unknown): void => {
    p.push(v);
    sets.push(`${col} = $${p.length}`);
  };
  if (f.name !== undefined) add('name', f.name);
  if (f.body !== undefined) add('body', f.body);
  if (f.media !== undefined) add('media', json(f.media));
  if (f.audience !== undefined) add('audience', JSON.stringify(f.audience));
  if (f.mode !== undefined) add('mode', f.mode);
  if (f.startsAt !== undefined) add('starts_at', f.startsAt);
  if (f.windowId !== undefined) add('window_id', f.windowId);
  if (f.delivery !== undefined) add('delivery', f.delivery);
  if (f.deviceHourlyQuota !== undefined) add('device_hourly_quota', f.deviceHourlyQuota);
  if (f.deviceDailyQuota !== undefined) add('device_daily_quota', f.deviceDailyQuota);
  if (f.dailyLimit !== undefined) add('daily_limit', f.dailyLimit);
  if (f.minDelayMs !== undefined) add('min_delay_ms', f.minDelayMs);
  if (f.maxDelayMs !== undefined) add('max_delay_ms', f.maxDelayMs);
  const res = await db.query(
    `update campaigns set ${sets.join(', ')} where user_id = $1 and id = $2 and status = any($3::text[])`,
    p,
  );
  return res.rowCount > 0;
}

/**
 * Moves the campaign from one of `from` to `to`; false when it is missing or in another state.
 * `to` 'resumed' means back to where a pause found it: running if it had started, else scheduled.
 */
export async function transitionCampaign(
  db: Queryable,
  tenantId: number,
  id: number,
  from: readonly CampaignStatus[],
  to: CampaignStatus | 'resumed',
  now: Date,
): Promise<CampaignStatus | null> {
  const target = to === 'resumed' ? `case when started_at is null then 'scheduled' else 'running' end` : '$5::text';
  const res = await db.query<{ status: CampaignStatus }>(
    `update campaigns set status = ${target}, updated_at = $4
      where user_id = $1 and id = $2 and status = any($3::text[]) returning status`,
    to === 'resumed' ? [tenantId, id, from, now] : [tenantId, id, from, now, to],
  );
  return res.rows[0]?.status ?? null;
}

/** Cancels the campaign's messages still waiting; rows already in flight go out as they are. */
export async function cancelCampaignMessages(db: Queryable, campaignId: number, now: Date): Promise<number> {
  const res = await db.query(
    `update messages set status = 'cancelled', error_code = 'campaign_cancelled', finished_at = $2
      where campaign_id = $1 and status in ('pending', 'held')`,
    [campaignId, now],
  );
  return res.rowCount;
}

/**
 * draft -> scheduled; a campaign without a start time gets `now`. False when it is not a draft.
 */
export async function scheduleCampaignRow(db: Queryable, tenantId: number, id: number, now: Date): Promise<boolean> {
  const res = await db.query(
    `update campaigns set status = 'scheduled', starts_at = coalesce(starts_at, $3), updated_at = $3
      where user_id = $1 and id = $2 and status = 'draft'`,
    [tenantId, id, now],
  );
  return res.rowCount > 0;
}

/** A completed campaign whose failed rows were requeued runs again. */
export async function reopenCampaign(db: Queryable, tenantId: number, id: number, now: Date): Promise<boolean> {
  const res = await db.query(
    `update campaigns set status = 'running', completed_at = null, updated_at = $3
      where user_id = $1 and id = $2 and status = 'completed'`,
    [tenantId, id, now],
  );
  return res.rowCount > 0;
}

/**
 * Holds a paused campaign's waiting rows: `held` is outside the dispatcher's claim index, so the
 * pause is exact once this commits (rows already in flight finish as they are).
 */
export async function holdCampaignMessages(db: Queryable, campaignId: number): Promise<number> {
  const res = await db.query(`update messages set status = 'held' where campaign_id = $1 and status = 'pending'`, [campaignId]);
  return res.rowCount;
}

/**
 * Puts a resumed campaign's held rows back, due no earlier than now. They are not spread out here:
 * the dispatcher paces each device (gap, hourly and daily caps) from its own send history, so a
 * resume cannot burst past what the device would have sent anyway.
 */
export async function releaseCampaignMessages(db: Queryable, campaignId: number, now: Date): Promise<number> {
  const res = await db.query(
    `update messages set status = 'pending', not_before = greatest(not_before, $2)
      where campaign_id = $1 and status = 'held'`,
    [campaignId, now],
  );
  return res.rowCount;
}

/**
 * Failed messages of a campaign (optionally of one device) go back to pending, due now; the
 * campaign runs again if it had completed. Rows of leads that opted out or were deleted, and of
 * deleted devices, stay failed. Returns how many were requeued.
 */
export async function retryFailedMessages(db: Queryable, tenantId: number, campaignId: number, deviceId: number | null, now: Date): Promise<number> {
  const res = await db.query(
    `update messages m set status = 'pending', not_before = $4, finished_at = null, error_code = null, error = null
      where m.campaign_id = $1 and m.user_id = $2 and m.status = 'failed' and ($3::bigint is null or m.device_id = $3)
        -- Never to a lead that opted out or was deleted since, nor through a device that is gone
        -- (nothing would claim it).
        and exists (select 1 from leads l where l.id = m.lead_id and l.opted_out_at is null)
        and exists (select 1 from devices d where d.id = m.device_id and d.deleted_at is null)`,
    [campaignId, tenantId, deviceId, now],
  );
  return res.rowCount;
}

export interface DeviceMessageCounts {
  device_id: number;
  counts: MessageCounts;
}

/** The campaign's rows by device and status (one grouped pass). */
export async function campaignDeviceCounts(db: Queryable, tenantId: number, campaignId: number): Promise<DeviceMessageCounts[]> {
  const res = await db.query<{ device_id: number; status: keyof MessageCounts; n: number }>(
    `select device_id, status, count(*)::int as n from messages where campaign_id = $1 and user_id = $2
      group by device_id, status order by device_id`,
    [campaignId, tenantId],
  );
  const by = new Map<number, MessageCounts>();
  for (const r of res.rows) {
    let c = by.get(r.device_id);
    if (!c) by.set(r.device_id, (c = zeroCounts()));
    c[r.status] = r.n;
  }
  return [...by].map(([device_id, counts]) => ({ device_id, counts }));
}

/** Pool leads still waiting for a device, for a pool campaign's statistics. */
export async function poolQueueLength(db: Queryable, campaignId: number): Promise<number> {
  const res = await db.query<{ n: number }>(`select count(*)::int as n from pool_queue where campaign_id = $1`, [campaignId]);
  return res.rows[0]!.n;
}

/** Empties a cancelled or deleted pool campaign's queue. */
export async function clearPoolQueue(db: Queryable, campaignId: number): Promise<number> {
  const res = await db.query(`delete from pool_queue where campaign_id = $1`, [campaignId]);
  return res.rowCount;
}

/** A new draft with the campaign's content and settings; null when the source is not the tenant's. */
export async function cloneCampaignRow(db: Queryable, tenantId: number, id: number, now: Date): Promise<number | null> {
  // The name is cut so the copy still fits the API's 200-character limit.
  const res = await db.query<{ id: number }>(
    `insert into campaigns (user_id, name, body, media, audience, mode, starts_at, window_id, delivery,
                            device_hourly_quota, device_daily_quota, daily_limit, min_delay_ms, max_delay_ms,
                            status, created_at, updated_at)
     select user_id, left(name, 193) || ' (copy)', body, media, audience, mode, starts_at, window_id, delivery,
            device_hourly_quota, device_daily_quota, daily_limit, min_delay_ms, max_delay_ms, 'draft', $3, $3
       from campaigns where user_id = $1 and id = $2
     returning id`,
    [tenantId, id, now],
  );
  return res.rows[0]?.id ?? null;
}

/**
 * Deletes the campaign if it is in one of `deletable`. Its outbox rows stay: they are the history
 * of what was sent, and the outbox has no foreign keys on purpose.
 */
export async function deleteCampaignRow(db: Queryable, tenantId: number, id: number, deletable: readonly CampaignStatus[]): Promise<boolean> {
  const res = await db.query(`delete from campaigns where user_id = $1 and id = $2 and status = any($3::text[])`, [tenantId, id, deletable]);
  return res.rowCount > 0;
}

export const MESSAGE_STATUSES = ['pending', 'held', 'sending', 'sent', 'delivered', 'read', 'failed', 'cancelled', 'skipped', 'unknown'] as const;
export type MessageCounts = Record<(typeof MESSAGE_STATUSES)[number], number>;

export function zeroCounts(): MessageCounts {
  return Object.fromEntries(MESSAGE_STATUSES.map((s) => [s, 0])) as MessageCounts;
}

/** The campaign's outbox rows by status, in one grouped pass over its rows. */
export async function campaignMessageCounts(db: Queryable, tenantId: number, campaignId: number): Promise<MessageCounts> {
  const res = await db.query<{ status: keyof MessageCounts; n: number }>(
    `select status, count(*)::int as n from messages where campaign_id = $1 and user_id = $2 group by status`,
    [campaignId, tenantId],
  );
  const counts = zeroCounts();
  for (const r of res.rows) counts[r.status] = r.n;
  return counts;
}

export interface CampaignFailureRow {
  id: number;
  device_id: number;
  device_name: string | null;
  lead_id: number;
  lead_name: string | null;
  phone: string;
  attempts: number;
  error_code: string | null;
  error: string | null;
  failed_at: Date | null;
}

/**
 * The campaign's failed messages, newest first, `before` an id (keyset). Shape: a backward walk of
 * messages_campaign_failed_idx, which holds failed rows only, so the cost is the page, never the
 * campaign's sent rows.
 */
export async function campaignFailures(db: Queryable, tenantId: number, campaignId: number, before: number | undefined, limit: number): Promise<CampaignFailureRow[]> {
  const res = await db.query<CampaignFailureRow>(
    `select m.id, m.device_id, d.name as device_name, m.lead_id, l.name as lead_name, m.phone, m.attempts,
            m.error_code, m.error, m.finished_at as failed_at
       from messages m
       left join devices d on d.id = m.device_id and d.user_id = $2
       left join leads l on l.id = m.lead_id and l.user_id = $2
      where m.campaign_id = $1 and m.status = 'failed' and m.user_id = $2 and ($3::bigint is null or m.id < $3)
      order by m.id desc
      limit $4`,
    [campaignId, tenantId, before ?? null, limit],
  );
  return res.rows.map((r) => ({ ...r, id: Number(r.id), device_id: Number(r.device_id), lead_id: Number(r.lead_id) }));
}

/** The campaign's failures by reason (error code), most frequent first; same index as campaignFailures. */
export async function campaignFailureReasons(db: Queryable, tenantId: number, campaignId: number): Promise<{ code: string | null; count: number; example: string | null }[]> {
  const res = await db.query<{ code: string | null; count: number; example: string | null }>(
    `select error_code as code, count(*)::int as count, min(error) as example
       from messages
      where campaign_id = $1 and status = 'failed' and user_id = $2
      group by error_code
      order by count(*) desc, error_code nulls last`,
    [campaignId, tenantId],
  );
  return res.rows;
}
