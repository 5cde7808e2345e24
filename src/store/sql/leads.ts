/** Lead statements the engine needs. */
import type { Queryable } from '../db.js';
import { queueDeliveries } from './webhooks.js';

/** The owner's leads with this phone (at most one: phones are unique per owner), by the device written to. */
export async function leadsByDevicePhone(db: Queryable, deviceId: number, phone: string): Promise<number[]> {
  const res = await db.query<{ id: number }>(
    `select l.id from leads l join devices d on d.id = $1 and l.user_id = d.user_id where l.phone = $2`,
    [deviceId, phone],
  );
  return res.rows.map((r) => r.id);
}

const OPTED_OUT = queueDeliveries('q', {
  from: 'w',
  userId: 'e.user_id',
  type: `'lead.opted_out'`,
  data: `jsonb_build_object('lead_id', e.id, 'phone', e.phone, 'device_id', $3::bigint, 'opted_out_at', e.opted_out_at, 'source', 'reply')`,
  at: '$2::timestamptz',
  now: '$2::timestamptz',
});

/**
 * Opts leads out by their own reply on `deviceId` (the first opt-out time stays), queuing
 * lead.opted_out with it. The caller cancels what waits for them.
 */
export async function markOptedOut(db: Queryable, leadIds: readonly number[], at: Date, deviceId: number | null = null): Promise<number> {
  const res = await db.query<{ n: number }>(
    `with w as (
       update leads set opted_out_at = $2, updated_at = $2 where id = any($1::bigint[]) and opted_out_at is null
       returning id, user_id, phone, opted_out_at),
     ${OPTED_OUT}
     select count(*)::int as n from w`,
    [leadIds, at, deviceId],
  );
  return res.rows[0]!.n;
}

/**
 * Queues lead.opted_out for the leads the clause selects that are not opted out yet, as the API
 * opts them out at `now` (one lead or a bulk selection). Run it in the opt-out's transaction,
 * before the leads are written: afterwards they can no longer be told from those opted out before.
 * With no subscription to the event the leads are never read (see queueDeliveries).
 */
export async function queueOptOutsByUser(db: Queryable, where: string, params: unknown[], now: Date): Promise<void> {
  const p = [...params, now];
  const at = `$${p.length}::timestamptz`;
  const queue = queueDeliveries('q', {
    from: 'w',
    userId: 'e.user_id',
    type: `'lead.opted_out'`,
    data: `jsonb_build_object('lead_id', e.id, 'phone', e.phone, 'device_id', e.device_id, 'opted_out_at', ${at}, 'source', 'api')`,
    at,
    now: at,
  });
  await db.query(
    `with w as (select l.id, l.user_id, l.phone, l.device_id from leads l where ${where} and l.opted_out_at is null),
     ${queue}
     select 1`,
    p,
  );
}

const REPLIED = queueDeliveries('q', {
  from: 'w',
  userId: 'e.user_id',
  type: `'lead.replied'`,
  // The reply's text is the recipient's message: never in an event.
  data: `jsonb_build_object('lead_id', e.id, 'phone', e.phone, 'device_id', $1::bigint, 'replied_at', e.last_reply_at,
           'opted_out', e.opted_out_at is not null)`,
  at: '$3::timestamptz',
  now: '$3::timestamptz',
});

/**
 * A recipient wrote to one of the owner's devices: remember when, on that owner's lead, and queue
 * lead.replied.
 */
export async function recordReply(db: Queryable, deviceId: number, phone: string, at: Date): Promise<number> {
  const res = await db.query<{ n: number }>(
    `with w as (
       update leads l set last_reply_at = $3, updated_at = $3
         from devices d
        where d.id = $1 and l.user_id = d.user_id and l.phone = $2
       returning l.id, l.user_id, l.phone, l.last_reply_at, l.opted_out_at),
     ${REPLIED}
     select count(*)::int as n from w`,
    [deviceId, phone, at],
  );
  return res.rows[0]!.n;
}

export interface NewLead {
  name: string;
  phone: string;
  deviceId: number | null;
  niches: string[];
  status: string;
  triggers: string[];
  source?: string | null;
  attributes?: Record<string, unknown>;
}

/**
 * Creates leads of one user in one statement, ids in the list's order; an existing (user, phone)
 * is left as it is.
 */
export async function insertLeads(db: Queryable, userId: number, leads: readonly NewLead[], now: Date): Promise<number> {
  if (leads.length === 0) return 0;
  const res = await db.query(
    `insert into leads (user_id, device_id, name, phone, niches, status, triggers, source, attributes, created_at, updated_at)
     select $1, u.device_id, u.name, u.phone,
            coalesce(array(select jsonb_array_elements_text(u.niches)), '{}'),
            u.status,
            coalesce(array(select jsonb_array_elements_text(u.triggers)), '{}'),
            u.source, coalesce(u.attributes, '{}'), $10, $10
       from unnest($2::bigint[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::jsonb[], $8::text[], $9::jsonb[])
            with ordinality as u(device_id, name, phone, niches, status, triggers, source, attributes, ord)
      order by u.ord
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
      leads.map((l) => (l.attributes === undefined ? null : JSON.stringify(l.attributes))),
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

export interface LeadRow {
  id: number;
  device_id: number | null;
  name: string;
  phone: string;
  niches: string[];
  status: string;
  triggers: string[];
  source: string | null;
  attributes: Record<string, unknown>;
  opted_out_at: Date | null;
  last_reply_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export const leadColumns = `l.id, l.device_id, l.name, l.phone, l.niches, l.status, l.triggers, l.source, l.attributes,
  l.opted_out_at, l.last_reply_at, l.created_at, l.updated_at`;

/**
 * One page of leads, newest first, after the keyset cursor. Measured on a 1,000,000-lead tenant:
 * walking leads_user_id_idx backwards and filtering on the way answers a status + niche filter in
 * about a millisecond, where a bitmap over the GIN index would read every match and sort them.
 */
/**
 * How many leads the clause selects: a campaign's audience as it is narrowed. Exact, so it reads
 * every matching row (an index-only count where the filter allows); measured in docs/benchmarks.md.
 */
export async function countLeads(db: Queryable, where: string, params: unknown[]): Promise<number> {
  const res = await db.query<{ n: number }>(`select count(*)::int as n from leads l where ${where}`, params);
  return res.rows[0]!.n;
}

export async function listLeads(
  db: Queryable,
  where: string,
  params: unknown[],
  before: number | undefined,
  limit: number,
): Promise<LeadRow[]> {
  const p = [...params];
  let clause = where;
  if (before !== undefined) {
    p.push(before);
    clause += ` and l.id < $${p.length}`;
  }
  p.push(limit);
  const res = await db.query<LeadRow>(
    `select ${leadColumns} from leads l where ${clause} order by l.id desc limit $${p.length}`,
    p,
  );
  return res.rows;
}

export async function getLead(db: Queryable, where: string, params: unknown[], id: number): Promise<LeadRow | null> {
  const p = [...params, id];
  const res = await db.query<LeadRow>(`select ${leadColumns} from leads l where ${where} and l.id = $${p.length}`, p);
  return res.rows[0] ?? null;
}

export interface LeadInput {
  name?: string | undefined;
  phone: string;
  deviceId?: number | null | undefined;
  niches?: string[] | undefined;
  status?: string | undefined;
  triggers?: string[] | undefined;
  source?: string | null | undefined;
  attributes?: Record<string, unknown> | undefined;
}

/**
 * Creates a lead, or merges into the tenant's lead with the same phone: niches and triggers are
 * added, attributes merged (new values win), a missing name, source or device filled in; status and
 * opt-out are left as they are. Running it twice with the same input changes nothing the second
 * time, which is what makes the intake endpoint safe to retry. `created` tells which happened.
 */
export async function upsertLead(db: Queryable, tenantId: number, l: LeadInput, now: Date): Promise<LeadRow & { created: boolean }> {
  const res = await db.query<LeadRow & { created: boolean }>(
    `insert into leads as l (user_id, device_id, name, phone, niches, status, triggers, source, attributes, created_at, updated_at)
     values ($1, $2, coalesce($3, ''), $4, $5, coalesce($6, 'prospect'), $7, $8, $9, $10, $10)
     on conflict (user_id, phone) do update set
       name = case when l.name = '' then excluded.name else l.name end,
       device_id = coalesce(l.device_id, excluded.device_id),
       niches = array(select distinct unnest(l.niches || excluded.niches) order by 1),
       triggers = array(select distinct unnest(l.triggers || excluded.triggers) order by 1),
       source = coalesce(l.source, excluded.source),
       attributes = l.attributes || excluded.attributes,
       updated_at = case
         when (l.name = '' and excluded.name <> '') or (l.device_id is null and excluded.device_id is not null)
           or not (excluded.niches <@ l.niches) or not (excluded.triggers <@ l.triggers)
           or (l.source is null and excluded.source is not null) or not (l.attributes @> excluded.attributes)
         then excluded.updated_at else l.updated_at end
     returning ${leadColumns}, (xmax = 0) as created`,
    [
      tenantId,
      l.deviceId ?? null,
      l.name ?? null,
      l.phone,
      dedupe(l.niches ?? []),
      l.status ?? null,
      dedupe(l.triggers ?? []),
      l.source ?? null,
      JSON.stringify(l.attributes ?? {}),
      now,
    ],
  );
  return res.rows[0]!;
}

function dedupe(xs: readonly string[]): string[] {
  return [...new Set(xs)].sort();
}

export interface LeadChanges {
  name?: string | undefined;
  phone?: string | undefined;
  deviceId?: number | null | undefined;
  niches?: string[] | undefined;
  status?: string | undefined;
  triggers?: string[] | undefined;
  source?: string | null | undefined;
  attributes?: Record<string, unknown> | undefined;
  /** true opts the lead out now (if not already); false clears an opt-out. */
  optedOut?: boolean | undefined;
}

export async function updateLead(
  db: Queryable,
  where: string,
  params: unknown[],
  id: number,
  c: LeadChanges,
  now: Date,
): Promise<LeadRow | null> {
  const p = [...params];
  const sets: string[] = [];
  const add = (col: string, v: unknown, cast = ''): void => {
    p.push(v);
    sets.push(`${col} = $${p.length}${cast}`);
  };
  if (c.name !== undefined) add('name', c.name);
  if (c.phone !== undefined) add('phone', c.phone);
  if (c.deviceId !== undefined) add('device_id', c.deviceId, '::bigint');
  if (c.niches !== undefined) add('niches', dedupe(c.niches), '::text[]');
  if (c.status !== undefined) add('status', c.status);
  if (c.triggers !== undefined) add('triggers', dedupe(c.triggers), '::text[]');
  if (c.source !== undefined) add('source', c.source);
  if (c.attributes !== undefined) add('attributes', JSON.stringify(c.attributes), '::jsonb');
  p.push(now);
  const nowParam = `$${p.length}`;
  if (c.optedOut === true) sets.push(`opted_out_at = coalesce(l.opted_out_at, ${nowParam})`);
  if (c.optedOut === false) sets.push(`opted_out_at = null`);
  sets.push(`updated_at = ${nowParam}`);
  p.push(id);
  const res = await db.query<LeadRow>(
    `update leads l set ${sets.join(', ')} where ${where} and l.id = $${p.length} returning ${leadColumns}`,
    p,
  );
  return res.rows[0] ?? null;
}

/** Cancels what waits in the outbox for these leads (opt-out, deletion): one statement. */
export async function cancelPendingForLeads(db: Queryable, leadIds: readonly number[], code: string, now: Date): Promise<number> {
  if (leadIds.length === 0) return 0;
  const res = await db.query(
    `update messages set status = 'cancelled', error_code = $2, finished_at = $3
      where lead_id = any($1::bigint[]) and status in ('pending', 'held')`,
    [leadIds, code, now],
  );
  return res.rowCount;
}

/** Cancels what waits in the outbox for every lead the clause selects. */
export async function cancelPendingForLeadFilter(db: Queryable, where: string, params: unknown[], code: string, now: Date): Promise<number> {
  const p = [...params, code, now];
  const res = await db.query(
    `update messages set status = 'cancelled', error_code = $${p.length - 1}, finished_at = $${p.length}
      where status in ('pending', 'held') and lead_id in (select l.id from leads l where ${where})`,
    p,
  );
  return res.rowCount;
}

/** Deletes the leads the clause selects, and their enrollments (which keep no foreign key). */
export async function deleteLeads(db: Queryable, where: string, params: unknown[]): Promise<number> {
  await db.query(`delete from enrollments where lead_id in (select l.id from leads l where ${where})`, params);
  const res = await db.query(`delete from leads l where ${where}`, params);
  return res.rowCount;
}

export type BulkLeadOp =
  | { op: 'set_status'; value: string }
  | { op: 'add_niches' | 'remove_niches' | 'set_niches' | 'add_triggers' | 'remove_triggers' | 'set_triggers'; values: string[] }
  | { op: 'assign_device'; device_id: number | null }
  | { op: 'opt_out' };

/** Applies one change to every lead the clause selects, in one statement; returns how many. */
export async function bulkUpdateLeads(db: Queryable, where: string, params: unknown[], action: BulkLeadOp, now: Date): Promise<number> {
  const p = [...params];
  const v = (x: unknown): string => {
    p.push(x);
    return `$${p.length}`;
  };
  let set: string;
  switch (action.op) {
    case 'set_status':
      set = `status = ${v(action.value)}`;
      break;
    case 'add_niches':
      set = `niches = array(select distinct unnest(l.niches || ${v(action.values)}::text[]) order by 1)`;
      break;
    case 'remove_niches':
      set = `niches = array(select x from unnest(l.niches) x where x <> all(${v(action.values)}::text[]) order by 1)`;
      break;
    case 'set_niches':
      set = `niches = ${v(dedupe(action.values))}::text[]`;
      break;
    case 'add_triggers':
      set = `triggers = array(select distinct unnest(l.triggers || ${v(action.values)}::text[]) order by 1)`;
      break;
    case 'remove_triggers':
      set = `triggers = array(select x from unnest(l.triggers) x where x <> all(${v(action.values)}::text[]) order by 1)`;
      break;
    case 'set_triggers':
      set = `triggers = ${v(dedupe(action.values))}::text[]`;
      break;
    case 'assign_device':
      set = `device_id = ${v(action.device_id)}::bigint`;
      break;
    case 'opt_out':
      set = `opted_out_at = coalesce(l.opted_out_at, ${v(now)})`;
      break;
  }
  const res = await db.query(`update leads l set ${set}, updated_at = ${v(now)} where ${where}`, p);
  return res.rowCount;
}

/**
 * A realistic population for load tests, in one set-based statement: `count` leads of one tenant
 * with phones `prefix` + 8 digits. Niches, status, device and pool membership are drawn
 * independently (hashes of the row number), as they are in real lists: one of `niches` each (a
 * second on every third lead), 'customer' for about one lead in ten, and about one lead in ten in
 * the shared pool; the rest round-robin over `deviceIds`.
 */
export async function generateLeadPopulation(
  db: Queryable,
  userId: number,
  deviceIds: readonly number[],
  count: number,
  phonePrefix: string,
  niches: readonly string[],
  now: Date,
): Promise<number> {
  const res = await db.query(
    `insert into leads (user_id, device_id, name, phone, niches, status, triggers, created_at, updated_at)
     select $1,
            case when abs(hashint4((g * 4 + 1)::int)) % 10 = 0 then null
                 else ($2::bigint[])[1 + (g % cardinality($2::bigint[]))] end,
            'Lead ' || g, $3 || lpad(g::text, 8, '0'),
            case when g % 3 = 0
                 then array[($5::text[])[1 + abs(hashint4((g * 4 + 2)::int)) % cardinality($5::text[])],
                            ($5::text[])[1 + abs(hashint4((g * 4 + 3)::int)) % cardinality($5::text[])]]
                 else array[($5::text[])[1 + abs(hashint4((g * 4 + 2)::int)) % cardinality($5::text[])]] end,
            case when abs(hashint4((g * 4)::int)) % 10 = 0 then 'customer' else 'prospect' end,
            '{}', $6::timestamptz + make_interval(secs => g::float8 / 1000), $6
       from generate_series(0, $4::bigint - 1) as g`,
    [userId, deviceIds, phonePrefix, count, niches, now],
  );
  return res.rowCount;
}
