/**
 * CSV export of leads, on every backend: the columns, formula neutralisation, filters and scope,
 * paging as the reader reads, and a file that imports back to the same leads.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { parse } from 'csv-parse/sync';
import { SystemClock } from '../../src/engine/clock.js';
import type { Actor } from '../../src/services/actor.js';
import { exportLeads, neutralise } from '../../src/services/leads/export.js';
import { LeadImports } from '../../src/services/leads/import/service.js';
import type { Db, Queryable } from '../../src/store/db.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { generateLeads, insertLeads } from '../../src/store/sql/leads.js';
import { insertUser } from '../../src/store/sql/users.js';
import { backends, openTestDb, type TestDb } from '../helpers/db.js';
import { quietLog } from '../helpers/world.js';

const NOW = new Date('2026-03-06T12:00:00Z');
let seq = 0;

async function tenant(db: Db, devices = 0): Promise<{ actor: Actor; deviceIds: number[] }> {
  const id = await insertUser(db, { email: `export-${++seq}-${Math.random()}@example.test`, timeZone: 'UTC', defaultCountry: 'MY' }, NOW);
  const deviceIds = await insertDevices(
    db,
    id,
    Array.from({ length: devices }, (_, i) => ({ name: `d${i}`, minDelayMs: 0, maxDelayMs: 0 })),
    NOW,
  );
  return {
    actor: { userId: id, tenantId: id, email: 'e@example.test', role: 'member', teamMember: false, deviceScope: null, timeZone: 'UTC', defaultCountry: 'MY' },
    deviceIds,
  };
}

async function text(stream: Readable): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += String(chunk);
  return out;
}

async function rows(stream: Readable): Promise<string[][]> {
  return parse(await text(stream), { relax_column_count: false }) as string[][];
}

for (const backend of backends) {
  describe(`lead export (${backend})`, () => {
    let t: TestDb;
    let dir: string;

    before(async () => {
      t = await openTestDb(backend);
      dir = mkdtempSync(join(tmpdir(), 'fleetcast-export-test-'));
    });

    after(async () => {
      await t.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    it('writes the columns, every lead, and cells a spreadsheet cannot evaluate', async () => {
      const { actor, deviceIds } = await tenant(t.db, 1);
      await insertLeads(
        t.db,
        actor.tenantId,
        [
          {
            name: '=HYPERLINK("http://x.test","click")',
            phone: '+60123450001',
            deviceId: deviceIds[0]!,
            niches: ['-vip', 'fitness'],
            status: 'warm',
            triggers: ['@mention'],
            source: '+ads',
          },
          { name: 'Plain, Name "Q"', phone: '+60123450002', deviceId: null, niches: [], status: 'prospect', triggers: [], source: null },
        ],
        NOW,
      );
      await t.db.query(`update leads set attributes = '{"city":"Penang","score":"-5","n":7}' where user_id = $1 and phone = '+60123450001'`, [actor.tenantId]);
      await t.db.query(`update leads set opted_out_at = $2 where user_id = $1 and phone = '+60123450002'`, [actor.tenantId, NOW]);

      const [header, a, b, ...rest] = await rows(exportLeads(t.db, actor, {}));
      assert.deepEqual(header, ['phone', 'name', 'status', 'niches', 'triggers', 'source', 'device_id', 'opted_out_at', 'created_at', 'city', 'n', 'score']);
      assert.deepEqual(a, [
        '+60123450001',
        `'=HYPERLINK("http://x.test","click")`,
        'warm',
        `'-vip, fitness`,
        `'@mention`,
        `'+ads`,
        String(deviceIds[0]),
        '',
        NOW.toISOString(),
        'Penang',
        '7',
        `'-5`,
      ]);
      assert.deepEqual(b, ['+60123450002', 'Plain, Name "Q"', 'prospect', '', '', '', '', NOW.toISOString(), NOW.toISOString(), '', '', '']);
      assert.deepEqual(rest, []);
      assert.equal(neutralise('\tcmd'), `'\tcmd`);
      assert.equal(neutralise('ok=1'), 'ok=1');
    });

    it('writes only the selected leads of the actor, a page at a time', async () => {
      const { actor, deviceIds } = await tenant(t.db, 2);
      const [d1, d2] = deviceIds as [number, number];
      // 25 leads alternating over two devices, every third one warm.
      await generateLeads(t.db, actor.tenantId, [d1, d2], 25, '+6012', 1, NOW);
      await t.db.query(`update leads set status = 'warm' where user_id = $1 and right(phone, 1)::int % 3 = 0`, [actor.tenantId]);
      const other = await tenant(t.db);
      await insertLeads(t.db, other.actor.tenantId, [{ name: 'x', phone: '+60120000003', deviceId: null, niches: [], status: 'warm', triggers: [] }], NOW);

      const expected = await t.db.query<{ phone: string }>(
        `select phone from leads where user_id = $1 and status = 'warm' order by id`,
        [actor.tenantId],
      );
      const warm = await rows(exportLeads(t.db, actor, { statuses: ['warm'] }, { pageSize: 4 }));
      assert.deepEqual(
        warm.slice(1).map((r) => r[0]),
        expected.rows.map((r) => r.phone),
      );
      assert.ok(expected.rows.length > 4, 'more than one page');

      const teamMember: Actor = { ...actor, userId: actor.userId + 1_000_000, teamMember: true, deviceScope: [d1] };
      const mine = await rows(exportLeads(t.db, teamMember, {}, { pageSize: 5 }));
      const onD1 = await t.db.query<{ phone: string }>(`select phone from leads where user_id = $1 and device_id = $2 order by id`, [actor.tenantId, d1]);
      assert.deepEqual(
        mine.slice(1).map((r) => r[0]),
        onD1.rows.map((r) => r.phone),
      );
      assert.ok(mine.slice(1).every((r) => r[6] === String(d1)));
    });

    it('reads the next page only when the reader wants more', async () => {
      const { actor, deviceIds } = await tenant(t.db, 1);
      await generateLeads(t.db, actor.tenantId, deviceIds, 3000, '+6013', 1, NOW);
      let pages = 0;
      const counting: Queryable = {
        query: <R>(sql: string, params?: readonly unknown[]) => {
          if (sql.includes('order by l.id')) pages++;
          return t.db.query<R>(sql, params);
        },
        exec: (sql: string) => t.db.exec(sql),
      };
      const stream = exportLeads(counting, actor, {}, { pageSize: 10 });
      const first = await new Promise<string>((resolve) => stream.once('data', (c) => resolve(String(c))));
      stream.pause();
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(first.startsWith('phone,name,'));
      // What is read ahead is what the stream buffers hold (a few hundred rows), not the 3,000 leads.
      assert.ok(pages > 0 && pages < 60, `${pages} of 300 pages read before the reader asked for more`);
      stream.destroy();
      const all = await rows(exportLeads(t.db, actor, {}, { pageSize: 1000 }));
      assert.equal(all.length, 3001);
    });

    it('exports a file that imports back to the same leads', async () => {
      const clock = new SystemClock();
      const imports = new LeadImports({ db: t.db, clock, log: quietLog, dir: join(dir, 'uploads'), owner: 'test', sweepEveryMs: 0 });
      try {
        const a = await tenant(t.db);
        const b = await tenant(t.db);
        const file = [
          'Name,Phone,Tags,Trigger,Status,Source,City,Notes,opted_out_at',
          '=1+2,012-345 6101,"fitness, -vip",signup,warm,expo,Penang,"multi\nline",',
          '"Tan, Ah Kow",+60 13-345 6102,,,,,Ipoh,@home,2026-01-05T08:00:00.000Z',
          'Lee,0163456103,beauty;food,,customer,+ads,,-5,',
        ].join('\n');
        const first = await imports.start(a.actor, Readable.from([file]), { onDuplicate: 'skip', niches: ['imported'] });
        await imports.idle();
        assert.equal((await imports.get(a.actor, first.id)).inserted, 3);
        // Keys the importer would read as a field, or rename, must survive the trip too.
        await t.db.query(`update leads set attributes = attributes || '{"tag":"t1","Favourite Colour":"blue"}' where user_id = $1 and phone = '+60163456103'`, [
          a.actor.tenantId,
        ]);

        const exported = await text(exportLeads(t.db, a.actor, {}));
        assert.match(exported.split('\n')[0]!, /,attributes\.Favourite Colour,.*attributes\.tag/);
        const back = await imports.start(b.actor, Readable.from([exported]), { onDuplicate: 'skip' });
        await imports.idle();
        const view = await imports.get(b.actor, back.id);
        assert.deepEqual([view.status, view.inserted, view.failed], ['completed', 3, 0]);

        const q = `select phone, name, status, niches, triggers, source, attributes, device_id, opted_out_at from leads where user_id = $1 order by phone`;
        const [ra, rb] = [(await t.db.query(q, [a.actor.tenantId])).rows, (await t.db.query(q, [b.actor.tenantId])).rows];
        assert.deepEqual(rb, ra);
        assert.deepEqual(ra[0], {
          phone: '+60123456101',
          name: '=1+2',
          status: 'warm',
          niches: ['-vip', 'fitness', 'imported'],
          triggers: ['signup'],
          source: 'expo',
          attributes: { city: 'Penang', notes: 'multi\nline' },
          device_id: null,
          opted_out_at: null,
        });
      } finally {
        await imports.close();
      }
    });
  });
}
