/** Send windows: immutable rows shared by campaigns, sequences and their messages. */
import type { Queryable } from '../db.js';
import type { SendWindow } from '../../engine/pacing.js';

/**
 * The id of the window with exactly these fields, created if new. DO UPDATE (a no-op write) rather
 * than DO NOTHING + a second SELECT: when two transactions create the same window at once, the
 * loser's SELECT runs on a snapshot that cannot see the winner's row and would return nothing.
 */
export async function ensureWindow(db: Queryable, w: SendWindow): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into send_windows (time_zone, start_minute, end_minute, days) values ($1, $2, $3, $4)
     on conflict (time_zone, start_minute, end_minute, days) do update set days = excluded.days
     returning id`,
    [w.timeZone, w.startMinute, w.endMinute, w.days],
  );
  return res.rows[0]!.id;
}

export async function loadWindows(db: Queryable, ids: readonly number[]): Promise<Map<number, SendWindow>> {
  const res = await db.query<{ id: number; time_zone: string; start_minute: number; end_minute: number; days: number }>(
    'select id, time_zone, start_minute, end_minute, days from send_windows where id = any($1::bigint[])',
    [ids],
  );
  return new Map(
    res.rows.map((r) => [r.id, { timeZone: r.time_zone, startMinute: r.start_minute, endMinute: r.end_minute, days: r.days }]),
  );
}
