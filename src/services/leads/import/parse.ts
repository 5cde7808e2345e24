/**
 * The reading half of a CSV lead import: records from the file, each checked and turned into a
 * lead row (phone in E.164, tags, attributes) or into the reason it is refused, duplicates inside
 * the file found, rows gathered into batches. It writes nothing: `parseLeads` yields what the
 * writing half (run.ts) stores, in file order. It runs in a worker thread (parse-worker.ts), so on
 * PGlite, whose statements run on the main thread, reading the next rows overlaps writing the last.
 */
import { TAG_SEPARATOR, type ImportErrorRow } from '../../../store/sql/lead-imports.js';
import { normalisePhone } from '../phone.js';
import { FirstSeen } from './first-seen.js';
import { mapHeader, MAX_ATTRIBUTES, type ColumnMap } from './headers.js';
import { LIMITS, stripControl, type ResolvedImportOptions } from './options.js';
import { CsvReader, excerptOf, inspectCsv, UnsupportedEncoding } from './reader.js';

/** Rows one file may have; rows past it are counted and reported, never imported. */
export const MAX_ROWS = 1_000_000;
/** Refused rows gathered before they are handed on. */
const ERROR_BATCH = 1_000;
/** Rows between two progress events. */
const PROGRESS_ROWS = 1_024;

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

export interface ParseSpec {
  file: string;
  options: ResolvedImportOptions;
  defaultCountry: string | null;
  batchRows: number;
  maxRows: number;
}

/** Where the reading is: rows seen (past the header, blank ones aside) and bytes read. */
export interface ParsePosition {
  rowsTotal: number;
  bytesRead: number;
}

/** The columns of a batch of good rows, as lead-imports.ts takes them. */
export type BatchColumns = Pick<Batch, 'phones' | 'names' | 'statuses' | 'niches' | 'triggers' | 'sources' | 'attributes' | 'optedOutAt'>;

export type ParseEvent =
  | ({ type: 'rows'; batch: BatchColumns } & ParsePosition)
  | ({ type: 'errors'; errors: ImportErrorRow[] } & ParsePosition)
  | ({ type: 'progress' } & ParsePosition)
  /** The end of the file; `overLimit` rows past maxRows were counted and share one error row. */
  | ({ type: 'done'; overLimit: number } & ParsePosition);

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

export class Batch {
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

  columns(): BatchColumns {
    const { phones, names, statuses, niches, triggers, sources, attributes, optedOutAt } = this;
    return { phones, names, statuses, niches, triggers, sources, attributes, optedOutAt };
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

/** Reads the whole file; throws ImportFailure for a file that cannot be imported at all. */
export async function* parseLeads(spec: ParseSpec): AsyncGenerator<ParseEvent> {
  const o = spec.options;
  let file;
  try {
    file = await inspectCsv(spec.file, o.encoding);
  } catch (err) {
    if (err instanceof UnsupportedEncoding) throw new ImportFailure('IMPORT_UNSUPPORTED_ENCODING', err.message);
    throw err;
  }
  const reader = new CsvReader(file);
  const utf8 = file.encoding === 'utf8';
  const seen = new FirstSeen();
  const at = (): ParsePosition => ({ rowsTotal, bytesRead: reader.bytesRead });
  let map: ColumnMap | null = null;
  let batch = new Batch();
  let errors: ImportErrorRow[] = [];
  let rowsTotal = 0;
  let overLimit = 0;
  let sinceProgress = 0;
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
    rowsTotal++;
    let refused: ImportErrorRow | null = null;
    if (rowsTotal > spec.maxRows) {
      if (overLimit++ === 0) {
        refused = {
          line: item.line,
          code: 'ROW_LIMIT_EXCEEDED',
          message: `the file has more than ${spec.maxRows.toLocaleString('en')} rows: this row and every row after it were not imported`,
          excerpt: null,
        };
      }
    } else if (item.kind === 'broken') {
      refused = { line: item.line, code: item.code, message: item.message, excerpt: item.excerpt };
    } else {
      const row = readRow(item.fields, map, o, spec.defaultCountry, utf8);
      if ('code' in row) {
        refused = { line: item.line, code: row.code, message: row.message, excerpt: excerptOf(item.fields.join(file.delimiter)) };
      } else {
        const first = seen.firstOrAdd(row.phone, item.line);
        if (first !== 0) {
          refused = {
            line: item.line,
            code: 'DUPLICATE_IN_FILE',
            message: `line ${first} has the same phone (${row.phone}); only the first of them is imported`,
            excerpt: excerptOf(item.fields.join(file.delimiter)),
          };
        } else {
          batch.add(row);
          if (batch.size >= spec.batchRows) {
            yield { type: 'rows', batch: batch.columns(), ...at() };
            batch = new Batch();
            sinceProgress = 0;
          }
        }
      }
    }
    if (refused) {
      errors.push(refused);
      if (errors.length >= ERROR_BATCH) {
        yield { type: 'errors', errors, ...at() };
        errors = [];
      }
    }
    if (++sinceProgress >= PROGRESS_ROWS) {
      sinceProgress = 0;
      yield { type: 'progress', ...at() };
    }
  }
  if (map === null) throw new ImportFailure('IMPORT_EMPTY', 'the file has no header row and no data');
  if (batch.size > 0) yield { type: 'rows', batch: batch.columns(), ...at() };
  if (errors.length > 0) yield { type: 'errors', errors, ...at() };
  yield { type: 'done', overLimit, ...at() };
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
