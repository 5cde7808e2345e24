/** Campaign statements the engine runs: start when due, materialise the outbox, complete. */
import type { Queryable } from '../db.js';
import { queueDeliveries } from './webhooks.js';

export interface Audience {
  niches?: string[];
  statuses?: string[];
  deviceIds?: number[];
  triggers?: string[];
}

export interface DueCampaign {
  id: number;
  user_id: number;
  mode: 'owned' | 'pool';
  /** The frozen audience: the tenant's leads with an id up to this. */
  audience_until: number;
}

/**
 * Plans a started campaign's chunks: one row per `size` of the tenant's leads up to the frozen
 * bound, as (lo, hi] lead-id ranges. One pass over the tenant's (user_id, id) index: measured
 * ~0.4 s for 1,000,000 leads on PGlite.
 */
export async function planChunks(db: Queryable, c: DueCampaign, size: number): Promise<number> {
  if (c.audience_until <= 0) return 0;
  const res = await db.query(
    `insert into campaign_chunks (campaign_id, lo, hi)
     select $1, coalesce(lag(b.id) over (order by b.id), 0), b.id
       from (select id from (select id, row_number() over (order by id) as rn from leads where user_id = $2 and id <= $3) s
              where rn % $4 = 0
             union
             select $3::bigint) b`,
    [c.id, c.user_id, c.audience_until, size],
  );
  return res.rowCount;
}

/**
 * Marks scheduled campaigns whose start has come as running and freezes their audience: leads
 * created after this instant (a higher id) never join. Materialising follows in chunks.
 */
export async function takeDueCampaigns(db: Queryable, now: Date, limit: number): Promise<DueCampaign[]> {
  const res = await db.query<DueCampaign>(
    `update campaigns c set status = 'running', started_at = $1, updated_at = $1,
            audience_until = coalesce((select max(l.id) from leads l where l.user_id = c.user_id), 0)
      where id = any(array(
        select id from campaigns where status = 'scheduled' and starts_at <= $1
         order by starts_at, id limit $2 for update skip locked))
      returning id, user_id, mode, audience_until`,
    [now, limit],
  );
  return res.rows;
}

/**
 * Starts one campaign now, whatever its start time (tests, benchmarks and simulations that drive
 * the engine's steps themselves): the same flip and audience freeze as takeDueCampaigns.
 */
/** Leads per materialisation chunk (see engine/materialise.ts for the measured reason). */
export const CHUNK_LEADS = 25_000;

export async function startCampaignNow(
  db: Queryable,
  id: number,
  now: Date,
  from: readonly string[] = ['draft', 'scheduled'],
  chunkLeads = CHUNK_LEADS,
): Promise<DueCampaign | null> {
  const res = await db.query<DueCampaign>(
    `update campaigns c set status = 'running', started_at = $2, updated_at = $2, starts_at = coalesce(starts_at, $2),
            audience_until = coalesce((select max(l.id) from leads l where l.user_id = c.user_id), 0)
      where id = $1 and status = any($3::text[])
      returning id, user_id, mode, audience_until`,
    [id, now, from],
  );
  const c = res.rows[0];
  if (c) await planChunks(db, c, chunkLeads);
  return c ?? null;
}

/** Campaigns started but not yet fully materialised (a chunked start in progress, or cut by a crash). */
export async function materialisingCampaignIds(db: Queryable): Promise<number[]> {
  const res = await db.query<{ id: number }>(
    `select id from campaigns where status in ('running', 'paused') and materialised_at is null and audience_until is not null order by id`,
  );
  return res.rows.map((r) => r.id);
}

export interface MaterialisingCampaign {
  id: number;
  user_id: number;
  mode: 'owned' | 'pool';
  status: 'running' | 'paused';
  body: string;
  media: unknown;
  audience: Audience;
  window_id: number | null;
  starts_at: Date;
}

/**
 * A campaign whose materialisation is unfinished, share-locked for one chunk: chunk writers run side
 * by side, while a pause or cancel (an UPDATE of the row) waits for the chunks in progress and every
 * later chunk sees its new status. Null when it is finished, stopped or gone.
 */
export async function shareMaterialising(db: Queryable, id: number): Promise<MaterialisingCampaign | null> {
  const res = await db.query<MaterialisingCampaign>(
    `select id, user_id, mode, status, body, media, audience, window_id, starts_at
       from campaigns
      where id = $1 and status in ('running', 'paused') and materialised_at is null and audience_until is not null
      for share`,
    [id],
  );
  return res.rows[0] ?? null;
}

/** The first chunk no one else is writing; deleted by `finishChunk` in the same transaction. */
export async function takeChunk(db: Queryable, campaignId: number): Promise<{ lo: number; hi: number } | null> {
  const res = await db.query<{ lo: number; hi: number }>(
    `select lo, hi from campaign_chunks where campaign_id = $1 order by lo limit 1 for update skip locked`,
    [campaignId],
  );
  return res.rows[0] ?? null;
}

export async function finishChunk(db: Queryable, campaignId: number, lo: number): Promise<void> {
  await db.query(`delete from campaign_chunks where campaign_id = $1 and lo = $2`, [campaignId, lo]);
}

/**
 * Marks the campaign materialised once no chunk is left (waiting for chunks being written), and
 * records its audience: rows written, plus pool leads still queued. Returns it, or null when chunks
 * remain or it is not materialising.
 */
export async function completeMaterialisation(db: Queryable, id: number, now: Date): Promise<{ mode: 'owned' | 'pool'; audience: number } | null> {
  // campaign.started is announced once the audience is known, with the change that records it.
  const res = await db.query<{ mode: 'owned' | 'pool'; audience: number }>(
    `with w as (
       update campaigns c set materialised_at = $2,
              audience_size = (select count(*) from messages m where m.campaign_id = c.id)
                            + (select count(*) from pool_queue q where q.campaign_id = c.id)
        where c.id = $1 and c.materialised_at is null and c.audience_until is not null and c.status in ('running', 'paused')
          and not exists (select 1 from campaign_chunks k where k.campaign_id = c.id)
        returning c.id, c.user_id, c.name, c.mode, c.status, c.audience_size, c.started_at),
     ${queueDeliveries('q', {
       from: 'w',
       userId: 'e.user_id',
       type: `'campaign.started'`,
       data: `jsonb_build_object('campaign_id', e.id, 'name', e.name, 'mode', e.mode, 'status', e.status, 'messages', e.audience_size, 'started_at', e.started_at)`,
       at: '$2::timestamptz',
       now: '$2::timestamptz',
     })}
     select mode, audience_size as audience from w`,
    [id, now],
  );
  return res.rows[0] ?? null;
}

/** Whether chunks remain (written by someone else right now, when takeChunk found none free). */
export async function chunksRemain(db: Queryable, id: number): Promise<boolean> {
  const res = await db.query(`select 1 from campaign_chunks where campaign_id = $1 limit 1`, [id]);
  return res.rowCount > 0;
}

/** The audience clauses of a campaign (leads aliased l); values are appended to `params`. */
function audienceClauses(a: Audience, params: unknown[], byDevice: boolean): string {
  const p = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const c: string[] = [];
  if (a.niches?.length) c.push(`l.niches && ${p(a.niches)}::text[]`);
  if (a.statuses?.length) c.push(`l.status = any(${p(a.statuses)}::text[])`);
  if (a.triggers?.length) c.push(`l.triggers && ${p(a.triggers)}::text[]`);
  if (byDevice && a.deviceIds?.length) c.push(`l.device_id = any(${p(a.deviceIds)}::bigint[])`);
  return c.map((x) => ` and ${x}`).join('');
}

export interface OwnedChunk {
  campaign: MaterialisingCampaign;
  /** Lead ids in (lo, hi]. */
  lo: number;
  hi: number;
  /** SQL text expression for the body over leads aliased l (see template-expression.ts). */
  bodySql: string;
  /** The parameters bodySql refers to, numbered from $1. */
  bodyParams: unknown[];
  notBefore: Date;
  now: Date;
}

/**
 * One chunk of an owned campaign's outbox, in one INSERT ... SELECT: a row per matching lead of
 * the chunk, through the lead's own live device. Rows of a campaign paused meanwhile are born held.
 *
 * Shape, measured: rows go in lead-id order (the leads (user_id, id) range), which keeps the
 * outbox's primary key, the (campaign_id, lead_id) key and the per-lead index append-only; a plain
 * INSERT (no ON CONFLICT) spares each row a speculative insertion, and is safe because the chunk's
 * cursor advances in the same transaction under the campaign's row lock.
 */
export async function insertOwnedChunk(db: Queryable, k: OwnedChunk): Promise<number> {
  const c = k.campaign;
  const p: unknown[] = [...k.bodyParams];
  const at = (v: unknown): string => {
    p.push(v);
    return `$${p.length}`;
  };
  const sql = `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, media, window_id, status, not_before, created_at)
     select l.user_id, l.device_id, l.id, l.phone, ${at(c.id)}::bigint, ${k.bodySql}, ${at(c.media === null ? null : JSON.stringify(c.media))}::jsonb,
            ${at(c.window_id)}::bigint, ${at(c.status === 'paused' ? 'held' : 'pending')}::text, ${at(k.notBefore)}::timestamptz, ${at(k.now)}::timestamptz
       from leads l
       join devices d on d.id = l.device_id and d.deleted_at is null
      where l.user_id = ${at(c.user_id)} and d.user_id = l.user_id
        and l.id > ${at(k.lo)} and l.id <= ${at(k.hi)}
        and l.opted_out_at is null${audienceClauses(c.audience ?? {}, p, true)}
      order by l.id`;
  const res = await db.query(sql, p);
  return res.rowCount;
}

/** One chunk of a pool campaign's frozen audience: matching leads without a device, into its queue. */
export async function insertPoolChunk(db: Queryable, c: MaterialisingCampaign, lo: number, hi: number): Promise<number> {
  const p: unknown[] = [c.id, c.user_id, lo, hi];
  const res = await db.query(
    `insert into pool_queue (campaign_id, lead_id)
     select $1, l.id from leads l
      where l.user_id = $2 and l.id > $3 and l.id <= $4 and l.device_id is null
        and l.opted_out_at is null${audienceClauses(c.audience ?? {}, p, false)}
      order by l.id`,
    p,
  );
  return res.rowCount;
}

/**
 * Running campaigns among `ids` with nothing left waiting or in flight become completed: fully
 * materialised, no pending, held or sending row, and (pool) nothing left in the queue.
 */
export async function completeFinishedCampaigns(db: Queryable, ids: readonly number[], now: Date): Promise<number[]> {
  if (ids.length === 0) return [];
  const res = await db.query<{ id: number }>(
    `with w as (
       update campaigns c set status = 'completed', completed_at = $2, updated_at = $2
        where c.id = any($1::bigint[]) and c.status = 'running'
          and not (c.audience_until is not null and c.materialised_at is null)
          and not exists (
            select 1 from messages m where m.campaign_id = c.id and m.status in ('pending', 'held') and m.campaign_id is not null)
          and not exists (
            select 1 from messages m where m.status = 'sending' and m.campaign_id = c.id)
          and not exists (select 1 from pool_queue q where q.campaign_id = c.id)
        returning c.id, c.user_id, c.name, c.mode, c.audience_size, c.started_at, c.completed_at),
     ${queueDeliveries('q', {
       from: 'w',
       userId: 'e.user_id',
       type: `'campaign.completed'`,
       // The figures come from the outbox rows, read only when someone subscribed.
       data: `jsonb_build_object('campaign_id', e.id, 'name', e.name, 'mode', e.mode, 'messages', e.audience_size,
                'started_at', e.started_at, 'completed_at', e.completed_at,
                'counts', (select coalesce(jsonb_object_agg(k.status, k.n), '{}'::jsonb)
                             from (select status, count(*) as n from messages where campaign_id = e.id group by status) k))`,
       at: '$2::timestamptz',
       now: '$2::timestamptz',
     })}
     select id from w`,
    [ids, now],
  );
  return res.rows.map((r) => r.id);
}

export interface RenderedPreview {
  lead_id: number;
  name: string;
  phone: string;
  text: string;
}

/**
 * A body rendered for some of the tenant's leads by the same SQL expression materialisation uses,
 * so a preview shows exactly what those leads will get (with the campaign's seed).
 */
export async function renderForLeads(
  db: Queryable,
  tenantId: number,
  body: { sql: string; params: unknown[] },
  leadIds: readonly number[] | null,
  limit: number,
): Promise<RenderedPreview[]> {
  const p = [...body.params];
  const at = (v: unknown): string => {
    p.push(v);
    return `$${p.length}`;
  };
  const which = leadIds === null ? '' : ` and l.id = any(${at(leadIds)}::bigint[])`;
  const res = await db.query<RenderedPreview>(
    `select l.id as lead_id, l.name, l.phone, ${body.sql} as text
       from leads l where l.user_id = ${at(tenantId)}${which} order by l.id limit ${at(limit)}`,
    p,
  );
  return res.rows;
}

export interface CampaignGap {
  min_delay_ms: number;
  max_delay_ms: number;
}

/**
 * The campaigns' own gaps, for those among `ids` that override their devices'. Immutable once a
 * campaign has started (it is edited only as a draft or scheduled), so the dispatcher caches them.
 */
export async function loadCampaignGaps(db: Queryable, ids: readonly number[]): Promise<Map<number, CampaignGap | null>> {
  const res = await db.query<{ id: number; min_delay_ms: number | null; max_delay_ms: number | null }>(
    `select id, min_delay_ms, max_delay_ms from campaigns where id = any($1::bigint[])`,
    [ids],
  );
  const out = new Map<number, CampaignGap | null>(ids.map((id) => [id, null]));
  for (const r of res.rows) {
    if (r.min_delay_ms !== null && r.max_delay_ms !== null) out.set(r.id, { min_delay_ms: r.min_delay_ms, max_delay_ms: r.max_delay_ms });
  }
  return out;
}

export async function runningCampaignIds(db: Queryable): Promise<number[]> {
  const res = await db.query<{ id: number }>(`select id from campaigns where status = 'running'`);
  return res.rows.map((r) => r.id);
}

/** When the next scheduled campaign is due, if any. */
export async function nextCampaignStart(db: Queryable): Promise<number | null> {
  const res = await db.query<{ at: Date | null }>(`select min(starts_at) as at from campaigns where status = 'scheduled'`);
  return res.rows[0]?.at?.getTime() ?? null;
}

export interface NewCampaign {
  name: string;
  body: string;
  media?: unknown;
  audience?: Audience;
  startsAt: Date;
  windowId?: number | null;
  delivery?: 'at_most_once' | 'at_least_once';
  status?: 'draft' | 'scheduled';
  mode?: 'owned' | 'pool';
  deviceHourlyQuota?: number | null;
  deviceDailyQuota?: number | null;
  dailyLimit?: number | null;
  minDelayMs?: number | null;
  maxDelayMs?: number | null;
}

/** A campaign row as the engine's tests, benchmarks and simulations write it (the API validates first). */
export async function insertCampaign(db: Queryable, userId: number, c: NewCampaign, now: Date): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into campaigns (user_id, name, body, media, audience, starts_at, window_id, delivery, status, mode,
                            device_hourly_quota, device_daily_quota, daily_limit, min_delay_ms, max_delay_ms, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) returning id`,
    [
      userId,
      c.name,
      c.body,
      c.media === undefined ? null : JSON.stringify(c.media),
      JSON.stringify(c.audience ?? {}),
      c.startsAt,
      c.windowId ?? null,
      c.delivery ?? 'at_most_once',
      c.status ?? 'scheduled',
      c.mode ?? 'owned',
      c.deviceHourlyQuota ?? null,
      c.deviceDailyQuota ?? null,
      c.dailyLimit ?? null,
      c.minDelayMs ?? null,
      c.maxDelayMs ?? null,
      now,
    ],
  );
  return res.rows[0]!.id;
}
