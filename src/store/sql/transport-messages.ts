/** What a transport may read back from the outbox: a message's body, to send it again on request. */
import type { Queryable } from '../db.js';

/** The body of one of the device's messages (null: not this device's, or gone). */
export async function messageBody(db: Queryable, deviceId: number, messageId: number): Promise<string | null> {
  const res = await db.query<{ body: string }>(`select body from messages where id = $1 and device_id = $2`, [messageId, deviceId]);
  return res.rows[0]?.body ?? null;
}
