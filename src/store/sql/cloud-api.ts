/** Cloud API phone numbers: the phone-number id (plain, the webhook routes by it) and sealed secrets. */
import type { Queryable } from '../db.js';

export interface CloudNumberRow {
  device_id: number;
  user_id: number;
  phone_number_id: string;
  secrets: Uint8Array;
  updated_at: Date;
}

export async function saveCloudNumber(
  db: Queryable,
  tenantId: number,
  deviceId: number,
  phoneNumberId: string,
  verifyTokenHash: string | null,
  secrets: Buffer,
  now: Date,
): Promise<CloudNumberRow> {
  const res = await db.query<CloudNumberRow>(
    `insert into cloud_api_numbers (device_id, user_id, phone_number_id, verify_token_hash, secrets, updated_at)
     values ($1, $2, $3, $4, $5, $6)
     on conflict (device_id) do update set phone_number_id = $3, verify_token_hash = $4, secrets = $5, updated_at = $6
     returning device_id, user_id, phone_number_id, secrets, updated_at`,
    [deviceId, tenantId, phoneNumberId, verifyTokenHash, secrets, now],
  );
  return res.rows[0]!;
}

export async function getCloudNumber(db: Queryable, deviceId: number): Promise<CloudNumberRow | null> {
  const res = await db.query<CloudNumberRow>(
    `select c.device_id, c.user_id, c.phone_number_id, c.secrets, c.updated_at
       from cloud_api_numbers c join devices d on d.id = c.device_id and d.deleted_at is null
      where c.device_id = $1`,
    [deviceId],
  );
  return res.rows[0] ?? null;
}

/** The live Cloud API devices of these phone-number ids (a webhook names its numbers). */
export async function cloudNumbersByPhoneId(db: Queryable, phoneNumberIds: readonly string[]): Promise<CloudNumberRow[]> {
  if (phoneNumberIds.length === 0) return [];
  const res = await db.query<CloudNumberRow>(
    `select c.device_id, c.user_id, c.phone_number_id, c.secrets, c.updated_at
       from cloud_api_numbers c join devices d on d.id = c.device_id and d.deleted_at is null and d.transport = 'cloud_api'
      where c.phone_number_id = any($1::text[])`,
    [phoneNumberIds],
  );
  return res.rows;
}

export async function hasVerifyToken(db: Queryable, hash: string): Promise<boolean> {
  const res = await db.query(
    `select 1 from cloud_api_numbers c join devices d on d.id = c.device_id and d.deleted_at is null where c.verify_token_hash = $1 limit 1`,
    [hash],
  );
  return res.rowCount > 0;
}

export async function deleteCloudNumber(db: Queryable, deviceId: number): Promise<void> {
  await db.query(`delete from cloud_api_numbers where device_id = $1`, [deviceId]);
}
