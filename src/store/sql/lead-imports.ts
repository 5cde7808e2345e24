/**
 * Lead import jobs, the rows they refuse, and the set-based statements that write a batch of
 * imported leads. A job row is the only shared state between the process running an import and
 * anyone reading its progress (the same process, or another one on PostgreSQL).
 */
import type { Queryable } from '../db.js';

export type ImportStatus = 'queued' | 'running' | 'completed' | 'failed';

export interface ImportRow {
  id: number;
  user_id: number;
  created_by: number | null;
  file_name: string | null;
  file_bytes: number;
  on_duplicate: 'skip' | 'update';
  options: Record<string, unknown>;
  status: ImportStatus;
  rows_total: number;
  inserted: number;
  updated: number;
  skipped: number;
  failed: number;
  bytes_read: number;
  error_code: string | null;
  error: string | null;
  owner: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

const importColumns = `i.id, i.user_id, i.created_by, i.file_name, i.file_bytes, i.on_duplicate, i.options, i.status,
  i.rows_total, i.inserted, i.updated, i.skipped, i.failed, i.bytes_read, i.error_code, i.error, i.owner,
  i.created_at, i.started_at, i.finished_at, i.updated_at`;

export interface NewImport {
  tenantId: number;
  createdBy: number;
  fileName: string | null;
  fileBytes: number;
  onDuplicate: 'skip' | 'update';
  options: Record<string, unknown>;
  owner: string;
}

export async function insertImport(db: Queryable, i: NewImport, now: Date): Promise<ImportRow> {
  const res = await db.query<ImportRow>(
    `insert into lead_imports as i (user_id, created_by, file_name, file_bytes, on_duplicate, options, owner, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $8)
     returning ${importColumns}`,
    [i.tenantId, i.createdBy, i.fileName, i.fileBytes, i.onDuplicate, JSON.stringify(i.options), i.owner, now],
  );
  return res.rows[0]!;
}

/** One import of this tenant; with `createdBy`, only if that user started it (team members). */
export async function getImport(db: Queryable, tenantId: number, id: number, createdBy?: number): Promise<ImportRow | null> {
  const res = await db.query<ImportRow>(
    `select ${importColumns} from lead_imports i
      where i.id = $1 and i.user_id = $2 and ($3::bigint is null or i.created_by = $3)`,
    [id, tenantId, createdBy ?? null],
  );
  return res.rows[0] ?? null;
}

/** Newest first; `before` is the keyset cursor (the last id of the previous page). */
export async function listImports(
  db: Queryable,
  tenantId: number,
  page: { before?: number | undefined; limit: number; createdBy?: number | undefined },
): Promise<ImportRow[]> {
  const res = await db.query<ImportRow>(
    `select ${importColumns} from lead_imports i
      where i.user_id = $1 and ($2::bigint is null or i.id < $2) and ($3::bigint is null or i.created_by = $3)
      order by i.id desc limit $4`,
    [tenantId, page.before ?? null, page.createdBy ?? null, page.limit],
  );
  return res.rows;
}

/** queued -> running; false if the job is no longer queued (recovered as interrupted meanwhile). */
export async function markImportRunning(db: Queryable, id: number, owner: string, now: Date): Promise<boolean> {
  const res = await db.query(
    `update lead_imports set status = 'running', owner = $2, started_at = $3, updated_at = $3
      where id = $1 and status = 'queued'`,
    [id, owner, now],
  );
  return res.rowCount === 1;
}

export interface ImportCounts {
  rowsTotal: number;
  inserted: number;
  updated: number;
  skipped: number;
  failed: number;
  bytesRead: number;
}

/**
 * Writes a running job's counts; the write doubles as its heartbeat (updated_at), which is what
 * tells a live job from one whose process died.
 */
export async function saveImportProgress(db: Queryable, id: number, c: ImportCounts, now: Date): Promise<void> {
  await db.query(
    `update lead_imports set rows_total = $2, inserted = $3, updated = $4, skipped = $5, failed = $6, bytes_read = $7, updated_at = $8
      where id = $1 and status = 'running'`,
    [id, c.rowsTotal, c.inserted, c.updated, c.skipped, c.failed, c.bytesRead, now],
  );
}

/** Heartbeat for jobs waiting in this process's queue, so no other process takes them for dead. */
export async function touchImports(db: Queryable, ids: readonly number[], now: Date): Promise<void> {
  if (ids.length === 0) return;
  await db.query(`update lead_imports set updated_at = $2 where id = any($1::bigint[]) and status in ('queued', 'running')`, [ids, now]);
}

export interface ImportOutcome {
  status: 'completed' | 'failed';
  counts: ImportCounts;
  errorCode?: string | null | undefined;
  error?: string | null | undefined;
}

export async function finishImport(db: Queryable, id: number, o: ImportOutcome, now: Date): Promise<void> {
  const c = o.counts;
  await db.query(
    `update lead_imports set status = $2, rows_total = $3, inserted = $4, updated = $5, skipped = $6, failed = $7,
            bytes_read = $8, error_code = $9, error = $10, finished_at = $11, updated_at = $11
      where id = $1 and status in ('queued', 'running')`,
    [id, o.status, c.rowsTotal, c.inserted, c.updated, c.skipped, c.failed, c.bytesRead, o.errorCode ?? null, o.error ?? null, now],
  );
}

/**
 * Fails every queued or running job whose heartbeat is older than `staleBefore`, except `keep`
 * (this process's own jobs). Returns the ids, so their upload files can be removed.
 */
export async function failStaleImports(
  db: Queryable,
  staleBefore: Date,
  keep: readonly number[],
  code: string,
  message: string,
  now: Date,
): Promise<number[]> {
  const res = await db.query<{ id: number }>(
    `update lead_imports set status = 'failed', error_code = $3, error = $4, finished_at = $5, updated_at = $5
      where status in ('queued', 'running') and updated_at < $1 and id <> all($2::bigint[])
      returning id`,
    [staleBefore, keep, code, message, now],
  );
  return res.rows.map((r) => r.id);
}

export interface ImportErrorRow {
  line: number;
  code: string;
  message: string;
  excerpt: string | null;
}

export async function insertImportErrors(db: Queryable, importId: number, errors: readonly ImportErrorRow[]): Promise<void> {
  if (errors.length === 0) return;
  await db.query(
    `insert into lead_import_errors (import_id, line, code, message, excerpt)
     select $1, e.line, e.code, e.message, e.excerpt
       from unnest($2::int[], $3::text[], $4::text[], $5::text[]) as e(line, code, message, excerpt)`,
    [importId, errors.map((e) => e.line), errors.map((e) => e.code), errors.map((e) => e.message), errors.map((e) => e.excerpt)],
  );
}

/** The refused rows of one import in line order, after `afterLine` (keyset). */
export async function listImportErrors(db: Queryable, importId: number, afterLine: number, limit: number): Promise<ImportErrorRow[]> {
  const res = await db.query<ImportErrorRow>(
    `select line, code, message, excerpt from lead_import_errors
      where import_id = $1 and line > $2 order by line limit $3`,
    [importId, afterLine, limit],
  );
  return res.rows;
}

export async function isLiveDeviceOf(db: Queryable, tenantId: number, deviceId: number): Promise<boolean> {
  const res = await db.query(`select 1 from devices where id = $1 and user_id = $2 and deleted_at is null`, [deviceId, tenantId]);
  return res.rows.length === 1;
}

/**
 * One batch of imported leads, column by column. Per-row values are null where the row had no
 * value (the defaults then apply to a new lead, and an existing lead keeps its own on update).
 * Tag lists travel as one string per row joined by TAG_SEPARATOR: unnest would flatten a text[]
 * per row, and a jsonb array per row measured 11 % slower (9.7 s against 8.7 s for 300,000 rows).
 */
export interface LeadBatch {
  tenantId: number;
  /** The device new leads are given; null is the shared pool. */
  deviceId: number | null;
  /** On update, only leads on these devices are touched (a team member's scope); null: any. */
  updateScope: number[] | null;
  defaults: { status: string; source: string; niches: string[]; triggers: string[] };
  phones: string[];
  names: (string | null)[];
  statuses: (string | null)[];
  niches: (string | null)[];
  triggers: (string | null)[];
  sources: (string | null)[];
  /** JSON objects as text. */
  attributes: (string | null)[];
  /** ISO timestamps. */
  optedOutAt: (string | null)[];
}

/** Unit separator: a control character no tag contains (the importer strips control characters). */
export const TAG_SEPARATOR = '\u001f';

function batchParams(b: LeadBatch, now: Date): unknown[] {
  return [
    b.tenantId,
    b.deviceId,
    now,
    b.phones,
    b.names,
    b.statuses,
    b.niches,
    b.triggers,
    b.sources,
    b.attributes,
    b.optedOutAt,
    b.defaults.niches,
    b.defaults.status,
    b.defaults.triggers,
    b.defaults.source,
  ];
}

const source = `unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[])
              as u(phone, name, status, niches, triggers, source, attributes, opted_out_at)`;

// What a new lead gets: the row's values, else the import's defaults.
const newLead = `$1::bigint, $2::bigint, coalesce(u.name, ''), u.phone,
            coalesce(string_to_array(u.niches, E'\\x1f'), $12::text[]), coalesce(u.status, $13::text),
            coalesce(string_to_array(u.triggers, E'\\x1f'), $14::text[]), coalesce(u.source, $15::text),
            coalesce(u.attributes::jsonb, '{}'), u.opted_out_at, $3::timestamptz, $3::timestamptz`;

const leadInsertColumns = `user_id, device_id, name, phone, niches, status, triggers, source, attributes, opted_out_at, created_at, updated_at`;

/**
 * on_duplicate = skip: new phones are inserted, existing leads are not touched; one statement per
 * batch, `insert ... select from unnest(arrays) ... on conflict do nothing`. Measured on PGlite
 * (2 cores, 500,000 rows in batches): 28 µs a row, of which 5.6 µs is passing and unnesting the
 * arrays and the rest heap, WAL and the seven indexes of leads (without the two GIN indexes 24 µs,
 * without all five secondary ones 21 µs); ON CONFLICT itself costs nothing measurable. Rows go in
 * phone order (no measurable cost either) so that two imports into one tenant running at once on
 * PostgreSQL lock conflicting keys in the same order and cannot deadlock.
 */
export async function insertLeadsSkipping(db: Queryable, b: LeadBatch, now: Date): Promise<{ inserted: number; updated: number }> {
  if (b.phones.length === 0) return { inserted: 0, updated: 0 };
  const res = await db.query(
    `insert into leads (${leadInsertColumns})
     select ${newLead}
       from ${source}
      order by u.phone
     on conflict (user_id, phone) do nothing`,
    batchParams(b, now),
  );
  return { inserted: res.rowCount, updated: 0 };
}

/** What an existing lead takes from a row that has the field (`excluded` is the proposed row). */
const UPDATE_WHEN_PRESENT = {
  names: 'name = excluded.name',
  statuses: 'status = excluded.status',
  niches: 'niches = excluded.niches',
  triggers: 'triggers = excluded.triggers',
  sources: 'source = excluded.source',
  attributes: 'attributes = l.attributes || excluded.attributes',
  optedOutAt: 'opted_out_at = coalesce(l.opted_out_at, excluded.opted_out_at)',
} as const;

type Optional = keyof typeof UPDATE_WHEN_PRESENT;
const OPTIONAL = Object.keys(UPDATE_WHEN_PRESENT) as Optional[];

/**
 * on_duplicate = update: new phones are inserted; an existing lead takes every value the row has
 * (name, status, niches, triggers, source, attributes merged key by key, opted_out_at) and keeps
 * the rest; the import's niches and triggers are added to it either way. An opt-out is never
 * cleared. A team member's import (updateScope) leaves leads on other devices alone.
 *
 * INSERT ... ON CONFLICT DO UPDATE finds each existing lead through the (user_id, phone) index
 * whatever the statistics say. In DO UPDATE only `excluded` (the proposed row, defaults applied)
 * is visible, so "the row had no status" cannot be told from "the row said prospect": rows are
 * grouped by which fields they have, one statement per group, each setting only those fields (a
 * file has a handful of such shapes). The first version, an UPDATE ... FROM joined to the batch,
 * was planned as a hash join over all of the tenant's leads when the statistics were stale
 * (PGlite never analyzes by itself): 152 µs a row for 191,000 updates, quadratic in the tenant.
 */
export async function upsertLeadsUpdating(db: Queryable, b: LeadBatch, now: Date): Promise<{ inserted: number; updated: number }> {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < b.phones.length; i++) {
    let mask = 0;
    for (let f = 0; f < OPTIONAL.length; f++) if (b[OPTIONAL[f]!][i] !== null) mask |= 1 << f;
    const g = groups.get(mask);
    if (g) g.push(i);
    else groups.set(mask, [i]);
  }
  let inserted = 0;
  let updated = 0;
  for (const [mask, rows] of groups) {
    const pick = <T>(xs: T[]): T[] => rows.map((i) => xs[i]!);
    const part: LeadBatch = {
      ...b,
      phones: pick(b.phones),
      names: pick(b.names),
      statuses: pick(b.statuses),
      niches: pick(b.niches),
      triggers: pick(b.triggers),
      sources: pick(b.sources),
      attributes: pick(b.attributes),
      optedOutAt: pick(b.optedOutAt),
    };
    const set: string[] = OPTIONAL.filter((_, f) => mask & (1 << f)).map((f) => UPDATE_WHEN_PRESENT[f]);
    // Without tags of its own, a lead still gets the import's (parameters $12 and $14).
    if (!(mask & (1 << OPTIONAL.indexOf('niches'))) && b.defaults.niches.length > 0) {
      set.push(`niches = case when $12::text[] <@ l.niches then l.niches
                         else array(select distinct t from unnest(l.niches || $12::text[]) as t order by 1) end`);
    }
    if (!(mask & (1 << OPTIONAL.indexOf('triggers'))) && b.defaults.triggers.length > 0) {
      set.push(`triggers = case when $14::text[] <@ l.triggers then l.triggers
                           else array(select distinct t from unnest(l.triggers || $14::text[]) as t order by 1) end`);
    }
    set.push('updated_at = excluded.updated_at');
    const params = batchParams(part, now);
    params.push(b.updateScope);
    const res = await db.query<{ inserted: boolean }>(
      `insert into leads as l (${leadInsertColumns})
       select ${newLead}
         from ${source}
        order by u.phone
       on conflict (user_id, phone) do update set ${set.join(', ')}
        where $16::bigint[] is null or l.device_id = any($16::bigint[])
       returning (xmax = 0) as inserted`,
      params,
    );
    for (const r of res.rows) {
      if (r.inserted) inserted++;
      else updated++;
    }
  }
  return { inserted, updated };
}

export interface ExportLeadRow {
  id: number;
  phone: string;
  name: string;
  status: string;
  niches: string[];
  triggers: string[];
  source: string | null;
  device_id: number | null;
  opted_out_at: Date | null;
  created_at: Date;
  attributes: Record<string, unknown>;
}

/** Every attribute key the selected leads use, sorted: the export's extra columns. */
export async function exportAttributeKeys(db: Queryable, where: string, params: readonly unknown[]): Promise<string[]> {
  const res = await db.query<{ k: string }>(
    `select distinct k from leads l cross join lateral jsonb_object_keys(l.attributes) as k where ${where} order by k`,
    params,
  );
  return res.rows.map((r) => r.k);
}

/** One page of the selected leads in id order after `afterId` (keyset on leads_user_id_idx). */
export async function exportLeadPage(db: Queryable, where: string, params: readonly unknown[], afterId: number, limit: number): Promise<ExportLeadRow[]> {
  const p = [...params, afterId, limit];
  const res = await db.query<ExportLeadRow>(
    `select l.id, l.phone, l.name, l.status, l.niches, l.triggers, l.source, l.device_id, l.opted_out_at, l.created_at, l.attributes
       from leads l
      where ${where} and l.id > $${p.length - 1}
      order by l.id
      limit $${p.length}`,
    p,
  );
  return res.rows;
}
