/** Lead statements the engine needs. */
import type { Queryable } from '../db.js';

/** A recipient wrote to one of the owner's devices: remember when, on that owner's lead. */
export async function recordReply(db: Queryable, deviceId: number, phone: string, at: Date): Promise<number> {
  const res = await db.query(
    `update leads l set last_reply_at = $3, updated_at = $3
       from devices d
      where d.id = $1 and l.user_id = d.user_id and l.phone = $2`,
    [deviceId, phone, at],
  );
  return res.rowCount;
}

export interface NewLead {
  name: string;
  phone: string;
  deviceId: number | null;
  niches: string[];
  status: string;
  triggers: string[];
  source?: string | null;
}

/** Creates leads of one user in one statement; an existing (user, phone) is left as it is. */
export async function insertLeads(db: Queryable, userId: number, leads: readonly NewLead[], now: Date): Promise<number> {
  if (leads.length === 0) return 0;
  const res = await db.query(
    `insert into leads (user_id, device_id, name, phone, niches, status, triggers, source, created_at, updated_at)
     select $1, u.device_id, u.name, u.phone,
            coalesce(array(select jsonb_array_elements_text(u.niches)), '{}'),
            u.status,
            coalesce(array(select jsonb_array_elements_text(u.triggers)), '{}'),
            u.source, $9, $9
       from unnest($2::bigint[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::jsonb[], $8::text[])
            as u(device_id, name, phone, niches, status, triggers, source)
     on conflict (user_id, phone) do nothing`,
    [
      userId,
      leads.map((l) => l.deviceId),
      leads.map((l) => l.name),
      leads.map((l) => l.phone),
      leads.map((l) => JSON.stringify(l.niches)),
      leads.map((l) => l.status),
      leads.map((l) => JSON.stringify(l.triggers)),
      leads.map((l) => l.source ?? null),
      now,
    ],
  );
  return res.rowCount;
}

/**
 * Generates `count` synthetic leads for load tests, spread round-robin over `deviceIds`, with
 * phones `prefix` + a zero-padded number, in one set-based statement.
 */
export async function generateLeads(
  db: Queryable,
  userId: number,
  deviceIds: readonly number[],
  count: number,
  phonePrefix: string,
  firstIndex: number,
  now: Date,
  niches: readonly string[] = [],
  status = 'prospect',
): Promise<number> {
  const res = await db.query(
    `insert into leads (user_id, device_id, name, phone, niches, status, created_at, updated_at)
     select $1, ($2::bigint[])[1 + (g % cardinality($2::bigint[]))], 'Lead ' || g,
            $3 || lpad(g::text, 8, '0'), $6::text[], $7, $5, $5
       from generate_series($4::bigint, $4::bigint + $8::bigint - 1) as g`,
    [userId, deviceIds, phonePrefix, firstIndex, now, niches, status, count],
  );
  return res.rowCount;
}
