/**
 * `fleetcast backup` and `fleetcast restore`, run as the real command on both stores: the restored
 * instance holds exactly the rows of every table that the backed-up one held (and its media
 * files), a restore over a database that is not empty is refused without --force, and a PGlite
 * directory in use by a server is not backed up under it.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { materialiseAll } from '../../src/engine/materialise.js';
import type { Db, Queryable } from '../../src/store/db.js';
import { lockDataDir } from '../../src/store/data-dir-lock.js';
import { migrate } from '../../src/store/migrate.js';
import { openStore } from '../../src/store/open.js';
import { insertCampaign, startCampaignNow } from '../../src/store/sql/campaigns.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { generateLeads } from '../../src/store/sql/leads.js';
import { insertUser } from '../../src/store/sql/users.js';
import { insertSubscription } from '../../src/store/sql/webhooks.js';
import { backends, openTestDb } from '../helpers/db.js';
import { runFleetcast, tempDir } from '../helpers/process.js';

const NOW = new Date('2026-03-02T09:00:00Z');

/** Every row of every table of the current schema, as sorted JSON text. */
async function everyRow(db: Queryable): Promise<Record<string, string[]>> {
  const tables = await db.query<{ tablename: string }>(`select tablename from pg_tables where schemaname = current_schema() order by 1`);
  const out: Record<string, string[]> = {};
  for (const { tablename } of tables.rows) {
    const rows = await db.query<{ r: string }>(`select to_jsonb(x)::text as r from "${tablename}" x`);
    out[tablename] = rows.rows.map((r) => r.r).sort();
  }
  return out;
}

/** A small tenant with devices, leads, a materialised campaign, a webhook subscription. */
async function populate(db: Db): Promise<void> {
  const userId = await insertUser(db, { email: `backup-${Math.random()}@example.test`, timeZone: 'Asia/Kuala_Lumpur' }, NOW);
  const devices = await insertDevices(db, userId, [0, 1, 2].map((i) => ({ name: `d${i}`, minDelayMs: 1000, maxDelayMs: 2000 })), NOW);
  await generateLeads(db, userId, devices, 120, '+6011', 1, NOW);
  const campaign = await insertCampaign(db, userId, { name: 'backed up', body: 'Hello {name}', startsAt: NOW, status: 'draft' }, NOW);
  await startCampaignNow(db, campaign, NOW);
  await materialiseAll(db, campaign, NOW.getTime());
  await insertSubscription(db, userId, { url: 'https://hooks.example.com/x', events: ['message.sent'], description: '', active: true, secret: 'plain:whsec_x', createdBy: userId }, NOW);
}

function counts(rows: Record<string, string[]>): Record<string, number> {
  return Object.fromEntries(Object.entries(rows).map(([t, r]) => [t, r.length]));
}

describe('backup and restore on PGlite', () => {
  it('round trip: the restored directory holds the same rows and media; over a database only with --force', async () => {
    const src = tempDir('backup-src');
    const dst = tempDir('backup-dst');
    const out = tempDir('backup-out');
    try {
      let db = await openStore({ dataDir: src.path });
      await migrate(db, NOW);
      await populate(db);
      const before = await everyRow(db);
      await db.close();
      assert.ok(before.messages!.length === 120 && before.leads!.length === 120 && before.webhook_subscriptions!.length === 1);
      mkdirSync(join(src.path, 'media', 'ab'), { recursive: true });
      writeFileSync(join(src.path, 'media', 'ab', 'file.jpg'), 'JPEG BYTES');
      const file = join(out.path, 'fleetcast.backup');

      // A running server holds the directory: no backup under it.
      const unlock = lockDataDir(src.path);
      try {
        const busy = await runFleetcast(['backup', file], { FLEETCAST_DATA_DIR: src.path });
        assert.equal(busy.code, 1);
        assert.match(busy.stderr, /is in use by process/);
        assert.ok(!existsSync(file));
      } finally {
        unlock();
      }

      const made = await runFleetcast(['backup', file], { FLEETCAST_DATA_DIR: src.path });
      assert.equal(made.code, 0, made.stderr);
      assert.match(made.stdout, /backed up the pglite database and media files/);
      assert.ok(existsSync(join(src.path, 'media', 'ab', 'file.jpg')), 'the media stay where they were');

      const restored = await runFleetcast(['restore', file], { FLEETCAST_DATA_DIR: dst.path });
      assert.equal(restored.code, 0, restored.stderr);
      db = await openStore({ dataDir: dst.path });
      try {
        assert.deepEqual(counts(await everyRow(db)), counts(before));
        assert.deepEqual(await everyRow(db), before);
        // Identities go on from where they were.
        const id = await insertUser(db, { email: 'after-restore@example.test', timeZone: 'UTC' }, NOW);
        assert.ok(id > Math.max(...before.users!.map((u) => JSON.parse(u).id as number)));
      } finally {
        await db.close();
      }
      assert.equal(readFileSync(join(dst.path, 'media', 'ab', 'file.jpg'), 'utf8'), 'JPEG BYTES');

      // Over the original, changed since: refused, then replaced with --force.
      db = await openStore({ dataDir: src.path });
      await db.query('delete from leads where id % 2 = 0');
      await db.close();
      const refused = await runFleetcast(['restore', file], { FLEETCAST_DATA_DIR: src.path });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /not empty|already holds a database/);
      assert.match(refused.stderr, /--force/);
      const forced = await runFleetcast(['restore', file, '--force'], { FLEETCAST_DATA_DIR: src.path });
      assert.equal(forced.code, 0, forced.stderr);
      db = await openStore({ dataDir: src.path });
      try {
        assert.deepEqual(await everyRow(db), before);
      } finally {
        await db.close();
      }

      // A PostgreSQL target is refused for an embedded backup, and junk is not a backup.
      const wrong = await runFleetcast(['restore', file], { DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/none', FLEETCAST_DATA_DIR: dst.path });
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /embedded \(PGlite\) database: unset DATABASE_URL/);
      writeFileSync(join(out.path, 'junk'), 'not a backup');
      const junk = await runFleetcast(['restore', join(out.path, 'junk')], { FLEETCAST_DATA_DIR: dst.path });
      assert.equal(junk.code, 1);
      assert.match(junk.stderr, /is not a Fleetcast backup/);
      assert.doesNotMatch(junk.stderr, /\n\s+at /);
    } finally {
      src.remove();
      dst.remove();
      out.remove();
    }
  });
});

for (const backend of backends.filter((b) => b === 'postgres')) {
  describe('backup and restore on PostgreSQL (pg_dump, pg_restore)', () => {
    it('round trip: the restored schema holds the same rows; over a schema with tables only with --force', async () => {
      const t = await openTestDb(backend);
      const data = tempDir('backup-pg');
      try {
        await populate(t.db);
        const before = await everyRow(t.db);
        const env = { DATABASE_URL: process.env.DATABASE_URL!, FLEETCAST_DB_SCHEMA: t.schema!, FLEETCAST_DATA_DIR: data.path };
        const file = join(data.path, 'pg.backup');
        const made = await runFleetcast(['backup', file], env);
        assert.equal(made.code, 0, made.stderr);
        assert.match(made.stdout, new RegExp(`postgres database \\(schema ${t.schema}\\)`));

        await t.db.query('delete from messages where id % 3 = 0');
        await t.db.query(`update leads set name = 'changed'`);
        const refused = await runFleetcast(['restore', file], env);
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /already holds \d+ tables: restore with --force/);
        assert.notDeepEqual(await everyRow(t.db), before, 'nothing was restored');

        const other = await runFleetcast(['restore', file], { ...env, FLEETCAST_DB_SCHEMA: 'some_other_schema' });
        assert.equal(other.code, 1);
        assert.match(other.stderr, new RegExp(`holds schema ${t.schema}, not some_other_schema`));

        const forced = await runFleetcast(['restore', file, '--force'], env);
        assert.equal(forced.code, 0, forced.stderr);
        // The pool's connections predate the restore; a fresh query sees the restored tables.
        assert.deepEqual(await everyRow(t.db), before);
        const id = await insertUser(t.db, { email: 'after-restore@example.test', timeZone: 'UTC' }, NOW);
        assert.ok(id > Math.max(...before.users!.map((u) => JSON.parse(u).id as number)));
      } finally {
        data.remove();
        await t.dispose();
      }
    });
  });
}
