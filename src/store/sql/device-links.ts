/**
 * Link attempts (device_links) and whether a device is linked (devices.linked). The API writes a
 * request, a cancel, a logout or a simulated scan; the process holding the device's lease writes
 * what its transport reports, but only for the attempt it is running and only while that attempt
 * is still in progress, so a late QR code never overwrites a newer request or a finished link.
 */
import type { Queryable } from '../db.js';

export type LinkStateName = 'idle' | 'starting' | 'waiting_for_scan' | 'waiting_for_code' | 'linked' | 'failed' | 'expired';

export const LINK_IN_PROGRESS: readonly LinkStateName[] = ['starting', 'waiting_for_scan', 'waiting_for_code'];

export interface LinkRow {
  device_id: number;
  user_id: number;
  attempt: number;
  state: LinkStateName;
  method: 'qr' | 'pairing_code' | null;
  phone: string | null;
  qr: string | null;
  pairing_code: string | null;
  expires_at: Date | null;
  error_code: string | null;
  error_message: string | null;
  updated_at: Date;
}

const columns = `l.device_id, l.user_id, l.attempt, l.state, l.method, l.phone, l.qr, l.pairing_code, l.expires_at,
  l.error_code, l.error_message, l.updated_at`;

export async function getLink(db: Queryable, deviceId: number): Promise<LinkRow | null> {
  const res = await db.query<LinkRow>(`select ${columns} from device_links l where l.device_id = $1`, [deviceId]);
  return res.rows[0] ?? null;
}

/** A new attempt (replacing any other): `starting`, with nothing shown yet. */
export async function requestLink(
  db: Queryable,
  tenantId: number,
  deviceId: number,
  method: 'qr' | 'pairing_code',
  phone: string | null,
  now: Date,
): Promise<LinkRow> {
  const res = await db.query<LinkRow>(
    `insert into device_links as l (device_id, user_id, attempt, state, method, phone, updated_at)
     values ($1, $2, 1, 'starting', $3, $4, $5)
     on conflict (device_id) do update
       set attempt = l.attempt + 1, state = 'starting', method = $3, phone = $4, qr = null, pairing_code = null,
           expires_at = null, error_code = null, error_message = null, updated_at = $5
     returning ${columns}`,
    [deviceId, tenantId, method, phone, now],
  );
  return res.rows[0]!;
}

/** Back to idle (a cancel, a logout): the running attempt, if any, is superseded. */
export async function resetLink(db: Queryable, deviceId: number, now: Date): Promise<LinkRow | null> {
  const res = await db.query<LinkRow>(
    `update device_links l set attempt = l.attempt + 1, state = 'idle', method = null, phone = null, qr = null,
            pairing_code = null, expires_at = null, error_code = null, error_message = null, updated_at = $2
      where l.device_id = $1
      returning ${columns}`,
    [deviceId, now],
  );
  return res.rows[0] ?? null;
}

export interface LinkChange {
  state: Exclude<LinkStateName, 'idle' | 'starting'>;
  qr?: string | null;
  pairingCode?: string | null;
  expiresAt?: Date | null;
  errorCode?: string | null;
  errorMessage?: string | null;
}

/**
 * What the transport reported for `attempt`, if that attempt is still the current one and still in
 * progress; null otherwise (nothing changed). A QR keeps the method's pairing code and vice versa.
 */
export async function applyLinkChange(db: Queryable, deviceId: number, attempt: number, c: LinkChange, now: Date): Promise<LinkRow | null> {
  const res = await db.query<LinkRow>(
    `update device_links l set state = $3, qr = $4, pairing_code = $5, expires_at = $6, error_code = $7, error_message = $8,
            updated_at = $9
      where l.device_id = $1 and l.attempt = $2 and l.state in ('starting', 'waiting_for_scan', 'waiting_for_code')
      returning ${columns}`,
    [deviceId, attempt, c.state, c.qr ?? null, c.pairingCode ?? null, c.expiresAt ?? null, c.errorCode ?? null, c.errorMessage ?? null, now],
  );
  return res.rows[0] ?? null;
}

/** A simulated phone scans the QR code on show: null when no QR code is showing. */
export async function completeScan(db: Queryable, deviceId: number, now: Date): Promise<LinkRow | null> {
  const res = await db.query<LinkRow>(
    `update device_links l set state = 'linked', qr = null, pairing_code = null, expires_at = null, updated_at = $2
      where l.device_id = $1 and l.state = 'waiting_for_scan'
      returning ${columns}`,
    [deviceId, now],
  );
  return res.rows[0] ?? null;
}

/** Links in progress on these devices (a process that takes a device over runs them again). */
export async function linksInProgress(db: Queryable, deviceIds: readonly number[]): Promise<LinkRow[]> {
  if (deviceIds.length === 0) return [];
  const res = await db.query<LinkRow>(
    `select ${columns} from device_links l join devices d on d.id = l.device_id and d.deleted_at is null
      where l.device_id = any($1::bigint[]) and l.state in ('starting', 'waiting_for_scan', 'waiting_for_code')
      order by l.device_id`,
    [deviceIds],
  );
  return res.rows;
}

/** The device is paired (its phone becomes the linked account's number, when known). */
export async function markLinked(db: Queryable, deviceId: number, phone: string | null): Promise<void> {
  await db.query(`update devices set linked = true, phone = coalesce($2, phone) where id = $1`, [deviceId, phone]);
}

/** The device lost its account (a logout, from here or from the phone). */
export async function markUnlinked(db: Queryable, deviceId: number, status: 'logged_out' | null): Promise<void> {
  await db.query(`update devices set linked = false, status = coalesce($2, status) where id = $1`, [deviceId, status]);
}

export async function isDeviceLinked(db: Queryable, deviceId: number): Promise<boolean> {
  const res = await db.query<{ linked: boolean }>(`select linked from devices where id = $1 and deleted_at is null`, [deviceId]);
  return res.rows[0]?.linked ?? false;
}

/** A device as the link runner needs it, whatever its tenant (the runner serves its lease's devices). */
export interface LinkDevice {
  id: number;
  user_id: number;
  phone: string | null;
  transport: string;
  linked: boolean;
}

export async function loadLinkDevice(db: Queryable, deviceId: number): Promise<LinkDevice | null> {
  const res = await db.query<LinkDevice>(
    `select id, user_id, phone, transport, linked from devices where id = $1 and deleted_at is null`,
    [deviceId],
  );
  return res.rows[0] ?? null;
}
