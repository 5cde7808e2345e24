import type { Db } from './db.js';
import { migrations as all, type Migration } from './migrations/index.js';

// Any fixed number; it only has to be the same in every process that migrates this database.
const MIGRATION_LOCK = 727_001;

/**
 * Applies every migration not yet applied, in order, in one transaction that holds an advisory
 * lock: processes starting at once queue on the lock, and each later one finds nothing to do.
 * The lock key is per schema, so test schemas on one server migrate in parallel.
 */
export async function migrate(db: Db, now: Date, migrations: readonly Migration[] = all): Promise<number[]> {
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1, hashtext(current_schema()))', [MIGRATION_LOCK]);
    await tx.query(
      `create table if not exists schema_migrations (
         version integer primary key,
         name text not null,
         applied_at timestamptz not null
       )`,
    );
    const done = await tx.query<{ version: number }>('select version from schema_migrations');
    const have = new Set(done.rows.map((r) => r.version));
    const applied: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (have.has(m.version)) continue;
      await tx.exec(m.sql);
      await tx.query('insert into schema_migrations (version, name, applied_at) values ($1, $2, $3)', [
        m.version,
        m.name,
        now,
      ]);
      applied.push(m.version);
    }
    return applied;
  });
}

/**
 * Migrations this code knows that the database has not applied (all of them when it was never
 * migrated): `/readyz` is not ready until this is empty.
 */
export async function pendingMigrations(db: Db, migrations: readonly Migration[] = all): Promise<number[]> {
  const exists = await db.query<{ t: string | null }>(`select to_regclass('schema_migrations')::text as t`);
  if (!exists.rows[0]?.t) return migrations.map((m) => m.version);
  const done = await db.query<{ version: number }>('select version from schema_migrations');
  const have = new Set(done.rows.map((r) => r.version));
  return migrations.map((m) => m.version).filter((v) => !have.has(v));
}
