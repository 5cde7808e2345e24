/**
 * One CSV file into one tenant's leads: every good row imported, every bad row reported with its
 * line. Used by the import job and by `fleetcast bench import`.
 *
 * Two halves. The reading half (parse.ts) streams records from disk, checks them, finds in-file
 * duplicates and gathers batches, in a worker thread; this, the writing half, stores each batch and
 * each set of refused rows as it arrives, and enrolls leads that gained a sequence's trigger. Memory
 * stays flat whatever the file's size: a few batches are all that is ever held, and the in-file
 * duplicate check costs ~17 MB for a million phones (FirstSeen, in the worker). On PGlite, whose
 * statements run on this thread, the worker reads the next rows while a batch is written (1M rows:
 * PostgreSQL's own work inside PGlite is more than half the import, and reading, phone parsing above
 * all, most of the rest); on PostgreSQL the next batch is also written while the previous one is.
 */
import { Worker } from 'node:worker_threads';
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
import type { ResolvedImportOptions } from './options.js';
import { ImportFailure, MAX_ROWS, parseLeads, type BatchColumns, type ParseEvent, type ParseSpec } from './parse.js';

export { ImportFailure, MAX_ROWS };

/**
 * Rows per INSERT. Measured on PGlite with 1,000,000 rows: the INSERTs alone take 30.5 s in
 * batches of 1,000 and 29.3 s in batches of 5,000; the whole import ~47 s at 2,000 and ~45 s at
 * 5,000. A batch holds PGlite's single connection for ~50 ms at 2,000 rows, ~125 ms at 5,000,
 * and every API request of the process queues behind it: 2,000 keeps that wait short.
 */
export const BATCH_ROWS = 2_000;
const PROGRESS_EVERY_MS = 500;

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
  /** How many statements may be in flight; 1 waits for each write before the next. */
  pipeline?: number | undefined;
  /** Kept up to date as the import goes (so a caller has the counts even when it throws). */
  counts?: ImportCounts | undefined;
  /** Default MAX_ROWS. */
  maxRows?: number | undefined;
  /** Leads of a batch gained a sequence's trigger and were enrolled (the caller wakes the planner). */
  onEnrolled?: ((enrolled: number, firstDue: Date | null) => Promise<void>) | undefined;
  /** Where the file is read: a worker thread (default) or this thread. */
  readIn?: 'worker' | 'thread' | undefined;
}

export async function importLeadsFile(a: ImportFileArgs): Promise<ImportCounts> {
  const o = a.options;
  const counts: ImportCounts = a.counts ?? { rowsTotal: 0, inserted: 0, updated: 0, skipped: 0, failed: 0, bytesRead: 0 };
  const progressEvery = a.progressEveryMs ?? PROGRESS_EVERY_MS;
  const maxInFlight = Math.max(1, a.pipeline ?? 1);
  const spec: ParseSpec = {
    file: a.file,
    options: o,
    defaultCountry: a.actor.defaultCountry,
    batchRows: a.batchRows ?? BATCH_ROWS,
    maxRows: a.maxRows ?? MAX_ROWS,
  };
  const write = o.onDuplicate === 'update' ? upsertLeadsUpdating : insertLeadsSkipping;
  const shared = {
    tenantId: a.actor.tenantId,
    deviceId: o.deviceId,
    updateScope: a.actor.deviceScope,
    defaults: { status: o.status, source: o.source, niches: o.niches, triggers: o.triggers },
  };

  let lastProgress = a.clock.now();
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
  const mayTag = (b: BatchColumns) => defaultTags || b.triggers.some((t) => t !== null && t.split(TAG_SEPARATOR).some((x) => triggers.has(x)));
  const writeLeads = async (b: BatchColumns) => {
    await settle(maxInFlight - 1);
    launch(async () => {
      const leadBatch: LeadBatch = { ...shared, ...b };
      const now = new Date(a.clock.now());
      const watch = triggers.size > 0 && mayTag(b);
      const before = watch ? await taggedLeadsByPhone(a.db, a.actor.tenantId, b.phones, watched) : null;
      const r = await write(a.db, leadBatch, now);
      counts.inserted += r.inserted;
      counts.updated += r.updated;
      counts.skipped += b.phones.length - r.inserted - r.updated;
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
  const writeErrors = async (e: ImportErrorRow[]) => {
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
    await a.onProgress({ ...counts });
  };

  const events = a.readIn === 'thread' ? parseLeads(spec) : parseInWorker(spec);
  let overLimit = 0;
  try {
    for await (const e of events) {
      counts.rowsTotal = e.rowsTotal;
      counts.bytesRead = e.bytesRead;
      if (e.type === 'rows') await writeLeads(e.batch);
      else if (e.type === 'errors') await writeErrors(e.errors);
      else if (e.type === 'done') overLimit = e.overLimit;
      await progress();
    }
    await settle(0);
  } catch (err) {
    // Nothing may still be writing once the caller hears the import is over.
    await events.return(undefined).catch(() => undefined);
    await Promise.allSettled([...inFlight]);
    throw err;
  }
  // Rows past the limit were counted but have one error row between them.
  counts.failed += Math.max(0, overLimit - 1);
  return counts;
}

type WorkerMessage = { event: ParseEvent } | { failure: { code: string; message: string } } | { crash: string };

/**
 * parseLeads in a worker thread, as the same stream of events. Each batch taken is acknowledged,
 * which lets the worker read on (it keeps at most a couple of batches ahead). Ending the stream
 * early (a failed write) stops the worker.
 */
async function* parseInWorker(spec: ParseSpec): AsyncGenerator<ParseEvent> {
  const worker = new Worker(new URL('./parse-worker.js', import.meta.url), {
    workerData: spec,
    // Its heap holds a few batches and the duplicate check: bounded, so a runaway file cannot
    // take the server's memory with it.
    resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 192 },
  });
  const queue: WorkerMessage[] = [];
  let wake: (() => void) | null = null;
  let ended: Error | null = null;
  let exited = false;
  const notify = () => {
    wake?.();
    wake = null;
  };
  worker.on('message', (m: WorkerMessage) => {
    queue.push(m);
    notify();
  });
  worker.on('error', (err) => {
    ended ??= err;
    notify();
  });
  worker.on('exit', () => {
    exited = true;
    notify();
  });
  try {
    for (;;) {
      const m = queue.shift();
      if (m === undefined) {
        if (ended) throw ended;
        if (exited) throw new Error('the import reader stopped before the end of the file');
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      if ('failure' in m) throw new ImportFailure(m.failure.code, m.failure.message);
      if ('crash' in m) throw new Error(`the import reader failed: ${m.crash}`);
      const e = m.event;
      if (e.type === 'rows' || e.type === 'errors') worker.postMessage('more');
      yield e;
      if (e.type === 'done') return;
    }
  } finally {
    if (!exited) await worker.terminate();
  }
}
