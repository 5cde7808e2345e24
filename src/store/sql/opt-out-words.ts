/** A tenant's own opt-out words (users.opt_out_words); null means the deployment's defaults. */
import type { Queryable } from '../db.js';

export async function optOutWordsOf(db: Queryable, userId: number): Promise<string[] | null> {
  const res = await db.query<{ opt_out_words: string[] | null }>(`select opt_out_words from users where id = $1`, [userId]);
  return res.rows[0]?.opt_out_words ?? null;
}

export async function setOptOutWords(db: Queryable, userId: number, words: readonly string[] | null, now: Date): Promise<void> {
  await db.query(`update users set opt_out_words = $2, updated_at = $3 where id = $1`, [userId, words, now]);
}

/** The words of the tenant that owns a device (the reply path knows only the device). */
export async function optOutWordsOfDevice(db: Queryable, deviceId: number): Promise<string[] | null> {
  const res = await db.query<{ opt_out_words: string[] | null }>(
    `select u.opt_out_words from devices d join users u on u.id = d.user_id where d.id = $1`,
    [deviceId],
  );
  return res.rows[0]?.opt_out_words ?? null;
}
