/** Team members' device assignments. */
import type { Queryable } from '../db.js';

/** The live devices assigned to each of these members, in one statement for a whole page. */
export async function assignedDevices(db: Queryable, userIds: readonly number[]): Promise<Map<number, number[]>> {
  const res = await db.query<{ user_id: number; device_id: number }>(
    `select dm.user_id, dm.device_id from device_members dm join devices d on d.id = dm.device_id and d.deleted_at is null
      where dm.user_id = any($1::bigint[]) order by dm.user_id, dm.device_id`,
    [userIds],
  );
  const out = new Map<number, number[]>(userIds.map((id) => [id, []]));
  for (const r of res.rows) out.get(r.user_id)!.push(r.device_id);
  return out;
}

/** Replaces a member's assignment with exactly `deviceIds`. */
export async function setAssignedDevices(db: Queryable, userId: number, deviceIds: readonly number[]): Promise<void> {
  await db.query(`delete from device_members where user_id = $1 and device_id <> all($2::bigint[])`, [userId, deviceIds]);
  await db.query(
    `insert into device_members (user_id, device_id) select $1, unnest($2::bigint[]) on conflict do nothing`,
    [userId, deviceIds],
  );
}

/** Which of `ids` are live devices of this tenant. */
export async function liveDeviceIds(db: Queryable, tenantId: number, ids: readonly number[]): Promise<number[]> {
  if (ids.length === 0) return [];
  const res = await db.query<{ id: number }>(
    `select id from devices where user_id = $1 and id = any($2::bigint[]) and deleted_at is null`,
    [tenantId, ids],
  );
  return res.rows.map((r) => r.id);
}
