/**
 * Waiting for a quiet machine between benchmarks. A benchmark that starts while the one before it is
 * still being cleaned up after (PostgreSQL checkpointing the gigabytes it wrote, autovacuum on the
 * tables it churned, the load of its processes still in the average) measures that cleanup as well:
 * in one all-in-one run on a 2-core machine, three rows came out 35-60% slower than the same
 * benchmarks run alone (CSV import 66.8 s against 48.9 s, the lead listing's p99 78 ms against
 * 36 ms, campaign materialisation on PostgreSQL 14.7 s against 9.1 s).
 *
 * So before each row: a CHECKPOINT (the dirty pages are written now, not during the next row), then
 * wait until no autovacuum worker runs and the 1-minute load average is below half the cores, at
 * most `maxWaitMs`. What was waited for is returned and printed with the row.
 */
import os from 'node:os';
import pg from 'pg';

export interface Settled {
  waitedMs: number;
  /** Whether the machine was quiet when the wait ended (false: it gave up at maxWaitMs). */
  quiet: boolean;
  loadAverage: number;
  /** Autovacuum workers still running at the end (null: no PostgreSQL server to ask). */
  autovacuumWorkers: number | null;
}

export interface SettleOptions {
  /** The PostgreSQL server the benchmarks use; null to wait on the load alone. */
  postgresUrl: string | null;
  maxWaitMs?: number;
  /** The 1-minute load average to wait for (default: half the cores). */
  quietLoad?: number;
  pollMs?: number;
}

export async function settleMachine(o: SettleOptions): Promise<Settled> {
  const maxWaitMs = o.maxWaitMs ?? 180_000;
  const quietLoad = o.quietLoad ?? os.availableParallelism() / 2;
  const pollMs = o.pollMs ?? 2000;
  const start = Date.now();
  const client = o.postgresUrl ? await connect(o.postgresUrl) : null;
  try {
    if (client) await client.query('checkpoint').catch(() => undefined);
    for (;;) {
      const workers = client ? await autovacuumWorkers(client) : null;
      const load = os.loadavg()[0] ?? 0;
      const quiet = (workers ?? 0) === 0 && load < quietLoad;
      const waitedMs = Date.now() - start;
      if (quiet || waitedMs >= maxWaitMs) {
        return { waitedMs, quiet, loadAverage: Math.round(load * 100) / 100, autovacuumWorkers: workers };
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  } finally {
    await client?.end().catch(() => undefined);
  }
}

/** A client, or null when the server cannot be reached (the rows that need it will say so). */
async function connect(url: string): Promise<pg.Client | null> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    return client;
  } catch {
    await client.end().catch(() => undefined);
    return null;
  }
}

async function autovacuumWorkers(client: pg.Client): Promise<number> {
  const res = await client.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where backend_type = 'autovacuum worker'`);
  return res.rows[0]!.n;
}
