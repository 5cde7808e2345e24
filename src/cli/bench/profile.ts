import type { Db } from '../../store/db.js';

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
