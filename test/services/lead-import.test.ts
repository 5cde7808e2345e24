/**
 * CSV lead imports end to end, on every backend: what lands in leads, what lands in
 * lead_import_errors (code and line), the job's counts and states, and who may see what.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Clock } from '../../src/engine/clock.js';
import type { Actor } from '../../src/services/actor.js';
import { AppError } from '../../src/services/errors.js';
import { FirstSeen } from '../../src/services/leads/import/first-seen.js';
import { mapHeader } from '../../src/services/leads/import/headers.js';
import { importLeadsFile } from '../../src/services/leads/import/run.js';
import { LeadImports, type ImportView } from '../../src/services/leads/import/service.js';
import type { ImportOptions } from '../../src/services/leads/import/options.js';
import type { Db } from '../../src/store/db.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { insertImport } from '../../src/store/sql/lead-imports.js';
import { insertLeads } from '../../src/store/sql/leads.js';
import { insertUser } from '../../src/store/sql/users.js';
import { backends, openTestDb, type TestDb } from '../helpers/db.js';
import { quietLog } from '../helpers/world.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/csv/', import.meta.url));
const T0 = Date.parse('2026-03-06T12:00:00Z');

/** A clock the test moves by hand (only now() matters to imports). */
class TestClock implements Clock {
  readonly virtual = false;
  constructor(public t = T0) {}
  now(): number {
    return this.t;
  }
  async sleepUntil(): Promise<void> {}
  track<T>(p: Promise<T>): Promise<T> {
    return p;
  }
}

let seq = 0;

async function owner(db: Db, devices = 2): Promise<{ actor: Actor; deviceIds: number[] }> {
  const now = new Date(T0);
  const id = await insertUser(db, { email: `owner-${++seq}-${Math.random()}@example.test`, timeZone: 'Asia/Kuala_Lumpur', defaultCountry: 'MY' }, now);
  const deviceIds = await insertDevices(
    db,
    id,
    Array.from({ length: devices }, (_, i) => ({ name: `d${i}`, minDelayMs: 0, maxDelayMs: 0 })),
    now,
  );
  return {
    actor: { userId: id, tenantId: id, email: 'o@example.test', role: 'member', teamMember: false, deviceScope: null, timeZone: 'Asia/Kuala_Lumpur', defaultCountry: 'MY' },
    deviceIds,
  };
}

async function member(db: Db, tenant: Actor, scope: number[]): Promise<Actor> {
  const id = await insertUser(db, { email: `member-${++seq}-${Math.random()}@example.test`, timeZone: 'UTC', parentId: tenant.tenantId }, new Date(T0));
  return { ...tenant, userId: id, teamMember: true, deviceScope: scope };
}

interface LeadOut {
  phone: string;
  name: string;
  status: string;
  niches: string[];
  triggers: string[];
  source: string | null;
  attributes: Record<string, unknown>;
  device_id: number | null;
  opted_out_at: Date | null;
}

async function leadsOf(db: Db, tenantId: number): Promise<LeadOut[]> {
  const res = await db.query<LeadOut>(
    `select phone, name, status, niches, triggers, source, attributes, device_id, opted_out_at from leads where user_id = $1 order by phone`,
    [tenantId],
  );
  return res.rows;
}

function byPhone(rows: LeadOut[]): Map<string, LeadOut> {
  return new Map(rows.map((r) => [r.phone, r]));
}

async function rejects(p: Promise<unknown>, code: string, status: number): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof AppError, `expected an AppError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    return true;
  });
}

/** The file with every kind of broken row, line by line (its line numbers are what the test checks). */
function brokenFile(): Buffer {
  const parts: (string | Buffer)[] = [
    'Name,Phone,Niche,Status,City\n', // 1
    'Aina,012-345 6001,fitness,warm,Penang\n', // 2
    'Badrul,abc,fitness,,Ipoh\n', // 3: not a number
    'Chandra,,beauty,,KL\n', // 4: no phone
    'Dina,0123456003,food\n', // 5: too few cells
    'Aina again,+60 12-345 6001,,,\n', // 6: same phone as line 2
    'Eve "The Boss" Ong,0123456004,vip,,KL\n', // 7: quotes inside an unquoted cell are data
    `Farid,0123456005,${'x'.repeat(10 * 1024 * 1024)},,KL\n`, // 8: a 10 MB cell
    'Gita,0123456006,,prospect,KL\n', // 9
    Buffer.from('H\u00e9l\u00e8ne,0123456007,,,Paris\n', 'latin1'), // 10: not UTF-8
    '"Ivan\nIvanov",0123456008,,,KL\n', // 11-12: a quoted line break
    'Jaya,0123456009,"tech;vip|art",,KL\n', // 13
    '\n', // 14: blank, not a row
    'Kumar,0123456010,x,y,z,extra\n', // 15: too many cells
    'Lim,0123456011,,,KL,,\n', // 16: trailing empty cells are fine
    '"Mona,0123456012,,,KL\n', // 17: a quote never closed
    'Nadia,0123456013,,,KL\n', // 18
    'Omar,0123456014,,,KL', // 19, no final newline
  ];
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
}

for (const backend of backends) {
  describe(`lead import (${backend})`, () => {
    let t: TestDb;
    let dir: string;
    let clock: TestClock;
    let imports: LeadImports;

    before(async () => {
      t = await openTestDb(backend);
      dir = mkdtempSync(join(tmpdir(), 'fleetcast-import-test-'));
      clock = new TestClock();
      imports = new LeadImports({ db: t.db, clock, log: quietLog, dir: join(dir, 'uploads'), owner: 'test', sweepEveryMs: 0 });
    });

    after(async () => {
      await imports.close();
      await t.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    async function run(actor: Actor, body: string | Buffer, opts: Partial<ImportOptions> = {}): Promise<ImportView> {
      const view = await imports.start(actor, Readable.from([body]), { onDuplicate: 'skip', ...opts });
      await imports.idle();
      return imports.get(actor, view.id);
    }

    async function errorsOf(actor: Actor, id: number) {
      return imports.errors(actor, id, { limit: 1000 });
    }

    it('imports every good row of a broken file and reports every bad one at its line', async () => {
      const { actor } = await owner(t.db);
      const file = brokenFile();
      const view = await run(actor, file, { fileName: 'broken.csv' });
      assert.equal(view.status, 'completed');
      assert.equal(view.error_code, null);
      assert.equal(view.file_name, 'broken.csv');
      assert.equal(view.file_bytes, file.length);
      assert.equal(view.bytes_read, file.length);
      assert.deepEqual(
        { rows: view.rows_total, inserted: view.inserted, updated: view.updated, skipped: view.skipped, failed: view.failed },
        { rows: 16, inserted: 8, updated: 0, skipped: 0, failed: 8 },
      );
      const errors = await errorsOf(actor, view.id);
      assert.deepEqual(
        errors.map((e) => [e.line, e.code]),
        [
          [3, 'PHONE_NOT_A_NUMBER'],
          [4, 'PHONE_MISSING'],
          [5, 'WRONG_COLUMN_COUNT'],
          [6, 'DUPLICATE_IN_FILE'],
          [8, 'RECORD_TOO_LARGE'],
          [10, 'INVALID_ENCODING'],
          [15, 'WRONG_COLUMN_COUNT'],
          [17, 'UNCLOSED_QUOTE'],
        ],
      );
      const at = new Map(errors.map((e) => [e.line, e]));
      assert.match(at.get(6)!.message, /line 2/);
      assert.match(at.get(10)!.message, /latin1/);
      assert.match(at.get(5)!.message, /expected 5 cells.*found 3/);
      assert.equal(at.get(3)!.excerpt, 'Badrul,abc,fitness,,Ipoh');
      assert.ok(at.get(8)!.excerpt!.startsWith('Farid,0123456005,xxx'));
      assert.ok(at.get(8)!.excerpt!.length <= 101, 'the excerpt of a 10 MB row is short');
      assert.equal(at.get(17)!.excerpt, '"Mona,0123456012,,,KL');
      for (const e of errors) assert.ok(e.message.length > 0);

      const leads = await leadsOf(t.db, actor.tenantId);
      assert.deepEqual(
        leads.map((l) => [l.phone, l.name]),
        [
          ['+60123456001', 'Aina'],
          ['+60123456004', 'Eve "The Boss" Ong'],
          ['+60123456006', 'Gita'],
          ['+60123456008', 'Ivan\nIvanov'],
          ['+60123456009', 'Jaya'],
          ['+60123456011', 'Lim'],
          ['+60123456013', 'Nadia'],
          ['+60123456014', 'Omar'],
        ],
      );
      const aina = byPhone(leads).get('+60123456001')!;
      assert.deepEqual(
        { niches: aina.niches, status: aina.status, source: aina.source, attributes: aina.attributes, device: aina.device_id, optedOut: aina.opted_out_at },
        { niches: ['fitness'], status: 'warm', source: 'import', attributes: { city: 'Penang' }, device: null, optedOut: null },
      );
      assert.deepEqual(byPhone(leads).get('+60123456009')!.niches, ['art', 'tech', 'vip']);
      assert.equal(byPhone(leads).get('+60123456006')!.status, 'prospect');
      assert.deepEqual(readdirSync(join(dir, 'uploads')), [], 'the upload is removed once imported');
    });

    it('reads a semicolon file with a BOM and header synonyms', async () => {
      const { actor } = await owner(t.db);
      const view = await run(actor, readFileSync(join(FIXTURES, 'semicolon-bom-synonyms.csv')));
      assert.equal(view.status, 'completed');
      assert.equal(view.inserted, 2);
      const leads = byPhone(await leadsOf(t.db, actor.tenantId));
      assert.deepEqual(leads.get('+60123456701'), {
        phone: '+60123456701',
        name: 'Siti Aminah',
        status: 'warm',
        niches: ['fitness', 'vip'],
        triggers: [],
        source: 'expo',
        attributes: { kota: 'Penang' },
        device_id: null,
        opted_out_at: null,
      });
      const tan = leads.get('+60133456702')!;
      assert.deepEqual([tan.name, tan.status, tan.source, tan.niches], ['Tan Ah Kow', 'prospect', 'import', ['beauty']]);
    });

    it('reads a tab-separated file and joins first and last names', async () => {
      const { actor } = await owner(t.db);
      const view = await run(actor, readFileSync(join(FIXTURES, 'tab-first-last.csv')), { triggers: ['imported'] });
      assert.equal(view.inserted, 2);
      const leads = byPhone(await leadsOf(t.db, actor.tenantId));
      const aisyah = leads.get('+60163456703')!;
      assert.deepEqual([aisyah.name, aisyah.niches, aisyah.triggers], ['Aisyah Rahman', ['insurance', 'property'], ['imported', 'signup']]);
      const john = leads.get('+60173456704')!;
      assert.deepEqual([john.name, john.niches, john.triggers], ['John', [], ['imported']]);
    });

    it('counts lines in a CRLF file with quoted line breaks', async () => {
      const { actor } = await owner(t.db);
      const body = readFileSync(join(FIXTURES, 'crlf-multiline.csv'), 'utf8').replace('0123456707', 'bad phone');
      const view = await run(actor, body);
      assert.equal(view.inserted, 3);
      // Chong starts on line 6: header 1, Ali 2-3, Bala 4, blank 5.
      assert.deepEqual((await errorsOf(actor, view.id)).map((e) => [e.line, e.code]), [[6, 'PHONE_NOT_A_NUMBER']]);
      const ali = byPhone(await leadsOf(t.db, actor.tenantId)).get('+60123456705')!;
      assert.deepEqual(ali.attributes, { notes: 'line one\r\nline two' });
    });

    it('detects a UTF-16LE byte order mark, and imports Latin-1 when told to', async () => {
      const { actor } = await owner(t.db);
      const utf16 = await run(actor, readFileSync(join(FIXTURES, 'utf16le-bom.csv')));
      assert.equal(utf16.inserted, 1);
      const latin1Wrong = await run(actor, readFileSync(join(FIXTURES, 'latin1.csv')));
      assert.deepEqual(
        (await errorsOf(actor, latin1Wrong.id)).map((e) => [e.line, e.code]),
        [
          [2, 'INVALID_ENCODING'],
          [3, 'INVALID_ENCODING'],
        ],
      );
      const latin1 = await run(actor, readFileSync(join(FIXTURES, 'latin1.csv')), { encoding: 'latin1' });
      assert.equal(latin1.inserted, 2);
      const names = (await leadsOf(t.db, actor.tenantId)).map((l) => l.name).sort();
      assert.deepEqual(names, ['François', 'José Núñez', 'Zoë Lim']);
    });

    it('refuses an empty upload; a header alone or blank lines make a job with no rows', async () => {
      const { actor } = await owner(t.db);
      const before = await t.db.query<{ n: number }>('select count(*)::int as n from lead_imports');
      await rejects(imports.start(actor, Readable.from([]), { onDuplicate: 'skip' }), 'IMPORT_EMPTY', 422);
      const after = await t.db.query<{ n: number }>('select count(*)::int as n from lead_imports');
      assert.equal(after.rows[0]!.n, before.rows[0]!.n, 'no job for an empty upload');
      assert.deepEqual(readdirSync(join(dir, 'uploads')), []);

      const headerOnly = await run(actor, 'name,phone,niche\r\n');
      assert.deepEqual([headerOnly.status, headerOnly.rows_total, headerOnly.error_code], ['completed', 0, null]);

      const blank = await run(actor, '\n\r\n\n');
      assert.deepEqual([blank.status, blank.error_code], ['failed', 'IMPORT_EMPTY']);
    });

    it('fails a file without a phone column and imports nothing', async () => {
      const { actor } = await owner(t.db);
      const view = await run(actor, 'name,email\nAli,ali@example.test\n');
      assert.equal(view.status, 'failed');
      assert.equal(view.error_code, 'IMPORT_NO_PHONE_COLUMN');
      assert.match(view.error!, /"name", "email"/);
      assert.equal(view.finished_at, new Date(clock.t).toISOString());
      assert.deepEqual(await leadsOf(t.db, actor.tenantId), []);
    });

    it('skip leaves existing leads untouched; update takes the values the row has', async () => {
      const now = new Date(T0);
      const file = [
        'name,phone,status,niche,city,opted_out_at',
        'New A,0123457001,,fresh,KL,',
        ',0123457002,warm,,,',
        'New C,0123457003,,,,2026-02-01T00:00:00Z',
        'New D,0123457004,,,,2026-02-02T00:00:00Z',
      ].join('\n');
      const seed = async (tenantId: number) => {
        await insertLeads(
          t.db,
          tenantId,
          [
            { name: 'Old A', phone: '+60123457001', deviceId: null, niches: ['old'], status: 'customer', triggers: ['t1'], source: 'api' },
            { name: 'Old B', phone: '+60123457002', deviceId: null, niches: [], status: 'prospect', triggers: [], source: 'api' },
            { name: 'Old D', phone: '+60123457004', deviceId: null, niches: [], status: 'prospect', triggers: [], source: 'api' },
          ],
          now,
        );
        await t.db.query(`update leads set attributes = '{"city":"Ipoh","tier":"gold"}' where user_id = $1 and phone = '+60123457001'`, [tenantId]);
        await t.db.query(`update leads set opted_out_at = $2 where user_id = $1 and phone = '+60123457002'`, [tenantId, now]);
      };
      const opts = { niches: ['campaign-x'], status: 'lead' };

      const skipper = (await owner(t.db)).actor;
      await seed(skipper.tenantId);
      const beforeSkip = byPhone(await leadsOf(t.db, skipper.tenantId));
      const skipped = await run(skipper, file, { ...opts, onDuplicate: 'skip' });
      assert.deepEqual([skipped.inserted, skipped.updated, skipped.skipped, skipped.failed], [1, 0, 3, 0]);
      const afterSkip = byPhone(await leadsOf(t.db, skipper.tenantId));
      for (const phone of ['+60123457001', '+60123457002', '+60123457004']) assert.deepEqual(afterSkip.get(phone), beforeSkip.get(phone));
      assert.deepEqual(afterSkip.get('+60123457003'), {
        phone: '+60123457003',
        name: 'New C',
        status: 'lead',
        niches: ['campaign-x'],
        triggers: [],
        source: 'import',
        attributes: {},
        device_id: null,
        opted_out_at: new Date('2026-02-01T00:00:00Z'),
      });

      const updater = (await owner(t.db)).actor;
      await seed(updater.tenantId);
      const updated = await run(updater, file, { ...opts, onDuplicate: 'update' });
      assert.deepEqual([updated.inserted, updated.updated, updated.skipped, updated.failed], [1, 3, 0, 0]);
      const l = byPhone(await leadsOf(t.db, updater.tenantId));
      assert.deepEqual(l.get('+60123457001'), {
        phone: '+60123457001',
        name: 'New A',
        status: 'customer',
        niches: ['campaign-x', 'fresh'],
        triggers: ['t1'],
        source: 'api',
        attributes: { city: 'KL', tier: 'gold' },
        device_id: null,
        opted_out_at: null,
      });
      const b = l.get('+60123457002')!;
      assert.deepEqual([b.name, b.status, b.niches], ['Old B', 'warm', ['campaign-x']]);
      assert.deepEqual(b.opted_out_at, now, 'an opt-out is never cleared');
      assert.deepEqual(l.get('+60123457004')!.opted_out_at, new Date('2026-02-02T00:00:00Z'), 'a row may opt a lead out');
      assert.equal(l.get('+60123457003')!.status, 'lead');
    });

    it('keeps tenants apart', async () => {
      const a = await owner(t.db);
      const b = await owner(t.db);
      const file = 'phone,name\n0123458001,Shared\n';
      const va = await run(a.actor, file);
      const vb = await run(b.actor, file);
      assert.equal(va.inserted, 1);
      assert.equal(vb.inserted, 1, 'the same phone may exist in two tenants');
      assert.equal((await leadsOf(t.db, a.actor.tenantId)).length, 1);
      assert.equal((await leadsOf(t.db, b.actor.tenantId)).length, 1);
      await rejects(imports.get(b.actor, va.id), 'IMPORT_NOT_FOUND', 404);
      await rejects(imports.errors(b.actor, va.id, { limit: 10 }), 'IMPORT_NOT_FOUND', 404);
      assert.ok(!(await imports.list(b.actor, { limit: 100 })).some((v) => v.id === va.id));
      await rejects(imports.start(b.actor, Readable.from([file]), { onDuplicate: 'skip', deviceId: a.deviceIds[0]! }), 'DEVICE_NOT_FOUND', 404);
    });

    it('holds a team member to its devices and its own imports', async () => {
      const o = await owner(t.db, 3);
      const [d1, d2] = o.deviceIds as [number, number];
      const m = await member(t.db, o.actor, [d1]);
      const now = new Date(T0);
      await insertLeads(
        t.db,
        o.actor.tenantId,
        [
          { name: 'On d1', phone: '+60123459001', deviceId: d1, niches: [], status: 'prospect', triggers: [] },
          { name: 'On d2', phone: '+60123459002', deviceId: d2, niches: [], status: 'prospect', triggers: [] },
          { name: 'Pooled', phone: '+60123459003', deviceId: null, niches: [], status: 'prospect', triggers: [] },
        ],
        now,
      );
      const file = 'phone,name\n0123459001,Mine\n0123459002,Theirs\n0123459003,Pool\n0123459004,New\n';
      await rejects(imports.start(m, Readable.from([file]), { onDuplicate: 'update' }), 'IMPORT_DEVICE_REQUIRED', 422);
      await rejects(imports.start(m, Readable.from([file]), { onDuplicate: 'update', deviceId: d2 }), 'DEVICE_NOT_FOUND', 404);
      const v = await run(m, file, { onDuplicate: 'update', deviceId: d1 });
      assert.deepEqual([v.inserted, v.updated, v.skipped], [1, 1, 2], 'leads outside its devices are skipped');
      assert.equal(v.device_id, d1);
      const leads = byPhone(await leadsOf(t.db, o.actor.tenantId));
      assert.deepEqual(
        ['+60123459001', '+60123459002', '+60123459003', '+60123459004'].map((p) => [leads.get(p)!.name, leads.get(p)!.device_id]),
        [
          ['Mine', d1],
          ['On d2', d2],
          ['Pooled', null],
          ['New', d1],
        ],
      );
      const ownersOwn = await run(o.actor, 'phone\n0123459005\n');
      await rejects(imports.get(m, ownersOwn.id), 'IMPORT_NOT_FOUND', 404);
      assert.deepEqual(
        (await imports.list(m, { limit: 100 })).map((x) => x.id),
        [v.id],
      );
      const ownerList = (await imports.list(o.actor, { limit: 100 })).map((x) => x.id);
      assert.deepEqual(ownerList, [ownersOwn.id, v.id], 'the owner sees every import of the tenant, newest first');
      assert.deepEqual((await imports.list(o.actor, { limit: 1, after: ownersOwn.id })).map((x) => x.id), [v.id]);
    });

    it('refuses an upload over maxBytes and keeps nothing of it', async () => {
      const { actor } = await owner(t.db);
      const small = new LeadImports({ db: t.db, clock, log: quietLog, dir: join(dir, 'small'), owner: 'test', maxBytes: 1000, sweepEveryMs: 0 });
      try {
        const big = `phone\n${'0123456789\n'.repeat(500)}`;
        const chunks = Readable.from(Array.from({ length: 10 }, (_, i) => big.slice(i * 550, (i + 1) * 550)));
        await rejects(small.start(actor, chunks, { onDuplicate: 'skip' }), 'IMPORT_TOO_LARGE', 413);
        assert.deepEqual(readdirSync(join(dir, 'small')), []);
        const rows = await t.db.query('select id from lead_imports where user_id = $1', [actor.tenantId]);
        assert.equal(rows.rows.length, 0);
        const ok = await small.start(actor, Readable.from(['phone\n0123456789\n']), { onDuplicate: 'skip' });
        await small.idle();
        assert.equal((await small.get(actor, ok.id)).inserted, 1);
      } finally {
        await small.close();
      }
    });

    it('runs jobs one at a time, oldest first, and marks them queued, running, completed', async () => {
      const { actor } = await owner(t.db);
      const rows = (from: number, n: number) =>
        `phone,name\n${Array.from({ length: n }, (_, i) => `+6012${String(3_000_000 + from + i)},L${from + i}`).join('\n')}\n`;
      const first = await imports.start(actor, Readable.from([rows(0, 5000)]), { onDuplicate: 'skip' });
      clock.t += 1000;
      const second = await imports.start(actor, Readable.from([rows(5000, 10)]), { onDuplicate: 'skip' });
      assert.equal(first.status, 'queued');
      assert.equal(second.status, 'queued');
      assert.equal(first.started_at, null);
      await imports.idle();
      const [a, b] = [await imports.get(actor, first.id), await imports.get(actor, second.id)];
      assert.deepEqual([a.status, a.inserted, b.status, b.inserted], ['completed', 5000, 'completed', 10]);
      assert.ok(a.finished_at! <= b.started_at!, 'the second job starts after the first is done');
      assert.equal((await leadsOf(t.db, actor.tenantId)).length, 5010);
    });

    it('close() fails the jobs still waiting and lets the running one finish', async () => {
      const { actor } = await owner(t.db);
      const own = new LeadImports({ db: t.db, clock, log: quietLog, dir: join(dir, 'closing'), owner: 'test', sweepEveryMs: 0 });
      const body = `phone\n${Array.from({ length: 20000 }, (_, i) => `+6013${3_000_000 + i}`).join('\n')}\n`;
      const running = await own.start(actor, Readable.from([body]), { onDuplicate: 'skip' });
      const waiting = await own.start(actor, Readable.from(['phone\n0123456789\n']), { onDuplicate: 'skip' });
      await own.close();
      const [r, w] = [await own.get(actor, running.id), await own.get(actor, waiting.id)];
      assert.deepEqual([r.status, r.inserted], ['completed', 20000]);
      assert.deepEqual([w.status, w.error_code], ['failed', 'INTERRUPTED']);
      await rejects(own.start(actor, Readable.from(['phone\n0123456789\n']), { onDuplicate: 'skip' }), 'IMPORTS_UNAVAILABLE', 503);
      assert.deepEqual(readdirSync(join(dir, 'closing')), []);
    });

    it('recoverInterrupted fails jobs whose heartbeat stopped and removes their files', async () => {
      const { actor } = await owner(t.db);
      const rdir = join(dir, 'recover');
      const svc = new LeadImports({ db: t.db, clock, log: quietLog, dir: rdir, owner: 'new', staleMs: 60_000, sweepEveryMs: 0 });
      try {
        const make = async (status: string, ageMs: number) => {
          const row = await insertImport(
            t.db,
            { tenantId: actor.tenantId, createdBy: actor.userId, fileName: null, fileBytes: 10, onDuplicate: 'skip', options: {}, owner: 'old' },
            new Date(clock.t - ageMs),
          );
          await t.db.query(`update lead_imports set status = $2, inserted = 7 where id = $1`, [row.id, status]);
          writeFileSync(join(rdir, `${row.id}.csv`), 'phone\n');
          return row.id;
        };
        const deadRunning = await make('running', 5 * 60_000);
        const deadQueued = await make('queued', 61_000);
        const alive = await make('running', 10_000);
        const done = await make('completed', 60 * 60_000);
        const part = join(rdir, 'upload-left-over.part');
        writeFileSync(part, 'phone\n');
        const old = (Date.now() - 3_600_000) / 1000;
        utimesSync(part, old, old);
        assert.equal(await svc.recoverInterrupted(), 2);
        const view = (id: number) => svc.get(actor, id);
        const dead = await view(deadRunning);
        assert.deepEqual([dead.status, dead.error_code, dead.inserted], ['failed', 'INTERRUPTED', 7], 'what it imported stays counted');
        assert.equal(dead.finished_at, new Date(clock.t).toISOString());
        assert.equal((await view(deadQueued)).error_code, 'INTERRUPTED');
        assert.equal((await view(alive)).status, 'running');
        assert.equal((await view(done)).status, 'completed');
        assert.deepEqual(readdirSync(rdir).sort(), [`${alive}.csv`, `${done}.csv`].sort());
        assert.equal(existsSync(part), false);
      } finally {
        await svc.close();
      }
    });

    it('imports a generated file of 30,000 rows with duplicates in batches', async () => {
      const { actor } = await owner(t.db);
      const lines = ['nama,whatsapp,kategori,status'];
      let dups = 0;
      for (let i = 1; i <= 30_000; i++) {
        const n = i % 100 === 0 ? i - 1 : i;
        if (n !== i) dups++;
        lines.push(`Lead ${i},01${['2', '3', '6', '7', '9'][n % 5]}-${3_000_000 + n},niche${i % 7},${i % 3 ? 'prospect' : 'warm'}`);
      }
      const view = await run(actor, lines.join('\r\n'));
      assert.deepEqual([view.rows_total, view.inserted, view.failed], [30_000, 30_000 - dups, dups]);
      const errors = await imports.errors(actor, view.id, { limit: 5 });
      assert.deepEqual(errors[0], {
        line: 101,
        code: 'DUPLICATE_IN_FILE',
        message: 'line 100 has the same phone (+60193000099); only the first of them is imported',
        excerpt: 'Lead 100,019-3000099,niche2,prospect',
      });
      const page2 = await imports.errors(actor, view.id, { afterLine: errors[4]!.line, limit: 5 });
      assert.equal(page2[0]!.line, 601);
      const n = await t.db.query<{ n: number }>(`select count(*)::int as n from leads where user_id = $1`, [actor.tenantId]);
      assert.equal(n.rows[0]!.n, 30_000 - dups);
    });

    it('reports the rows past the row limit instead of dropping them', async () => {
      const { actor } = await owner(t.db);
      const path = join(dir, 'limit.csv');
      writeFileSync(path, `phone\n${Array.from({ length: 8 }, (_, i) => `+6012${3_100_000 + i}`).join('\n')}\n`);
      const row = await insertImport(
        t.db,
        { tenantId: actor.tenantId, createdBy: actor.userId, fileName: null, fileBytes: 0, onDuplicate: 'skip', options: {}, owner: 'test' },
        new Date(T0),
      );
      const counts = await importLeadsFile({
        db: t.db,
        clock,
        actor,
        importId: row.id,
        file: path,
        maxRows: 5,
        options: { onDuplicate: 'skip', deviceId: null, status: 'prospect', niches: [], triggers: [], source: 'import', encoding: 'utf8' },
      });
      assert.deepEqual([counts.rowsTotal, counts.inserted, counts.failed], [8, 5, 3]);
      const errors = await imports.errors(actor, row.id, { limit: 10 });
      assert.deepEqual(errors.map((e) => [e.line, e.code]), [[7, 'ROW_LIMIT_EXCEEDED']]);
    });

    it('fails files it cannot read at all, saying why', async () => {
      const { actor } = await owner(t.db);
      const badHeader = await run(actor, `"name,phone\n`);
      assert.deepEqual([badHeader.status, badHeader.error_code], ['failed', 'IMPORT_BAD_HEADER']);
      const utf16be = await run(actor, Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from('\u0000p\u0000h')]));
      assert.deepEqual([utf16be.status, utf16be.error_code], ['failed', 'IMPORT_UNSUPPORTED_ENCODING']);
      const latin1Header = await run(actor, Buffer.from('nom,t\u00e9l\u00e9phone\nA,0123456789\n', 'latin1'));
      assert.equal(latin1Header.error_code, 'IMPORT_NO_PHONE_COLUMN');
      assert.match(latin1Header.error!, /encoding latin1/);
    });

    it('reports progress as it goes', async () => {
      const { actor } = await owner(t.db);
      const path = join(dir, 'progress.csv');
      writeFileSync(path, `phone\n${Array.from({ length: 9000 }, (_, i) => `+6016${3_200_000 + i}`).join('\n')}\n`);
      const row = await insertImport(
        t.db,
        { tenantId: actor.tenantId, createdBy: actor.userId, fileName: null, fileBytes: 0, onDuplicate: 'skip', options: {}, owner: 'test' },
        new Date(T0),
      );
      const seen: number[][] = [];
      const counts = await importLeadsFile({
        db: t.db,
        clock,
        actor,
        importId: row.id,
        file: path,
        progressEveryMs: 0,
        options: { onDuplicate: 'skip', deviceId: null, status: 'prospect', niches: [], triggers: [], source: 'import', encoding: 'utf8' },
        onProgress: async (c) => {
          seen.push([c.rowsTotal, c.inserted, c.bytesRead]);
        },
      });
      assert.equal(counts.inserted, 9000);
      assert.ok(seen.length >= 4, `progress reported ${seen.length} times`);
      for (let i = 1; i < seen.length; i++) {
        assert.ok(seen[i]![0]! >= seen[i - 1]![0]! && seen[i]![1]! >= seen[i - 1]![1]! && seen[i]![2]! >= seen[i - 1]![2]!, 'counts only grow');
      }
    });

    it('reads a file alike in the worker thread and in this one: the same leads, the same refused lines', async () => {
      const path = join(dir, 'both.csv');
      const lines = ['name;phone;tags'];
      for (let i = 0; i < 5_000; i++) {
        if (i % 97 === 0) lines.push(`Bad ${i};12345;`);
        else if (i % 101 === 0) lines.push(`Dup ${i};+6012${3_300_000 + i - 1};`);
        else lines.push(`Lead ${i};+6012${3_300_000 + i};vip|${i % 3}`);
      }
      writeFileSync(path, lines.join('\n') + '\n');
      const results = [];
      for (const readIn of ['worker', 'thread'] as const) {
        const { actor } = await owner(t.db);
        const row = await insertImport(
          t.db,
          { tenantId: actor.tenantId, createdBy: actor.userId, fileName: null, fileBytes: 0, onDuplicate: 'skip', options: {}, owner: 'test' },
          new Date(T0),
        );
        const counts = await importLeadsFile({
          db: t.db,
          clock,
          actor,
          importId: row.id,
          file: path,
          readIn,
          batchRows: 700,
          options: { onDuplicate: 'skip', deviceId: null, status: 'prospect', niches: [], triggers: [], source: 'import', encoding: 'utf8' },
        });
        const leads = await t.db.query<{ phone: string; name: string; niches: string[] }>(
          `select phone, name, niches from leads where user_id = $1 order by phone`,
          [actor.tenantId],
        );
        const errors = await imports.errors(actor, row.id, { limit: 1_000 });
        results.push({ counts, leads: leads.rows, errors: errors.map((e) => [e.line, e.code]) });
      }
      const [worker, thread] = results;
      assert.deepEqual(worker!.counts, thread!.counts);
      assert.equal(worker!.counts.inserted, worker!.leads.length);
      assert.ok(worker!.counts.failed > 90);
      assert.deepEqual(worker!.leads, thread!.leads);
      assert.deepEqual(worker!.errors, thread!.errors);
    });

    it('refuses bad options before reading the upload', async () => {
      const { actor } = await owner(t.db);
      await rejects(imports.start(actor, Readable.from(['phone\n']), { onDuplicate: 'merge' as 'skip' }), 'IMPORT_INVALID_OPTIONS', 422);
      await rejects(imports.start(actor, Readable.from(['phone\n']), { onDuplicate: 'skip', status: 'x'.repeat(101) }), 'IMPORT_INVALID_OPTIONS', 422);
      await rejects(imports.start(actor, Readable.from(['phone\n']), { onDuplicate: 'skip', deviceId: 999_999_999 }), 'DEVICE_NOT_FOUND', 404);
    });
  });
}

describe('header mapping', () => {
  it('maps synonyms whatever their case and punctuation, and keeps the rest as attributes', () => {
    const m = mapHeader(['No.', 'Nama Penuh', 'NO HP', 'Whats-App', 'phone_number', 'Tags', 'Lead Stage', 'Company Name', 'company name', '', 'attributes.Tag', 'created_at']);
    assert.deepEqual(m.phone, [2, 3, 4]);
    assert.deepEqual(m.name, [1]);
    assert.deepEqual(m.niches, [5]);
    assert.deepEqual(m.status, [6]);
    assert.deepEqual(m.attributes, [
      { index: 0, key: 'no' },
      { index: 7, key: 'company_name' },
      { index: 8, key: 'company_name_2' },
      { index: 9, key: 'column_10' },
      { index: 10, key: 'Tag' },
    ]);
  });
});

describe('FirstSeen', () => {
  it('remembers the first line of each phone across growth', () => {
    const s = new FirstSeen(16);
    for (let i = 0; i < 50_000; i++) assert.equal(s.firstOrAdd(`+6012${3_000_000 + i}`, i + 2), 0);
    for (let i = 0; i < 50_000; i += 997) assert.equal(s.firstOrAdd(`+6012${3_000_000 + i}`, 999_999), i + 2);
    assert.equal(s.size, 50_000);
    assert.ok(s.bytes < 50_000 * 12 * 2.5);
  });
});
