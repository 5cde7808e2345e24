/** Send windows: immutable rows shared by campaigns, sequences and their messages. */
import type { Queryable } from '../db.js';
import type { SendWindow } from '../../engine/pacing.js';

/** The id of the window with exactly these fields, created if new. */
export async function ensureWindow(db: Queryable, w: SendWindow): Promise<number> {
  const res = await db.query<{ id: number }>(
    `with ins as (
       insert into send_windows (time_zone, start_minute, end_minute, days) values ($1, $2, $3, $4)
       on conflict (time_zone, start_minute, end_minute, days) do nothing
       returning id)
     select id from ins
     union all
     select id from send_windows where time_zone = $1 and start_minute = $2 and end_minute = $3 and days = $4`,
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
