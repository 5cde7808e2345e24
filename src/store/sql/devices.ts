/** Device rows as the engine needs them. */
import type { Queryable } from '../db.js';

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

/** Connection status of many devices in one statement (a fleet reconnecting is thousands at once). */
export async function setDeviceStatuses(db: Queryable, changes: readonly DeviceStatusChange[]): Promise<void> {
  if (changes.length === 0) return;
  await db.query(
    `update devices d set status = u.status,
            last_seen_at = case when u.status = 'online' then u.at else d.last_seen_at end
       from unnest($1::bigint[], $2::text[], $3::timestamptz[]) as u(id, status, at)
      where d.id = u.id`,
    [changes.map((c) => c.id), changes.map((c) => c.status), changes.map((c) => new Date(c.at))],
  );
}

export async function pauseDevice(db: Queryable, id: number, until: Date, reason: string): Promise<void> {
  await db.query(
    `update devices set paused_until = greatest(coalesce(paused_until, $2), $2), pause_reason = $3 where id = $1`,
    [id, until, reason],
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
}

/** Creates many devices of one user in one statement; ids come back in input order. */
export async function insertDevices(db: Queryable, userId: number, devices: readonly NewDevice[], now: Date): Promise<number[]> {
  if (devices.length === 0) return [];
  const res = await db.query<{ id: number; ord: number }>(
    `insert into devices (user_id, name, phone, transport, min_delay_ms, max_delay_ms, hourly_limit, daily_limit, created_at)
     select $1, u.name, u.phone, u.transport, u.min_ms, u.max_ms, u.hourly, u.daily, $9
       from unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::int[], $8::int[])
            with ordinality as u(name, phone, transport, min_ms, max_ms, hourly, daily, ord)
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
    ],
  );
  return res.rows.map((r) => r.id).sort((a, b) => a - b);
}
