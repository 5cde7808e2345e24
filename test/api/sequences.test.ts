/**
 * /api/v1/sequences and their steps: rows written, delays as calendar days plus minutes, step media
 * fetched when the step is saved, positions kept 1..n through inserts, moves and deletes, the
 * next-sequence chain, deleting with live enrollments, tenant isolation and the team-member ban.
 * Media given by URL is served by a local HTTP server on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Queryable } from '../../src/store/db.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { insertLeads } from '../../src/store/sql/leads.js';
import { expectError, json, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { backends } from '../helpers/db.js';
import { plainImage, startServer, type TestServer } from '../helpers/media.js';

const base = '/api/v1/sequences';

async function sequenceRow(db: Queryable, id: number): Promise<Record<string, any> | undefined> {
  const res = await db.query<Record<string, any>>(
    `select s.*, w.time_zone as w_zone, w.start_minute as w_start, w.end_minute as w_end, w.days as w_days
       from sequences s left join send_windows w on w.id = s.window_id where s.id = $1`,
    [id],
  );
  return res.rows[0];
}

/** The sequence's steps as [body, position] in position order, straight from the table. */
async function stepRows(db: Queryable, sequenceId: number): Promise<[string, number][]> {
  const res = await db.query<{ body: string; position: number }>(`select body, position from sequence_steps where sequence_id = $1 order by position`, [sequenceId]);
  return res.rows.map((r) => [r.body, r.position]);
}

for (const backend of backends) {
  describe(`sequences API (${backend})`, () => {
    let api: TestApi;
    let server: TestServer;
    let phone = 60_130_000_000;

    before(async () => {
      api = await openApi(backend);
      server = await startServer({ 'tip.png': { body: await plainImage(320, 200), type: 'image/png' } });
    });
    after(async () => {
      await server.close();
      await api.dispose();
    });

    const now = (): Date => new Date(api.clock.now());
    const welcome = { name: 'Welcome', trigger: 'signup' };

    async function addSteps(owner: Caller, id: number, bodies: string[]): Promise<number[]> {
      const ids: number[] = [];
      for (const body of bodies) ids.push(ok(await owner.call('POST', `${base}/${id}/steps`, { body }), 201).id);
      return ids;
    }

    it('creates a sequence with its window and settings', async () => {
      const owner = await tenant(api);
      const next = ok(await owner.call('POST', base, { name: 'Follow-up', trigger: 'follow' }), 201);
      assert.deepEqual(
        { ...next, id: 0, created_at: '', updated_at: '' },
        {
          id: 0,
          name: 'Follow-up',
          trigger: 'follow',
          window: null,
          next_sequence_id: null,
          status: 'active',
          reentry: 'never',
          on_failure: 'continue',
          exit_on_reply: true,
          created_at: '',
          updated_at: '',
          steps: 0,
          enrollments: { active: 0, paused: 0, completed: 0, exited: 0 },
        },
      );
      const s = ok(
        await owner.call('POST', base, {
          ...welcome,
          window: { start: '08:30', end: '21:00', days: ['mon', 'wed', 'sun'], time_zone: 'America/New_York' },
          next_sequence_id: next.id,
          reentry: 'after_completion',
          on_failure: 'stop',
          exit_on_reply: false,
        }),
        201,
      );
      assert.deepEqual(s.window, { start: '08:30', end: '21:00', days: ['mon', 'wed', 'sun'], time_zone: 'America/New_York' });
      const row = (await sequenceRow(api.t.db, s.id))!;
      assert.equal(row.user_id, owner.userId);
      assert.deepEqual([row.w_zone, row.w_start, row.w_end, row.w_days], ['America/New_York', 510, 1260, 1 + 4 + 64]);
      assert.equal(row.next_sequence_id, next.id);
      assert.equal(row.reentry, 'after_completion');
      assert.equal(row.on_failure, 'stop');
      assert.equal(row.exit_on_reply, false);
      assert.equal(row.status, 'active');
      assert.equal(row.created_at.getTime(), api.clock.now());
      assert.deepEqual(ok(await owner.call('GET', `${base}/${s.id}`)), s);

      // Default zone is the account's; null clears the window.
      const p = ok(await owner.call('PATCH', `${base}/${s.id}`, { window: { start: '10:00', end: '12:00' }, name: 'Hello' }));
      assert.equal(p.window.time_zone, 'Asia/Kuala_Lumpur');
      assert.equal(p.name, 'Hello');
      const q = ok(await owner.call('PATCH', `${base}/${s.id}`, { window: null, next_sequence_id: null }));
      assert.equal(q.window, null);
      assert.equal(q.next_sequence_id, null);
      const r = (await sequenceRow(api.t.db, s.id))!;
      assert.equal(r.window_id, null);
      assert.equal(r.next_sequence_id, null);
      assert.equal(r.name, 'Hello');
    });

    it('refuses bad input with a clean error', async () => {
      const owner = await tenant(api);
      const bad: [unknown, string?][] = [
        [{ ...welcome, extra: true }],
        [{ name: 'no trigger' }],
        [{ ...welcome, trigger: '' }],
        [{ ...welcome, reentry: 'always' }],
        [{ ...welcome, window: { start: '24:00', end: '10:00' } }, 'body.window.start'],
        [{ ...welcome, window: { start: '10:00', end: '10:00' } }, 'window.end'],
        [{ ...welcome, window: { start: '10:00', end: '11:00', time_zone: 'Europe/Atlantis' } }, 'window.time_zone'],
        [{ ...welcome, next_sequence_id: 'abc' }],
      ];
      for (const [body, path] of bad) {
        const err = expectError(await owner.call('POST', base, body), 400, 'VALIDATION_FAILED');
        if (path) assert.ok(err.details.some((d) => d.path === path), `${path} in ${JSON.stringify(err.details)}`);
      }
      const s = ok(await owner.call('POST', base, welcome), 201);
      const steps = `${base}/${s.id}/steps`;
      const badSteps: [unknown, string?][] = [
        [{ body: 'x', send_time: '25:00' }, 'body.send_time'],
        [{ body: 'x', send_time: '9:00' }],
        // The old field name is an unknown key now.
        [{ body: 'x', delay_minutes: 60 }],
        [{ body: 'x', position: 0 }],
        [{ body: 'x'.repeat(4097) }, 'body.body'],
        [{ body: 'x', media: { type: 'image' } }],
        [{ body: 'x', sequence_id: 3 }],
        [{}],
      ];
      for (const [body, path] of badSteps) {
        const err = expectError(await owner.call('POST', steps, body), 400, 'VALIDATION_FAILED');
        if (path) assert.ok(err.details.some((d) => d.path === path), `${path} in ${JSON.stringify(err.details)}`);
      }
      const huge = await owner.call('POST', steps, JSON.stringify({ body: 'x'.repeat(2_000_000) }), { 'content-type': 'application/json' });
      expectError(huge, 413, 'BODY_TOO_LARGE');
      assert.deepEqual(await stepRows(api.t.db, s.id), []);
      const n = await api.t.db.query<{ n: number }>(`select count(*)::int as n from sequences where user_id = $1`, [owner.userId]);
      assert.equal(n.rows[0]!.n, 1);
    });

    it('stores a delay as calendar days plus minutes and answers it back', async () => {
      const owner = await tenant(api);
      const s = ok(await owner.call('POST', base, welcome), 201);
      const steps = `${base}/${s.id}/steps`;
      const rawDelay = async (id: number) =>
        (await api.t.db.query<{ delay_days: number; delay_minutes: number }>(`select delay_days, delay_minutes from sequence_steps where id = $1`, [id])).rows[0];
      const cases: [unknown, { delay_days: number; delay_minutes: number }, { days: number; hours: number; minutes: number }][] = [
        [undefined, { delay_days: 0, delay_minutes: 0 }, { days: 0, hours: 0, minutes: 0 }],
        [{}, { delay_days: 0, delay_minutes: 0 }, { days: 0, hours: 0, minutes: 0 }],
        [{ days: 2, hours: 3, minutes: 15 }, { delay_days: 2, delay_minutes: 195 }, { days: 2, hours: 3, minutes: 15 }],
        // Hours are exact durations: 30 hours stay 30 hours, never a calendar day and 6 hours.
        [{ hours: 30 }, { delay_days: 0, delay_minutes: 1800 }, { days: 0, hours: 30, minutes: 0 }],
        [{ minutes: 90 }, { delay_days: 0, delay_minutes: 90 }, { days: 0, hours: 1, minutes: 30 }],
        [{ days: 1, minutes: 0 }, { delay_days: 1, delay_minutes: 0 }, { days: 1, hours: 0, minutes: 0 }],
        // The 365-day ceiling counts everything together.
        [{ days: 365 }, { delay_days: 365, delay_minutes: 0 }, { days: 365, hours: 0, minutes: 0 }],
        [{ days: 364, hours: 23, minutes: 60 }, { delay_days: 364, delay_minutes: 1440 }, { days: 364, hours: 24, minutes: 0 }],
        [{ minutes: 365 * 1440 }, { delay_days: 0, delay_minutes: 525_600 }, { days: 0, hours: 8760, minutes: 0 }],
      ];
      for (const [delay, row, answer] of cases) {
        const st = ok(await owner.call('POST', steps, { body: 'x', ...(delay === undefined ? {} : { delay }) }), 201);
        assert.deepEqual(st.delay, answer, JSON.stringify(delay));
        assert.deepEqual(await rawDelay(st.id), row, JSON.stringify(delay));
        assert.deepEqual(ok(await owner.call('GET', `${steps}/${st.id}`)).delay, answer);
      }

      // An edit that gives a delay replaces all of it; one that does not keeps it.
      const st = ok(await owner.call('POST', steps, { body: 'edit me', delay: { days: 2, hours: 3 } }), 201);
      assert.deepEqual(ok(await owner.call('PATCH', `${steps}/${st.id}`, { body: 'edited' })).delay, { days: 2, hours: 3, minutes: 0 });
      assert.deepEqual(await rawDelay(st.id), { delay_days: 2, delay_minutes: 180 });
      assert.deepEqual(ok(await owner.call('PATCH', `${steps}/${st.id}`, { delay: { minutes: 45 } })).delay, { days: 0, hours: 0, minutes: 45 });
      assert.deepEqual(await rawDelay(st.id), { delay_days: 0, delay_minutes: 45 });
      const listed = ok(await owner.call('GET', steps)).data as { delay: unknown }[];
      assert.deepEqual(listed.map((x) => x.delay), [...cases.map((c) => c[2]), { days: 0, hours: 0, minutes: 45 }]);
    });

    it('refuses a bad delay with the field named, and writes nothing', async () => {
      const owner = await tenant(api);
      const s = ok(await owner.call('POST', base, welcome), 201);
      const steps = `${base}/${s.id}/steps`;
      const kept = ok(await owner.call('POST', steps, { body: 'kept', delay: { days: 1, minutes: 30 } }), 201);
      const before = await api.t.db.query(`select * from sequence_steps where sequence_id = $1`, [s.id]);
      const bad: [unknown, string][] = [
        [{ days: -1 }, 'body.delay.days'],
        [{ hours: -1 }, 'body.delay.hours'],
        [{ minutes: -5 }, 'body.delay.minutes'],
        [{ days: 366 }, 'body.delay.days'],
        [{ hours: 8761 }, 'body.delay.hours'],
        [{ minutes: 525_601 }, 'body.delay.minutes'],
        // Each part within bounds, the whole over 365 days.
        [{ days: 365, minutes: 1 }, 'body.delay'],
        [{ days: 200, hours: 4000 }, 'body.delay'],
        [{ weeks: 1 }, 'body.delay'],
        [{ days: 1, delay_minutes: 5 }, 'body.delay'],
        [{ days: 1.5 }, 'body.delay.days'],
        [{ days: '1' }, 'body.delay.days'],
        [60, 'body.delay'],
        [null, 'body.delay'],
      ];
      for (const [delay, path] of bad) {
        for (const [method, url] of [
          ['POST', steps],
          ['PATCH', `${steps}/${kept.id}`],
        ] as const) {
          const err = expectError(await owner.call(method, url, { body: 'changed', delay }), 400, 'VALIDATION_FAILED');
          assert.ok(
            err.details.some((d) => d.path === path),
            `${method} ${JSON.stringify(delay)}: ${path} in ${JSON.stringify(err.details)}`,
          );
        }
      }
      assert.deepEqual((await api.t.db.query(`select * from sequence_steps where sequence_id = $1`, [s.id])).rows, before.rows);
    });

    it('fetches step media given by URL when the step is saved, and refuses a link that does not answer', async () => {
      const owner = await tenant(api);
      const s = ok(await owner.call('POST', base, welcome), 201);
      const steps = `${base}/${s.id}/steps`;
      const url = `${server.url}/file/tip.png`;
      const missing = `${server.url}/missing`;
      const mediaRows = async () => (await api.t.db.query<Record<string, any>>(`select * from media where user_id = $1 order by id`, [owner.userId])).rows;
      const stepRow = async (id: number) => (await api.t.db.query<Record<string, any>>(`select * from sequence_steps where id = $1`, [id])).rows[0];
      const hits = () => server.hits.filter((h) => h === '/file/tip.png').length;
      const hitsBefore = hits();

      const st = ok(await owner.call('POST', steps, { body: 'See this', media: { type: 'image', url, caption: 'Tip' } }), 201);
      assert.equal(hits(), hitsBefore + 1, 'fetched once, when the step was saved');
      const rec = await mediaRows();
      assert.equal(rec.length, 1, 'the fetched file is recorded as media of the account');
      const m = rec[0]!;
      assert.deepEqual([m.kind, m.mime_type, m.file_name, m.source_url], ['image', 'image/jpeg', 'tip.jpg', url]);
      assert.deepEqual(st.media, { type: 'image', url, media_id: m.id, filename: 'tip.jpg', caption: 'Tip', mime_type: 'image/jpeg', bytes: m.bytes });
      assert.deepEqual((await stepRow(st.id))!.media, {
        kind: 'image',
        url,
        mediaId: m.id,
        storageKey: m.storage_key,
        mimeType: 'image/jpeg',
        bytes: m.bytes,
        fileName: 'tip.jpg',
        caption: 'Tip',
      });
      assert.deepEqual(ok(await owner.call('GET', `${steps}/${st.id}`)), st);

      // A link that does not answer fails the edit with its reason; the step stays as it was.
      const before = await stepRow(st.id);
      const err = expectError(await owner.call('PATCH', `${steps}/${st.id}`, { body: 'changed', position: 1, media: { type: 'image', url: missing } }), 422, 'MEDIA_FETCH_FAILED');
      assert.equal(err.details[0]!.code, 'HTTP_STATUS');
      assert.equal(err.details[0]!.status, 404);
      assert.equal(err.details[0]!.url, missing);
      const closed = await new Promise<number>((resolve) => {
        const srv = createServer();
        srv.listen(0, '127.0.0.1', () => {
          const port = (srv.address() as AddressInfo).port;
          srv.close(() => resolve(port));
        });
      });
      const nowhere = `http://127.0.0.1:${closed}/tip.png`;
      const refused = expectError(await owner.call('PATCH', `${steps}/${st.id}`, { body: 'changed', media: { type: 'image', url: nowhere } }), 422, 'MEDIA_FETCH_FAILED');
      assert.equal(refused.details[0]!.code, 'CONNECTION_REFUSED');
      assert.deepEqual(await stepRow(st.id), before);
      // A new step with such a link is not written at all.
      expectError(await owner.call('POST', steps, { body: 'new', media: { type: 'image', url: missing } }), 422, 'MEDIA_FETCH_FAILED');
      expectError(await owner.call('POST', steps, { body: 'new', position: 1, media: { type: 'document', url: nowhere } }), 422, 'MEDIA_FETCH_FAILED');
      assert.deepEqual(await stepRows(api.t.db, s.id), [['See this', 1]]);
      assert.equal((await mediaRows()).length, 1);

      // An uploaded file by id is checked, not fetched again; null clears the media.
      const byId = ok(await owner.call('PATCH', `${steps}/${st.id}`, { media: { type: 'image', media_id: m.id } }));
      assert.deepEqual(byId.media, { type: 'image', media_id: m.id, filename: 'tip.jpg', mime_type: 'image/jpeg', bytes: m.bytes, url });
      assert.equal(hits(), hitsBefore + 1);
      expectError(await owner.call('PATCH', `${steps}/${st.id}`, { media: { type: 'video', media_id: m.id } }), 422, 'MEDIA_KIND_MISMATCH');
      const other = await tenant(api);
      const theirs = ok(await other.call('POST', base, welcome), 201);
      expectError(await other.call('POST', `${base}/${theirs.id}/steps`, { body: 'x', media: { type: 'image', media_id: m.id } }), 404, 'MEDIA_NOT_FOUND');
      assert.deepEqual(await stepRows(api.t.db, theirs.id), []);
      const cleared = ok(await owner.call('PATCH', `${steps}/${st.id}`, { media: null }));
      assert.equal(cleared.media, null);
      assert.equal((await stepRow(st.id))!.media, null);
      assert.equal(cleared.body, 'See this');
    });

    it('keeps step positions 1..n through appends, inserts, moves and deletes', async () => {
      const owner = await tenant(api);
      const s = ok(await owner.call('POST', base, welcome), 201);
      const steps = `${base}/${s.id}/steps`;
      const [a, b, c] = await addSteps(owner, s.id, ['a', 'b', 'c']);
      assert.deepEqual(await stepRows(api.t.db, s.id), [['a', 1], ['b', 2], ['c', 3]]);

      const first = ok(await owner.call('POST', steps, { body: 'first', position: 1, delay: {} }), 201);
      assert.equal(first.position, 1);
      assert.deepEqual(await stepRows(api.t.db, s.id), [['first', 1], ['a', 2], ['b', 3], ['c', 4]]);
      const mid = ok(await owner.call('POST', steps, { body: 'mid', position: 3, delay: { days: 1 }, send_time: '09:30' }), 201);
      assert.deepEqual(mid, { id: mid.id, sequence_id: s.id, position: 3, delay: { days: 1, hours: 0, minutes: 0 }, send_time: '09:30', body: 'mid', media: null });
      const raw = await api.t.db.query<{ send_minute: number; delay_days: number; delay_minutes: number }>(
        `select send_minute, delay_days, delay_minutes from sequence_steps where id = $1`,
        [mid.id],
      );
      assert.deepEqual(raw.rows[0], { send_minute: 570, delay_days: 1, delay_minutes: 0 });
      // Position n+1 is the end; beyond it is refused.
      ok(await owner.call('POST', steps, { body: 'last', position: 6 }), 201);
      expectError(await owner.call('POST', steps, { body: 'nowhere', position: 8 }), 422, 'INVALID_POSITION');
      assert.deepEqual(await stepRows(api.t.db, s.id), [['first', 1], ['a', 2], ['mid', 3], ['b', 4], ['c', 5], ['last', 6]]);

      // Moves, both ways.
      ok(await owner.call('PATCH', `${steps}/${first.id}`, { position: 5 }));
      assert.deepEqual(await stepRows(api.t.db, s.id), [['a', 1], ['mid', 2], ['b', 3], ['c', 4], ['first', 5], ['last', 6]]);
      const moved = ok(await owner.call('PATCH', `${steps}/${c}`, { position: 1, body: 'c2' }));
      assert.deepEqual(moved, { id: c, sequence_id: s.id, position: 1, delay: { days: 0, hours: 0, minutes: 0 }, send_time: null, body: 'c2', media: null });
      assert.deepEqual(await stepRows(api.t.db, s.id), [['c2', 1], ['a', 2], ['mid', 3], ['b', 4], ['first', 5], ['last', 6]]);
      expectError(await owner.call('PATCH', `${steps}/${c}`, { position: 7 }), 422, 'INVALID_POSITION');
      const clear = ok(await owner.call('PATCH', `${steps}/${mid.id}`, { send_time: null, delay: { minutes: 5 } }));
      assert.equal(clear.send_time, null);
      assert.deepEqual(clear.delay, { days: 0, hours: 0, minutes: 5 });
      assert.equal(clear.position, 3);

      // Deletes close the gap.
      ok(await owner.call('DELETE', `${steps}/${a}`), 204);
      assert.deepEqual(await stepRows(api.t.db, s.id), [['c2', 1], ['mid', 2], ['b', 3], ['first', 4], ['last', 5]]);
      ok(await owner.call('DELETE', `${steps}/${c}`), 204);
      assert.deepEqual(await stepRows(api.t.db, s.id), [['mid', 1], ['b', 2], ['first', 3], ['last', 4]]);
      expectError(await owner.call('GET', `${steps}/${a}`), 404, 'STEP_NOT_FOUND');

      const list = ok(await owner.call('GET', steps));
      assert.deepEqual(list.data.map((x: { body: string; position: number }) => [x.body, x.position]), [['mid', 1], ['b', 2], ['first', 3], ['last', 4]]);
      assert.deepEqual(ok(await owner.call('GET', `${steps}/${b}`)), list.data[1]);
      assert.equal(ok(await owner.call('GET', `${base}/${s.id}`)).steps, 4);
    });

    it('keeps positions whole when edits of one sequence race', async () => {
      const owner = await tenant(api);
      const s = ok(await owner.call('POST', base, welcome), 201);
      const steps = `${base}/${s.id}/steps`;
      await addSteps(owner, s.id, ['a', 'b']);
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => owner.call('POST', steps, { body: `r${i}`, position: 1 })));
      for (const r of results) ok(r, 201);
      const rows = await stepRows(api.t.db, s.id);
      assert.deepEqual(
        rows.map((r) => r[1]),
        [1, 2, 3, 4, 5, 6, 7, 8],
      );
      assert.deepEqual(rows.slice(6), [['a', 7], ['b', 8]]);
    });

    it('pauses and resumes, refusing a move from the wrong state', async () => {
      const owner = await tenant(api);
      const s = ok(await owner.call('POST', base, welcome), 201);
      const url = `${base}/${s.id}`;
      const e1 = expectError(await owner.call('POST', `${url}/resume`), 409, 'SEQUENCE_STATE');
      assert.equal(e1.details[0]!.status, 'active');
      api.clock.advance(1000);
      const p = ok(await owner.call('POST', `${url}/pause`));
      assert.equal(p.status, 'paused');
      assert.equal(p.updated_at, now().toISOString());
      const before = await sequenceRow(api.t.db, s.id);
      const e2 = expectError(await owner.call('POST', `${url}/pause`), 409, 'SEQUENCE_STATE');
      assert.equal(e2.details[0]!.status, 'paused');
      assert.deepEqual(await sequenceRow(api.t.db, s.id), before);
      assert.equal(ok(await owner.call('POST', `${url}/resume`)).status, 'active');
      assert.equal((await sequenceRow(api.t.db, s.id))!.status, 'active');
      const listed = ok(await owner.call('GET', `${base}?status=active&trigger=signup`));
      assert.deepEqual(listed.data.map((x: { id: number }) => x.id), [s.id]);
      assert.equal(listed.data[0].enrollments, undefined);
    });

    it('checks the next sequence: own, not itself, no loop', async () => {
      const a = await tenant(api);
      const b = await tenant(api);
      const s1 = ok(await a.call('POST', base, { name: 's1', trigger: 't' }), 201);
      const s2 = ok(await a.call('POST', base, { name: 's2', trigger: 't', next_sequence_id: s1.id }), 201);
      const s3 = ok(await a.call('POST', base, { name: 's3', trigger: 't', next_sequence_id: s2.id }), 201);
      const bSeq = ok(await b.call('POST', base, { name: 'b', trigger: 't' }), 201);

      const foreign = expectError(await b.call('POST', base, { name: 'x', trigger: 't', next_sequence_id: s1.id }), 404, 'SEQUENCE_NOT_FOUND');
      const nowhere = expectError(await b.call('POST', base, { name: 'x', trigger: 't', next_sequence_id: 999999999 }), 404, 'SEQUENCE_NOT_FOUND');
      assert.deepEqual(foreign.details, [{ path: 'next_sequence_id', message: `no sequence ${s1.id}` }]);
      assert.equal(foreign.message, nowhere.message);
      expectError(await b.call('PATCH', `${base}/${bSeq.id}`, { next_sequence_id: s1.id }), 404, 'SEQUENCE_NOT_FOUND');
      assert.equal((await sequenceRow(api.t.db, bSeq.id))!.next_sequence_id, null);

      expectError(await a.call('PATCH', `${base}/${s1.id}`, { next_sequence_id: s1.id }), 422, 'INVALID_NEXT_SEQUENCE');
      const loop = expectError(await a.call('PATCH', `${base}/${s1.id}`, { next_sequence_id: s3.id }), 422, 'SEQUENCE_CYCLE');
      assert.equal(loop.details[0]!.path, 'next_sequence_id');
      assert.equal((await sequenceRow(api.t.db, s1.id))!.next_sequence_id, null);
      // Re-pointing the middle elsewhere is fine.
      const s4 = ok(await a.call('POST', base, { name: 's4', trigger: 't' }), 201);
      assert.equal(ok(await a.call('PATCH', `${base}/${s2.id}`, { next_sequence_id: s4.id })).next_sequence_id, s4.id);
      // Deleting a sequence unhooks whoever pointed at it.
      ok(await a.call('DELETE', `${base}/${s4.id}`), 204);
      assert.equal(ok(await a.call('GET', `${base}/${s2.id}`)).next_sequence_id, null);
    });

    it('deleting a sequence with live enrollments cancels their waiting messages first', async () => {
      const owner = await tenant(api);
      const s = ok(await owner.call('POST', base, welcome), 201);
      const keep = ok(await owner.call('POST', base, { name: 'Other', trigger: 'other' }), 201);
      await addSteps(owner, s.id, ['one', 'two']);
      const [dev] = await insertDevices(api.t.db, owner.userId, [{ name: 'd', minDelayMs: 0, maxDelayMs: 0 }], now());
      const phones = Array.from({ length: 4 }, () => `+${++phone}`);
      await insertLeads(api.t.db, owner.userId, phones.map((p) => ({ name: p, phone: p, deviceId: dev!, niches: [], status: 'prospect', triggers: ['signup'] })), now());
      const leadIds = (await api.t.db.query<{ id: number }>(`select id from leads where user_id = $1 order by id`, [owner.userId])).rows.map((r) => r.id);
      const enroll = async (sequenceId: number, leadId: number, status: string): Promise<number> =>
        (
          await api.t.db.query<{ id: number }>(
            `insert into enrollments (user_id, sequence_id, lead_id, status, enrolled_at, updated_at) values ($1, $2, $3, $4, $5, $5) returning id`,
            [owner.userId, sequenceId, leadId, status, now()],
          )
        ).rows[0]!.id;
      const message = async (enrollmentId: number, leadId: number, step: number, status: string): Promise<void> => {
        await api.t.db.query(
          `insert into messages (user_id, device_id, lead_id, phone, enrollment_id, step, body, status, not_before, created_at)
           values ($1, $2, $3, '+1', $4, $5, 'hi', $6, $7, $7)`,
          [owner.userId, dev, leadId, enrollmentId, step, status, now()],
        );
      };
      const e1 = await enroll(s.id, leadIds[0]!, 'active');
      const e2 = await enroll(s.id, leadIds[1]!, 'paused');
      const e3 = await enroll(s.id, leadIds[2]!, 'completed');
      const eKeep = await enroll(keep.id, leadIds[3]!, 'active');
      await message(e1, leadIds[0]!, 1, 'sent');
      await message(e1, leadIds[0]!, 2, 'pending');
      await message(e2, leadIds[1]!, 1, 'pending');
      await message(e3, leadIds[2]!, 1, 'delivered');
      await message(eKeep, leadIds[3]!, 1, 'pending');

      const v = ok(await owner.call('GET', `${base}/${s.id}`));
      assert.equal(v.steps, 2);
      assert.deepEqual(v.enrollments, { active: 1, paused: 1, completed: 1, exited: 0 });

      api.clock.advance(1000);
      ok(await owner.call('DELETE', `${base}/${s.id}`), 204);
      assert.equal(await sequenceRow(api.t.db, s.id), undefined);
      const left = await api.t.db.query<{ n: number }>(
        `select (select count(*)::int from enrollments where sequence_id = $1) + (select count(*)::int from sequence_steps where sequence_id = $1) as n`,
        [s.id],
      );
      assert.equal(left.rows[0]!.n, 0);
      const msgs = await api.t.db.query<{ enrollment_id: number; step: number; status: string; error_code: string | null; finished_at: Date | null }>(
        `select enrollment_id, step, status, error_code, finished_at from messages where user_id = $1 order by id`,
        [owner.userId],
      );
      assert.deepEqual(
        msgs.rows.map((m) => [m.enrollment_id, m.step, m.status, m.error_code, m.finished_at?.getTime() ?? null]),
        [
          [e1, 1, 'sent', null, null],
          [e1, 2, 'cancelled', 'sequence_deleted', api.clock.now()],
          [e2, 1, 'cancelled', 'sequence_deleted', api.clock.now()],
          [e3, 1, 'delivered', null, null],
          [eKeep, 1, 'pending', null, null],
        ],
      );
      assert.equal(ok(await owner.call('GET', `${base}/${keep.id}`)).enrollments.active, 1);
      expectError(await owner.call('DELETE', `${base}/${s.id}`), 404, 'SEQUENCE_NOT_FOUND');
    });

    it('keeps tenants apart on every verb, for sequences and steps', async () => {
      const a = await tenant(api);
      const b = await tenant(api);
      const s = ok(await a.call('POST', base, welcome), 201);
      const [step] = await addSteps(a, s.id, ['a1']);
      const mine = ok(await b.call('POST', base, welcome), 201);
      const [myStep] = await addSteps(b, mine.id, ['b1']);
      const seqBefore = await sequenceRow(api.t.db, s.id);
      const stepsBefore = await stepRows(api.t.db, s.id);

      const url = `${base}/${s.id}`;
      const onSequence: [string, string, unknown?][] = [
        ['GET', url],
        ['PATCH', url, { name: 'stolen' }],
        ['DELETE', url],
        ['POST', `${url}/pause`],
        ['POST', `${url}/resume`],
        ['GET', `${url}/steps`],
        ['POST', `${url}/steps`, { body: 'planted' }],
        ['GET', `${url}/steps/${step}`],
        ['PATCH', `${url}/steps/${step}`, { body: 'stolen' }],
        ['DELETE', `${url}/steps/${step}`],
      ];
      for (const [method, path, body] of onSequence) {
        assert.deepEqual(expectError(await b.call(method as 'GET', path, body), 404, 'SEQUENCE_NOT_FOUND').details, [], `${method} ${path}`);
      }
      // A's step id under B's own sequence is simply not one of its steps.
      const under = `${base}/${mine.id}/steps/${step}`;
      for (const [method, body] of [['GET'], ['PATCH', { body: 'x' }], ['DELETE']] as const) {
        expectError(await b.call(method, under, body), 404, 'STEP_NOT_FOUND');
      }
      assert.deepEqual(await sequenceRow(api.t.db, s.id), seqBefore);
      assert.deepEqual(await stepRows(api.t.db, s.id), stepsBefore);
      assert.deepEqual(await stepRows(api.t.db, mine.id), [['b1', 1]]);
      assert.ok(!ok(await b.call('GET', base)).data.some((x: { id: number }) => x.id === s.id));

      // The same for a step id under the wrong sequence of one tenant.
      const other = ok(await a.call('POST', base, { name: 'other', trigger: 'x' }), 201);
      expectError(await a.call('GET', `${base}/${other.id}/steps/${step}`), 404, 'STEP_NOT_FOUND');
      expectError(await a.call('PATCH', `${base}/${other.id}/steps/${step}`, { position: 1 }), 404, 'STEP_NOT_FOUND');
      expectError(await a.call('DELETE', `${base}/${other.id}/steps/${step}`), 404, 'STEP_NOT_FOUND');
      assert.deepEqual(await stepRows(api.t.db, s.id), stepsBefore);
      assert.ok(myStep);
    });

    it('forbids team members every sequence route', async () => {
      const owner = await tenant(api);
      const member = await tenant(api, { parentId: owner.userId });
      const s = ok(await owner.call('POST', base, welcome), 201);
      const [step] = await addSteps(owner, s.id, ['one']);
      const [dev] = await insertDevices(api.t.db, owner.userId, [{ name: 'd', minDelayMs: 0, maxDelayMs: 0 }], now());
      const leadPhone = `+${++phone}`;
      await insertLeads(api.t.db, owner.userId, [{ name: 'l', phone: leadPhone, deviceId: dev!, niches: [], status: 'prospect', triggers: [] }], now());
      const lead = (await api.t.db.query<{ id: number }>(`select id from leads where user_id = $1`, [owner.userId])).rows[0]!.id;
      const enrolled = ok(await owner.call('POST', `${base}/${s.id}/enrollments`, { lead_ids: [lead] }));
      assert.equal(enrolled.enrolled, 1);
      const enrollmentsBefore = (await api.t.db.query(`select * from enrollments where sequence_id = $1`, [s.id])).rows;
      const enrollment = (enrollmentsBefore[0] as { id: number }).id;
      const url = `${base}/${s.id}`;
      const attempts: [string, string, unknown?][] = [
        ['GET', base],
        ['POST', base, welcome],
        ['GET', url],
        ['PATCH', url, { name: 'x' }],
        ['DELETE', url],
        ['POST', `${url}/pause`],
        ['POST', `${url}/resume`],
        ['GET', `${url}/steps`],
        ['POST', `${url}/steps`, { body: 'x' }],
        ['GET', `${url}/steps/${step}`],
        ['PATCH', `${url}/steps/${step}`, { body: 'x' }],
        ['DELETE', `${url}/steps/${step}`],
        ['GET', `${url}/progress`],
        ['POST', `${url}/enrollments`, { lead_ids: [lead] }],
        ['POST', `${url}/enrollments`, { filter: {} }],
        ['GET', `${url}/enrollments`],
        ['GET', `${url}/enrollments/${enrollment}`],
        ['POST', `${url}/enrollments/${enrollment}/pause`],
        ['POST', `${url}/enrollments/${enrollment}/resume`],
        ['DELETE', `${url}/enrollments/${enrollment}`],
        ['GET', `/api/v1/leads/${lead}/enrollments`],
      ];
      for (const [method, path, body] of attempts) expectError(await member.call(method as 'GET', path, body), 403, 'TEAM_MEMBER_FORBIDDEN');
      assert.deepEqual(await stepRows(api.t.db, s.id), [['one', 1]]);
      assert.equal((await sequenceRow(api.t.db, s.id))!.name, 'Welcome');
      assert.deepEqual((await api.t.db.query(`select * from enrollments where sequence_id = $1`, [s.id])).rows, enrollmentsBefore);
    });

    it('is described in the OpenAPI document', async () => {
      const doc = json(await api.app.inject({ method: 'GET', url: '/openapi.json' }));
      const paths: [string, string[]][] = [
        ['/api/v1/sequences', ['get', 'post']],
        ['/api/v1/sequences/{id}', ['get', 'patch', 'delete']],
        ['/api/v1/sequences/{id}/pause', ['post']],
        ['/api/v1/sequences/{id}/resume', ['post']],
        ['/api/v1/sequences/{id}/steps', ['get', 'post']],
        ['/api/v1/sequences/{id}/steps/{stepId}', ['get', 'patch', 'delete']],
        ['/api/v1/sequences/{id}/progress', ['get']],
        ['/api/v1/sequences/{id}/enrollments', ['get', 'post']],
        ['/api/v1/sequences/{id}/enrollments/{enrollmentId}', ['get', 'delete']],
        ['/api/v1/sequences/{id}/enrollments/{enrollmentId}/pause', ['post']],
        ['/api/v1/sequences/{id}/enrollments/{enrollmentId}/resume', ['post']],
        ['/api/v1/leads/{id}/enrollments', ['get']],
      ];
      for (const [p, methods] of paths) {
        assert.ok(doc.paths[p], p);
        assert.deepEqual(Object.keys(doc.paths[p]).sort(), [...methods].sort(), p);
      }
      for (const name of ['Sequence', 'SequenceStep', 'Enrollment', 'SequenceProgress']) assert.ok(doc.components.schemas[name], name);
      // Steps speak of `delay`, never of the old `delay_minutes`.
      const stepSchema = JSON.stringify(doc.components.schemas.SequenceStep);
      assert.ok(stepSchema.includes('"delay"') && !stepSchema.includes('delay_minutes'), stepSchema);
    });
  });
}
