/**
 * One CSV file into one tenant's leads: every good row imported, every bad row reported with its
 * line. Used by the import job and by `fleetcast bench import`.
 *
 * Memory stays flat whatever the file's size: records stream from disk, a batch of rows is the
 * only thing gathered, and the in-file duplicate check costs ~17 MB for a million phones
 * (FirstSeen).
 * On PostgreSQL the next batch is parsed while the previous one is written.
 */
import type { Clock } from '../../../engine/clock.js';
import type { Queryable } from '../../../store/db.js';
import { enrollGainedTags, sequenceTriggers, taggedLeadsByPhone } from '../../../store/sql/enrollments.js';
import {
  insertImportErrors,
  insertLeadsSkipping,
  TAG_SEPARATOR,
  upsertLeadsUpdating,
  type ImportCounts,
  type ImportErrorRow,
  type LeadBatch,
} from '../../../store/sql/lead-imports.js';
import type { Actor } from '../../actor.js';
import { normalisePhone } from '../phone.js';
import { FirstSeen } from './first-seen.js';
import { mapHeader, MAX_ATTRIBUTES, type ColumnMap } from './headers.js';
import { LIMITS, stripControl, type ResolvedImportOptions } from './options.js';
import { CsvReader, excerptOf, inspectCsv, UnsupportedEncoding } from './reader.js';

/** Rows one file may have; rows past it are counted and reported, never imported. */
export const MAX_ROWS = 1_000_000;

/**
 * Rows per INSERT. Measured on PGlite with 1,000,000 rows: the INSERTs alone take 30.5 s in
 * batches of 1,000 and 29.3 s in batches of 5,000; the whole import ~47 s at 2,000 and ~45 s at
 * 5,000. A batch holds PGlite's single connection for ~50 ms at 2,000 rows, ~125 ms at 5,000,
 * and every API request of the process queues behind it: 2,000 keeps that wait short.
 */
export const BATCH_ROWS = 2_000;
const ERROR_BATCH = 1_000;
const PROGRESS_EVERY_MS = 500;

/** Why a whole import stopped (as opposed to a row being refused). */
export class ImportFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ImportFailure';
  }
}

export interface ImportFileArgs {
  db: Queryable;
  clock: Clock;
  actor: Pick<Actor, 'tenantId' | 'deviceScope' | 'defaultCountry'>;
  /** The lead_imports row refused rows are written under. */
  importId: number;
  file: string;
  options: ResolvedImportOptions;
  /** Called at most every `progressEveryMs` while running (and not at the end: the caller has the result). */
  onProgress?: ((c: ImportCounts) => Promise<void>) | undefined;
  progressEveryMs?: number | undefined;
  batchRows?: number | undefined;
  /** How many statements may be in flight; 1 waits for each write before parsing on. */
  pipeline?: number | undefined;
  /** Kept up to date as the import goes (so a caller has the counts even when it throws). */
  counts?: ImportCounts | undefined;
  /** Default MAX_ROWS. */
  maxRows?: number | undefined;
  /** Leads of a batch gained a sequence's trigger and were enrolled (the caller wakes the planner). */
  onEnrolled?: ((enrolled: number, firstDue: Date | null) => Promise<void>) | undefined;
}

type Row = {
  phone: string;
  name: string | null;
  status: string | null;
  niches: string | null;
  triggers: string | null;
  source: string | null;
  attributes: string | null;
  optedOutAt: string | null;
};

class Batch {
  phones: string[] = [];
  names: (string | null)[] = [];
  statuses: (string | null)[] = [];
  niches: (string | null)[] = [];
  triggers: (string | null)[] = [];
  sources: (string | null)[] = [];
  attributes: (string | null)[] = [];
  optedOutAt: (string | null)[] = [];

  get size(): number {
    return this.phones.length;
  }

  add(r: Row): void {
    this.phones.push(r.phone);
    this.names.push(r.name);
    this.statuses.push(r.status);
    this.niches.push(r.niches);
    this.triggers.push(r.triggers);
    this.sources.push(r.source);
    this.attributes.push(r.attributes);
    this.optedOutAt.push(r.optedOutAt);
  }
}

type RowError = { code: string; message: string };

/** A cell as the user meant it: trimmed, without the apostrophe a formula-safe export puts before =, +, - or @. */
function clean(v: string | undefined): string {
  if (v === undefined) return '';
  const t = v.trim();
  if (t.length > 1 && t.charCodeAt(0) === 39 /* ' */) {
    const c = t[1]!;
    if (c === '=' || c === '+' || c === '-' || c === '@') return t.slice(1);
  }
  return t;
}

function firstValue(fields: readonly string[], columns: readonly number[]): string {
  for (const i of columns) {
    const v = clean(fields[i]);
    if (v !== '') return v;
  }
  return '';
}

const SPLIT_TAGS = /[,;|]/;

/** The tags of a row (all its columns, split on , ; |) with the import's own; null if the row has none. */
function rowTags(fields: readonly string[], columns: readonly number[], extra: readonly string[]): { tags: string[] | null; tooLong: string | null } {
  let found: Set<string> | null = null;
  for (const i of columns) {
    const cell = fields[i];
    if (cell === undefined || cell.trim() === '') continue;
    for (const part of cell.split(SPLIT_TAGS)) {
      const t = stripControl(clean(part));
      if (t === '') continue;
      if (t.length > LIMITS.tag) return { tags: null, tooLong: t };
      (found ??= new Set()).add(t);
    }
  }
  if (found === null) return { tags: null, tooLong: null };
  for (const t of extra) found.add(t);
  return { tags: [...found].sort(), tooLong: null };
}

function isBlank(fields: readonly string[]): boolean {
  for (const f of fields) if (f.trim() !== '') return false;
  return true;
}

function short(s: string, n = 40): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/**
 * Checks one data row and turns it into what the batch insert takes, or says why not. The
 * in-file duplicate check comes last, so a refused row never hides a later good one.
 */
function readRow(
  fields: readonly string[],
  map: ColumnMap,
  o: ResolvedImportOptions,
  defaultCountry: string | null,
  utf8: boolean,
): Row | RowError {
  if (fields.length !== map.width) {
    const extraBlank = fields.length > map.width && fields.slice(map.width).every((f) => f.trim() === '');
    if (!extraBlank) {
      return {
        code: 'WRONG_COLUMN_COUNT',
        message: `expected ${map.width} cells (as the header has), found ${fields.length}`,
      };
    }
  }
  for (const f of fields) {
    if (utf8 && f.includes('\ufffd')) {
      return {
        code: 'INVALID_ENCODING',
        message: 'the row has bytes that are not valid UTF-8: if the file was saved as Latin-1 or Windows-1252, import it again with encoding latin1',
      };
    }
    if (f.includes('\u0000')) {
      return { code: 'INVALID_ENCODING', message: 'the row contains NUL characters: if the file is UTF-16, import it again with encoding utf16le' };
    }
  }
  const rawPhone = firstValue(fields, map.phone);
  const phone = normalisePhone(rawPhone, defaultCountry);
  if (!phone.ok) return { code: phone.code, message: rawPhone === '' ? phone.message : `${phone.message}: "${short(rawPhone)}"` };

  let name = firstValue(fields, map.name);
  if (name === '') name = [firstValue(fields, map.firstName), firstValue(fields, map.lastName)].filter((s) => s !== '').join(' ');
  if (name.length > LIMITS.name) return { code: 'VALUE_TOO_LONG', message: `name is longer than ${LIMITS.name} characters` };

  const status = stripControl(firstValue(fields, map.status));
  if (status.length > LIMITS.tag) return { code: 'VALUE_TOO_LONG', message: `status is longer than ${LIMITS.tag} characters` };

  let niches: string[] | null = null;
  let triggers: string[] | null = null;
  for (const [label, columns, extra] of [
    ['niches', map.niches, o.niches],
    ['triggers', map.triggers, o.triggers],
  ] as const) {
    if (columns.length === 0) continue;
    const r = rowTags(fields, columns, extra);
    if (r.tooLong !== null) return { code: 'VALUE_TOO_LONG', message: `${label}: "${short(r.tooLong)}" is longer than ${LIMITS.tag} characters` };
    if (r.tags !== null && r.tags.length > LIMITS.tags) return { code: 'TOO_MANY_VALUES', message: `more than ${LIMITS.tags} ${label}` };
    if (label === 'niches') niches = r.tags;
    else triggers = r.tags;
  }

  const source = firstValue(fields, map.source);
  if (source.length > LIMITS.source) return { code: 'VALUE_TOO_LONG', message: `source is longer than ${LIMITS.source} characters` };

  let optedOutAt: string | null = null;
  const optedOut = firstValue(fields, map.optedOutAt);
  if (optedOut !== '') {
    const t = Date.parse(optedOut);
    if (Number.isNaN(t)) return { code: 'INVALID_DATE', message: `opted_out_at: "${short(optedOut)}" is not a date` };
    optedOutAt = new Date(t).toISOString();
  }

  let attributes: string | null = null;
  if (map.attributes.length > 0) {
    let obj: Record<string, string> | null = null;
    for (const { index, key } of map.attributes) {
      const v = clean(fields[index]);
      if (v === '') continue;
      if (v.length > LIMITS.attributeValue) return { code: 'VALUE_TOO_LONG', message: `${key} is longer than ${LIMITS.attributeValue} characters` };
      (obj ??= {})[key] = v;
    }
    if (obj !== null) attributes = JSON.stringify(obj);
  }

  return {
    phone: phone.e164,
    name: name === '' ? null : name,
    status: status === '' ? null : status,
    niches: niches === null ? null : niches.join(TAG_SEPARATOR),
    triggers: triggers === null ? null : triggers.join(TAG_SEPARATOR),
    source: source === '' ? null : stripControl(source),
    attributes,
    optedOutAt,
  };
}

export async function importLeadsFile(a: ImportFileArgs): Promise<ImportCounts> {
  const o = a.options;
  const counts: ImportCounts = a.counts ?? { rowsTotal: 0, inserted: 0, updated: 0, skipped: 0, failed: 0, bytesRead: 0 };
  let file;
  try {
    file = await inspectCsv(a.file, o.encoding);
  } catch (err) {
    if (err instanceof UnsupportedEncoding) throw new ImportFailure('IMPORT_UNSUPPORTED_ENCODING', err.message);
    throw err;
  }
  const reader = new CsvReader(file);
  const utf8 = file.encoding === 'utf8';
  const batchRows = a.batchRows ?? BATCH_ROWS;
  const progressEvery = a.progressEveryMs ?? PROGRESS_EVERY_MS;
  const maxInFlight = Math.max(1, a.pipeline ?? 1);
  const maxRows = a.maxRows ?? MAX_ROWS;
  const seen = new FirstSeen();
  const write = o.onDuplicate === 'update' ? upsertLeadsUpdating : insertLeadsSkipping;
  const shared = {
    tenantId: a.actor.tenantId,
    deviceId: o.deviceId,
    updateScope: a.actor.deviceScope,
    defaults: { status: o.status, source: o.source, niches: o.niches, triggers: o.triggers },
  };

  let map: ColumnMap | null = null;
  let batch = new Batch();
  let errors: ImportErrorRow[] = [];
  let lastProgress = a.clock.now();
  let sinceCheck = 0;
  const inFlight = new Set<Promise<void>>();
  let writeError: { error: unknown } | null = null;

  const settle = async (limit: number) => {
    while (inFlight.size > limit) await Promise.race(inFlight);
    if (writeError) throw writeError.error;
  };
  const launch = (work: () => Promise<void>) => {
    const p: Promise<void> = work()
      .catch((error: unknown) => {
        writeError ??= { error };
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  // Leads that gain a sequence's trigger tag through the import are enrolled in it. Most imports
  // carry no such tag: a batch pays for the look before and after only when it might.
  const triggers = await sequenceTriggers(a.db, a.actor.tenantId);
  const watched = [...triggers];
  const defaultTags = o.triggers.some((t) => triggers.has(t));
  const mayTag = (b: Batch) => defaultTags || b.triggers.some((t) => t !== null && t.split(TAG_SEPARATOR).some((x) => triggers.has(x)));
  const flushLeads = async () => {
    if (batch.size === 0) return;
    const b = batch;
    batch = new Batch();
    await settle(maxInFlight - 1);
    launch(async () => {
      const leadBatch: LeadBatch = { ...shared, ...b };
      const now = new Date(a.clock.now());
      const watch = triggers.size > 0 && mayTag(b);
      const before = watch ? await taggedLeadsByPhone(a.db, a.actor.tenantId, b.phones, watched) : null;
      const r = await write(a.db, leadBatch, now);
      counts.inserted += r.inserted;
      counts.updated += r.updated;
      counts.skipped += b.size - r.inserted - r.updated;
      if (before) {
        const gained: { leadId: number; tag: string }[] = [];
        for (const [phone, lead] of await taggedLeadsByPhone(a.db, a.actor.tenantId, b.phones, watched)) {
          const had = before.get(phone)?.triggers ?? [];
          for (const t of lead.triggers) if (triggers.has(t) && !had.includes(t)) gained.push({ leadId: lead.id, tag: t });
        }
        const e = await enrollGainedTags(a.db, a.actor.tenantId, gained, 'import', now);
        if (e.enrolled > 0) await a.onEnrolled?.(e.enrolled, e.firstDue);
      }
    });
  };
  const flushErrors = async () => {
    if (errors.length === 0) return;
    const e = errors;
    errors = [];
    await settle(maxInFlight - 1);
    launch(async () => {
      await insertImportErrors(a.db, a.importId, e);
      counts.failed += e.length;
    });
  };
  const progress = async () => {
    if (!a.onProgress) return;
    const now = a.clock.now();
    if (now - lastProgress < progressEvery) return;
    lastProgress = now;
    counts.bytesRead = reader.bytesRead;
    await a.onProgress({ ...counts });
  };
  const refuse = async (line: number, code: string, message: string, excerpt: string | null) => {
    errors.push({ line, code, message, excerpt });
    if (errors.length >= ERROR_BATCH) {
      await flushErrors();
      await progress();
    }
  };

  let overLimit = 0;
  const consume = async () => {
    for await (const item of reader.items()) {
      if (map === null) {
        if (item.kind === 'broken') {
          throw new ImportFailure('IMPORT_BAD_HEADER', `the header row (line ${item.line}) cannot be read: ${item.message}`);
        }
        if (isBlank(item.fields)) continue;
        map = readHeader(item.fields, utf8);
        continue;
      }
      if (item.kind === 'record' && isBlank(item.fields)) continue;
      counts.rowsTotal++;
      if (counts.rowsTotal > maxRows) {
        if (overLimit++ === 0) {
          await refuse(
            item.line,
            'ROW_LIMIT_EXCEEDED',
            `the file has more than ${maxRows.toLocaleString('en')} rows: this row and every row after it were not imported`,
            null,
          );
        }
        continue;
      }
      if (item.kind === 'broken') {
        await refuse(item.line, item.code, item.message, item.excerpt);
        continue;
      }
      const row = readRow(item.fields, map, o, a.actor.defaultCountry, utf8);
      if ('code' in row) {
        await refuse(item.line, row.code, row.message, excerptOf(item.fields.join(file.delimiter)));
        continue;
      }
      const first = seen.firstOrAdd(row.phone, item.line);
      if (first !== 0) {
        await refuse(
          item.line,
          'DUPLICATE_IN_FILE',
          `line ${first} has the same phone (${row.phone}); only the first of them is imported`,
          excerptOf(item.fields.join(file.delimiter)),
        );
        continue;
      }
      batch.add(row);
      if (batch.size >= batchRows) {
        await flushLeads();
        await progress();
      } else if (++sinceCheck >= 1024) {
        sinceCheck = 0;
        await progress();
      }
    }
    if (map === null) throw new ImportFailure('IMPORT_EMPTY', 'the file has no header row and no data');
    await flushLeads();
    await flushErrors();
    await settle(0);
  };
  try {
    await consume();
  } catch (err) {
    // Nothing may still be writing once the caller hears the import is over.
    await Promise.allSettled([...inFlight]);
    throw err;
  }
  // Rows past the limit were counted but have one error row between them.
  counts.failed += Math.max(0, overLimit - 1);
  counts.bytesRead = reader.bytesRead;
  return counts;
}

function readHeader(fields: readonly string[], utf8: boolean): ColumnMap {
  const headers = fields.map((h) => h.replace(/^\ufeff/, '').trim());
  const map = mapHeader(headers);
  if (map.phone.length === 0) {
    const listed = headers.filter((h) => h !== '').map((h) => `"${short(h, 30)}"`).slice(0, 20).join(', ');
    let hint = '';
    if (headers.some((h) => h.includes('\ufffd')) && utf8) hint = ' (the header is not valid UTF-8: is the file Latin-1? then import it with encoding latin1)';
    else if (headers.some((h) => h.includes('\u0000'))) hint = ' (the header contains NUL characters: is the file UTF-16? then import it with encoding utf16le)';
    throw new ImportFailure(
      'IMPORT_NO_PHONE_COLUMN',
      `no phone column in the header${hint}: found ${listed || 'no names'}; name the phone column e.g. "phone", "mobile" or "whatsapp"`,
    );
  }
  if (map.attributes.length > MAX_ATTRIBUTES) {
    throw new ImportFailure(
      'IMPORT_TOO_MANY_COLUMNS',
      `the file has ${map.attributes.length} columns besides the lead's own fields; at most ${MAX_ATTRIBUTES} can be kept as attributes`,
    );
  }
  return map;
}
