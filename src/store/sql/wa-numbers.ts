/**
 * Whether a number is on WhatsApp, as one of the tenant's devices last found out (onWhatsApp), kept
 * until it expires so a campaign to 10,000 numbers asks WhatsApp once per number, not per message.
 */
import type { Queryable } from '../db.js';

export interface WaNumber {
  on_whatsapp: boolean;
  jid: string | null;
}

export async function cachedWaNumber(db: Queryable, tenantId: number, phone: string, now: Date): Promise<WaNumber | null> {
  const res = await db.query<WaNumber>(
    `select on_whatsapp, jid from wa_numbers where user_id = $1 and phone = $2 and expires_at > $3`,
    [tenantId, phone, now],
  );
  return res.rows[0] ?? null;
}

export async function rememberWaNumber(db: Queryable, tenantId: number, phone: string, n: WaNumber, now: Date, expiresAt: Date): Promise<void> {
  await db.query(
    `insert into wa_numbers (user_id, phone, on_whatsapp, jid, checked_at, expires_at) values ($1, $2, $3, $4, $5, $6)
     on conflict (user_id, phone) do update set on_whatsapp = $3, jid = $4, checked_at = $5, expires_at = $6`,
    [tenantId, phone, n.on_whatsapp, n.jid, now, expiresAt],
  );
}
