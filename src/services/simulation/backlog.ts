/**
 * What a device already carries when a forecast starts, written into its scratch world: messages
 * of other campaigns and sequences waiting in the outbox (they go first when due), and the sends
 * of the last day (the engine rebuilds each device's gap, hourly and daily counts from them when
 * it takes the device, exactly as after a restart).
 *
 * The rows stand in for the real ones: only what pacing reads is kept (device, window, due time,
 * attempt times). Other work is written as sequence steps with made-up enrollment ids, so no
 * campaign logic (completion, pool lanes, quotas) ever counts it.
 */
import type { Queryable } from '../../store/db.js';

export interface BacklogGroup {
  deviceId: number;
  windowId: number | null;
  notBefore: Date;
  count: number;
}

/**
 * Pending rows, `count` per group, with ids from `firstId` up (as enrollment ids, or as lead ids of
 * `campaignId`'s rows when one is given: a started campaign's unsent messages). Returns how many.
 * One statement whatever the count.
 */
export async function insertBacklog(
  db: Queryable,
  userId: number,
  groups: readonly BacklogGroup[],
  firstId: number,
  now: Date,
  campaignId: number | null = null,
): Promise<number> {
  if (groups.length === 0) return 0;
  const res = await db.query(
    `insert into messages (user_id, device_id, lead_id, phone, campaign_id, enrollment_id, step, body, window_id, status, not_before, created_at)
     select $1, x.device_id, x.k, '+0', $8::bigint,
            case when $8::bigint is null then x.k end, case when $8::bigint is null then 1 end,
            'backlog', x.window_id, 'pending', x.not_before, $2
       from (select u.device_id, u.window_id, u.not_before, $7::bigint + row_number() over (order by u.ord, s.i) - 1 as k
               from unnest($3::bigint[], $4::bigint[], $5::timestamptz[], $6::int[])
                    with ordinality as u(device_id, window_id, not_before, n, ord)
               cross join lateral generate_series(1, u.n) as s(i)) x`,
    [
      userId,
      now,
      groups.map((g) => g.deviceId),
      groups.map((g) => g.windowId),
      groups.map((g) => g.notBefore),
      groups.map((g) => g.count),
      firstId,
      campaignId,
    ],
  );
  return res.rowCount;
}

export interface PastSend {
  deviceId: number;
  at: Date;
}

/** Finished sends at the given instants, with enrollment ids from `firstId` up. */
export async function insertSendHistory(db: Queryable, userId: number, sends: readonly PastSend[], firstId: number): Promise<number> {
  if (sends.length === 0) return 0;
  const res = await db.query(
    `insert into messages (user_id, device_id, lead_id, phone, enrollment_id, step, body, status, attempts,
                           not_before, last_attempt_at, sent_at, finished_at, created_at)
     select $1, u.device_id, $4::bigint + u.ord - 1, '+0', $4::bigint + u.ord - 1, 1, 'history', 'sent', 1, u.at, u.at, u.at, u.at, u.at
       from unnest($2::bigint[], $3::timestamptz[]) with ordinality as u(device_id, at, ord)`,
    [userId, sends.map((s) => s.deviceId), sends.map((s) => s.at), firstId],
  );
  return res.rowCount;
}
