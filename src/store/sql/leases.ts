/** Device leases: which process serves which device, for how long. One row per device. */
import type { Queryable } from '../db.js';

/**
 * Takes up to `limit` devices whose lease is free: never leased, or expired (its owner's, too: an
 * owner that stalled past its TTL takes its devices back like anyone else). The upsert's WHERE makes
 * the takeover atomic when two processes race for the same device. `exclusive` is for a store only
 * one process can open (PGlite): a lease another owner left there is dead by construction and need
 * not be waited out.
 */
export async function acquireLeases(
  db: Queryable,
  owner: string,
  now: Date,
  expiresAt: Date,
  limit: number,
  exclusive: boolean,
): Promise<number[]> {
  const res = await db.query<{ device_id: number }>(
    `insert into device_leases as l (device_id, owner, acquired_at, expires_at)
     select d.id, $1, $2, $3
       from devices d
      where d.deleted_at is null
        and not exists (
          select 1 from device_leases x
           where x.device_id = d.id and x.expires_at > $2 and not ($5::boolean and x.owner <> $1))
      order by d.id
      limit $4
     on conflict (device_id) do update
        set owner = excluded.owner, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
      where l.expires_at <= $2 or ($5::boolean and l.owner <> excluded.owner)
     returning device_id`,
    [owner, now, expiresAt, limit, exclusive],
  );
  return res.rows.map((r) => r.device_id);
}

/** Extends every lease `owner` holds; returns the devices it still holds. */
export async function renewLeases(db: Queryable, owner: string, now: Date, expiresAt: Date): Promise<number[]> {
  const res = await db.query<{ device_id: number }>(
    `update device_leases set expires_at = $3 where owner = $1 and expires_at > $2 returning device_id`,
    [owner, now, expiresAt],
  );
  return res.rows.map((r) => r.device_id);
}

export async function releaseLeases(db: Queryable, owner: string, deviceIds?: readonly number[]): Promise<void> {
  if (deviceIds) {
    await db.query('delete from device_leases where owner = $1 and device_id = any($2::bigint[])', [owner, deviceIds]);
  } else {
    await db.query('delete from device_leases where owner = $1', [owner]);
  }
}
