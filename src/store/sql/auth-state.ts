/**
 * A linked device's WhatsApp auth state: its credentials (kind `creds`, key id '') and every Signal
 * key (kind = the key type: pre-key, session, sender-key, app-state-sync-key, lid-mapping,
 * device-list, tctoken, ...), one row per key, each value sealed by the caller (SecretBox).
 */
import type { Queryable } from '../db.js';

export const CREDS_KIND = 'creds';

export interface AuthRow {
  kind: string;
  key_id: string;
  data: Uint8Array;
}

export async function loadAuthRows(db: Queryable, deviceId: number, kind: string, keyIds: readonly string[]): Promise<AuthRow[]> {
  if (keyIds.length === 0) return [];
  const res = await db.query<AuthRow>(
    `select kind, key_id, data from transport_auth where device_id = $1 and kind = $2 and key_id = any($3::text[])`,
    [deviceId, kind, keyIds],
  );
  return res.rows;
}

export async function loadCredsRow(db: Queryable, deviceId: number): Promise<Uint8Array | null> {
  const res = await db.query<{ data: Uint8Array }>(
    `select data from transport_auth where device_id = $1 and kind = $2 and key_id = ''`,
    [deviceId, CREDS_KIND],
  );
  return res.rows[0]?.data ?? null;
}

export interface AuthWrite {
  kind: string;
  keyId: string;
  /** The sealed value, or null to delete the key. */
  data: Buffer | null;
}

/**
 * Writes and deletes many keys in one statement: Signal writes come in batches (a message to a new
 * contact stores sessions for each of its devices at once), and a statement per key would be a
 * round trip per key on the send path.
 */
export async function writeAuthRows(db: Queryable, deviceId: number, writes: readonly AuthWrite[], now: Date): Promise<void> {
  if (writes.length === 0) return;
  const puts = writes.filter((w) => w.data !== null);
  const dels = writes.filter((w) => w.data === null);
  await db.query(
    `with gone as (
       delete from transport_auth t using unnest($5::text[], $6::text[]) as d(kind, key_id)
        where t.device_id = $1 and t.kind = d.kind and t.key_id = d.key_id
     )
     insert into transport_auth (device_id, kind, key_id, data, updated_at)
     select $1, u.kind, u.key_id, u.data, $7 from unnest($2::text[], $3::text[], $4::bytea[]) as u(kind, key_id, data)
     on conflict (device_id, kind, key_id) do update set data = excluded.data, updated_at = excluded.updated_at`,
    [deviceId, puts.map((w) => w.kind), puts.map((w) => w.keyId), puts.map((w) => w.data), dels.map((w) => w.kind), dels.map((w) => w.keyId), now],
  );
}

/** Forgets everything the device knew about its account. */
export async function deleteAuthState(db: Queryable, deviceId: number): Promise<number> {
  const res = await db.query(`delete from transport_auth where device_id = $1`, [deviceId]);
  return res.rowCount;
}

export async function countAuthRows(db: Queryable, deviceId: number): Promise<number> {
  const res = await db.query<{ n: number }>(`select count(*)::int as n from transport_auth where device_id = $1`, [deviceId]);
  return res.rows[0]!.n;
}
