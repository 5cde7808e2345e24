/**
 * A throwaway database per run, so a simulation never touches real data and two runs never see
 * each other: PGlite in a fresh temporary directory (removed afterwards), or a fresh schema on the
 * PostgreSQL server (dropped afterwards).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Db, Tracker } from '../../store/db.js';
import { openPglite } from '../../store/pglite.js';
import { openPostgres } from '../../store/postgres.js';

export type StoreKind = 'pglite' | 'postgres';

export interface ScratchStore {
  db: Db;
  kind: StoreKind;
  /** Closes the database and deletes everything the run created in it. */
  dispose(): Promise<void>;
}

export async function openScratchStore(kind: StoreKind, track: Tracker, databaseUrl?: string): Promise<ScratchStore> {
  if (kind === 'pglite') {
    const dataDir = await mkdtemp(join(tmpdir(), 'fleetcast-sim-'));
    const remove = () => rm(dataDir, { recursive: true, force: true });
    try {
      const db = await openPglite({ dataDir, track });
      return { db, kind, dispose: () => db.close().finally(remove) };
    } catch (err) {
      await remove();
      throw err;
    }
  }
  if (!databaseUrl) throw new Error('a PostgreSQL run needs DATABASE_URL');
  const schema = `fleetcast_sim_${randomBytes(6).toString('hex')}`;
  const drop = () => dropSchema(databaseUrl, schema);
  try {
    const db = await openPostgres({ connectionString: databaseUrl, schema, track });
    return { db, kind, dispose: () => db.close().finally(drop) };
  } catch (err) {
    await drop().catch(() => undefined);
    throw err;
  }
}

async function dropSchema(connectionString: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query(`drop schema if exists ${schema} cascade`);
  } finally {
    await client.end();
  }
}
