/**
 * A throwaway database per run, so a simulation never touches real data and two runs never see
 * each other (see store/scratch.ts).
 */
import type { Db, Tracker } from '../../store/db.js';
import { migrate } from '../../store/migrate.js';
import { openPglite } from '../../store/pglite.js';
import { disposeScratch, newScratchLocation, openScratch } from '../../store/scratch.js';

/** `memory`: PGlite in memory from a migrated dump (openMemoryStore); quickest for small worlds. */
export type StoreKind = 'pglite' | 'postgres' | 'memory';

export interface ScratchStore {
  db: Db;
  kind: StoreKind;
  /** Closes the database and deletes everything the run created in it. */
  dispose(): Promise<void>;
}

export async function openScratchStore(kind: StoreKind, track: Tracker, databaseUrl?: string): Promise<ScratchStore> {
  if (kind === 'memory') return openMemoryStore(track);
  const loc = newScratchLocation(kind, 'sim', databaseUrl);
  let db: Db;
  try {
    db = await openScratch(loc, track);
  } catch (err) {
    await disposeScratch(loc);
    throw err;
  }
  return { db, kind, dispose: () => db.close().finally(() => disposeScratch(loc)) };
}

let template: Promise<Blob | File> | undefined;

/**
 * A fresh migrated database in memory, for short runs inside a serving process (forecasts). Booting
 * PGlite and migrating it takes seconds; restoring a dump of a migrated one well under one, so the
 * first call makes that dump and every later one starts from it. Memory only: a run this size
 * (tens of thousands of rows) needs no files, and nothing is left behind.
 */
export async function openMemoryStore(track: Tracker): Promise<ScratchStore> {
  template ??= (async () => {
    const db = await openPglite();
    try {
      await migrate(db, new Date(0));
      return await db.dumpDataDir();
    } finally {
      await db.close();
    }
  })();
  let dump: Blob | File;
  try {
    dump = await template;
  } catch (err) {
    // A failed first attempt must not poison every later forecast.
    template = undefined;
    throw err;
  }
  const db = await openPglite({ loadDataDir: dump, track });
  return { db, kind: 'memory', dispose: () => db.close() };
}
