/**
 * A throwaway database per run, so a simulation never touches real data and two runs never see
 * each other (see store/scratch.ts).
 */
import type { Db, Tracker } from '../../store/db.js';
import { disposeScratch, newScratchLocation, openScratch } from '../../store/scratch.js';

export type StoreKind = 'pglite' | 'postgres';

export interface ScratchStore {
  db: Db;
  kind: StoreKind;
  /** Closes the database and deletes everything the run created in it. */
  dispose(): Promise<void>;
}

export async function openScratchStore(kind: StoreKind, track: Tracker, databaseUrl?: string): Promise<ScratchStore> {
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
