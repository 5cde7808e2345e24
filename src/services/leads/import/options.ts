/** What an import is told besides the file, checked once before anything is read. */
import { unprocessable, type ErrorDetail } from '../../errors.js';
import type { CsvEncoding } from './reader.js';

export interface ImportOptions {
  /** A phone the tenant already has: leave that lead as it is (skip) or take the row's values (update). */
  onDuplicate: 'skip' | 'update';
  fileName?: string | undefined;
  /** The device new leads are given; null or absent: the shared pool. Required for a team member. */
  deviceId?: number | null | undefined;
  /** Status of a new lead whose row has none (default 'prospect'). */
  status?: string | undefined;
  /** Added to every imported lead. */
  niches?: string[] | undefined;
  /** Added to every imported lead. */
  triggers?: string[] | undefined;
  /** Source of a new lead whose row has none (default 'import'). */
  source?: string | undefined;
  /** Default utf8; a UTF-8 or UTF-16LE byte order mark in the file overrides it. */
  encoding?: CsvEncoding | undefined;
}

/** ImportOptions with every default applied, as a job stores and runs them. */
export interface ResolvedImportOptions {
  onDuplicate: 'skip' | 'update';
  deviceId: number | null;
  status: string;
  niches: string[];
  triggers: string[];
  source: string;
  encoding: CsvEncoding;
}

/** The same limits a lead written through the API has. */
export const LIMITS = {
  name: 200,
  tag: 100,
  tags: 100,
  source: 200,
  attributeValue: 2000,
  fileName: 255,
} as const;

const ENCODINGS: readonly CsvEncoding[] = ['utf8', 'latin1', 'utf16le'];

/** Trimmed, without control characters, duplicates removed, sorted (as the lead API stores tags). */
export function tagList(values: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const v of values) {
    const t = stripControl(v).trim();
    if (t !== '') out.add(t);
  }
  return [...out].sort();
}

export function stripControl(s: string): string {
  return /[\u0000-\u001f\u007f]/.test(s) ? s.replace(/[\u0000-\u001f\u007f]/g, '') : s;
}

export function resolveImportOptions(o: ImportOptions): ResolvedImportOptions {
  const details: ErrorDetail[] = [];
  const bad = (path: string, message: string) => details.push({ path, message });
  if (o.onDuplicate !== 'skip' && o.onDuplicate !== 'update') bad('on_duplicate', 'must be skip or update');
  const encoding = o.encoding ?? 'utf8';
  if (!ENCODINGS.includes(encoding)) bad('encoding', `must be one of ${ENCODINGS.join(', ')}`);
  if (o.deviceId !== undefined && o.deviceId !== null && !(Number.isSafeInteger(o.deviceId) && o.deviceId > 0)) bad('device_id', 'must be a device id');
  const status = (o.status ?? 'prospect').trim();
  if (status === '' || status.length > LIMITS.tag) bad('status', `must be 1 to ${LIMITS.tag} characters`);
  const source = (o.source ?? 'import').trim();
  if (source.length > LIMITS.source) bad('source', `must be at most ${LIMITS.source} characters`);
  const niches = tagList(o.niches ?? []);
  const triggers = tagList(o.triggers ?? []);
  for (const [path, list] of [['niches', niches], ['triggers', triggers]] as const) {
    if (list.length > LIMITS.tags) bad(path, `at most ${LIMITS.tags} values`);
    if (list.some((t) => t.length > LIMITS.tag)) bad(path, `each at most ${LIMITS.tag} characters`);
  }
  if (o.fileName !== undefined && o.fileName.length > LIMITS.fileName) bad('file_name', `must be at most ${LIMITS.fileName} characters`);
  if (details.length > 0) throw unprocessable('IMPORT_INVALID_OPTIONS', 'invalid import options', details);
  return {
    onDuplicate: o.onDuplicate,
    deviceId: o.deviceId ?? null,
    status: stripControl(status),
    niches,
    triggers,
    source: stripControl(source) || 'import',
    encoding,
  };
}
