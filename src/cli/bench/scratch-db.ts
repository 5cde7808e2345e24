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

/** A database to measure in, thrown away afterwards: a temporary PGlite directory or a schema. */
export async function openScratchDb(kind: 'pglite' | 'postgres', track?: Tracker): Promise<{ db: Db; dispose(): Promise<void> }> {
  if (kind === 'pglite') {
    const dir = mkdtempSync(join(tmpdir(), 'fleetcast-bench-'));
    const db = await openPglite({ dataDir: dir, ...(track ? { track } : {}) });
    return {
      db,
      async dispose() {
        await db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const url = process.env.DATABASE_URL || LOCAL_POSTGRES;
  const schema = `bench_${process.pid}_${Date.now().toString(36)}`;
  const db = await openPostgres({ connectionString: url, schema, ...(track ? { track } : {}) });
  return {
    db,
    async dispose() {
      await db.close();
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`drop schema if exists ${schema} cascade`);
      await c.end();
    },
  };
}
