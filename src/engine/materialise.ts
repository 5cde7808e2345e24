/**
 * Materialising a started campaign: its frozen audience becomes outbox rows (owned) or queued pool
 * leads (pool), one chunk of the tenant's leads per transaction.
 *
 * Why chunks: on PGlite every statement runs on the process's only connection, so one statement
 * over a million leads would hold every API request and every claim for tens of seconds. A chunk
 * is one set-based INSERT ... SELECT over a lead-id range (never a round trip per lead). The start
 * plans every chunk as a row; writing a chunk deletes its row in the same transaction, so a crash
 * leaves exactly the unwritten chunks, and no lead is materialised twice. Chunk rows are taken
 * with SKIP LOCKED, so on PostgreSQL several connections (and processes) write chunks at once.
 * The dispatcher may start on the first chunks' rows while later ones are still being written;
 * completion waits for `materialised_at`.
 */
import type { Db, Queryable } from '../store/db.js';
import {
  CHUNK_LEADS,
  chunksRemain,
  completeMaterialisation,
  finishChunk,
  insertOwnedChunk,
  insertPoolChunk,
  shareMaterialising,
  takeChunk,
  type MaterialisingCampaign,
} from '../store/sql/campaigns.js';
import { templateExpression } from '../store/sql/template-expression.js';
import { loadWindows } from '../store/sql/windows.js';
import { parseTemplate } from './content/template.js';
import { nextWindowOpening } from './pacing.js';

export type ChunkResult =
  | { kind: 'chunk'; campaignId: number; mode: 'owned' | 'pool'; added: number }
  /** Chunks remain, but others are writing them right now. */
  | { kind: 'busy'; campaignId: number }
  /** This call saw the last chunk written (maybe its own: `added`) and marked the campaign materialised. */
  | { kind: 'finished'; campaignId: number; mode: 'owned' | 'pool'; added: number; total: number };

/**
 * Leads per chunk. Measured with 1,000,000 leads (docs/benchmarks.md, `bench campaign`): on PGlite
 * a chunk of 25,000 takes ~0.5-0.9 s, which bounds how long an API request can wait behind it.
 */
export const DEFAULT_CHUNK_LEADS = CHUNK_LEADS;

/**
 * Writes the next free chunk of campaign `id`, or finishes it when none is left. Null when the
 * campaign is not being materialised (finished, cancelled, gone).
 */
export async function materialiseNextChunk(db: Db, id: number, now: number): Promise<ChunkResult | null> {
  const written = await db.transaction(async (tx) => {
    const c = await shareMaterialising(tx, id);
    if (!c) return null;
    const chunk = await takeChunk(tx, id);
    if (!chunk) return { kind: 'none' as const };
    const added = c.mode === 'pool' ? await insertPoolChunk(tx, c, chunk.lo, chunk.hi) : await insertOwned(tx, c, chunk.lo, chunk.hi, now);
    await finishChunk(tx, id, chunk.lo);
    return { kind: 'chunk' as const, mode: c.mode, added };
  });
  if (written === null) return null;
  if (written.kind === 'chunk' && (await chunksRemain(db, id))) return { ...written, campaignId: id };
  const done = await completeMaterialisation(db, id, new Date(now));
  if (done) return { kind: 'finished', campaignId: id, mode: done.mode, added: written.kind === 'chunk' ? written.added : 0, total: done.audience };
  if (written.kind === 'chunk') return { ...written, campaignId: id };
  return (await chunksRemain(db, id)) ? { kind: 'busy', campaignId: id } : null;
}

async function insertOwned(tx: Queryable, c: MaterialisingCampaign, lo: number, hi: number, now: number): Promise<number> {
  let notBefore = Math.max(now, c.starts_at.getTime());
  if (c.window_id !== null) {
    const w = (await loadWindows(tx, [c.window_id])).get(c.window_id);
    if (w) notBefore = nextWindowOpening(w, notBefore);
  }
  const body = campaignBodySql(c.body, c.id);
  return insertOwnedChunk(tx, { campaign: c, lo, hi, bodySql: body.sql, bodyParams: body.params, notBefore: new Date(notBefore), now: new Date(now) });
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
 * Returns how many rows (or queued leads) this call wrote; it returns early when another process
 * holds the last chunks.
 */
export async function materialiseAll(db: Db, id: number, now: number): Promise<number> {
  let added = 0;
  for (;;) {
    const r = await materialiseNextChunk(db, id, now);
    if (!r || r.kind === 'busy') return added;
    added += r.added;
    if (r.kind === 'finished') return added;
  }
}
