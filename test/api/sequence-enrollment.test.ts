/**
 * Leads in sequences, through the API and the rows it leaves: enrolling by id and by filter (step
 * one's due time in the account's zone, re-entry, opt-outs, other tenants' leads), listing and
 * reading enrollments, pausing, resuming and removing one, pausing a whole sequence, enrolling by
 * trigger tags gained through the lead API and CSV imports, opt-outs and replies ending
 * enrollments, what happens after each step (failure policy, completion, chaining and its loop
 * guard), editing and deleting steps under enrolled leads, and the progress report.
 *
 * Step messages are written the way the engine's planner writes them (dueEnrollments, stepsOf,
 * writeDueMessages, settleUnplanned) and moved on the way recording an outcome does
 * (progressEnrollments), on the test clock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyReply, DEFAULT_OPT_OUT_WORDS } from '../../src/engine/replies.js';
import { progressEnrollments } from '../../src/engine/sequence-progress.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { chainCompleted, dueEnrollments, settleUnplanned, stepsOf, writeDueMessages, type PlannedMessage } from '../../src/store/sql/enrollments.js';
import { insertLeads } from '../../src/store/sql/leads.js';
import { expectError, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { backends, openSecondPool } from '../helpers/db.js';

const base = '/api/v1/sequences';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const T0 = Date.parse('2026-03-02T09:00:00Z');

interface EnrollmentRow {
  id: number;
  user_id: number;
  sequence_id: number;
  lead_id: number;
  status: string;
  current_step: number;
  next_due_at: Date | null;
  planned_at: Date | null;
  message_id: number | null;
  exit_reason: string | null;
  source: string;
  chain_root: number | null;
  chain_depth: number;
  last_error: string | null;
  enrolled_at: Date;
  updated_at: Date;
  completed_at: Date | null;
}

interface MessageRow {
  id: number;
  enrollment_id: number;
  lead_id: number;
  device_id: number;
  step: number;
  body: string;
  status: string;
  error_code: string | null;
  not_before: Date;
  finished_at: Date | null;
}

const ms = (d: Date | null): number | null => (d === null ? null : d.getTime());
/** Orders [lead id, ...] tuples by lead id. */
const byLead = (a: unknown[], b: unknown[]): number => (a[0] as number) - (b[0] as number);

for (const backend of backends) {
  describe(`sequence enrollment (${backend})`, () => {
    let api: TestApi;
    let phoneSeq = 0;

    before(async () => {
      api = await openApi(backend);
    });
    after(async () => {
      await api.dispose();
    });

    const now = (): Date => new Date(api.clock.now());
    /** A Malaysian mobile number the lead API accepts, new every call. */
    const nextPhone = (): string => `+6012${String(++phoneSeq).padStart(7, '0')}`;

    async function device(owner: Caller, name = 'phone'): Promise<number> {
      const [id] = await insertDevices(api.t.db, owner.userId, [{ name, minDelayMs: 0, maxDelayMs: 0 }], now());
      return id!;
    }

    /** Leads written straight to the table (no enrollment happens); ids in the order given. */
    async function leads(owner: Caller, count: number, o: { deviceId?: number | null; niches?: string[]; triggers?: string[] } = {}): Promise<number[]> {
      const phones = Array.from({ length: count }, () => nextPhone());
      await insertLeads(
        api.t.db,
        owner.userId,
        phones.map((p) => ({ name: `Lead ${p.slice(-4)}`, phone: p, deviceId: o.deviceId ?? null, niches: o.niches ?? [], status: 'prospect', triggers: o.triggers ?? [] })),
        now(),
      );
      const res = await api.t.db.query<{ id: number }>(`select id from leads where user_id = $1 and phone = any($2::text[]) order by id`, [owner.userId, phones]);
      return res.rows.map((r) => r.id);
    }

    async function optOut(leadIds: number[]): Promise<void> {
      await api.t.db.query(`update leads set opted_out_at = $2 where id = any($1::bigint[])`, [leadIds, now()]);
    }

    /** A sequence made through the API, with its steps (each `{body: 'Hi {name}'}` unless told). */
    async function sequence(owner: Caller, input: Record<string, unknown>, steps: Record<string, unknown>[]): Promise<number> {
      const s = ok(await owner.call('POST', base, { name: 'Drip', trigger: 'drip', ...input }), 201);
      for (const st of steps) ok(await owner.call('POST', `${base}/${s.id}/steps`, { body: 'Hi {name}', ...st }), 201);
      return s.id;
    }

    async function enroll(owner: Caller, sequenceId: number, body: unknown): Promise<{ matched: number; enrolled: number; skipped: number }> {
      return ok(await owner.call('POST', `${base}/${sequenceId}/enrollments`, body));
    }

    async function enrollmentRows(sequenceId: number): Promise<EnrollmentRow[]> {
      return (await api.t.db.query<EnrollmentRow>(`select * from enrollments where sequence_id = $1 order by id`, [sequenceId])).rows;
    }

    async function rowOf(enrollmentId: number): Promise<EnrollmentRow> {
      return (await api.t.db.query<EnrollmentRow>(`select * from enrollments where id = $1`, [enrollmentId])).rows[0]!;
    }

    async function messageRows(sequenceId: number): Promise<MessageRow[]> {
      const res = await api.t.db.query<MessageRow>(
        `select m.id, m.enrollment_id, m.lead_id, m.device_id, m.step, m.body, m.status, m.error_code, m.not_before, m.finished_at
           from messages m join enrollments e on e.id = m.enrollment_id
          where e.sequence_id = $1 order by m.id`,
        [sequenceId],
      );
      return res.rows;
    }

    async function messageOf(enrollmentId: number): Promise<MessageRow> {
      const res = await api.t.db.query<MessageRow>(
        `select m.id, m.enrollment_id, m.lead_id, m.device_id, m.step, m.body, m.status, m.error_code, m.not_before, m.finished_at
           from messages m join enrollments e on e.message_id = m.id where e.id = $1`,
        [enrollmentId],
      );
      assert.equal(res.rows.length, 1, `enrollment ${enrollmentId} has a message`);
      return res.rows[0]!;
    }

    /**
     * What the planner does when it wakes now, for these sequences only: writes the message of
     * every due enrollment, and settles the ones that got none.
     */
    async function plan(...sequenceIds: number[]): Promise<PlannedMessage[]> {
      const at = now();
      const due = (await dueEnrollments(api.t.db, at, 10_000)).filter((d) => sequenceIds.includes(d.sequence_id));
      if (due.length === 0) return [];
      const wanted = new Set(due.map((d) => `${d.sequence_id}/${d.current_step}`));
      const steps = (await stepsOf(api.t.db, sequenceIds)).filter((s) => wanted.has(`${s.sequence_id}/${s.position}`));
      const ids = due.map((d) => d.id);
      const written = await writeDueMessages(api.t.db, ids, steps, at);
      const got = new Set(written.map((w) => w.enrollment_id));
      const rest = ids.filter((id) => !got.has(id));
      if (rest.length > 0) {
        await api.t.db.transaction(async (tx) => {
          const settled = await settleUnplanned(tx, rest, at);
          await chainCompleted(tx, settled.completed, at);
        });
      }
      return written;
    }

    /** The current message of each enrollment finished with `status` now; the enrollments move on. */
    async function finish(enrollmentIds: number[], status = 'sent'): Promise<void> {
      const at = now();
      await api.t.db.transaction(async (tx) => {
        await tx.query(
          `update messages set status = $2::text, finished_at = $3::timestamptz,
                  sent_at = case when $2::text in ('sent', 'delivered', 'read') then $3::timestamptz end
            where id in (select message_id from enrollments where id = any($1::bigint[]))`,
          [enrollmentIds, status, at],
        );
        await progressEnrollments(tx, enrollmentIds, at);
      });
    }

    it('enrolls named leads: one active row each, due at step one’s delay and send time in the account’s zone', async () => {
      api.clock.t = T0; // Monday 17:00 in Kuala Lumpur, 04:00 in New York
      const owner = await tenant(api);
      const dev = await device(owner);
      const [l1, l2] = await leads(owner, 2, { deviceId: dev });
      const cases: [Record<string, unknown>, string][] = [
        // 17:00 + 1 day 2 hours = Tuesday 19:00, then the next 10:00: Wednesday 10:00 local.
        [{ delay: { days: 1, hours: 2 }, send_time: '10:00' }, '2026-03-04T02:00:00.000Z'],
        [{ delay: { minutes: 30 } }, '2026-03-02T09:30:00.000Z'],
        // No delay: the next 08:00 is tomorrow's; 17:00 is now itself.
        [{ send_time: '08:00' }, '2026-03-03T00:00:00.000Z'],
        [{ send_time: '17:00' }, '2026-03-02T09:00:00.000Z'],
        [{}, '2026-03-02T09:00:00.000Z'],
      ];
      for (const [step, due] of cases) {
        const seq = await sequence(owner, {}, [step, { body: 'second', delay: { days: 1 } }]);
        assert.deepEqual(await enroll(owner, seq, { lead_ids: [l1!, l2!] }), { matched: 2, enrolled: 2, skipped: 0 }, JSON.stringify(step));
        const rows = await enrollmentRows(seq);
        assert.equal(rows.length, 2);
        for (const r of rows) {
          assert.deepEqual(
            [r.user_id, r.status, r.current_step, r.next_due_at?.toISOString(), r.planned_at?.toISOString(), r.message_id, r.exit_reason, r.source, r.chain_depth],
            [owner.userId, 'active', 1, due, due, null, null, 'api', 0],
            JSON.stringify(step),
          );
          assert.equal(r.enrolled_at.getTime(), T0);
          assert.equal(r.completed_at, null);
        }
        assert.deepEqual(
          rows.map((r) => r.lead_id).sort((a, b) => a - b),
          [l1, l2],
        );
      }

      // What the API answers for one of them.
      const seq = await sequence(owner, {}, [{ delay: { minutes: 30 } }]);
      await enroll(owner, seq, { lead_ids: [l1!] });
      const [row] = await enrollmentRows(seq);
      const lead = (await api.t.db.query<{ phone: string; name: string }>(`select phone, name from leads where id = $1`, [l1])).rows[0]!;
      const view = ok(await owner.call('GET', `${base}/${seq}/enrollments/${row!.id}`));
      assert.deepEqual(view, {
        id: row!.id,
        sequence_id: seq,
        lead_id: l1,
        lead_name: lead.name,
        lead_phone: lead.phone,
        status: 'active',
        current_step: 1,
        next_due_at: '2026-03-02T09:30:00.000Z',
        message_id: null,
        message_status: null,
        exit_reason: null,
        source: 'api',
        chain_depth: 0,
        last_error: null,
        enrolled_at: new Date(T0).toISOString(),
        updated_at: new Date(T0).toISOString(),
        completed_at: null,
      });
      assert.deepEqual(ok(await owner.call('GET', `${base}/${seq}`)).enrollments, { active: 1, paused: 0, completed: 0, exited: 0 });
    });

    /** Step one's due time for a lead of a New York account enrolled on Monday 2 March 2026, 04:00 EST (clocks go forward on Sunday 8 March). */
    async function dueInNewYork(cases: [Record<string, unknown>, string][]): Promise<void> {
      api.clock.t = T0;
      const owner = await tenant(api, { timeZone: 'America/New_York', country: 'US' });
      const [lead] = await leads(owner, 1);
      for (const [step, due] of cases) {
        const seq = await sequence(owner, {}, [step]);
        await enroll(owner, seq, { lead_ids: [lead!] });
        assert.equal((await enrollmentRows(seq))[0]!.next_due_at?.toISOString(), due, JSON.stringify(step));
      }
    }

    it('counts days on the account’s calendar across a daylight-saving change', async () => {
      await dueInNewYork([
        // Sunday 04:00 EDT: six calendar days are 143 hours this week.
        [{ delay: { days: 6 } }, '2026-03-08T08:00:00.000Z'],
        [{ delay: { days: 6 }, send_time: '09:00' }, '2026-03-08T13:00:00.000Z'],
        [{ delay: { days: 5 }, send_time: '09:00' }, '2026-03-07T14:00:00.000Z'],
        [{ delay: { days: 5 }, send_time: '03:00' }, '2026-03-08T07:00:00.000Z'],
      ]);
    });

    it(
      'counts hours and minutes as exact durations across a daylight-saving change',
      async () => {
        await dueInNewYork([
          [{ delay: { hours: 144 } }, '2026-03-08T09:00:00.000Z'],
          [{ delay: { days: 5, hours: 24 } }, '2026-03-08T09:00:00.000Z'],
          [{ delay: { minutes: 144 * 60 }, send_time: '05:00' }, '2026-03-08T09:00:00.000Z'],
        ]);
      },
    );

    it('enrolls by filter and answers matched, enrolled and skipped: opted-out, already enrolled and other tenants’ leads are skipped', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const cafes = await leads(owner, 3, { deviceId: dev, niches: ['cafe'] });
      const bars = await leads(owner, 2, { deviceId: dev, niches: ['bar'] });
      await optOut([cafes[2]!]);
      const seq = await sequence(owner, {}, [{}]);

      assert.deepEqual(await enroll(owner, seq, { filter: { niches: ['cafe'] } }), { matched: 3, enrolled: 2, skipped: 1 });
      assert.deepEqual(await enroll(owner, seq, { filter: { niches: ['cafe'] } }), { matched: 3, enrolled: 0, skipped: 3 });
      assert.deepEqual(await enroll(owner, seq, { filter: {} }), { matched: 5, enrolled: 2, skipped: 3 });
      // Ids and a filter: the leads both select.
      assert.deepEqual(await enroll(owner, seq, { lead_ids: [bars[0]!], filter: { niches: ['cafe'] } }), { matched: 0, enrolled: 0, skipped: 0 });
      assert.deepEqual(await enroll(owner, seq, { lead_ids: [cafes[2]!] }), { matched: 1, enrolled: 0, skipped: 1 });
      // An id that is no lead of this account is not matched at all.
      const other = await tenant(api);
      const [theirs] = await leads(other, 1, { deviceId: await device(other) });
      assert.deepEqual(await enroll(owner, seq, { lead_ids: [theirs!, 999_999_999] }), { matched: 0, enrolled: 0, skipped: 0 });
      assert.deepEqual(await enroll(owner, seq, { lead_ids: [theirs!, bars[1]!] }), { matched: 1, enrolled: 0, skipped: 1 });

      const rows = await enrollmentRows(seq);
      assert.deepEqual(
        rows.map((r) => r.lead_id).sort((a, b) => a - b),
        [cafes[0], cafes[1], ...bars].sort((a, b) => a! - b!),
      );
      assert.ok(rows.every((r) => r.status === 'active' && r.source === 'api' && r.user_id === owner.userId));
      const foreign = await api.t.db.query<{ n: number }>(`select count(*)::int as n from enrollments where lead_id = $1`, [theirs]);
      assert.equal(foreign.rows[0]!.n, 0);

      // Requests at once enroll each lead once.
      const race = await sequence(owner, {}, [{}]);
      const answers = await Promise.all(Array.from({ length: 4 }, () => enroll(owner, race, { filter: {} })));
      assert.equal(
        answers.reduce((n, x) => n + x.enrolled, 0),
        4,
      );
      assert.ok(answers.every((x) => x.matched === 5 && x.enrolled + x.skipped === 5));
      const raced = await enrollmentRows(race);
      assert.equal(new Set(raced.map((r) => r.lead_id)).size, 4);
      assert.equal(raced.length, 4);
    });

    it(
      'a lead that enters by trigger while a bulk enrollment runs is skipped by it, not an error',
      { skip: backend !== 'postgres' && 'needs a second connection' },
      async () => {
        const owner = await tenant(api);
        const dev = await device(owner);
        const ids = await leads(owner, 5, { deviceId: dev });
        const seq = await sequence(owner, {}, [{}]);
        const second = await openSecondPool(api.t);
        try {
          // Another connection enrolls the first lead and holds its transaction open, so the bulk
          // statement's snapshot cannot see that row and meets it only in the unique index.
          let commit!: () => void;
          const held = new Promise<void>((resolve) => (commit = resolve));
          let inserted!: () => void;
          const insertedYet = new Promise<void>((resolve) => (inserted = resolve));
          const other = second.transaction(async (tx) => {
            await tx.query(
              `insert into enrollments (user_id, sequence_id, lead_id, current_step, planned_at, next_due_at, status, enrolled_at, updated_at, source)
               values ($1, $2, $3, 1, $4, $4, 'active', $4, $4, 'trigger')`,
              [owner.userId, seq, ids[0], now()],
            );
            inserted();
            await held;
          });
          await insertedYet;
          const answer = enroll(owner, seq, { filter: {} });
          await new Promise((r) => setTimeout(r, 300));
          commit();
          await other;
          assert.deepEqual(await answer, { matched: 5, enrolled: 4, skipped: 1 });
          const rows = await enrollmentRows(seq);
          assert.deepEqual(
            rows.map((r) => [r.lead_id, r.source]).sort(byLead),
            ids.map((id, i) => [id, i === 0 ? 'trigger' : 'api']),
          );
        } finally {
          await second.close();
        }
      },
    );

    it('refuses a bad enroll request with a stable code and writes nothing', async () => {
      const owner = await tenant(api);
      const [lead] = await leads(owner, 1, { deviceId: await device(owner) });
      const empty = await sequence(owner, {}, []);
      const e = expectError(await owner.call('POST', `${base}/${empty}/enrollments`, { lead_ids: [lead!] }), 422, 'SEQUENCE_HAS_NO_STEPS');
      assert.deepEqual(e.details, [{ path: 'steps', message: 'the sequence has no steps' }]);
      expectError(await owner.call('POST', `${base}/${empty}/enrollments`, { filter: {} }), 422, 'SEQUENCE_HAS_NO_STEPS');

      const seq = await sequence(owner, {}, [{}]);
      const bad: [unknown, string?][] = [
        [{}, 'body.lead_ids'],
        [{ lead_ids: [] }, 'body.lead_ids'],
        [{ lead_ids: [0] }],
        [{ lead_ids: ['x'] }],
        [{ lead_ids: Array.from({ length: 10_001 }, (_, i) => i + 1) }, 'body.lead_ids'],
        [{ lead_ids: [lead], extra: true }],
        [{ filter: { niche: ['cafe'] } }],
        [{ filter: { niches: 'cafe' } }],
        [{ filter: null }],
        [[lead]],
      ];
      for (const [body, path] of bad) {
        const err = expectError(await owner.call('POST', `${base}/${seq}/enrollments`, body), 400, 'VALIDATION_FAILED');
        if (path) assert.ok(err.details.some((d) => d.path === path), `${path} in ${JSON.stringify(err.details)}`);
      }
      expectError(await owner.call('POST', `${base}/999999999/enrollments`, { lead_ids: [lead!] }), 404, 'SEQUENCE_NOT_FOUND');
      const n = await api.t.db.query<{ n: number }>(`select count(*)::int as n from enrollments where user_id = $1`, [owner.userId]);
      assert.equal(n.rows[0]!.n, 0);
    });

    it('re-entry: "never" skips a lead that was ever in the sequence, "after_completion" takes it back once that ended', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const [done, removed, live] = await leads(owner, 3, { deviceId: dev });
      const all = [done!, removed!, live!];
      const never = await sequence(owner, { reentry: 'never' }, [{}]);
      const again = await sequence(owner, { reentry: 'after_completion' }, [{}]);
      for (const seq of [never, again]) {
        assert.deepEqual(await enroll(owner, seq, { lead_ids: all }), { matched: 3, enrolled: 3, skipped: 0 });
        await plan(seq);
        const rows = await enrollmentRows(seq);
        const idOf = new Map(rows.map((r) => [r.lead_id, r.id]));
        await finish([idOf.get(done!)!]);
        ok(await owner.call('DELETE', `${base}/${seq}/enrollments/${idOf.get(removed!)}`));
        assert.deepEqual(
          (await enrollmentRows(seq)).map((r) => [r.lead_id, r.status, r.exit_reason]).sort(byLead),
          [
            [done, 'completed', null],
            [removed, 'exited', 'removed'],
            [live, 'active', null],
          ],
        );
      }
      api.clock.advance(MINUTE);
      assert.deepEqual(await enroll(owner, never, { lead_ids: all }), { matched: 3, enrolled: 0, skipped: 3 });
      assert.deepEqual(await enroll(owner, again, { lead_ids: all }), { matched: 3, enrolled: 2, skipped: 1 });
      assert.equal((await enrollmentRows(never)).length, 3);
      const rows = await enrollmentRows(again);
      assert.deepEqual(
        rows.slice(0, 3).map((r) => [r.lead_id, r.status]).sort(byLead),
        [
          [done, 'completed'],
          [removed, 'exited'],
          [live, 'active'],
        ],
      );
      assert.deepEqual(
        rows.slice(3).map((r) => [r.lead_id, r.status, r.current_step, r.enrolled_at.getTime()]).sort(byLead),
        [
          [done, 'active', 1, api.clock.now()],
          [removed, 'active', 1, api.clock.now()],
        ],
      );

      // A lead's sequences, newest first, over every sequence of the account.
      const mine = ok(await owner.call('GET', `/api/v1/leads/${done}/enrollments`)).data as { sequence_id: number; status: string; id: number }[];
      assert.deepEqual(
        mine.map((x) => [x.sequence_id, x.status]),
        [
          [again, 'active'],
          [again, 'completed'],
          [never, 'completed'],
        ],
      );
      assert.ok(mine[0]!.id > mine[1]!.id && mine[1]!.id > mine[2]!.id);
      const [fresh] = await leads(owner, 1, { deviceId: dev });
      assert.deepEqual(ok(await owner.call('GET', `/api/v1/leads/${fresh}/enrollments`)).data, []);
      expectError(await owner.call('GET', '/api/v1/leads/999999999/enrollments'), 404, 'LEAD_NOT_FOUND');
    });

    it('lists enrollments newest first with a keyset cursor and status, step and lead filters; reads one', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const ls = await leads(owner, 5, { deviceId: dev });
      const seq = await sequence(owner, {}, [{}, { delay: { days: 1 } }]);
      assert.equal((await enroll(owner, seq, { lead_ids: ls })).enrolled, 5);
      await plan(seq);
      const rows = await enrollmentRows(seq);
      const ids = rows.map((r) => r.id);
      const desc = [...ids].reverse();
      await finish([ids[0]!, ids[1]!]);
      ok(await owner.call('POST', `${base}/${seq}/enrollments/${ids[2]}/pause`));

      const url = `${base}/${seq}/enrollments`;
      const p1 = ok(await owner.call('GET', `${url}?limit=2`));
      assert.deepEqual(
        p1.data.map((x: { id: number }) => x.id),
        desc.slice(0, 2),
      );
      assert.equal(p1.next_cursor, String(desc[1]));
      const p2 = ok(await owner.call('GET', `${url}?limit=2&cursor=${p1.next_cursor}`));
      assert.deepEqual(
        p2.data.map((x: { id: number }) => x.id),
        desc.slice(2, 4),
      );
      const p3 = ok(await owner.call('GET', `${url}?limit=2&cursor=${p2.next_cursor}`));
      assert.deepEqual(
        p3.data.map((x: { id: number }) => x.id),
        desc.slice(4),
      );
      assert.equal(p3.next_cursor, null);
      assert.deepEqual(
        ok(await owner.call('GET', url)).data.map((x: { id: number }) => x.id),
        desc,
      );

      const idsOf = async (q: string) => ok(await owner.call('GET', `${url}?${q}`)).data.map((x: { id: number }) => x.id);
      assert.deepEqual(await idsOf('status=paused'), [ids[2]]);
      assert.deepEqual(await idsOf('status=active'), [ids[4], ids[3], ids[1], ids[0]]);
      assert.deepEqual(await idsOf('step=2'), [ids[1], ids[0]]);
      assert.deepEqual(await idsOf('step=1&status=active'), [ids[4], ids[3]]);
      assert.deepEqual(await idsOf(`lead_id=${ls[3]}`), [ids[3]]);
      assert.deepEqual(await idsOf(`lead_id=${ls[3]}&status=paused`), []);
      assert.deepEqual(await idsOf('status=completed'), []);
      for (const q of ['status=done', 'step=0', 'step=x', 'lead_id=abc', 'limit=0', 'limit=501', 'cursor=-1', 'bogus=1']) {
        expectError(await owner.call('GET', `${url}?${q}`), 400, 'VALIDATION_FAILED');
      }

      // One of them, as listed; the step-two ones wait without a message.
      const listed = ok(await owner.call('GET', url)).data as Record<string, any>[];
      for (const item of listed) assert.deepEqual(ok(await owner.call('GET', `${url}/${item.id}`)), item);
      const moved = listed.find((x) => x.id === ids[0])!;
      assert.equal(moved.current_step, 2);
      assert.equal(moved.message_id, null);
      assert.equal(moved.message_status, null);
      assert.equal(moved.next_due_at, new Date(api.clock.now() + DAY).toISOString());
      const waiting = listed.find((x) => x.id === ids[4])!;
      assert.equal(waiting.message_status, 'pending');
      assert.equal(waiting.message_id, (await rowOf(ids[4]!)).message_id);
      assert.equal(listed.find((x) => x.id === ids[2])!.message_status, 'held');

      // An enrollment id under another sequence, or none at all, is not found.
      const otherSeq = await sequence(owner, {}, [{}]);
      for (const [method, suffix] of [
        ['GET', ''],
        ['POST', '/pause'],
        ['POST', '/resume'],
        ['DELETE', ''],
      ] as const) {
        expectError(await owner.call(method, `${base}/${otherSeq}/enrollments/${ids[0]}${suffix}`), 404, 'ENROLLMENT_NOT_FOUND');
        expectError(await owner.call(method, `${url}/999999999${suffix}`), 404, 'ENROLLMENT_NOT_FOUND');
      }
      assert.equal((await rowOf(ids[0]!)).status, 'active');
    });

    it('pauses, resumes and removes one enrollment, holding, releasing and cancelling its waiting message', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const [a, b, c, d] = await leads(owner, 4, { deviceId: dev });
      const seq = await sequence(owner, {}, [{}, { delay: { hours: 1 } }]);
      await enroll(owner, seq, { lead_ids: [a!, b!] });
      assert.equal((await plan(seq)).length, 2);
      const [ea, eb] = (await enrollmentRows(seq)).map((r) => r.id);
      const url = (id: number) => `${base}/${seq}/enrollments/${id}`;
      const msgA = await messageOf(ea!);
      assert.equal(msgA.status, 'pending');

      api.clock.advance(MINUTE);
      const paused = ok(await owner.call('POST', `${url(ea!)}/pause`));
      assert.deepEqual([paused.status, paused.message_status, paused.updated_at], ['paused', 'held', now().toISOString()]);
      assert.equal((await rowOf(ea!)).status, 'paused');
      assert.equal((await messageOf(ea!)).status, 'held');
      assert.equal((await messageOf(eb!)).status, 'pending', 'the other enrollment is untouched');

      const rowBefore = await rowOf(ea!);
      const again = expectError(await owner.call('POST', `${url(ea!)}/pause`), 409, 'ENROLLMENT_STATE');
      assert.deepEqual(again.details, [{ path: 'status', message: 'the enrollment is paused', status: 'paused' }]);
      assert.deepEqual(await rowOf(ea!), rowBefore);
      assert.equal(expectError(await owner.call('POST', `${url(eb!)}/resume`), 409, 'ENROLLMENT_STATE').details[0]!.status, 'active');

      // Resumed later: the held message is due again, not before now.
      api.clock.advance(2 * HOUR);
      const resumed = ok(await owner.call('POST', `${url(ea!)}/resume`));
      assert.deepEqual([resumed.status, resumed.message_status], ['active', 'pending']);
      const released = await messageOf(ea!);
      assert.equal(released.status, 'pending');
      assert.equal(released.not_before.getTime(), api.clock.now());

      // A paused enrollment is not planned; resumed, it is.
      await enroll(owner, seq, { lead_ids: [c!, d!] });
      const ec = (await enrollmentRows(seq)).find((r) => r.lead_id === c)!.id;
      const ed = (await enrollmentRows(seq)).find((r) => r.lead_id === d)!.id;
      ok(await owner.call('POST', `${url(ec)}/pause`));
      assert.deepEqual(
        (await plan(seq)).map((w) => w.enrollment_id),
        [ed],
      );
      assert.equal((await rowOf(ec)).message_id, null);
      ok(await owner.call('POST', `${url(ec)}/resume`));
      assert.deepEqual(
        (await plan(seq)).map((w) => w.enrollment_id),
        [ec],
      );

      // Removed: exited with reason "removed", its waiting message cancelled; it stays listed.
      api.clock.advance(MINUTE);
      const gone = ok(await owner.call('DELETE', url(ea!)));
      assert.deepEqual([gone.status, gone.exit_reason, gone.message_status, gone.message_id], ['exited', 'removed', 'cancelled', msgA.id]);
      const row = await rowOf(ea!);
      assert.deepEqual([row.status, row.exit_reason, row.updated_at.getTime()], ['exited', 'removed', api.clock.now()]);
      const cancelled = await messageOf(ea!);
      assert.deepEqual([cancelled.status, cancelled.error_code, ms(cancelled.finished_at)], ['cancelled', 'removed', api.clock.now()]);
      assert.equal((await messageOf(eb!)).status, 'pending');
      for (const [method, suffix] of [
        ['DELETE', ''],
        ['POST', '/pause'],
        ['POST', '/resume'],
      ] as const) {
        assert.equal(expectError(await owner.call(method, `${url(ea!)}${suffix}`), 409, 'ENROLLMENT_STATE').details[0]!.status, 'exited');
      }
      assert.ok(ok(await owner.call('GET', `${base}/${seq}/enrollments?status=exited`)).data.some((x: { id: number }) => x.id === ea));
      // Nothing is written for it any more.
      api.clock.advance(DAY);
      await plan(seq);
      assert.equal((await messageRows(seq)).filter((m) => m.enrollment_id === ea).length, 1);

      // A paused enrollment with its message held is removed too; so is one still waiting for its step.
      ok(await owner.call('POST', `${url(eb!)}/pause`));
      assert.equal(ok(await owner.call('DELETE', url(eb!))).status, 'exited');
      assert.deepEqual([(await messageOf(eb!)).status, (await messageOf(eb!)).error_code], ['cancelled', 'removed']);
      await finish([ed]);
      assert.equal((await rowOf(ed)).message_id, null);
      const waitingGone = ok(await owner.call('DELETE', url(ed)));
      assert.deepEqual([waitingGone.status, waitingGone.exit_reason, waitingGone.message_id], ['exited', 'removed', null]);
    });

    it('pausing a sequence holds its enrollments’ waiting messages and plans nothing; resuming releases them', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const ls = await leads(owner, 4, { deviceId: dev });
      const seq = await sequence(owner, {}, [{}, { delay: { hours: 1 } }]);
      const control = await sequence(owner, { trigger: 'other' }, [{}]);
      await enroll(owner, seq, { lead_ids: ls.slice(0, 3) });
      await enroll(owner, control, { lead_ids: [ls[0]!] });
      await plan(seq, control);
      const [e1, e2, e3] = (await enrollmentRows(seq)).map((r) => r.id);
      const [ctl] = (await enrollmentRows(control)).map((r) => r.id);
      ok(await owner.call('POST', `${base}/${seq}/enrollments/${e3}/pause`));
      const status = async (ids: number[]) => Promise.all(ids.map(async (id) => (await messageOf(id)).status));
      assert.deepEqual(await status([e1!, e2!, e3!, ctl!]), ['pending', 'pending', 'held', 'pending']);

      api.clock.advance(MINUTE);
      const p = ok(await owner.call('POST', `${base}/${seq}/pause`));
      assert.equal(p.status, 'paused');
      assert.deepEqual(await status([e1!, e2!, e3!, ctl!]), ['held', 'held', 'held', 'pending']);
      // The enrollments themselves keep their own state.
      assert.deepEqual(
        (await enrollmentRows(seq)).map((r) => r.status),
        ['active', 'active', 'paused'],
      );
      // Leads may still be enrolled; nothing is written for them while it is paused.
      assert.equal((await enroll(owner, seq, { lead_ids: [ls[3]!] })).enrolled, 1);
      const e4 = (await enrollmentRows(seq)).find((r) => r.lead_id === ls[3])!.id;
      assert.deepEqual(await plan(seq), []);
      assert.equal((await rowOf(e4)).message_id, null);
      // Resuming one enrollment of a paused sequence leaves its message held.
      ok(await owner.call('POST', `${base}/${seq}/enrollments/${e3}/resume`));
      assert.deepEqual(await status([e3!]), ['held']);
      ok(await owner.call('POST', `${base}/${seq}/enrollments/${e3}/pause`));

      api.clock.advance(2 * HOUR);
      const r = ok(await owner.call('POST', `${base}/${seq}/resume`));
      assert.equal(r.status, 'active');
      assert.deepEqual(await status([e1!, e2!, e3!, ctl!]), ['pending', 'pending', 'held', 'pending']);
      assert.equal((await messageOf(e1!)).not_before.getTime(), api.clock.now(), 'due again now, not at its old time');
      assert.deepEqual(
        (await plan(seq)).map((w) => w.enrollment_id),
        [e4],
      );
      ok(await owner.call('POST', `${base}/${seq}/enrollments/${e3}/resume`));
      assert.deepEqual(await status([e3!]), ['pending']);
    });

    it('enrolls a lead that gains a trigger through intake, edit and bulk actions: exact tags only, never twice', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const fit = await sequence(owner, { trigger: 'fitness_week1' }, [{ delay: { hours: 1 } }]);
      const week = await sequence(owner, { trigger: 'week' }, [{}]);
      const noSteps = await sequence(owner, { trigger: 'nostep' }, []);
      const at = () => new Date(api.clock.now() + HOUR).getTime();

      // Intake creates the lead with the trigger: enrolled by the trigger.
      const phone = nextPhone();
      const created = ok(await owner.call('POST', '/api/v1/leads', { phone, device_id: dev, triggers: ['fitness_week1'] }), 201);
      let rows = await enrollmentRows(fit);
      assert.deepEqual(
        rows.map((r) => [r.lead_id, r.source, r.status, r.current_step, ms(r.next_due_at)]),
        [[created.id, 'trigger', 'active', 1, at()]],
      );
      // The same intake again, or with more tags, merges into the lead and enrolls nothing.
      api.clock.advance(MINUTE);
      assert.equal((await owner.call('POST', '/api/v1/leads', { phone, triggers: ['fitness_week1'] })).statusCode, 200);
      assert.equal((await owner.call('POST', '/api/v1/leads', { phone, triggers: ['fitness_week1', 'vip'] })).statusCode, 200);
      assert.equal((await enrollmentRows(fit)).length, 1);

      // Tags that contain a trigger, or that a trigger contains, are other tags.
      const near = ok(await owner.call('POST', '/api/v1/leads', { phone: nextPhone(), triggers: ['fitness', 'fitness_week10', 'week1', 'Fitness_week1', 'nostep'] }), 201);
      assert.equal(near.device_id, null, 'a lead of the shared pool');
      assert.equal((await enrollmentRows(fit)).length, 1);
      assert.equal((await enrollmentRows(week)).length, 0);
      assert.equal((await enrollmentRows(noSteps)).length, 0, 'a sequence without steps takes nobody');

      // PATCH: unrelated changes enroll nothing; gaining the trigger does.
      ok(await owner.call('PATCH', `/api/v1/leads/${near.id}`, { name: 'Near', status: 'customer', niches: ['gym'], attributes: { city: 'Ipoh' } }));
      ok(await owner.call('PATCH', `/api/v1/leads/${near.id}`, { triggers: ['fitness', 'weekly'] }));
      assert.equal((await enrollmentRows(fit)).length, 1);
      assert.equal((await enrollmentRows(week)).length, 0);
      api.clock.advance(MINUTE);
      ok(await owner.call('PATCH', `/api/v1/leads/${near.id}`, { triggers: ['fitness', 'fitness_week1', 'week'] }));
      rows = await enrollmentRows(fit);
      assert.deepEqual(
        rows.map((r) => [r.lead_id, r.source, ms(r.next_due_at)]),
        [
          [created.id, 'trigger', rows[0]!.next_due_at!.getTime()],
          [near.id, 'trigger', at()],
        ],
      );
      assert.deepEqual(
        (await enrollmentRows(week)).map((r) => [r.lead_id, r.source]),
        [[near.id, 'trigger']],
      );
      // Keeping the trigger, or dropping it and taking it again while still enrolled, adds nothing.
      ok(await owner.call('PATCH', `/api/v1/leads/${near.id}`, { triggers: ['fitness_week1', 'week', 'x'] }));
      ok(await owner.call('PATCH', `/api/v1/leads/${near.id}`, { triggers: [] }));
      ok(await owner.call('PATCH', `/api/v1/leads/${near.id}`, { triggers: ['fitness_week1'] }));
      assert.equal((await enrollmentRows(fit)).length, 2);
      assert.equal((await enrollmentRows(week)).length, 1);

      // Bulk add_triggers: exactly the selected leads that did not carry the tag.
      const vip = await sequence(owner, { trigger: 'vip' }, [{}]);
      const had = await leads(owner, 2, { deviceId: dev, niches: ['gym'], triggers: ['vip'] });
      const lacked = await leads(owner, 3, { deviceId: dev, niches: ['gym'], triggers: ['vip_gold'] });
      const elsewhere = await leads(owner, 1, { deviceId: dev, niches: ['spa'] });
      const bulk = ok(await owner.call('POST', '/api/v1/leads/bulk', { filter: { niches: ['gym'] }, action: { op: 'add_triggers', values: ['vip', 'fitness'] } }));
      // near carries niche gym too (set above) but not vip.
      assert.equal(bulk.affected, 6);
      const vipRows = await enrollmentRows(vip);
      assert.deepEqual(
        vipRows.map((r) => r.lead_id).sort((x, y) => x - y),
        [near.id, ...lacked].sort((x, y) => x - y),
      );
      assert.ok(vipRows.every((r) => r.source === 'trigger' && r.status === 'active'));
      assert.ok(!vipRows.some((r) => had.includes(r.lead_id) || elsewhere.includes(r.lead_id)));
      // Again: everyone carries it now, nobody enrolls.
      ok(await owner.call('POST', '/api/v1/leads/bulk', { filter: { niches: ['gym'] }, action: { op: 'add_triggers', values: ['vip'] } }));
      assert.equal((await enrollmentRows(vip)).length, 4);

      // Bulk set_triggers by ids: the leads that gain one of the new tags.
      ok(await owner.call('POST', '/api/v1/leads/bulk', { ids: [had[0]!, elsewhere[0]!], action: { op: 'set_triggers', values: ['vip', 'week'] } }));
      assert.deepEqual(
        (await enrollmentRows(vip)).map((r) => r.lead_id).filter((l) => l === had[0] || l === elsewhere[0]),
        [elsewhere[0]],
      );
      assert.deepEqual(
        (await enrollmentRows(week)).map((r) => r.lead_id).sort((x, y) => x - y),
        [near.id, had[0]!, elsewhere[0]!].sort((x, y) => x - y),
      );

      // A team member cannot manage sequences, but a lead it adds with a trigger is enrolled.
      const member = await tenant(api, { parentId: owner.userId });
      await api.t.db.query(`insert into device_members (user_id, device_id) values ($1, $2)`, [member.userId, dev]);
      const byMember = ok(await member.call('POST', '/api/v1/leads', { phone: nextPhone(), triggers: ['vip'] }), 201);
      assert.equal(byMember.device_id, dev);
      const memberRow = (await enrollmentRows(vip)).find((r) => r.lead_id === byMember.id)!;
      assert.deepEqual([memberRow.source, memberRow.user_id], ['trigger', owner.userId]);
    });

    it('enrolls the leads a CSV import gives a trigger, from a triggers column or the import’s own triggers', async () => {
      const owner = await tenant(api);
      const [d1, d2] = [await device(owner, 'one'), await device(owner, 'two')];
      const promo = await sequence(owner, { trigger: 'promo' }, [{ body: 'Promo for {name}' }]);
      const [p1, p2, p3, p4, p5] = Array.from({ length: 5 }, () => nextPhone());
      await insertLeads(
        api.t.db,
        owner.userId,
        [
          { name: 'Old One', phone: p1!, deviceId: null, niches: [], status: 'prospect', triggers: [] },
          { name: 'Old Two', phone: p2!, deviceId: null, niches: [], status: 'prospect', triggers: ['promo'] },
        ],
        now(),
      );
      const idOf = async (p: string) => (await api.t.db.query<{ id: number }>(`select id from leads where user_id = $1 and phone = $2`, [owner.userId, p])).rows[0]!.id;
      const runImport = async (query: string, csv: string) => {
        const res = await api.app.inject({
          method: 'POST',
          url: `/api/v1/leads/imports${query}`,
          headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'text/csv' },
          payload: csv,
        });
        const job = ok(res, 202);
        await api.services.imports.idle();
        const done = ok(await owner.call('GET', `/api/v1/leads/imports/${job.id}`));
        assert.equal(done.status, 'completed', JSON.stringify(done));
        return done;
      };
      const enrolledLeads = async () => (await enrollmentRows(promo)).map((r) => [r.lead_id, r.source]);

      // A triggers column (split on ; as any tag cell), updating existing leads.
      const first = await runImport('?on_duplicate=update', `name,phone,triggers\nNew Three,${p3},promo;vip\nNew Four,${p4},vip\nOld One,${p1},promo\nOld Two,${p2},promo\n`);
      assert.deepEqual([first.inserted, first.updated], [2, 2]);
      const [id1, id2, id3, id4] = [await idOf(p1!), await idOf(p2!), await idOf(p3!), await idOf(p4!)];
      assert.deepEqual(
        (await enrolledLeads()).sort((a, b) => (a[0] as number) - (b[0] as number)),
        [
          [id1, 'import'],
          [id3, 'import'],
        ],
      );
      // The import's own triggers: a skipped duplicate is left as it is, a new lead gains them.
      const second = await runImport('?on_duplicate=skip&triggers=promo', `phone\n${p4}\n${p5}\n`);
      assert.deepEqual([second.inserted, second.skipped], [1, 1]);
      const id5 = await idOf(p5!);
      assert.deepEqual((await enrolledLeads()).length, 3);
      assert.ok((await enrolledLeads()).some(([l, s]) => l === id5 && s === 'import'));
      assert.ok(!(await enrolledLeads()).some(([l]) => l === id4 || l === id2));
      // Updated this time, p4 gains it; p5 had it already.
      await runImport('?on_duplicate=update&triggers=promo', `phone\n${p4}\n${p5}\n`);
      const all = await enrollmentRows(promo);
      assert.deepEqual(
        all.map((r) => r.lead_id).sort((a, b) => a - b),
        [id1, id3, id4, id5].sort((a, b) => a - b),
      );
      assert.ok(all.every((r) => r.status === 'active' && r.current_step === 1 && r.source === 'import'));

      // Imported into the shared pool: each lead gets one of the account's devices when its first
      // step is written, and keeps it.
      const pooled = await api.t.db.query<{ n: number }>(`select count(*)::int as n from leads where id = any($1::bigint[]) and device_id is null`, [[id1, id3, id4, id5]]);
      assert.equal(pooled.rows[0]!.n, 4);
      const written = await plan(promo);
      assert.equal(written.length, 4);
      for (const m of await messageRows(promo)) {
        assert.ok([d1, d2].includes(m.device_id), `device ${m.device_id}`);
        const lead = (await api.t.db.query<{ device_id: number; name: string }>(`select device_id, name from leads where id = $1`, [m.lead_id])).rows[0]!;
        assert.equal(lead.device_id, m.device_id);
        assert.equal(m.body, `Promo for ${lead.name}`);
      }
    });

    it('an opt-out through PATCH or a bulk action ends every live enrollment of the lead and cancels its waiting message', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const [lead, keep] = await leads(owner, 2, { deviceId: dev, niches: ['solo'] });
      const s1 = await sequence(owner, { trigger: 's1' }, [{}, { delay: { days: 1 } }]);
      const s2 = await sequence(owner, { trigger: 's2' }, [{}]);
      const s3 = await sequence(owner, { trigger: 's3' }, [{}]);
      const s4 = await sequence(owner, { trigger: 's4' }, [{ delay: { days: 3 } }]);
      for (const s of [s1, s2, s3, s4]) await enroll(owner, s, { lead_ids: [lead!] });
      await enroll(owner, s1, { lead_ids: [keep!] });
      await plan(s1, s2, s3, s4);
      const [e1, k1] = (await enrollmentRows(s1)).map((r) => r.id);
      const e2 = (await enrollmentRows(s2))[0]!.id;
      const e3 = (await enrollmentRows(s3))[0]!.id;
      const e4 = (await enrollmentRows(s4))[0]!.id;
      ok(await owner.call('POST', `${base}/${s2}/enrollments/${e2}/pause`));
      await finish([e3]);
      assert.equal((await rowOf(e3)).status, 'completed');
      assert.equal((await rowOf(e4)).message_id, null, 'still waiting for its step');

      api.clock.advance(MINUTE);
      ok(await owner.call('PATCH', `/api/v1/leads/${lead}`, { opted_out: true }));
      for (const id of [e1!, e2, e4]) {
        const r = await rowOf(id);
        assert.deepEqual([r.status, r.exit_reason, r.updated_at.getTime()], ['exited', 'opted_out', api.clock.now()], `enrollment ${id}`);
      }
      assert.equal((await rowOf(e3)).status, 'completed');
      assert.equal((await rowOf(e3)).exit_reason, null);
      for (const id of [e1!, e2]) {
        const m = await messageOf(id);
        assert.deepEqual([m.status, m.error_code, ms(m.finished_at)], ['cancelled', 'opted_out', api.clock.now()]);
      }
      assert.equal((await messageOf(k1!)).status, 'pending', 'another lead is untouched');
      assert.equal((await rowOf(k1!)).status, 'active');
      // An opted-out lead never enrolls again, by hand or by trigger.
      const fresh = await sequence(owner, { trigger: 'fresh' }, [{}]);
      assert.deepEqual(await enroll(owner, fresh, { lead_ids: [lead!] }), { matched: 1, enrolled: 0, skipped: 1 });
      ok(await owner.call('PATCH', `/api/v1/leads/${lead}`, { triggers: ['fresh'] }));
      ok(await owner.call('POST', '/api/v1/leads/bulk', { ids: [lead!], action: { op: 'add_triggers', values: ['s1'] } }));
      assert.deepEqual(await enrollmentRows(fresh), []);
      assert.equal((await enrollmentRows(s1)).length, 2);

      // Bulk opt_out over a filter.
      const many = await leads(owner, 3, { deviceId: dev, niches: ['bulk'] });
      await enroll(owner, s1, { lead_ids: many });
      await enroll(owner, s2, { lead_ids: [many[0]!] });
      await plan(s1);
      const live = (await enrollmentRows(s1)).filter((r) => many.includes(r.lead_id)).map((r) => r.id);
      const liveS2 = (await enrollmentRows(s2)).find((r) => r.lead_id === many[0])!.id;
      api.clock.advance(MINUTE);
      const out = ok(await owner.call('POST', '/api/v1/leads/bulk', { filter: { niches: ['bulk'] }, action: { op: 'opt_out' } }));
      assert.deepEqual(out, { affected: 3, cancelled_messages: 3 });
      for (const id of [...live, liveS2]) {
        const r = await rowOf(id);
        assert.deepEqual([r.status, r.exit_reason], ['exited', 'opted_out']);
      }
      for (const id of live) assert.deepEqual([(await messageOf(id)).status, (await messageOf(id)).error_code], ['cancelled', 'opted_out']);
      assert.equal((await rowOf(k1!)).status, 'active');
      assert.deepEqual(await plan(s1, s2), []);
    });

    it('a reply ends the sequences that exit on a reply; an opt-out word ends all of them', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const [lead] = await leads(owner, 1, { deviceId: dev });
      const phone = (await api.t.db.query<{ phone: string }>(`select phone from leads where id = $1`, [lead])).rows[0]!.phone;
      const exits = await sequence(owner, { trigger: 'a', exit_on_reply: true }, [{}, { delay: { days: 1 } }]);
      const stays = await sequence(owner, { trigger: 'b', exit_on_reply: false }, [{}, { delay: { days: 1 } }]);
      await enroll(owner, exits, { lead_ids: [lead!] });
      await enroll(owner, stays, { lead_ids: [lead!] });
      await plan(exits, stays);
      const [ex] = (await enrollmentRows(exits)).map((r) => r.id);
      const [st] = (await enrollmentRows(stays)).map((r) => r.id);

      api.clock.advance(MINUTE);
      const r1 = await api.t.db.transaction((tx) => applyReply(tx, { deviceId: dev, from: phone, text: 'Thanks, stop by tomorrow?', at: now() }, DEFAULT_OPT_OUT_WORDS));
      assert.deepEqual([r1.optedOut, r1.exited, r1.cancelled], [false, 1, 1]);
      assert.deepEqual([(await rowOf(ex!)).status, (await rowOf(ex!)).exit_reason], ['exited', 'replied']);
      assert.deepEqual([(await messageOf(ex!)).status, (await messageOf(ex!)).error_code], ['cancelled', 'replied']);
      assert.equal((await rowOf(st!)).status, 'active');
      assert.equal((await messageOf(st!)).status, 'pending');

      // A reply that is only an opt-out word, whatever its case and punctuation.
      const custom = ['basta', 'no more'];
      const r2 = await api.t.db.transaction((tx) => applyReply(tx, { deviceId: dev, from: phone, text: 'STOP', at: now() }, custom));
      assert.equal(r2.optedOut, false, 'only the configured words opt out');
      assert.equal((await rowOf(st!)).status, 'active');
      const r3 = await api.t.db.transaction((tx) => applyReply(tx, { deviceId: dev, from: phone, text: '  No more!! ', at: now() }, custom));
      assert.equal(r3.optedOut, true);
      assert.deepEqual([(await rowOf(st!)).status, (await rowOf(st!)).exit_reason], ['exited', 'opted_out']);
      assert.equal((await messageOf(st!)).status, 'cancelled');
      const l = (await api.t.db.query<{ opted_out_at: Date | null }>(`select opted_out_at from leads where id = $1`, [lead])).rows[0]!;
      assert.equal(ms(l.opted_out_at), api.clock.now());
    });

    it('after each step: on to the next, the failure policy, completion and the next sequence, which never loops back', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const ls = await leads(owner, 6, { deviceId: dev });
      const goOn = await sequence(owner, { on_failure: 'continue' }, [{}, { delay: { hours: 2 } }]);
      const stop = await sequence(owner, { on_failure: 'stop' }, [{}, { delay: { hours: 2 } }]);
      await enroll(owner, goOn, { lead_ids: ls.slice(0, 3) });
      await enroll(owner, stop, { lead_ids: ls.slice(0, 2) });
      await plan(goOn, stop);
      const [g1, g2, g3] = (await enrollmentRows(goOn)).map((r) => r.id);
      const [s1, s2] = (await enrollmentRows(stop)).map((r) => r.id);
      api.clock.advance(MINUTE);
      await finish([g1!, s1!], 'failed');
      await finish([g2!], 'sent');
      await finish([g3!, s2!], 'skipped');
      const state = async (id: number) => {
        const r = await rowOf(id);
        return [r.status, r.current_step, r.exit_reason, ms(r.next_due_at)];
      };
      const due2 = api.clock.now() + 2 * HOUR;
      assert.deepEqual(await state(g1!), ['active', 2, null, due2]);
      assert.deepEqual(await state(g2!), ['active', 2, null, due2]);
      assert.deepEqual((await state(g3!)).slice(0, 3), ['exited', 1, 'not_on_whatsapp']);
      assert.deepEqual((await state(s1!)).slice(0, 3), ['exited', 1, 'step_failed']);
      assert.deepEqual((await state(s2!)).slice(0, 3), ['exited', 1, 'not_on_whatsapp']);
      api.clock.advance(2 * HOUR);
      await plan(goOn);
      await finish([g1!, g2!]);
      const done = await rowOf(g1!);
      assert.deepEqual([done.status, done.current_step, ms(done.completed_at)], ['completed', 2, api.clock.now()]);

      // Chaining: a lead completing `first` goes on to `second`; `second` may later point back at
      // `first`, but a lead that came from `first` never enters it again through the chain.
      const second = await sequence(owner, { name: 'second', trigger: 'second' }, [{ delay: { minutes: 10 } }]);
      const first = ok(await owner.call('POST', base, { name: 'first', trigger: 'first', reentry: 'after_completion', next_sequence_id: second }), 201).id as number;
      ok(await owner.call('POST', `${base}/${first}/steps`, { body: 'one' }), 201);
      const [a, b] = [ls[3]!, ls[4]!];
      await enroll(owner, first, { lead_ids: [a] });
      await plan(first);
      const fa = (await enrollmentRows(first))[0]!.id;
      await finish([fa]);
      const chained = (await enrollmentRows(second))[0]!;
      assert.deepEqual(
        [chained.lead_id, chained.status, chained.source, chained.chain_depth, chained.chain_root, chained.current_step, ms(chained.next_due_at)],
        [a, 'active', 'chain', 1, fa, 1, api.clock.now() + 10 * MINUTE],
      );
      // Re-pointed: first no longer leads on, second now leads to first.
      ok(await owner.call('PATCH', `${base}/${first}`, { next_sequence_id: null }));
      ok(await owner.call('PATCH', `${base}/${second}`, { next_sequence_id: first }));
      await enroll(owner, second, { lead_ids: [b] });
      api.clock.advance(10 * MINUTE);
      await plan(second);
      await finish((await enrollmentRows(second)).map((r) => r.id));
      assert.deepEqual(
        (await enrollmentRows(second)).map((r) => [r.lead_id, r.status]),
        [
          [a, 'completed'],
          [b, 'completed'],
        ],
      );
      // b started in second and goes on to first; a came from first and does not go back.
      assert.deepEqual(
        (await enrollmentRows(first)).map((r) => [r.lead_id, r.status, r.source, r.chain_depth]),
        [
          [a, 'completed', 'api', 0],
          [b, 'active', 'chain', 1],
        ],
      );
    });

    it('editing and deleting steps under enrolled leads: unwritten messages take the new content, leads keep their position number', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const ls = await leads(owner, 3, { deviceId: dev });
      const seq = await sequence(owner, {}, [{ body: 'A' }, { body: 'B', delay: { hours: 1 } }, { body: 'C', delay: { hours: 1 } }]);
      const steps = ok(await owner.call('GET', `${base}/${seq}/steps`)).data as { id: number; body: string }[];
      await enroll(owner, seq, { lead_ids: ls });
      // Edited before it falls due: the message is written with the new text.
      ok(await owner.call('PATCH', `${base}/${seq}/steps/${steps[0]!.id}`, { body: 'A2 for {name}' }));
      await plan(seq);
      const [e1, e2, e3] = (await enrollmentRows(seq)).map((r) => r.id);
      const name = (await api.t.db.query<{ name: string }>(`select name from leads where id = $1`, [ls[0]])).rows[0]!.name;
      assert.equal((await messageOf(e1!)).body, `A2 for ${name}`);
      // Edited after it was written: the written message stays as it was.
      ok(await owner.call('PATCH', `${base}/${seq}/steps/${steps[0]!.id}`, { body: 'A3' }));
      assert.equal((await messageOf(e1!)).body, `A2 for ${name}`);

      await finish([e1!, e2!, e3!]);
      assert.deepEqual(
        (await enrollmentRows(seq)).map((r) => r.current_step),
        [2, 2, 2],
      );
      // A new delay applies to leads that reach the step later: these already have their time.
      const dueBefore = (await enrollmentRows(seq)).map((r) => ms(r.next_due_at));
      assert.deepEqual(dueBefore, [1, 2, 3].map(() => api.clock.now() + HOUR));
      ok(await owner.call('PATCH', `${base}/${seq}/steps/${steps[1]!.id}`, { delay: { days: 3 } }));
      assert.deepEqual(
        (await enrollmentRows(seq)).map((r) => ms(r.next_due_at)),
        dueBefore,
      );
      // Step 1 deleted while the leads wait for step 2: they stay at position 2, which is now C.
      ok(await owner.call('DELETE', `${base}/${seq}/steps/${steps[0]!.id}`), 204);
      assert.deepEqual(
        (await enrollmentRows(seq)).map((r) => r.current_step),
        [2, 2, 2],
      );
      api.clock.advance(HOUR);
      await plan(seq);
      assert.deepEqual(
        [(await messageOf(e1!)).body, (await messageOf(e1!)).step],
        ['C', 2],
      );
      // The last step deleted under a lead waiting for it: nothing is left to send, it completes.
      await finish([e1!]);
      assert.equal((await rowOf(e1!)).status, 'completed');
      ok(await owner.call('POST', `${base}/${seq}/steps`, { body: 'D', delay: { hours: 1 } }), 201);
      const d = (ok(await owner.call('GET', `${base}/${seq}/steps`)).data as { id: number; position: number }[]).find((x) => x.position === 3)!;
      await finish([e2!]);
      assert.equal((await rowOf(e2!)).current_step, 3);
      ok(await owner.call('DELETE', `${base}/${seq}/steps/${d.id}`), 204);
      api.clock.advance(HOUR);
      await plan(seq);
      const r2 = await rowOf(e2!);
      assert.deepEqual([r2.status, r2.current_step, r2.message_id, ms(r2.completed_at)], ['completed', 3, null, api.clock.now()]);
      assert.equal((await rowOf(e3!)).status, 'active');
    });

    it('times each step from the previous one: the daily rhythm survives a few minutes of lateness, a message over an hour late restarts it', async () => {
      const owner = await tenant(api); // Kuala Lumpur: UTC+8, no daylight saving
      const dev = await device(owner);
      const [a, b] = await leads(owner, 2, { deviceId: dev });
      const seq = await sequence(owner, {}, [
        { send_time: '10:00' },
        { delay: { days: 1 }, send_time: '10:00' },
        { delay: { days: 1 }, send_time: '10:00' },
      ]);
      await enroll(owner, seq, { lead_ids: [a!, b!] });
      const rows = await enrollmentRows(seq);
      const P1 = rows[0]!.next_due_at!.getTime();
      assert.equal(new Date(P1 + 8 * HOUR).toISOString().slice(11, 16), '10:00', 'the next 10:00 in Kuala Lumpur');
      assert.ok(P1 >= api.clock.now() && P1 < api.clock.now() + DAY);
      const [ea, eb] = [rows.find((r) => r.lead_id === a)!.id, rows.find((r) => r.lead_id === b)!.id];

      // Step 1 goes out 3 minutes after 10:00: step 2 is planned for 10:00 the next day but due
      // no sooner than a full day after the message went out.
      api.clock.t = P1 + 3 * MINUTE;
      assert.equal((await plan(seq)).length, 2);
      await finish([ea, eb]);
      for (const id of [ea, eb]) {
        const r = await rowOf(id);
        assert.deepEqual([r.current_step, ms(r.planned_at), ms(r.next_due_at)], [2, P1 + DAY, P1 + DAY + 3 * MINUTE]);
      }
      // Step 2: b's message goes out 40 minutes after it was due, a's 90 minutes after.
      api.clock.t = P1 + DAY + 3 * MINUTE;
      assert.equal((await plan(seq)).length, 2);
      api.clock.advance(40 * MINUTE);
      await finish([eb]);
      api.clock.advance(50 * MINUTE);
      await finish([ea]);
      // b stays on the rhythm: 10:00 two days on, but a full day after its message (10:43).
      const rb = await rowOf(eb);
      assert.deepEqual([rb.current_step, ms(rb.planned_at), ms(rb.next_due_at)], [3, P1 + 2 * DAY, P1 + 2 * DAY + 43 * MINUTE]);
      // a went out at 11:33: counted from 10:33, a day on is 10:33, past 10:00: the next 10:00.
      const ra = await rowOf(ea);
      assert.deepEqual([ra.current_step, ms(ra.planned_at), ms(ra.next_due_at)], [3, P1 + 3 * DAY, P1 + 3 * DAY]);
    });

    it('a deleted device’s waiting step is written again through another device', async () => {
      const owner = await tenant(api);
      const [d1, d2] = [await device(owner, 'one'), await device(owner, 'two')];
      const [a] = await leads(owner, 1, { deviceId: d1 });
      const seq = await sequence(owner, {}, [{ body: 'first' }, { body: 'second', delay: { days: 1 } }]);
      await enroll(owner, seq, { lead_ids: [a!] });
      await plan(seq);
      const [ea] = (await enrollmentRows(seq)).map((r) => r.id);
      const old = await messageOf(ea!);
      assert.equal(old.device_id, d1);

      api.clock.advance(MINUTE);
      ok(await owner.call('DELETE', `/api/v1/devices/${d1}`), 204);
      const cancelled = (await messageRows(seq)).find((m) => m.id === old.id)!;
      assert.deepEqual([cancelled.status, cancelled.error_code], ['cancelled', 'device_deleted']);
      const r = await rowOf(ea!);
      assert.deepEqual([r.status, r.current_step, r.message_id, ms(r.next_due_at)], ['active', 1, null, api.clock.now()]);
      await plan(seq);
      const again = await messageOf(ea!);
      assert.deepEqual([again.step, again.body, again.device_id, again.status], [1, 'first', d2, 'pending']);
      const lead = (await api.t.db.query<{ device_id: number }>(`select device_id from leads where id = $1`, [a])).rows[0]!;
      assert.equal(lead.device_id, d2, 'the lead keeps its new device');
    });

    it(
      'a paused enrollment whose held message was cancelled with its device gets the step again once resumed',
      async () => {
        const owner = await tenant(api);
        const [d1, d2] = [await device(owner, 'one'), await device(owner, 'two')];
        const [b] = await leads(owner, 1, { deviceId: d1 });
        const seq = await sequence(owner, {}, [{ body: 'first' }]);
        await enroll(owner, seq, { lead_ids: [b!] });
        await plan(seq);
        const [eb] = (await enrollmentRows(seq)).map((r) => r.id);
        ok(await owner.call('POST', `${base}/${seq}/enrollments/${eb}/pause`));
        assert.equal((await messageOf(eb!)).status, 'held');
        ok(await owner.call('DELETE', `/api/v1/devices/${d1}`), 204);
        api.clock.advance(MINUTE);
        ok(await owner.call('POST', `${base}/${seq}/enrollments/${eb}/resume`));
        await plan(seq);
        const m = await messageOf(eb!);
        assert.deepEqual([m.step, m.device_id, m.status], [1, d2, 'pending']);
      },
    );

    it('reports progress that matches the rows: states, exit reasons, each step and its messages, percent and estimate', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const ls = await leads(owner, 7, { deviceId: dev });
      const seq = await sequence(owner, {}, [{}, { delay: { days: 1 }, send_time: '10:00' }, { delay: { hours: 2 } }]);
      const stepIds = (ok(await owner.call('GET', `${base}/${seq}/steps`)).data as { id: number }[]).map((s) => s.id);
      const url = `${base}/${seq}/progress`;
      const T = api.clock.now();

      const zero = { pending: 0, sent: 0, delivered: 0, read: 0, failed: 0, other: 0 };
      const empty = ok(await owner.call('GET', url));
      assert.deepEqual(empty, {
        sequence_id: seq,
        status: 'active',
        enrollments: { total: 0, active: 0, paused: 0, completed: 0, exited: 0 },
        exit_reasons: {},
        messages: zero,
        percent_complete: 100,
        estimated_completion: null,
        steps: stepIds.map((id, i) => ({ step_id: id, position: i + 1, reached: 0, active: 0, paused: 0, exited: 0, ...zero })),
      });

      const put = async (
        lead: number,
        e: { status: string; step: number; reason?: string; due?: number; planned?: number },
        messages: [number, string][],
      ): Promise<number> => {
        const id = (
          await api.t.db.query<{ id: number }>(
            `insert into enrollments (user_id, sequence_id, lead_id, current_step, next_due_at, planned_at, status, exit_reason, enrolled_at, updated_at, completed_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) returning id`,
            [
              owner.userId,
              seq,
              lead,
              e.step,
              e.due === undefined ? null : new Date(e.due),
              e.planned === undefined ? null : new Date(e.planned),
              e.status,
              e.reason ?? null,
              new Date(T),
              e.status === 'completed' ? new Date(T) : null,
            ],
          )
        ).rows[0]!.id;
        for (const [step, status] of messages) {
          const m = await api.t.db.query<{ id: number }>(
            `insert into messages (user_id, device_id, lead_id, phone, enrollment_id, step, body, status, not_before, created_at)
             values ($1, $2, $3, '+1', $4, $5, 'x', $6, $7, $7) returning id`,
            [owner.userId, dev, lead, id, step, status, new Date(T)],
          );
          if (step === e.step) await api.t.db.query(`update enrollments set message_id = $2 where id = $1`, [id, m.rows[0]!.id]);
        }
        return id;
      };
      // T is Monday 17:00 in Kuala Lumpur (or later, by what earlier tests moved the clock).
      await put(ls[0]!, { status: 'completed', step: 3 }, [
        [1, 'read'],
        [2, 'delivered'],
        [3, 'sent'],
      ]);
      await put(ls[1]!, { status: 'exited', step: 2, reason: 'replied' }, [
        [1, 'sent'],
        [2, 'cancelled'],
      ]);
      await put(ls[2]!, { status: 'exited', step: 1, reason: 'opted_out' }, [[1, 'cancelled']]);
      await put(ls[3]!, { status: 'active', step: 2, due: T + 10 * MINUTE, planned: T + 10 * MINUTE }, [
        [1, 'sent'],
        [2, 'pending'],
      ]);
      await put(ls[4]!, { status: 'active', step: 3, due: T + HOUR, planned: T + HOUR }, [
        [1, 'sent'],
        [2, 'failed'],
      ]);
      await put(ls[5]!, { status: 'paused', step: 1, due: T - HOUR, planned: T - HOUR }, [[1, 'held']]);
      await put(ls[6]!, { status: 'exited', step: 1, reason: 'not_on_whatsapp' }, [[1, 'skipped']]);

      const p = ok(await owner.call('GET', url));
      assert.deepEqual(p.enrollments, { total: 7, active: 2, paused: 1, completed: 1, exited: 3 });
      assert.deepEqual(p.exit_reasons, { replied: 1, opted_out: 1, not_on_whatsapp: 1 });
      // Cancelled messages are not counted; read counts as delivered and sent, delivered as sent.
      assert.deepEqual(p.messages, { pending: 2, sent: 6, delivered: 2, read: 1, failed: 1, other: 1 });
      assert.deepEqual(p.steps, [
        { step_id: stepIds[0], position: 1, reached: 7, active: 0, paused: 1, exited: 2, pending: 1, sent: 4, delivered: 1, read: 1, failed: 0, other: 1 },
        { step_id: stepIds[1], position: 2, reached: 4, active: 1, paused: 0, exited: 1, pending: 1, sent: 1, delivered: 1, read: 0, failed: 1, other: 0 },
        { step_id: stepIds[2], position: 3, reached: 2, active: 1, paused: 0, exited: 0, pending: 0, sent: 1, delivered: 0, read: 0, failed: 0, other: 0 },
      ]);
      // Done: 4 finished enrollments x 3 steps, 1 step behind the lead on step 2, 2 behind the one
      // on step 3, none behind the paused one on step 1: 15 of 21.
      assert.equal(p.percent_complete, 71.4);
      // The latest end: the paused lead due at T - 1 h goes on to step 2 on the next day's 10:00
      // after T - 1 h + 1 day, then step 3 two hours later (the others end sooner).
      const local = new Date(T - HOUR + 8 * HOUR); // Kuala Lumpur is UTC+8 all year
      const nextDayTen = Date.UTC(local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() + 1, 10) - 8 * HOUR;
      const step2 = nextDayTen >= T - HOUR + DAY ? nextDayTen : nextDayTen + DAY;
      assert.equal(p.estimated_completion, new Date(step2 + 2 * HOUR).toISOString());
      assert.ok(Date.parse(p.estimated_completion) > T + HOUR, 'later than the last due step');

      // The API's own figures agree with the enrollments list.
      const list = ok(await owner.call('GET', `${base}/${seq}/enrollments?limit=500`)).data as { status: string; exit_reason: string | null }[];
      assert.equal(list.length, p.enrollments.total);
      assert.equal(list.filter((x) => x.status === 'exited').length, p.enrollments.exited);
      assert.deepEqual(ok(await owner.call('GET', `${base}/${seq}`)).enrollments, { active: 2, paused: 1, completed: 1, exited: 3 });

      // Paused: no estimate.
      ok(await owner.call('POST', `${base}/${seq}/pause`));
      const paused = ok(await owner.call('GET', url));
      assert.deepEqual([paused.status, paused.estimated_completion], ['paused', null]);
      ok(await owner.call('POST', `${base}/${seq}/resume`));
      assert.equal(ok(await owner.call('GET', url)).estimated_completion, p.estimated_completion);

      // Nothing live: 100 % and no estimate, whatever the exits.
      await api.t.db.query(`update enrollments set status = 'exited', exit_reason = 'removed' where sequence_id = $1 and status in ('active', 'paused')`, [seq]);
      const over = ok(await owner.call('GET', url));
      assert.deepEqual([over.percent_complete, over.estimated_completion], [100, null]);
      assert.deepEqual(over.exit_reasons, { replied: 1, opted_out: 1, not_on_whatsapp: 1, removed: 3 });
      assert.deepEqual(over.enrollments, { total: 7, active: 0, paused: 0, completed: 1, exited: 6 });
    });

    it('estimates the end of a live drip from the real rows the API and the planner leave', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const ls = await leads(owner, 2, { deviceId: dev });
      const seq = await sequence(owner, {}, [{}, { delay: { hours: 3 } }, { delay: { minutes: 30 } }]);
      await enroll(owner, seq, { lead_ids: ls });
      await plan(seq);
      const [e1] = (await enrollmentRows(seq)).map((r) => r.id);
      api.clock.advance(MINUTE);
      await finish([e1!]);
      const p = ok(await owner.call('GET', `${base}/${seq}/progress`));
      // e1 sent step 1 a minute late (within the hour's grace): step 2 three hours after its due
      // time but never sooner than three hours after it went out, then step 3 half an hour later.
      const lastDue = Math.max(...(await enrollmentRows(seq)).map((r) => r.next_due_at!.getTime()));
      assert.equal(lastDue, api.clock.now() + 3 * HOUR);
      assert.equal(p.estimated_completion, new Date(lastDue + 30 * MINUTE).toISOString());
      assert.equal(p.percent_complete, Math.floor((1000 * 1) / 6) / 10);
      assert.deepEqual(
        p.steps.map((s: { reached: number; active: number; sent: number; pending: number }) => [s.reached, s.active, s.sent, s.pending]),
        [
          [2, 1, 1, 1],
          [1, 1, 0, 0],
          [0, 0, 0, 0],
        ],
      );
    });
  });
}
