/** Idempotency keys: the first answer to a key is kept and replayed for its retries. */
import type { Queryable } from '../db.js';

export interface IdempotencyRow {
  request_hash: string;
  status_code: number | null;
  response: unknown;
}

/**
 * Claims a key for a request: null if this request is the first with it, else the first one's row
 * (status_code null while it still runs). The primary key decides between racing retries.
 */
export async function claimIdempotencyKey(db: Queryable, userId: number, key: string, requestHash: string, now: Date): Promise<IdempotencyRow | null> {
  const ins = await db.query(
    `insert into idempotency_keys (user_id, key, request_hash, created_at) values ($1, $2, $3, $4) on conflict do nothing`,
    [userId, key, requestHash, now],
  );
  if (ins.rowCount === 1) return null;
  const res = await db.query<IdempotencyRow>(
    `select request_hash, status_code, response from idempotency_keys where user_id = $1 and key = $2`,
    [userId, key],
  );
  return res.rows[0] ?? null;
}

export async function storeIdempotentResponse(db: Queryable, userId: number, key: string, status: number, response: unknown): Promise<void> {
  await db.query(`update idempotency_keys set status_code = $3, response = $4 where user_id = $1 and key = $2`, [
    userId,
    key,
    status,
    JSON.stringify(response),
  ]);
}

export async function deleteOldIdempotencyKeys(db: Queryable, before: Date): Promise<number> {
  const res = await db.query(`delete from idempotency_keys where created_at < $1`, [before]);
  return res.rowCount;
}
