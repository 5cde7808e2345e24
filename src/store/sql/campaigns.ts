/** Campaign statements the engine runs: start when due, materialise the outbox, complete. */
import type { Queryable } from '../db.js';

export interface Audience {
  niches?: string[];
  statuses?: string[];
  deviceIds?: number[];
  triggers?: string[];
}

export interface DueCampaign {
  id: number;
  user_id: number;
  starts_at: Date;
  window_id: number | null;
  audience: Audience;
}

/** Marks scheduled campaigns whose start has come as running; returns them (to materialise). */
export async function takeDueCampaigns(db: Queryable, now: Date, limit: number): Promise<DueCampaign[]> {
  const res = await db.query<DueCampaign>(
    `update campaigns set status = 'running', started_at = $1, updated_at = $1
      where id = any(array(
        select id from campaigns where status = 'scheduled' and starts_at <= $1
         order by starts_at, id limit $2 for update skip locked))
      returning id, user_id, starts_at, window_id, audience`,
    [now, limit],
  );
  return res.rows;
}

/**
 * Freezes the audience into the outbox with one set-based statement: one row per matching lead,
 * through the lead's own device. The unique (campaign_id, lead_id) key makes running it twice
 * harmless. Opted-out leads and leads without a live device of the same owner are left out.
 */
export async function materialiseCampaign(db: Queryable, c: DueCampaign, notBefore: Date, now: Date): Promise<number> {
  const a = c.audience ?? {};
  const res = await db.query(
    `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, media, window_id, not_before, created_at)
     select l.user_id, l.device_id, l.id, l.phone, c.id, c.body, c.media, c.window_id, $2, $3
       from campaigns c
       join leads l on l.user_id = c.user_id
       join devices d on d.id = l.device_id and d.user_id = c.user_id and d.deleted_at is null
      where c.id = $1
        and l.opted_out_at is null
        and ($4::text[] is null or l.niches && $4::text[])
        and ($5::text[] is null or l.status = any($5::text[]))
        and ($6::bigint[] is null or l.device_id = any($6::bigint[]))
        and ($7::text[] is null or l.triggers && $7::text[])
     on conflict do nothing`,
    [c.id, notBefore, now, a.niches ?? null, a.statuses ?? null, a.deviceIds ?? null, a.triggers ?? null],
  );
  return res.rowCount;
}

/** Running campaigns among `ids` with nothing left pending or in flight become completed. */
export async function completeFinishedCampaigns(db: Queryable, ids: readonly number[], now: Date): Promise<number[]> {
  if (ids.length === 0) return [];
  const res = await db.query<{ id: number }>(
    `update campaigns c set status = 'completed', completed_at = $2, updated_at = $2
      where c.id = any($1::bigint[]) and c.status = 'running'
        and not exists (
          select 1 from messages m where m.campaign_id = c.id and m.status = 'pending' and m.campaign_id is not null)
        and not exists (
          select 1 from messages m where m.status = 'sending' and m.campaign_id = c.id)
      returning c.id`,
    [ids, now],
  );
  return res.rows.map((r) => r.id);
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
}

export async function insertCampaign(db: Queryable, userId: number, c: NewCampaign, now: Date): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into campaigns (user_id, name, body, media, audience, starts_at, window_id, delivery, status, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) returning id`,
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
      now,
    ],
  );
  return res.rows[0]!.id;
}
