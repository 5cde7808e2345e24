import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Db, Tracker } from './db.js';
import { lockDataDir } from './data-dir-lock.js';
import { openPglite } from './pglite.js';
import { openPostgres } from './postgres.js';

export interface StoreConfig {
  /** When set, a PostgreSQL server; otherwise PGlite in `dataDir`. */
  databaseUrl?: string | undefined;
  /** PostgreSQL: where the LISTEN connection goes, if not to databaseUrl (PgBouncer in transaction mode). */
  listenUrl?: string | undefined;
  /** PostgreSQL: connections in this process's pool. */
  poolSize?: number | undefined;
  dataDir: string;
  schema?: string | undefined;
  track?: Tracker | undefined;
  /** PGlite only: its buffer cache in MB (default 96). */
  pgliteCacheMb?: number | undefined;
}

export async function openStore(cfg: StoreConfig): Promise<Db> {
  if (cfg.databaseUrl) {
    return openPostgres({
      connectionString: cfg.databaseUrl,
      ...(cfg.listenUrl ? { listenConnectionString: cfg.listenUrl } : {}),
      ...(cfg.poolSize ? { poolSize: cfg.poolSize } : {}),
      ...(cfg.schema ? { schema: cfg.schema } : {}),
      ...(cfg.track ? { track: cfg.track } : {}),
    });
  }
  const root = resolve(cfg.dataDir);
  mkdirSync(root, { recursive: true });
  const unlock = lockDataDir(root);
  try {
    const db = await openPglite({
      dataDir: resolve(root, 'pglite'),
      ...(cfg.pgliteCacheMb ? { cacheMb: cfg.pgliteCacheMb } : {}),
      ...(cfg.schema ? { schema: cfg.schema } : {}),
      ...(cfg.track ? { track: cfg.track } : {}),
    });
    const close = db.close.bind(db);
    db.close = async () => {
      try {
        await close();
      } finally {
        unlock();
      }
    };
    return db;
  } catch (err) {
    unlock();
    throw err;
  }
}
