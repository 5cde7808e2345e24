/**
 * Materialising a started campaign: its frozen audience becomes outbox rows (owned) or queued pool
 * leads (pool), one chunk of the tenant's leads per transaction.
 *
 * Why chunks: on PGlite every statement runs on the process's only connection, so one statement
 * over a million leads would hold every API request and every claim for tens of seconds. A chunk
 * is one set-based INSERT ... SELECT over a lead-id range (never a round trip per lead), and its
 * cursor advances in the same transaction, so a crash resumes at the next chunk and no lead is
 * materialised twice. The dispatcher may start on the first chunk's rows while later ones are
 * still being written; completion waits for `materialised_at`.
 */
import type { Db, Queryable } from '../store/db.js';
import {
  advanceMaterialisation,
  chunkUpperBound,
  insertOwnedChunk,
  insertPoolChunk,
  lockMaterialising,
  type MaterialisingCampaign,
} from '../store/sql/campaigns.js';
import { templateExpression } from '../store/sql/template-expression.js';
import { loadWindows } from '../store/sql/windows.js';
import { parseTemplate } from './content/template.js';
import { nextWindowOpening } from './pacing.js';

export interface ChunkResult {
  campaignId: number;
  mode: 'owned' | 'pool';
  added: number;
  /** True when this chunk was the last: `total` is then the campaign's whole audience. */
  done: boolean;
  total: number;
}

/**
 * Leads per chunk. Measured with 1,000,000 leads (docs/benchmarks.md, `bench campaign`): on PGlite
 * a chunk of 25,000 takes ~0.5-0.8 s, which bounds how long an API request can wait behind it.
 */
export const DEFAULT_CHUNK_LEADS = 25_000;

/** Materialises the next chunk of campaign `id`; null when it is finished, gone or being done elsewhere. */
export async function materialiseNextChunk(db: Db, id: number, now: number, chunkLeads = DEFAULT_CHUNK_LEADS): Promise<ChunkResult | null> {
  return db.transaction(async (tx) => {
    const c = await lockMaterialising(tx, id);
    if (!c) return null;
    const hi = await chunkUpperBound(tx, c.user_id, c.materialised_through, c.audience_until, chunkLeads);
    const added = c.mode === 'pool' ? await insertPoolChunk(tx, c, c.materialised_through, hi) : await insertOwned(tx, c, hi, now);
    const done = hi >= c.audience_until;
    await advanceMaterialisation(tx, c.id, hi, added, done, new Date(now));
    return { campaignId: c.id, mode: c.mode, added, done, total: c.audience_size + added };
  });
}

async function insertOwned(tx: Queryable, c: MaterialisingCampaign, hi: number, now: number): Promise<number> {
  let notBefore = Math.max(now, c.starts_at.getTime());
  if (c.window_id !== null) {
    const w = (await loadWindows(tx, [c.window_id])).get(c.window_id);
    if (w) notBefore = nextWindowOpening(w, notBefore);
  }
  const body = campaignBodySql(c.body, c.id);
  return insertOwnedChunk(tx, { campaign: c, lo: c.materialised_through, hi, bodySql: body.sql, bodyParams: body.params, notBefore: new Date(notBefore), now: new Date(now) });
}

/**
 * A campaign body as one SQL expression over leads aliased l, with its parameters from $1. The
 * campaign id seeds the spintax choices, so a lead gets the same variant whoever renders it; it is
 * a parameter only when there is spintax (an unused parameter has no type PostgreSQL can infer).
 */
export function campaignBodySql(body: string, campaignId: number): { sql: string; params: unknown[] } {
  const t = parseTemplate(body);
  const params: unknown[] = t.spins > 0 ? [campaignId] : [];
  return { sql: templateExpression(t, params, { lead: 'l', seed: t.spins > 0 ? '$1::bigint' : '0' }), params };
}

/**
 * Materialises a campaign to the end, chunk after chunk (tests, benchmarks, the simulator's setup).
 * Returns how many rows this call wrote; it stops early when another process holds the campaign.
 */
export async function materialiseAll(db: Db, id: number, now: number, chunkLeads = DEFAULT_CHUNK_LEADS): Promise<number> {
  let added = 0;
  for (;;) {
    const r = await materialiseNextChunk(db, id, now, chunkLeads);
    if (!r) return added;
    added += r.added;
    if (r.done) return added;
  }
}
