/** Device rows as the engine needs them. */
import type { Queryable } from '../db.js';
import { queueDeliveries } from './webhooks.js';

export interface EngineDevice {
  id: number;
  user_id: number;
  phone: string | null;
  transport: string;
  min_delay_ms: number;
  max_delay_ms: number;
  hourly_limit: number | null;
  daily_limit: number | null;
  paused_until: Date | null;
  time_zone: string;
}

export async function loadEngineDevices(db: Queryable, ids: readonly number[]): Promise<EngineDevice[]> {
  const res = await db.query<EngineDevice>(
    `select d.id, d.user_id, d.phone, d.transport, d.min_delay_ms, d.max_delay_ms, d.hourly_limit,
            d.daily_limit, d.paused_until, u.time_zone
       from devices d join users u on u.id = d.user_id
      where d.id = any($1::bigint[]) and d.deleted_at is null`,
    [ids],
  );
  return res.rows;
}

export interface DeviceStatusChange {
  id: number;
  status: string;
  at: number;
}

/** The webhook event a device status change announces; `o` is the row before, `e` the change. */
const DEVICE_STATUS_EVENT = `(case when e.status = e.old_status then null
       when e.status = 'online' then 'device.connected'
       when e.status = 'logged_out' then 'device.logged_out'
       when e.status in ('offline', 'replaced') and e.old_status in ('online', 'connecting') then 'device.disconnected' end)`;

const DEVICE_EVENT_DATA = `jsonb_build_object('device_id', e.id, 'phone', e.phone, 'status', e.status, 'previous_status', e.old_status)`;

/**
 * Connection status of many devices in one statement (a fleet reconnecting is thousands at once).
 * A real change queues its webhook event (device.connected, .disconnected, .logged_out) in the
 * same statement; `o`, a second reference to the table, reads each row as it was before.
 */
export async function setDeviceStatuses(db: Queryable, changes: readonly DeviceStatusChange[]): Promise<void> {
  if (changes.length === 0) return;
  await db.query(
    `with w as (
       update devices d set status = u.status,
              last_seen_at = case when u.status = 'online' then u.at else d.last_seen_at end
         from unnest($1::bigint[], $2::text[], $3::timestamptz[]) as u(id, status, at)
         join devices o on o.id = u.id
        where d.id = u.id
       returning d.id, d.user_id, d.phone, d.status, o.status as old_status, u.at),
     ${queueDeliveries('q', { from: 'w', userId: 'e.user_id', type: DEVICE_STATUS_EVENT, data: DEVICE_EVENT_DATA, at: 'e.at', now: '$4::timestamptz' })}
     select 1`,
    [changes.map((c) => c.id), changes.map((c) => c.status), changes.map((c) => new Date(c.at)), new Date(Math.max(...changes.map((c) => c.at)))],
  );
}

/** WhatsApp restricted the device until `until`; queues device.restricted with the change. */
const RESTRICTED = queueDeliveries('q', {
  from: 'w',
  userId: 'e.user_id',
  type: `'device.restricted'`,
  data: `jsonb_build_object('device_id', e.id, 'phone', e.phone, 'until', e.paused_until, 'reason', e.pause_reason)`,
  at: '$4::timestamptz',
  now: '$4::timestamptz',
});

export async function pauseDevice(db: Queryable, id: number, until: Date, reason: string, now: Date): Promise<void> {
  await db.query(
    `with w as (
       update devices set paused_until = greatest(coalesce(paused_until, $2), $2), pause_reason = $3,
              restricted_until = greatest(coalesce(restricted_until, $2), $2)
        where id = $1
       returning id, user_id, phone, paused_until, pause_reason),
     ${RESTRICTED}
     select 1`,
    [id, until, reason, now],
  );
}

export interface NewDevice {
  name: string;
  phone?: string | null;
  transport?: string;
  minDelayMs: number;
  maxDelayMs: number;
  hourlyLimit?: number | null;
  dailyLimit?: number | null;
  /** Paired with an account; default true (a simulator device counts as scanned). */
  linked?: boolean;
}

/** Creates many devices of one user in one statement; ids come back in input order. */
export async function insertDevices(db: Queryable, userId: number, devices: readonly NewDevice[], now: Date): Promise<number[]> {
  if (devices.length === 0) return [];
  const res = await db.query<{ id: number; ord: number }>(
    `insert into devices (user_id, name, phone, transport, min_delay_ms, max_delay_ms, hourly_limit, daily_limit, created_at, linked)
     select $1, u.name, u.phone, u.transport, u.min_ms, u.max_ms, u.hourly, u.daily, $9, u.linked
       from unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[], $10::boolean[])
            with ordinality as u(name, phone, transport, min_ms, max_ms, hourly, daily, linked, ord)
      order by u.ord
     returning id`,
    [
      userId,
      devices.map((d) => d.name),
      devices.map((d) => d.phone ?? null),
      devices.map((d) => d.transport ?? 'simulator'),
      devices.map((d) => d.minDelayMs),
      devices.map((d) => d.maxDelayMs),
      devices.map((d) => d.hourlyLimit ?? null),
      devices.map((d) => d.dailyLimit ?? null),
      now,
      devices.map((d) => d.linked ?? true),
    ],
  );
  return res.rows.map((r) => r.id).sort((a, b) => a - b);
}

export interface DeviceRow {
  id: number;
  name: string;
  phone: string | null;
  transport: string;
  status: string;
  min_delay_ms: number;
  max_delay_ms: number;
  hourly_limit: number | null;
  daily_limit: number | null;
  paused_until: Date | null;
  pause_reason: string | null;
  last_seen_at: Date | null;
  created_at: Date;
  linked: boolean;
}

const deviceColumns = `d.id, d.name, d.phone, d.transport, d.status, d.min_delay_ms, d.max_delay_ms, d.hourly_limit,
  d.daily_limit, d.paused_until, d.pause_reason, d.last_seen_at, d.created_at, d.linked`;

export async function getDevice(db: Queryable, tenantId: number, id: number): Promise<DeviceRow | null> {
  const res = await db.query<DeviceRow>(
    `select ${deviceColumns} from devices d where d.user_id = $1 and d.id = $2 and d.deleted_at is null`,
    [tenantId, id],
  );
  return res.rows[0] ?? null;
}

export async function listDevices(
  db: Queryable,
  tenantId: number,
  scope: number[] | null,
  page: { after?: number | undefined; limit: number; status?: string | undefined },
): Promise<DeviceRow[]> {
  const res = await db.query<DeviceRow>(
    `select ${deviceColumns} from devices d
      where d.user_id = $1 and d.deleted_at is null and d.id > $2
        and ($3::bigint[] is null or d.id = any($3::bigint[]))
        and ($5::text is null or d.status = $5)
      order by d.id limit $4`,
    [tenantId, page.after ?? 0, scope, page.limit, page.status ?? null],
  );
  return res.rows;
}

export interface DeviceChanges {
  name?: string | undefined;
  phone?: string | null | undefined;
  transport?: string | undefined;
  minDelayMs?: number | undefined;
  maxDelayMs?: number | undefined;
  hourlyLimit?: number | null | undefined;
  dailyLimit?: number | null | undefined;
  pausedUntil?: Date | null | undefined;
  pauseReason?: string | null | undefined;
}

export async function updateDevice(db: Queryable, tenantId: number, id: number, c: DeviceChanges): Promise<DeviceRow | null> {
  const p: unknown[] = [tenantId, id];
  const sets: string[] = [];
  const add = (col: string, v: unknown): void => {
    p.push(v);
    sets.push(`${col} = $${p.length}`);
  };
  if (c.name !== undefined) add('name', c.name);
  if (c.phone !== undefined) add('phone', c.phone);
  if (c.transport !== undefined) add('transport', c.transport);
  if (c.minDelayMs !== undefined) add('min_delay_ms', c.minDelayMs);
  if (c.maxDelayMs !== undefined) add('max_delay_ms', c.maxDelayMs);
  if (c.hourlyLimit !== undefined) add('hourly_limit', c.hourlyLimit);
  if (c.dailyLimit !== undefined) add('daily_limit', c.dailyLimit);
  if (c.pausedUntil !== undefined) add('paused_until', c.pausedUntil);
  if (c.pauseReason !== undefined) add('pause_reason', c.pauseReason);
  if (sets.length === 0) sets.push('name = d.name');
  const res = await db.query<DeviceRow>(
    `update devices d set ${sets.join(', ')} where d.user_id = $1 and d.id = $2 and d.deleted_at is null returning ${deviceColumns}`,
    p,
  );
  return res.rows[0] ?? null;
}

/**
 * Marks a device deleted, cancels its waiting messages and hands its leads back to the pool.
 * Returns null when there was no such device, else the enrollments whose step message was
 * cancelled (the caller moves them on: the step is written again through another device).
 */
export async function deleteDevice(db: Queryable, tenantId: number, id: number, now: Date): Promise<number[] | null> {
  const res = await db.query(
    `update devices set deleted_at = $3, status = 'offline' where user_id = $1 and id = $2 and deleted_at is null`,
    [tenantId, id, now],
  );
  if (res.rowCount === 0) return null;
  const cancelled = await db.query<{ enrollment_id: number | null }>(
    // A running pool campaign's rows are left for its allocator, which hands them to another device.
    `update messages set status = 'cancelled', error_code = 'device_deleted', finished_at = $2
      where device_id = $1 and status in ('pending', 'held')
        and (campaign_id is null
             or campaign_id not in (select id from campaigns where mode = 'pool' and status in ('running', 'paused')))
      returning enrollment_id`,
    [id, now],
  );
  await db.query(`update leads set device_id = null, updated_at = $3 where user_id = $1 and device_id = $2`, [tenantId, id, now]);
  await db.query(`delete from device_members where device_id = $1`, [id]);
  return cancelled.rows.map((r) => r.enrollment_id).filter((e): e is number => e !== null);
}

export interface DeviceStats {
  leads: number;
  pending: number;
  sent_today: number;
  failed_today: number;
  last_sent_at: string | null;
}

/** The device's figures; "today" is the owner's local day. */
export async function deviceStats(db: Queryable, id: number, timeZone: string, now: Date): Promise<DeviceStats> {
  const res = await db.query<{ leads: number; pending: number; sent_today: number; failed_today: number; last_sent_at: Date | null }>(
    `with day as (select date_trunc('day', $2::timestamptz at time zone $3) at time zone $3 as start)
     select (select count(*)::int from leads where device_id = $1) as leads,
            (select count(*)::int from messages where device_id = $1 and status = 'pending') as pending,
            (select count(*)::int from messages, day where device_id = $1 and last_attempt_at >= day.start
                and status in ('sent', 'delivered', 'read')) as sent_today,
            (select count(*)::int from messages, day where device_id = $1 and last_attempt_at >= day.start
                and status = 'failed') as failed_today,
            (select max(sent_at) from messages where device_id = $1 and last_attempt_at is not null) as last_sent_at`,
    [id, now, timeZone],
  );
  const r = res.rows[0]!;
  return { leads: r.leads, pending: r.pending, sent_today: r.sent_today, failed_today: r.failed_today, last_sent_at: r.last_sent_at?.toISOString() ?? null };
}

/** Devices (not deleted) by connection status, and how many are paused at `now` (metrics). */
export async function devicesByStatus(db: Queryable, now: Date): Promise<{ byStatus: Record<string, number>; paused: number }> {
  const res = await db.query<{ status: string; n: number; paused: number }>(
    `select status, count(*)::int as n, (count(*) filter (where paused_until > $1))::int as paused
       from devices where deleted_at is null group by status`,
    [now],
  );
  return { byStatus: Object.fromEntries(res.rows.map((r) => [r.status, r.n])), paused: res.rows.reduce((a, r) => a + r.paused, 0) };
}
