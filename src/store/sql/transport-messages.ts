/** What a transport may read back from the outbox: a message's body, to send it again on request. */
import type { Queryable } from '../db.js';

/** The body of one of the device's messages (null: not this device's, or gone). */
export async function messageBody(db: Queryable, deviceId: number, messageId: number): Promise<string | null> {
  const res = await db.query<{ body: string }>(`select body from messages where id = $1 and device_id = $2`, [messageId, deviceId]);
  return res.rows[0]?.body ?? null;
}

/**
 * WhatsApp reported, after accepting it, that a sent message failed (a Cloud API status webhook):
 * the row ends `failed` with WhatsApp's reason. A message already read stays read.
 */
export async function failSentMessage(db: Queryable, deviceId: number, messageId: number, code: string, error: string, at: Date): Promise<number> {
  const res = await db.query(
    `update messages set status = 'failed', error_code = $3, error = $4, finished_at = coalesce(finished_at, $5)
      where id = $1 and device_id = $2 and status in ('sent', 'delivered')`,
    [messageId, deviceId, code, error, at],
  );
  return res.rowCount;
}
