/**
 * A scenario's generated leads, written in one statement per user however many there are. The
 * store's generator always gives a device; a scenario also needs device-less leads of the shared
 * pool, names to personalise with and attributes, so this statement lives with the simulation.
 * Listed leads go through the store's insertLeads.
 */
import type { Queryable } from '../../store/db.js';

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
  /** Trigger tags of leads 1..triggerCount (every lead when triggerCount is absent); none by default. */
  triggers?: readonly string[];
  triggerCount?: number;
}

/**
 * Generates leads 1..count with phones `phonePrefix` + N zero-padded to 8 digits, in one set-based
 * statement, so a million leads cost one round trip. The device spread is the one
 * store/sql/leads.ts generateLeads uses, so a scenario means the same leads either way.
 */
export async function generateScenarioLeads(db: Queryable, userId: number, g: GeneratedLeads, now: Date): Promise<number> {
  const res = await db.query(
    `insert into leads (user_id, device_id, name, phone, niches, status, triggers, attributes, created_at, updated_at)
     select $1,
            case when cardinality($2::bigint[]) = 0 then null
                 else ($2::bigint[])[1 + (g % cardinality($2::bigint[]))] end,
            case when $4::text[] is null then 'Lead ' || g
                 else ($4::text[])[1 + ((g - 1) % cardinality($4::text[]))] end,
            $3 || lpad(g::text, 8, '0'), $5::text[], $6,
            case when g <= $10::bigint then $11::text[] else '{}'::text[] end,
            $7::jsonb, $8, $8
       from generate_series(1, $9::bigint) as g`,
    [
      userId,
      g.deviceIds,
      g.phonePrefix,
      g.names,
      g.niches,
      g.status,
      JSON.stringify(g.attributes),
      now,
      g.count,
      g.triggerCount ?? g.count,
      g.triggers ?? [],
    ],
  );
  return res.rowCount;
}
