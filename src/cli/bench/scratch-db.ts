import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Db, Tracker } from '../../store/db.js';
import { openPglite } from '../../store/pglite.js';
import { openPostgres } from '../../store/postgres.js';

export const LOCAL_POSTGRES = 'postgresql://postgres@127.0.0.1:5432/postgres';

export interface StatementTiming {
  statement: string;
  count: number;
  totalMs: number;
  meanMs: number;
}

/**
 * Wraps `db.query` to time every statement by its text (queueing on the connection included).
 * `report` lists them, slowest in total first.
 */
export function profileStatements(db: Db): { report(): StatementTiming[] } {
  const stats = new Map<string, { count: number; totalMs: number }>();
  const query = db.query.bind(db);
  db.query = (async (sql: string, params?: readonly unknown[]) => {
    const t = performance.now();
    try {
      return await query(sql, params);
    } finally {
      const key = sql.trim().replace(/\s+/g, ' ').slice(0, 80);
      const s = stats.get(key) ?? { count: 0, totalMs: 0 };
      s.count++;
      s.totalMs += performance.now() - t;
      stats.set(key, s);
    }
  }) as Db['query'];
  return {
    report: () =>
      [...stats]
        .map(([statement, s]) => ({ statement, count: s.count, totalMs: Math.round(s.totalMs), meanMs: Math.round((s.totalMs / s.count) * 100) / 100 }))
        .sort((a, b) => b.totalMs - a.totalMs),
  };
}

/** Where a benchmark's throwaway database lives: a temporary PGlite directory or a schema. */
export type ScratchLocation = { kind: 'pglite'; dir: string } | { kind: 'postgres'; url: string; schema: string };

export function newScratchLocation(kind: 'pglite' | 'postgres'): ScratchLocation {
  if (kind === 'pglite') return { kind, dir: mkdtempSync(join(tmpdir(), 'fleetcast-bench-')) };
  return { kind, url: process.env.DATABASE_URL || LOCAL_POSTGRES, schema: `bench_${process.pid}_${Date.now().toString(36)}` };
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
