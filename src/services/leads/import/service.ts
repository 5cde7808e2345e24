/**
 * Lead imports as jobs. An upload is streamed to a file (never into memory), recorded as a queued
 * job, and imported in the background, one job at a time per process, oldest first: an import
 * keeps a batch of rows and a few MB of state, so memory stays bounded however many users upload
 * at once, and the single PGlite connection is never flooded.
 *
 * A running job writes its counts at most twice a second; that write is also its heartbeat. A job
 * whose heartbeat stopped (its process died) is failed as INTERRUPTED by the next process to look
 * (at start, then every `sweepEveryMs`). What it imported stays: importing the file again with
 * on_duplicate=skip adds only what is missing.
 */
import { SEQUENCES_CHANNEL } from '../../../engine/events.js';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, mkdirSync } from 'node:fs';
import { readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Clock } from '../../../engine/clock.js';
import type { Logger } from '../../../logger.js';
import type { Db } from '../../../store/db.js';
import {
  failStaleImports,
  finishImport,
  getImport,
  insertImport,
  isLiveDeviceOf,
  listImportErrors,
  listImports,
  markImportRunning,
  saveImportProgress,
  touchImports,
  type ImportCounts,
  type ImportErrorRow,
  type ImportRow,
} from '../../../store/sql/lead-imports.js';
import type { Actor } from '../../actor.js';
import { AppError, notFound, unprocessable } from '../../errors.js';
import { resolveImportOptions, type ImportOptions, type ResolvedImportOptions } from './options.js';
import { ImportFailure, importLeadsFile } from './run.js';
import { publishLive } from '../../live/channel.js';

export const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;
export const DEFAULT_STALE_MS = 2 * 60_000;

export interface LeadImportsConfig {
  db: Db;
  clock: Clock;
  log: Logger;
  /** Where uploads wait for their job (created if missing). */
  dir: string;
  /** Names this process in the jobs it runs. */
  owner: string;
  /** Largest upload accepted, in bytes (default 256 MiB). */
  maxBytes?: number | undefined;
  /** A queued or running job whose heartbeat is older than this is taken for dead (default 2 min). */
  staleMs?: number | undefined;
  /** How often to look for dead jobs while running (default: staleMs); 0: only in recoverInterrupted(). */
  sweepEveryMs?: number | undefined;
}

export interface ImportView {
  id: number;
  status: 'queued' | 'running' | 'completed' | 'failed';
  file_name: string | null;
  file_bytes: number;
  bytes_read: number;
  on_duplicate: 'skip' | 'update';
  /** The device new leads were given; null: the shared pool. */
  device_id: number | null;
  options: { status: string; niches: string[]; triggers: string[]; source: string; encoding: string };
  rows_total: number;
  inserted: number;
  updated: number;
  skipped: number;
  failed: number;
  error_code: string | null;
  error: string | null;
  created_by: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

export type ImportErrorView = ImportErrorRow;

interface Job {
  id: number;
  actor: Actor;
  options: ResolvedImportOptions;
  file: string;
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

export function importView(r: ImportRow): ImportView {
  const o = r.options as Partial<Record<string, unknown>>;
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return {
    id: r.id,
    status: r.status,
    file_name: r.file_name,
    file_bytes: r.file_bytes,
    bytes_read: r.bytes_read,
    on_duplicate: r.on_duplicate,
    device_id: typeof o.device_id === 'number' ? o.device_id : null,
    options: {
      status: typeof o.status === 'string' ? o.status : 'prospect',
      niches: strings(o.niches),
      triggers: strings(o.triggers),
      source: typeof o.source === 'string' ? o.source : 'import',
      encoding: typeof o.encoding === 'string' ? o.encoding : 'utf8',
    },
    rows_total: r.rows_total,
    inserted: r.inserted,
    updated: r.updated,
    skipped: r.skipped,
    failed: r.failed,
    error_code: r.error_code,
    error: r.error,
    created_by: r.created_by,
    created_at: r.created_at.toISOString(),
    started_at: iso(r.started_at),
    finished_at: iso(r.finished_at),
    updated_at: r.updated_at.toISOString(),
  };
}

const INTERRUPTED = 'INTERRUPTED';
const INTERRUPTED_MESSAGE =
  'the server stopped while this import was running; the rows imported until then stay: upload the file again with on_duplicate=skip to add the rest';
const NOT_STARTED_MESSAGE = 'the server stopped before this import started: upload the file again';

export class LeadImports {
  private readonly db: Db;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly dir: string;
  private readonly owner: string;
  private readonly maxBytes: number;
  private readonly staleMs: number;
  private readonly queue: Job[] = [];
  private current: { job: Job; done: Promise<void> } | null = null;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout | undefined;

  constructor(cfg: LeadImportsConfig) {
    this.db = cfg.db;
    this.clock = cfg.clock;
    this.log = cfg.log;
    this.dir = cfg.dir;
    this.owner = cfg.owner;
    this.maxBytes = cfg.maxBytes ?? DEFAULT_MAX_BYTES;
    this.staleMs = cfg.staleMs ?? DEFAULT_STALE_MS;
    mkdirSync(this.dir, { recursive: true });
    const every = cfg.sweepEveryMs ?? this.staleMs;
    if (every > 0) {
      this.sweeper = setInterval(() => {
        this.recoverInterrupted().catch((err: unknown) => this.log.error({ err }, 'lead import recovery failed'));
      }, every);
      this.sweeper.unref();
    }
  }

  private now(): Date {
    return new Date(this.clock.now());
  }

  private fileOf(id: number): string {
    return join(this.dir, `${id}.csv`);
  }

  /**
   * Takes an upload: checks the options, streams the body to disk (refusing it past maxBytes),
   * records the job and queues it. Answers with the queued job; the import runs after.
   */
  async start(actor: Actor, body: NodeJS.ReadableStream | Uint8Array | string, opts: ImportOptions): Promise<ImportView> {
    if (this.closed) throw new AppError('IMPORTS_UNAVAILABLE', 503, 'imports are not taken while the server shuts down', [], 5);
    const options = resolveImportOptions(opts);
    // Refused before a byte is read: a wrong device should not cost an upload.
    await this.checkDevice(actor, options.deviceId);
    let path = await this.receive(body);
    try {
      const bytes = (await stat(path)).size;
      if (bytes === 0) throw unprocessable('IMPORT_EMPTY', 'the file is empty');
      const row = await insertImport(
        this.db,
        {
          tenantId: actor.tenantId,
          createdBy: actor.userId,
          fileName: opts.fileName ?? null,
          fileBytes: bytes,
          onDuplicate: options.onDuplicate,
          options: {
            device_id: options.deviceId,
            status: options.status,
            niches: options.niches,
            triggers: options.triggers,
            source: options.source,
            encoding: options.encoding,
            default_country: actor.defaultCountry,
          },
          owner: this.owner,
        },
        this.now(),
      );
      const file = this.fileOf(row.id);
      try {
        await rename(path, file);
      } catch (err) {
        await finishImport(this.db, row.id, { status: 'failed', counts: zero(), errorCode: 'IMPORT_INTERNAL_ERROR', error: 'the upload could not be stored' }, this.now());
        throw err;
      }
      path = file;
      this.queue.push({ id: row.id, actor, options, file });
      this.pump();
      return importView(row);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
  }

  private async checkDevice(actor: Actor, deviceId: number | null): Promise<void> {
    if (deviceId === null) {
      if (actor.deviceScope !== null) {
        throw unprocessable('IMPORT_DEVICE_REQUIRED', 'name one of your devices (device_id): team members cannot add leads to the shared pool', [
          { path: 'device_id', message: 'required for team members' },
        ]);
      }
      return;
    }
    const inScope = actor.deviceScope === null || actor.deviceScope.includes(deviceId);
    if (!inScope || !(await isLiveDeviceOf(this.db, actor.tenantId, deviceId))) {
      throw new AppError('DEVICE_NOT_FOUND', 404, 'device not found', [{ path: 'device_id', message: `no device ${deviceId}` }]);
    }
  }

  /** Streams the body to a new file in `dir`; on any failure the partial file is removed. */
  private async receive(body: NodeJS.ReadableStream | Uint8Array | string): Promise<string> {
    const path = join(this.dir, `upload-${randomUUID()}.part`);
    let source: Readable;
    if (typeof body === 'string' || body instanceof Uint8Array) source = Readable.from([Buffer.from(body)]);
    else source = body instanceof Readable ? body : Readable.from(body as AsyncIterable<Buffer>);
    const out = createWriteStream(path);
    let bytes = 0;
    try {
      // Not destroyed when refused: the HTTP layer still has to answer 413 on that connection.
      for await (const chunk of source.iterator({ destroyOnReturn: false })) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
        bytes += buf.length;
        if (bytes > this.maxBytes) {
          throw new AppError('IMPORT_TOO_LARGE', 413, `the file is larger than the limit of ${sizeText(this.maxBytes)}`, [
            { path: 'body', message: `at most ${this.maxBytes} bytes` },
          ]);
        }
        if (!out.write(buf)) await once(out, 'drain');
      }
      out.end();
      await once(out, 'close');
      return path;
    } catch (err) {
      // The file may still be opening: removing it before the stream closes would race its creation.
      if (!out.closed) {
        const closed = new Promise<void>((resolve) => out.once('close', () => resolve()));
        out.destroy();
        await closed;
      }
      await rm(path, { force: true });
      if (err instanceof AppError) throw err;
      throw new AppError('IMPORT_UPLOAD_FAILED', 400, 'the upload did not arrive whole', [{ path: 'body', message: String((err as Error).message ?? err) }]);
    }
  }

  private pump(): void {
    if (this.current !== null || this.closed) return;
    const job = this.queue.shift();
    if (!job) return;
    const done = this.run(job).finally(() => {
      this.current = null;
      this.pump();
    });
    this.current = { job, done };
  }

  /**
   * The dashboard's progress bar (`import.progress`). It names the import's device, if any, so the
   * team member who imported onto its device sees it too. Never fails the import.
   */
  private async publishProgress(job: Job, status: string, c: ImportCounts, errorCode: string | null = null): Promise<void> {
    await publishLive(this.db, {
      tenantId: job.actor.tenantId,
      ...(job.options.deviceId !== null ? { deviceId: job.options.deviceId } : {}),
      type: 'import.progress',
      at: this.clock.now(),
      data: {
        import_id: job.id,
        status,
        rows_total: c.rowsTotal,
        inserted: c.inserted,
        updated: c.updated,
        skipped: c.skipped,
        failed: c.failed,
        bytes_read: c.bytesRead,
        error_code: errorCode,
      },
    }).catch((err: unknown) => this.log.warn({ err, importId: job.id }, 'could not publish lead import progress'));
  }

  private async run(job: Job): Promise<void> {
    const counts = zero();
    try {
      if (!(await markImportRunning(this.db, job.id, this.owner, this.now()))) return;
      await importLeadsFile({
        db: this.db,
        clock: this.clock,
        actor: job.actor,
        importId: job.id,
        file: job.file,
        options: job.options,
        counts,
        pipeline: this.db.profile.statementParallelism,
        onEnrolled: async (_n, due) => {
          await this.db.notify(SEQUENCES_CHANNEL, JSON.stringify(due === null ? {} : { due: due.getTime() }));
        },
        onProgress: async (c) => {
          const now = this.now();
          await saveImportProgress(this.db, job.id, c, now);
          await this.publishProgress(job, 'running', c);
          await touchImports(
            this.db,
            this.queue.map((j) => j.id),
            now,
          );
        },
      });
      await finishImport(this.db, job.id, { status: 'completed', counts }, this.now());
      await this.publishProgress(job, 'completed', counts);
      this.log.info({ importId: job.id, tenantId: job.actor.tenantId, ...counts }, 'lead import completed');
    } catch (err) {
      const failure = err instanceof ImportFailure ? err : null;
      if (failure) this.log.info({ importId: job.id, tenantId: job.actor.tenantId, code: failure.code }, 'lead import refused the file');
      else this.log.error({ err, importId: job.id }, 'lead import failed');
      await finishImport(
        this.db,
        job.id,
        {
          status: 'failed',
          counts,
          errorCode: failure?.code ?? 'IMPORT_INTERNAL_ERROR',
          error: failure?.message ?? 'the import stopped on an internal error; the rows imported until then stay',
        },
        this.now(),
      ).catch((e: unknown) => this.log.error({ err: e, importId: job.id }, 'could not record a failed lead import'));
      await this.publishProgress(job, 'failed', counts, failure?.code ?? 'IMPORT_INTERNAL_ERROR');
    } finally {
      await rm(job.file, { force: true });
    }
  }

  async get(actor: Actor, id: number): Promise<ImportView> {
    return importView(await this.visible(actor, id));
  }

  /** Newest first; `after` is the last id of the previous page. A team member sees its own imports. */
  async list(actor: Actor, page: { after?: number | undefined; limit: number }): Promise<ImportView[]> {
    const rows = await listImports(this.db, actor.tenantId, {
      before: page.after,
      limit: page.limit,
      createdBy: actor.teamMember ? actor.userId : undefined,
    });
    return rows.map(importView);
  }

  /** The rows an import refused, in line order, after `afterLine`. */
  async errors(actor: Actor, id: number, page: { afterLine?: number | undefined; limit: number }): Promise<ImportErrorView[]> {
    await this.visible(actor, id);
    return listImportErrors(this.db, id, page.afterLine ?? 0, page.limit);
  }

  private async visible(actor: Actor, id: number): Promise<ImportRow> {
    const row = await getImport(this.db, actor.tenantId, id, actor.teamMember ? actor.userId : undefined);
    if (!row) throw notFound('import');
    return row;
  }

  /**
   * Fails the jobs whose process is gone (queued or running, no heartbeat for staleMs) and removes
   * their files and any upload left half-written. Returns how many jobs it failed.
   */
  async recoverInterrupted(): Promise<number> {
    const now = this.now();
    const keep = [...(this.current ? [this.current.job.id] : []), ...this.queue.map((j) => j.id)];
    const ids = await failStaleImports(this.db, new Date(now.getTime() - this.staleMs), keep, INTERRUPTED, INTERRUPTED_MESSAGE, now);
    if (ids.length > 0) this.log.warn({ importIds: ids }, 'lead imports interrupted by a stopped process marked failed');
    await Promise.all(ids.map((id) => rm(this.fileOf(id), { force: true })));
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith('.part')) continue;
      const p = join(this.dir, name);
      // An upload still arriving is being written to: its file is recent.
      const s = await stat(p).catch(() => null);
      if (s && Date.now() - s.mtimeMs > this.staleMs) await rm(p, { force: true });
    }
    return ids.length;
  }

  /** Resolves once no job is queued or running. */
  async idle(): Promise<void> {
    while (this.current !== null) await this.current.done;
  }

  /** Stops taking uploads, fails the jobs that have not started, and waits for the running one. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    const waiting = this.queue.splice(0);
    for (const job of waiting) {
      await finishImport(this.db, job.id, { status: 'failed', counts: zero(), errorCode: INTERRUPTED, error: NOT_STARTED_MESSAGE }, this.now()).catch(
        (err: unknown) => this.log.error({ err, importId: job.id }, 'could not record an abandoned lead import'),
      );
      await rm(job.file, { force: true });
    }
    await this.current?.done;
  }
}

function sizeText(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.floor(bytes / 1024 / 1024)} MB` : `${bytes} bytes`;
}

function zero(): ImportCounts {
  return { rowsTotal: 0, inserted: 0, updated: 0, skipped: 0, failed: 0, bytesRead: 0 };
}
