import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite, types } from '@electric-sql/pglite';
import { assertIdentifier, untracked, type Db, type DbProfile, type Queryable, type QueryResult, type Tracker } from './db.js';
import { LocalNotifier } from './local-notify.js';

export const pgliteProfile: DbProfile = {
  kind: 'pglite',
  poolSize: 1,
  crossProcessNotify: false,
  manualVacuum: true,
  statementParallelism: 1,
};

/**
 * The buffer cache lives inside PGlite's WebAssembly memory, so it counts in the process's RSS from
 * the moment the database opens (about 150 MB of PGlite besides it). Measured on 2 cores: a
 * 1,000,000-message dispatch over 3,000 devices ran 8,039 msg/s at 32 MB (340 MB RSS) against
 * 10,647 msg/s at 96 MB (403 MB), and a 1,000,000-row CSV import took the same time at both while
 * its peak RSS was ~80 MB lower at 32 MB. 32 MB keeps the dispatch target (6,000 msg/s) and a
 * million-row import under 300 MB; FLEETCAST_PGLITE_CACHE_MB trades memory for speed.
 */
export const DEFAULT_PGLITE_CACHE_MB = 32;

export interface PgliteOptions {
  /** A directory to persist to; omitted means in memory (small tests only: 1M rows cost > 2 GB). */
  dataDir?: string;
  /** A data directory dump (from `dumpDataDir`) to start from instead of running initdb. */
  loadDataDir?: Blob | File;
  schema?: string;
  track?: Tracker;
  /** The buffer cache (shared_buffers) in MB; default DEFAULT_PGLITE_CACHE_MB. */
  cacheMb?: number;
}

// PGlite returns int8 as a JS number already for scalars; keep numeric as string as pg does.
const parsers = {
  [types.INT8]: (v: string) => Number(v),
};

class PgliteDb implements Db {
  readonly profile = pgliteProfile;
  private readonly local = new LocalNotifier();

  constructor(
    private readonly pg: PGlite,
    private readonly track: Tracker,
  ) {}

  query<R>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
    return this.track(run<R>(this.pg, sql, params));
  }

  async exec(sql: string): Promise<void> {
    await this.track(this.pg.exec(sql));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.track(
      this.pg.transaction(async (tx) => {
        const q: Queryable = {
          query: <R>(sql: string, params: readonly unknown[] = []) => this.track(run<R>(tx, sql, params)),
          exec: async (sql: string) => {
            await this.track(tx.exec(sql));
          },
        };
        return fn(q);
      }),
    );
  }

  async notify(channel: string, payload: string): Promise<void> {
    this.local.emit(channel, payload);
  }

  async listen(channel: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    const off = this.local.on(channel, handler);
    return async () => off();
  }

  async close(): Promise<void> {
    if (!this.pg.closed) await this.pg.close();
  }

  /** A snapshot of the whole data directory (used to clone a migrated database quickly). */
  dumpDataDir(): Promise<Blob | File> {
    return this.pg.dumpDataDir('none');
  }
}

type PgliteQueryable = Pick<PGlite, 'query'>;

async function run<R>(pg: PgliteQueryable, sql: string, params: readonly unknown[]): Promise<QueryResult<R>> {
  const res = await pg.query<R>(sql, params as unknown[], { parsers });
  // PGlite reports 0 affected rows for a SELECT; pg's rowCount is the rows returned. Same meaning on both.
  return { rows: res.rows, rowCount: Math.max(res.affectedRows ?? 0, res.rows.length) };
}

export async function openPglite(opts: PgliteOptions = {}): Promise<Db & { dumpDataDir(): Promise<Blob | File> }> {
  const create = () =>
    PGlite.create({
      ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
      ...(opts.loadDataDir ? { loadDataDir: opts.loadDataDir } : {}),
      postgresqlconf: [`shared_buffers=${Math.round(opts.cacheMb ?? DEFAULT_PGLITE_CACHE_MB)}MB`],
    });
  const existedBefore = opts.dataDir !== undefined && existsSync(join(opts.dataDir, 'PG_VERSION'));
  let pg = await create();
  if (opts.dataDir && !existedBefore) {
    // Measured: the process that ran initdb keeps ~780 MB resident; reopening the same directory
    // costs ~190-290 MB. One extra second on first start keeps a server inside its memory budget.
    await pg.close();
    pg = await create();
  }
  if (opts.schema) {
    const schema = assertIdentifier(opts.schema);
    await pg.exec(`create schema if not exists ${schema}; set search_path to ${schema}`);
  }
  return new PgliteDb(pg, opts.track ?? untracked);
}
