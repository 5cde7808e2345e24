/**
 * /api/v1/sequences and their steps: rows written, positions kept 1..n through inserts, moves and
 * deletes, the next-sequence chain, deleting with live enrollments, tenant isolation and the
 * team-member ban.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Queryable } from '../../src/store/db.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { insertLeads } from '../../src/store/sql/leads.js';
import { expectError, json, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { backends } from '../helpers/db.js';

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
    let phone = 60_130_000_000;

    before(async () => {
      api = await openApi(backend);
    });
    after(async () => {
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
        [{ body: 'x', delay_minutes: -1 }],
        [{ body: 'x', delay_minutes: 365 * 24 * 60 + 1 }],
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

    it('keeps step positions 1..n through appends, inserts, moves and deletes', async () => {
      const owner = await tenant(api);
      const s = ok(await owner.call('POST', base, welcome), 201);
      const steps = `${base}/${s.id}/steps`;
      const [a, b, c] = await addSteps(owner, s.id, ['a', 'b', 'c']);
      assert.deepEqual(await stepRows(api.t.db, s.id), [['a', 1], ['b', 2], ['c', 3]]);

      const first = ok(await owner.call('POST', steps, { body: 'first', position: 1, delay_minutes: 0 }), 201);
      assert.equal(first.position, 1);
      assert.deepEqual(await stepRows(api.t.db, s.id), [['first', 1], ['a', 2], ['b', 3], ['c', 4]]);
      const mid = ok(await owner.call('POST', steps, { body: 'mid', position: 3, delay_minutes: 1440, send_time: '09:30' }), 201);
      assert.deepEqual(mid, { id: mid.id, sequence_id: s.id, position: 3, delay_minutes: 1440, send_time: '09:30', body: 'mid', media: null });
      const raw = await api.t.db.query<{ send_minute: number; delay_minutes: number }>(`select send_minute, delay_minutes from sequence_steps where id = $1`, [mid.id]);
      assert.deepEqual(raw.rows[0], { send_minute: 570, delay_minutes: 1440 });
      // Position n+1 is the end; beyond it is refused.
      ok(await owner.call('POST', steps, { body: 'last', position: 6 }), 201);
      expectError(await owner.call('POST', steps, { body: 'nowhere', position: 8 }), 422, 'INVALID_POSITION');
      assert.deepEqual(await stepRows(api.t.db, s.id), [['first', 1], ['a', 2], ['mid', 3], ['b', 4], ['c', 5], ['last', 6]]);

      // Moves, both ways.
      ok(await owner.call('PATCH', `${steps}/${first.id}`, { position: 5 }));
      assert.deepEqual(await stepRows(api.t.db, s.id), [['a', 1], ['mid', 2], ['b', 3], ['c', 4], ['first', 5], ['last', 6]]);
      const moved = ok(await owner.call('PATCH', `${steps}/${c}`, { position: 1, body: 'c2', media: { type: 'image', url: 'https://x.test/c.png' } }));
      assert.deepEqual(moved, { id: c, sequence_id: s.id, position: 1, delay_minutes: 0, send_time: null, body: 'c2', media: { type: 'image', url: 'https://x.test/c.png' } });
      assert.deepEqual(await stepRows(api.t.db, s.id), [['c2', 1], ['a', 2], ['mid', 3], ['b', 4], ['first', 5], ['last', 6]]);
      expectError(await owner.call('PATCH', `${steps}/${c}`, { position: 7 }), 422, 'INVALID_POSITION');
      const clear = ok(await owner.call('PATCH', `${steps}/${mid.id}`, { send_time: null, delay_minutes: 5 }));
      assert.equal(clear.send_time, null);
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
      ];
      for (const [method, path, body] of attempts) expectError(await member.call(method as 'GET', path, body), 403, 'TEAM_MEMBER_FORBIDDEN');
      assert.deepEqual(await stepRows(api.t.db, s.id), [['one', 1]]);
      assert.equal((await sequenceRow(api.t.db, s.id))!.name, 'Welcome');
    });

    it('is described in the OpenAPI document', async () => {
      const doc = json(await api.app.inject({ method: 'GET', url: '/openapi.json' }));
      for (const p of ['/api/v1/sequences', '/api/v1/sequences/{id}', '/api/v1/sequences/{id}/steps', '/api/v1/sequences/{id}/steps/{stepId}']) {
        assert.ok(doc.paths[p], p);
      }
      assert.ok(doc.components.schemas.Sequence);
      assert.ok(doc.components.schemas.SequenceStep);
    });
  });
}
