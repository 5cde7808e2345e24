/**
 * Migrations: each applied once, recorded once, all or nothing, and safe when several processes
 * start on one fresh database at the same moment.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Db } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { migrations, type Migration } from '../../src/store/migrations/index.js';
import { openPostgres } from '../../src/store/postgres.js';
import { backends, dropSchema, openTestDb, type Backend } from '../helpers/db.js';

const NOW = new Date('2026-03-06T12:00:00Z');
const LATER = new Date('2026-03-07T08:30:00Z');

const ENGINE_TABLES = [
  'api_tokens',
  'audit_log',
  'campaign_chunks',
  'campaign_devices',
  'campaigns',
  'cloud_api_numbers',
  'device_leases',
  'device_links',
  'device_members',
  'devices',
  'engine_processes',
  'enrollments',
  'idempotency_keys',
  'lead_import_errors',
  'lead_imports',
  'leads',
  'login_throttle',
  'media',
  'messages',
  'pool_queue',
  'schema_migrations',
  'send_windows',
  'sequence_steps',
  'sequences',
  'sessions',
  'transport_auth',
  'users',
  'wa_numbers',
  'webhook_attempts',
  'webhook_deliveries',
  'webhook_subscriptions',
];

/** Every released version; the test migrations below come after the last of them. */
const RELEASED = migrations.map((m) => m.version);
const NEXT = Math.max(...RELEASED) + 1;
/** What the test template recorded (it was migrated at this time). */
const TEMPLATE_RECORD = migrations.map((m) => ({ version: m.version, name: m.name, applied_at: new Date('2026-01-01T00:00:00Z') }));

interface Fresh {
  db: Db;
  schema: string;
  /** Another pool on the same fresh schema (PostgreSQL only). */
  pool(): Promise<Db>;
  dispose(): Promise<void>;
}

/**
 * An empty schema nothing has migrated. On PGlite it lives beside the test template's own tables,
 * which the search path hides (booting an empty PGlite costs ~9 s; a schema costs nothing).
 */
async function freshSchema(backend: Backend): Promise<Fresh> {
  const schema = `m_${randomBytes(6).toString('hex')}`;
  if (backend === 'pglite') {
    const t = await openTestDb('pglite');
    await t.db.exec(`create schema ${schema}; set search_path to ${schema}`);
    return {
      db: t.db,
      schema,
      pool: () => Promise.reject(new Error('PGlite has one connection')),
      dispose: () => t.dispose(),
    };
  }
  const url = process.env.DATABASE_URL!;
  const opened: Db[] = [];
  const pool = async () => {
    const db = await openPostgres({ connectionString: url, schema, poolSize: 2 });
    opened.push(db);
    return db;
  };
  const db = await pool();
  return {
    db,
    schema,
    pool,
    dispose: async () => {
      await Promise.all(opened.map((d) => d.close()));
      await dropSchema(schema);
    },
  };
}

async function tables(db: Db): Promise<string[]> {
  const res = await db.query<{ table_name: string }>(
    `select table_name from information_schema.tables where table_schema = current_schema() order by table_name`,
  );
  return res.rows.map((r) => r.table_name);
}

async function recorded(db: Db): Promise<{ version: number; name: string; applied_at: Date }[]> {
  const res = await db.query<{ version: number; name: string; applied_at: Date }>(
    'select version, name, applied_at from schema_migrations order by version',
  );
  return res.rows;
}

async function exists(db: Db, relation: string): Promise<boolean> {
  const res = await db.query<{ r: string | null }>('select to_regclass($1)::text as r', [relation]);
  return res.rows[0]!.r !== null;
}

const ENGINE_RECORD = migrations.map((m) => ({ version: m.version, name: m.name, applied_at: NOW }));

for (const backend of backends) {
  describe(`migrate on ${backend}`, () => {
    it('applies every migration once on an empty schema and records each', async () => {
      const f = await freshSchema(backend);
      try {
        assert.deepEqual(await tables(f.db), []);
        assert.deepEqual(await migrate(f.db, NOW), RELEASED);
        assert.deepEqual(await tables(f.db), ENGINE_TABLES);
        assert.deepEqual(await recorded(f.db), ENGINE_RECORD);
      } finally {
        await f.dispose();
      }
    });

    it('applies nothing when run again, and keeps the first record', async () => {
      const f = await freshSchema(backend);
      try {
        await migrate(f.db, NOW);
        assert.deepEqual(await migrate(f.db, LATER), []);
        assert.deepEqual(await migrate(f.db, LATER), []);
        assert.deepEqual(await recorded(f.db), ENGINE_RECORD);
        assert.deepEqual(await tables(f.db), ENGINE_TABLES);
      } finally {
        await f.dispose();
      }
    });

    it('applies only new versions, in version order whatever the list order', async () => {
      const t = await openTestDb(backend);
      try {
        // The second new version needs the first one's table: given first, it must still run second.
        const list: Migration[] = [
          { version: NEXT + 1, name: 'tags index', sql: 'create index lead_tags_tag_idx on lead_tags (tag)' },
          ...migrations,
          { version: NEXT, name: 'lead tags', sql: 'create table lead_tags (lead_id bigint not null, tag text not null)' },
        ];
        assert.deepEqual(await migrate(t.db, LATER, list), [NEXT, NEXT + 1]);
        assert.deepEqual(await recorded(t.db), [
          ...TEMPLATE_RECORD,
          { version: NEXT, name: 'lead tags', applied_at: LATER },
          { version: NEXT + 1, name: 'tags index', applied_at: LATER },
        ]);
        assert.equal(await exists(t.db, 'lead_tags_tag_idx'), true);
        assert.deepEqual(await migrate(t.db, LATER, list), []);
      } finally {
        await t.dispose();
      }
    });

    it('rolls back entirely when a migration fails: no table, no record', async () => {
      const t = await openTestDb(backend);
      try {
        const list: Migration[] = [
          ...migrations,
          { version: NEXT, name: 'good', sql: 'create table extra_ok (id integer primary key)' },
          {
            version: NEXT + 1,
            name: 'bad',
            sql: `create table extra_bad (id integer primary key);
                  insert into extra_bad (id) select id from no_such_table`,
          },
        ];
        await assert.rejects(migrate(t.db, LATER, list), (err: { code?: string }) => err.code === '42P01');
        assert.equal(await exists(t.db, 'extra_ok'), false);
        assert.equal(await exists(t.db, 'extra_bad'), false);
        assert.deepEqual(await recorded(t.db), TEMPLATE_RECORD);

        // The connection is left usable, and the good migration alone then goes through.
        assert.deepEqual(await migrate(t.db, LATER, list.slice(0, migrations.length + 1)), [NEXT]);
        assert.equal(await exists(t.db, 'extra_ok'), true);
      } finally {
        await t.dispose();
      }
    });

    it('on an empty schema, a failing migration leaves nothing at all behind', async () => {
      const f = await freshSchema(backend);
      try {
        const list: Migration[] = [...migrations, { version: NEXT, name: 'bad', sql: 'alter table users add column oops no_such_type' }];
        await assert.rejects(migrate(f.db, NOW, list), (err: { code?: string }) => err.code === '42704');
        // Not even the bookkeeping table: the engine's tables and the record are one transaction.
        assert.deepEqual(await tables(f.db), []);
        assert.equal(await exists(f.db, 'schema_migrations'), false);

        assert.deepEqual(await migrate(f.db, NOW), RELEASED);
        assert.deepEqual(await recorded(f.db), ENGINE_RECORD);
      } finally {
        await f.dispose();
      }
    });

    if (backend === 'postgres') {
      it('several pools migrating one empty schema at once all succeed; each migration is recorded once', async () => {
        const f = await freshSchema(backend);
        try {
          const pools = [f.db, ...(await Promise.all(Array.from({ length: 5 }, () => f.pool())))];
          const results = await Promise.all(pools.map((db) => migrate(db, NOW)));
          // One pool did the work; every other one waited on the lock and found nothing to do.
          assert.deepEqual(
            results.map((r) => r.join(',')).sort(),
            ['', '', '', '', '', RELEASED.join(',')],
          );
          assert.deepEqual(await recorded(f.db), ENGINE_RECORD);
          assert.deepEqual(await tables(f.db), ENGINE_TABLES);
        } finally {
          await f.dispose();
        }
      });
    }
  });
}
