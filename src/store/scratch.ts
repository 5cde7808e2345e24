/**
 * Throwaway databases for simulations and benchmarks: PGlite in a fresh temporary directory, or a
 * fresh schema on a PostgreSQL server; disposing removes the directory or drops the schema.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Db, Tracker } from './db.js';
import { openPglite } from './pglite.js';
import { openPostgres } from './postgres.js';

export const LOCAL_POSTGRES = 'postgresql://postgres@127.0.0.1:5432/postgres';

/** Where a throwaway database lives: a temporary PGlite directory or a schema. */
export type ScratchLocation = { kind: 'pglite'; dir: string } | { kind: 'postgres'; url: string; schema: string };

/** A new location; PostgreSQL uses `databaseUrl`, else DATABASE_URL, else the local server. */
export function newScratchLocation(kind: 'pglite' | 'postgres', prefix: string, databaseUrl?: string): ScratchLocation {
  if (kind === 'pglite') return { kind, dir: mkdtempSync(join(tmpdir(), `fleetcast-${prefix}-`)) };
  return {
    kind,
    url: databaseUrl || process.env.DATABASE_URL || LOCAL_POSTGRES,
    schema: `fleetcast_${prefix}_${randomBytes(6).toString('hex')}`,
  };
}

export function openScratch(loc: ScratchLocation, track?: Tracker): Promise<Db> {
  return loc.kind === 'pglite'
    ? openPglite({ dataDir: loc.dir, ...(track ? { track } : {}) })
    : openPostgres({ connectionString: loc.url, schema: loc.schema, ...(track ? { track } : {}) });
}

export async function disposeScratch(loc: ScratchLocation): Promise<void> {
  if (loc.kind === 'pglite') {
    rmSync(loc.dir, { recursive: true, force: true });
    return;
  }
  const c = new pg.Client({ connectionString: loc.url });
  await c.connect();
  try {
    await c.query(`drop schema if exists ${loc.schema} cascade`);
  } finally {
    await c.end();
  }
}
