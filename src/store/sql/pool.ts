/**
 * Pool campaign statements: the allocator's reads of devices, lanes and quotas, and its writes
 * (hand queued leads to devices, move rows off devices that went away). Every statement reads only
 * a campaign's few live rows or one device's recent attempts, never the campaign's whole history:
 * a pass runs each time a round of sends finishes, and on a device or campaign change.
 */
import type { Queryable } from '../db.js';
import type { Audience } from './campaigns.js';

export interface PoolCampaign {
  id: number;
  user_id: number;
  body: string;
  media: unknown;
  audience: Audience;
  window_id: number | null;
  starts_at: Date;
  device_hourly_quota: number | null;
  device_daily_quota: number | null;
  daily_limit: number | null;
  time_zone: string;
}

export async function runningPoolCampaignIds(db: Queryable): Promise<number[]> {
  const res = await db.query<{ id: number }>(`select id from campaigns where status = 'running' and mode = 'pool' order by id`);
  return res.rows.map((r) => r.id);
}

/** Locks a running pool campaign for one allocation pass; SKIP LOCKED: one allocator at a time. */
export async function lockPoolCampaign(db: Queryable, id: number): Promise<PoolCampaign | null> {
  const res = await db.query<PoolCampaign>(
    `select c.id, c.user_id, c.body, c.media, c.audience, c.window_id, c.starts_at, c.device_hourly_quota,
            c.device_daily_quota, c.daily_limit, u.time_zone
       from campaigns c join users u on u.id = c.user_id
      where c.id = $1 and c.status = 'running' and c.mode = 'pool'
      for update of c skip locked`,
    [id],
  );
  return res.rows[0] ?? null;
}

export interface PoolDevice {
  id: number;
  /** Usable now: live, online, not paused or restricted (the audience's device list aside). */
  usable: boolean;
  /** Null: the device has no lane in this campaign yet. */
  lane: number | null;
  was_active: boolean;
  /** The campaign's rows on the device that are not finished (pending, held, sending). */
  outstanding: number;
  /** Of those, the ones not yet claimed (and so movable to another device). */
  movable: number;
  /** A pause or restriction still running (the device becomes usable again then). */
  paused_until: Date | null;
}

/**
 * The tenant's devices with their lane and unfinished rows in this campaign, plus devices that
 * left the tenant's live set but still hold rows of it. Unfinished rows come from the campaign's
 * pending/held index and the in-flight index: a handful per device, whatever the campaign's size.
 */
export async function poolDevices(db: Queryable, c: PoolCampaign, now: Date): Promise<PoolDevice[]> {
  const res = await db.query<PoolDevice>(
    `with open as (
       select device_id, count(*)::int as n, count(*) filter (where status = 'pending')::int as movable
         from messages where campaign_id = $1 and status in ('pending', 'held') group by device_id
       union all
       select device_id, count(*)::int, 0 from messages where status = 'sending' and campaign_id = $1 group by device_id),
     open_by_device as (select device_id, sum(n)::int as n, sum(movable)::int as movable from open group by device_id)
     select d.id,
            (d.deleted_at is null and d.status = 'online' and (d.paused_until is null or d.paused_until <= $3)) as usable,
            cd.lane, coalesce(cd.active, false) as was_active,
            coalesce(o.n, 0) as outstanding, coalesce(o.movable, 0) as movable,
            case when d.deleted_at is null and d.paused_until > $3 then d.paused_until end as paused_until
       from devices d
       left join campaign_devices cd on cd.campaign_id = $1 and cd.device_id = d.id
       left join open_by_device o on o.device_id = d.id
      where d.user_id = $2 and (d.deleted_at is null or o.n > 0 or cd.device_id is not null)
      order by d.id`,
    [c.id, c.user_id, now],
  );
  return res.rows;
}

export interface RecentAttempts {
  device_id: number;
  hour_count: number;
  /** The oldest attempt inside the rolling hour: the quota frees one slot an hour after it. */
  hour_oldest: Date | null;
  day_count: number;
}

/**
 * This campaign's attempts on each listed device in the last rolling hour and since the start of
 * the owner's day. Walks each device's (device_id, last_attempt_at) index range, so it costs what
 * the device sent today, and runs only for the few devices about to be given a lead.
 */
export async function recentAttempts(db: Queryable, campaignId: number, deviceIds: readonly number[], hourAgo: Date, dayStart: Date): Promise<RecentAttempts[]> {
  if (deviceIds.length === 0) return [];
  const res = await db.query<RecentAttempts>(
    `select d.id as device_id,
            count(*) filter (where m.last_attempt_at > $3)::int as hour_count,
            min(m.last_attempt_at) filter (where m.last_attempt_at > $3) as hour_oldest,
            count(*) filter (where m.last_attempt_at >= $4)::int as day_count
       from unnest($2::bigint[]) as d(id)
       left join messages m on m.device_id = d.id and m.campaign_id = $1
                           and m.last_attempt_at >= least($3::timestamptz, $4::timestamptz)
      group by d.id`,
    [campaignId, deviceIds, hourAgo, dayStart],
  );
  return res.rows;
}

/** The campaign's attempts since the owner's day started, across devices, for its daily limit. */
export async function campaignAttemptsSince(db: Queryable, campaignId: number, deviceIds: readonly number[], since: Date): Promise<number> {
  if (deviceIds.length === 0) return 0;
  const res = await db.query<{ n: number }>(
    `select count(*)::int as n from messages m
      where m.device_id = any($2::bigint[]) and m.last_attempt_at >= $3 and m.campaign_id = $1`,
    [campaignId, deviceIds, since],
  );
  return res.rows[0]!.n;
}

/** Sets lanes (new devices start level with the others, returning ones catch up) and who is active. */
export async function saveLanes(db: Queryable, campaignId: number, lanes: readonly { deviceId: number; lane: number; active: boolean }[]): Promise<void> {
  if (lanes.length === 0) return;
  await db.query(
    `insert into campaign_devices (campaign_id, device_id, lane, active)
     select $1, u.device_id, u.lane, u.active from unnest($2::bigint[], $3::int[], $4::boolean[]) as u(device_id, lane, active)
     on conflict (campaign_id, device_id) do update set lane = excluded.lane, active = excluded.active`,
    [campaignId, lanes.map((l) => l.deviceId), lanes.map((l) => l.lane), lanes.map((l) => l.active)],
  );
}

export interface Movable {
  id: number;
  lead_id: number;
  device_id: number;
}

/** Unclaimed rows of the campaign on devices that can no longer send them, oldest first. */
export async function movableRows(db: Queryable, campaignId: number, deviceIds: readonly number[]): Promise<Movable[]> {
  if (deviceIds.length === 0) return [];
  const res = await db.query<Movable>(
    `select id, lead_id, device_id from messages
      where campaign_id = $1 and status = 'pending' and device_id = any($2::bigint[]) order by id`,
    [campaignId, deviceIds],
  );
  return res.rows;
}

/**
 * Hands rows to new devices. The lead follows its message (when it was still assigned to the old
 * device by this campaign), and each old device's lane gives the row back.
 */
export async function moveRows(db: Queryable, campaignId: number, moves: readonly { id: number; leadId: number; from: number; to: number }[], notBefore: Date): Promise<number> {
  if (moves.length === 0) return 0;
  const ids = moves.map((m) => m.id);
  const res = await db.query(
    `update messages m set device_id = u.to_device, not_before = $3
       from unnest($1::bigint[], $2::bigint[]) as u(id, to_device)
      where m.id = u.id and m.status = 'pending'`,
    [ids, moves.map((m) => m.to), notBefore],
  );
  await db.query(
    `update leads l set device_id = u.to_device, updated_at = $4
       from unnest($1::bigint[], $2::bigint[], $3::bigint[]) as u(lead_id, from_device, to_device)
      where l.id = u.lead_id and l.device_id = u.from_device`,
    [moves.map((m) => m.leadId), moves.map((m) => m.from), moves.map((m) => m.to), notBefore],
  );
  await shiftLanes(db, campaignId, moves.map((m) => m.from), -1);
  await shiftLanes(db, campaignId, moves.map((m) => m.to), 1);
  return res.rowCount;
}

async function shiftLanes(db: Queryable, campaignId: number, deviceIds: readonly number[], by: 1 | -1): Promise<void> {
  await db.query(
    `update campaign_devices cd set lane = cd.lane + $3 * u.n, allocated = cd.allocated + $3 * u.n
       from (select device_id, count(*)::int as n from unnest($2::bigint[]) as x(device_id) group by device_id) as u
      where cd.campaign_id = $1 and cd.device_id = u.device_id`,
    [campaignId, deviceIds, by],
  );
}

export async function queueIsEmpty(db: Queryable, campaignId: number): Promise<boolean> {
  const res = await db.query(`select 1 from pool_queue where campaign_id = $1 limit 1`, [campaignId]);
  return res.rowCount === 0;
}

export interface AllocatedRow {
  lead_id: number;
  device_id: number;
  status: 'pending' | 'cancelled' | 'skipped';
}

/**
 * Takes the next leads off the campaign's queue, one for each listed device in order, and writes
 * their outbox rows, rendered like an owned campaign's, in one statement (data-modifying CTEs: a
 * pass runs each time a round of sends finishes, and on PGlite each round trip costs ~1 ms). A
 * lead that opted out since the start gets a cancelled row, one a user gave a device of its own
 * since gets a skipped row: every lead of the frozen audience ends as a row the statistics show.
 * Leads that got a pending row now belong to the device that will send to them, and its lane grows.
 */
export async function allocateFromQueue(
  db: Queryable,
  c: PoolCampaign,
  deviceIds: readonly number[],
  body: { sql: string; params: unknown[] },
  notBefore: Date,
  now: Date,
): Promise<AllocatedRow[]> {
  if (deviceIds.length === 0) return [];
  const p: unknown[] = [...body.params];
  const at = (v: unknown): string => {
    p.push(v);
    return `$${p.length}`;
  };
  // One statement (data-modifying CTEs): the rows, the leads' new device and the lanes, in a single
  // round trip.
  const res = await db.query<AllocatedRow>(
    `with popped as (
       delete from pool_queue
        where campaign_id = ${at(c.id)}::bigint and lead_id = any(array(
          select lead_id from pool_queue where campaign_id = ${at(c.id)}::bigint order by lead_id limit ${at(deviceIds.length)}))
       returning lead_id),
     u as (
       select p.lead_id, d.device_id
         from (select lead_id, row_number() over (order by lead_id) as rn from popped) p
         join unnest(${at(deviceIds)}::bigint[]) with ordinality as d(device_id, rn) on d.rn = p.rn),
     ins as (
       insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, media, window_id, status, not_before,
                             created_at, finished_at, error_code)
       select l.user_id, u.device_id, l.id, l.phone, ${at(c.id)}::bigint, ${body.sql}, ${at(c.media === null ? null : JSON.stringify(c.media))}::jsonb,
              ${at(c.window_id)}::bigint, s.status, ${at(notBefore)}::timestamptz, ${at(now)}::timestamptz,
              case when s.status = 'pending' then null else ${at(now)}::timestamptz end,
              case s.status when 'cancelled' then 'opted_out' when 'skipped' then 'lead_has_device' end
         from u
         join leads l on l.id = u.lead_id and l.user_id = ${at(c.user_id)}
         cross join lateral (select case when l.opted_out_at is not null then 'cancelled'
                                         when l.device_id is not null then 'skipped'
                                         else 'pending' end as status) s
       returning lead_id, device_id, status),
     owned as (
       update leads l set device_id = ins.device_id, updated_at = ${at(now)}::timestamptz
         from ins where ins.status = 'pending' and l.id = ins.lead_id and l.device_id is null),
     lanes as (
       update campaign_devices cd set lane = cd.lane + n.k, allocated = cd.allocated + n.k
         from (select device_id, count(*)::int as k from ins where status = 'pending' group by device_id) as n
        where cd.campaign_id = ${at(c.id)}::bigint and cd.device_id = n.device_id)
     select lead_id, device_id, status from ins`,
    p,
  );
  return res.rows;
}
