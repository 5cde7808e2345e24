/** Failed-login counters, one row per key, in the database so every process shares them. */
import type { Queryable } from '../db.js';

/** The latest lock among `keys` still in force at `now`, if any. */
export async function lockedUntil(db: Queryable, keys: readonly string[], now: Date): Promise<Date | null> {
  const res = await db.query<{ until: Date | null }>(
    `select max(locked_until) as until from login_throttle where key = any($1::text[]) and locked_until > $2`,
    [keys, now],
  );
  return res.rows[0]?.until ?? null;
}

/**
 * Counts one failure for each key; a key whose window has passed starts a new one. A key reaching
 * its limit is locked until `now + lockMs`.
 */
export async function recordFailures(
  db: Queryable,
  keys: readonly { key: string; limit: number }[],
  now: Date,
  windowMs: number,
  lockMs: number,
): Promise<void> {
  await db.query(
    `insert into login_throttle as t (key, failures, window_started_at, locked_until)
     select k.key, 1, $3::timestamptz, case when k.lim <= 1 then $3::timestamptz + make_interval(secs => $5::float8 / 1000) end
       from unnest($1::text[], $2::int[]) as k(key, lim)
     on conflict (key) do update set
       failures = case when t.window_started_at <= $3::timestamptz - make_interval(secs => $4::float8 / 1000) then 1 else t.failures + 1 end,
       window_started_at = case when t.window_started_at <= $3::timestamptz - make_interval(secs => $4::float8 / 1000)
                                then $3::timestamptz else t.window_started_at end,
       locked_until = case
         when (case when t.window_started_at <= $3::timestamptz - make_interval(secs => $4::float8 / 1000) then 1 else t.failures + 1 end)
              >= (select k2.lim from unnest($1::text[], $2::int[]) as k2(key, lim) where k2.key = t.key)
         then $3::timestamptz + make_interval(secs => $5::float8 / 1000)
         else t.locked_until end`,
    [keys.map((k) => k.key), keys.map((k) => k.limit), now, windowMs, lockMs],
  );
}

export async function clearFailures(db: Queryable, key: string): Promise<void> {
  await db.query(`delete from login_throttle where key = $1`, [key]);
}

export async function deleteStaleThrottles(db: Queryable, before: Date): Promise<number> {
  const res = await db.query(
    `delete from login_throttle where window_started_at < $1 and (locked_until is null or locked_until < $1)`,
    [before],
  );
  return res.rowCount;
}
