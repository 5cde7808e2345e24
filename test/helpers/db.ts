/**
 * Databases for tests. Every store-level test runs on PGlite and, when DATABASE_URL is set, on that
 * PostgreSQL server too, each test in a fresh database: on PGlite a new in-memory instance started
 * from a migrated template (booting PGlite from scratch takes ~5 s, from a dump ~0.7 s; the
 * template is cached in the temp directory, keyed by the migrations), on PostgreSQL a new schema.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { Db, Tracker } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { migrations } from '../../src/store/migrations/index.js';
import { openPglite } from '../../src/store/pglite.js';
import { openPostgres } from '../../src/store/postgres.js';

export type Backend = 'pglite' | 'postgres';

export const backends: Backend[] = process.env.DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

let template: Promise<Blob> | undefined;

function templateFile(): string {
  const hash = createHash('sha256')
    .update(migrations.map((m) => `${m.version}:${m.sql}`).join('\n'))
    .digest('hex')
    .slice(0, 16);
  return join(tmpdir(), `fleetcast-test-template-${hash}.tar`);
}

async function pgliteTemplate(): Promise<Blob> {
  template ??= (async () => {
    const file = templateFile();
    if (existsSync(file)) return new Blob([readFileSync(file)]);
    const db = await openPglite();
    await migrate(db, new Date('2026-01-01T00:00:00Z'));
    const dump = await db.dumpDataDir();
    await db.close();
    const bytes = Buffer.from(await dump.arrayBuffer());
    // Written aside and renamed: test files starting at once never read half a template.
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
    return new Blob([bytes]);
  })();
  return template;
}

export interface TestDb {
  db: Db;
  backend: Backend;
  /** The PostgreSQL schema (for a second connection to the same database), if any. */
  schema?: string;
  dispose(): Promise<void>;
}

export async function openTestDb(backend: Backend, track?: Tracker): Promise<TestDb> {
  if (backend === 'pglite') {
    const db = await openPglite({ loadDataDir: await pgliteTemplate(), ...(track ? { track } : {}) });
    await migrate(db, new Date('2026-01-01T00:00:00Z'));
    return { db, backend, dispose: () => db.close() };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const db = await openPostgres({ connectionString: process.env.DATABASE_URL!, schema, ...(track ? { track } : {}) });
  await migrate(db, new Date('2026-01-01T00:00:00Z'));
  return { db, backend, schema, dispose: () => db.close().then(() => dropSchema(schema)) };
}

/** Another connection pool to the same test database (a second process, as far as the store can tell). */
export async function openSecondPool(t: TestDb, track?: Tracker): Promise<Db> {
  if (t.backend !== 'postgres' || !t.schema) throw new Error('a second pool needs PostgreSQL');
  return openPostgres({ connectionString: process.env.DATABASE_URL!, schema: t.schema, ...(track ? { track } : {}) });
}

export async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await c.connect();
  try {
    await c.query(`drop schema if exists ${schema} cascade`);
  } finally {
    await c.end();
  }
}
