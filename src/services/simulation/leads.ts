/**
 * A scenario's leads, written in one statement per user however many there are. The store's own
 * lead statements cover the API's needs (one lead at a time with attributes, or generated leads
 * that always have a device); a scenario also needs device-less leads of the shared pool, names to
 * personalise with and attributes in bulk, so these two statements live with the simulation.
 */
import type { Queryable } from '../../store/db.js';

export interface ScenarioLeadRow {
  name: string;
  phone: string;
  /** null: a lead of the shared pool. */
  deviceId: number | null;
  niches: string[];
  status: string;
  triggers: string[];
  attributes: Record<string, unknown>;
}

/** Inserts an explicit list of one user's leads; ids follow the list's order. */
export async function insertScenarioLeads(db: Queryable, userId: number, leads: readonly ScenarioLeadRow[], now: Date): Promise<number> {
  if (leads.length === 0) return 0;
  const res = await db.query(
    `insert into leads (user_id, device_id, name, phone, niches, status, triggers, attributes, created_at, updated_at)
     select $1, u.device_id, u.name, u.phone,
            coalesce(array(select jsonb_array_elements_text(u.niches)), '{}'),
            u.status,
            coalesce(array(select jsonb_array_elements_text(u.triggers)), '{}'),
            u.attributes, $9, $9
       from unnest($2::bigint[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::jsonb[], $8::jsonb[])
            with ordinality as u(device_id, name, phone, niches, status, triggers, attributes, ord)
      order by u.ord`,
    [
      userId,
      leads.map((l) => l.deviceId),
      leads.map((l) => l.name),
      leads.map((l) => l.phone),
      leads.map((l) => JSON.stringify(l.niches)),
      leads.map((l) => l.status),
      leads.map((l) => JSON.stringify(l.triggers)),
      leads.map((l) => JSON.stringify(l.attributes)),
      now,
    ],
  );
  return res.rowCount;
}

export interface GeneratedLeads {
  count: number;
  phonePrefix: string;
  /** Round-robin targets: lead N goes to deviceIds[N mod length]. Empty: pool leads (no device). */
  deviceIds: readonly number[];
  /** Lead N is named names[(N - 1) mod length]; null: `Lead N`. */
  names: readonly string[] | null;
  niches: readonly string[];
  status: string;
  attributes: Record<string, unknown>;
}

/**
 * Generates leads 1..count with phones `phonePrefix` + N zero-padded to 8 digits, in one set-based
 * statement, so a million leads cost one round trip. The device spread is the one
 * store/sql/leads.ts generateLeads uses, so a scenario means the same leads either way.
 */
export async function generateScenarioLeads(db: Queryable, userId: number, g: GeneratedLeads, now: Date): Promise<number> {
  const res = await db.query(
    `insert into leads (user_id, device_id, name, phone, niches, status, attributes, created_at, updated_at)
     select $1,
            case when cardinality($2::bigint[]) = 0 then null
                 else ($2::bigint[])[1 + (g % cardinality($2::bigint[]))] end,
            case when $4::text[] is null then 'Lead ' || g
                 else ($4::text[])[1 + ((g - 1) % cardinality($4::text[]))] end,
            $3 || lpad(g::text, 8, '0'), $5::text[], $6, $7::jsonb, $8, $8
       from generate_series(1, $9::bigint) as g`,
    [userId, g.deviceIds, g.phonePrefix, g.names, g.niches, g.status, JSON.stringify(g.attributes), now, g.count],
  );
  return res.rowCount;
}
