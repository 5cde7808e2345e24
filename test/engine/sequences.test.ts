/**
 * Sequences through the real engine on the virtual clock, on every backend: lazy planning (one
 * waiting message per enrollment at most, each step written only once due and once the previous
 * one finished), step times in the owner's zone across DST weeks, gaps never shorter than a step's
 * delay, the rhythm kept or restarted after a late message, replies and opt-outs, chaining and its
 * loop protection, edited steps, pausing a sequence or one enrollment, failure policies, pool
 * leads, and recovery of a step recorded but never moved on.
 *
 * Expected times are computed here with luxon, from the times messages really went out, never read
 * back from the SQL that plans them.
 */
import { PLAN_AHEAD_MS } from '../../src/engine/sequence-planner.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DateTime } from 'luxon';
import { VirtualClock } from '../../src/engine/clock.js';
import type { Engine } from '../../src/engine/engine.js';
import { DEVICES_CHANNEL, SEQUENCES_CHANNEL, WORK_CHANNEL } from '../../src/engine/events.js';
import { nextWindowOpening, type SendWindow } from '../../src/engine/pacing.js';
import type { Db } from '../../src/store/db.js';
import { insertDevices, type NewDevice } from '../../src/store/sql/devices.js';
import {
  dueEnrollments,
  enrollLeadsWhere,
  holdEnrollmentMessages,
  pauseEnrollment,
  releaseEnrollmentMessages,
  resumeEnrollment,
  stepsOf,
  writeDueMessages,
} from '../../src/store/sql/enrollments.js';
import { insertUser } from '../../src/store/sql/users.js';
import { ensureWindow } from '../../src/store/sql/windows.js';
import { SimulatorTransport, type SimulatorOptions } from '../../src/transports/simulator.js';
import type { DeviceRef, OutboundMessage, SendProof, SendResult, Transport, TransportEvent } from '../../src/transports/transport.js';
import { backends, openTestDb, type Backend, type TestDb } from '../helpers/db.js';
import { runToIdle, stopEngine, virtualEngine } from '../helpers/world.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

const iso = (ms: number) => new Date(ms).toISOString();
const localOf = (ms: number, zone: string) => DateTime.fromMillis(ms, { zone });
const wall = (ms: number, zone: string) => localOf(ms, zone).toFormat('yyyy-MM-dd HH:mm:ss');
/** An instant given as a local wall time in `zone`. */
const at = (local: string, zone: string) => DateTime.fromISO(local, { zone }).toMillis();

// ---- The world ------------------------------------------------------------------------------

interface StepSpec {
  days?: number;
  minutes?: number;
  /** Send time, minutes after local midnight. */
  sendMinute?: number | null;
  body: string;
}

interface SequenceSpec {
  steps: StepSpec[];
  next?: number | null;
  onFailure?: 'continue' | 'stop';
  exitOnReply?: boolean;
  reentry?: 'never' | 'after_completion';
  windowId?: number | null;
}

interface Lead {
  id: number;
  name: string;
  phone: string;
}

async function tenant(db: Db, now: number, timeZone: string, devices: Partial<NewDevice>[]): Promise<{ userId: number; devices: number[] }> {
  const userId = await insertUser(db, { email: `t-${now}-${Math.random()}@example.test`, timeZone }, new Date(now));
  const ids = await insertDevices(db, userId, devices.map((d, i) => ({ name: `d${i + 1}`, minDelayMs: 0, maxDelayMs: 0, ...d })), new Date(now));
  return { userId, devices: ids };
}

let phoneSeq = 0;

/** One lead per entry, owned by that device (null: the shared pool). */
async function addLeads(db: Db, userId: number, devices: (number | null)[], now: number): Promise<Lead[]> {
  const names: string[] = [];
  const phones: string[] = [];
  for (let i = 0; i < devices.length; i++) {
    phoneSeq++;
    names.push(`Ana ${phoneSeq}`);
    phones.push(`+3460${String(phoneSeq).padStart(7, '0')}`);
  }
  const res = await db.query<{ id: number; name: string; phone: string }>(
    `insert into leads (user_id, device_id, name, phone, created_at, updated_at)
     select $1, x.device_id, x.name, x.phone, $5, $5
       from unnest($2::bigint[], $3::text[], $4::text[]) with ordinality as x(device_id, name, phone, i)
      order by x.i
     returning id, name, phone`,
    [userId, devices, names, phones, new Date(now)],
  );
  const byPhone = new Map(res.rows.map((r) => [r.phone, r]));
  return phones.map((p) => byPhone.get(p)!);
}

async function sequence(db: Db, userId: number, spec: SequenceSpec, now: number): Promise<number> {
  const s = await db.query<{ id: number }>(
    `insert into sequences (user_id, name, trigger, window_id, next_sequence_id, reentry, on_failure, exit_on_reply, created_at, updated_at)
     values ($1, 's', 'tag', $2, $3, $4, $5, $6, $7, $7) returning id`,
    [userId, spec.windowId ?? null, spec.next ?? null, spec.reentry ?? 'never', spec.onFailure ?? 'continue', spec.exitOnReply ?? true, new Date(now)],
  );
  const id = s.rows[0]!.id;
  for (const [i, st] of spec.steps.entries()) {
    await db.query(`insert into sequence_steps (sequence_id, position, delay_days, delay_minutes, send_minute, body) values ($1, $2, $3, $4, $5, $6)`, [
      id,
      i + 1,
      st.days ?? 0,
      st.minutes ?? 0,
      st.sendMinute ?? null,
      st.body,
    ]);
  }
  return id;
}

async function enroll(db: Db, sequenceId: number, leads: readonly Lead[], now: number): Promise<number> {
  const r = await enrollLeadsWhere(db, sequenceId, `l.id = any($1::bigint[])`, [leads.map((l) => l.id)], 'api', new Date(now));
  // What the services do after enrolling: the planner hears when the first step falls due.
  await db.notify(SEQUENCES_CHANNEL, JSON.stringify(r.firstDue ? { due: r.firstDue.getTime() } : {}));
  return r.enrolled;
}

/** Pauses or resumes a sequence as the sequence service does (status and held messages in one transaction). */
async function pauseSequence(db: Db, id: number): Promise<number> {
  return db.transaction(async (tx) => {
    const res = await tx.query(`update sequences set status = 'paused' where id = $1 and status = 'active'`, [id]);
    assert.equal(res.rowCount, 1);
    return holdEnrollmentMessages(tx, `e.sequence_id = $1::bigint`, [id]);
  });
}

async function resumeSequence(db: Db, id: number, now: number): Promise<number[]> {
  const devices = await db.transaction(async (tx) => {
    const res = await tx.query(`update sequences set status = 'active' where id = $1 and status = 'paused'`, [id]);
    assert.equal(res.rowCount, 1);
    return releaseEnrollmentMessages(tx, `e.sequence_id = $1::bigint`, [id], new Date(now));
  });
  if (devices.length > 0) await db.notify(WORK_CHANNEL, JSON.stringify({ devices }));
  await db.notify(SEQUENCES_CHANNEL, '{}');
  return devices;
}

// ---- A transport that remembers what it was given ---------------------------------------------

interface Handed {
  id: number;
  deviceId: number;
  to: string;
  body: string;
  origin: string;
  attempt: number;
  at: number;
  ok: boolean;
  code: string | null;
}

/** The simulator, recording every message handed to it (body included); `fail` may answer instead. */
class Recorder implements Transport {
  readonly kind = 'simulator';
  readonly log: Handed[] = [];

  constructor(
    readonly sim: SimulatorTransport,
    private readonly clock: VirtualClock,
    private readonly fail?: (m: OutboundMessage) => SendResult | undefined,
  ) {}

  connect(d: DeviceRef): Promise<void> {
    return this.sim.connect(d);
  }
  disconnect(id: number): Promise<void> {
    return this.sim.disconnect(id);
  }
  onEvent(listener: (e: TransportEvent) => void): () => void {
    return this.sim.onEvent(listener);
  }
  proveSends(ids: readonly number[]): Promise<Map<number, SendProof>> {
    return this.sim.proveSends(ids);
  }
  async send(m: OutboundMessage): Promise<SendResult> {
    const at = this.clock.now();
    const r = this.fail?.(m) ?? (await this.sim.send(m));
    this.log.push({ id: m.id, deviceId: m.deviceId, to: m.to, body: m.body, origin: m.origin, attempt: m.attempt, at, ok: r.ok, code: r.ok ? null : r.code });
    return r;
  }
  get sent(): Handed[] {
    return this.log.filter((h) => h.ok);
  }
}

/** `sequence-enrollment:12/step:3` */
function stepOf(origin: string): { enrollment: number; step: number } {
  const m = /^sequence-enrollment:(\d+)\/step:(\d+)$/.exec(origin);
  assert.ok(m, origin);
  return { enrollment: Number(m[1]), step: Number(m[2]) };
}

class World {
  readonly clock: VirtualClock;
  sim!: SimulatorTransport;
  rec!: Recorder;
  engine: Engine | undefined;
  private running = false;

  private constructor(
    readonly t: TestDb,
    clock: VirtualClock,
  ) {
    this.clock = clock;
  }

  static async open(backend: Backend, start: number): Promise<World> {
    const clock = new VirtualClock(start);
    const t = await openTestDb(backend, (p) => clock.track(p));
    return new World(t, clock);
  }

  get db(): Db {
    return this.t.db;
  }

  now(): number {
    return this.clock.now();
  }

  async start(
    opts: { sim?: Partial<SimulatorOptions>; fail?: (m: OutboundMessage) => SendResult | undefined; before?: (e: Engine) => void; aheadMs?: number } = {},
  ): Promise<Engine> {
    // Most tests pin exact write times, so the planner writes each step when it is due; the
    // first test also runs with the default lookahead.
    writeAhead = opts.aheadMs ?? 0;
    this.sim ??= new SimulatorTransport({ clock: this.clock, seed: 7, ...opts.sim });
    this.rec = new Recorder(this.sim, this.clock, opts.fail);
    const engine = virtualEngine(this.db, this.clock, this.rec, { dispatcher: { leaseTtlMs: HOUR }, sequences: { pollMs: HOUR, aheadMs: writeAhead } });
    this.engine = engine;
    opts.before?.(engine);
    await engine.start();
    this.running = true;
    return engine;
  }

  /** Runs the world up to `t` exactly. */
  async to(t: number): Promise<void> {
    await this.clock.advanceTo(t);
  }

  /** Runs until nothing is left to do; fails if that takes past `horizon`. */
  async idle(horizon: number): Promise<void> {
    const reached = await runToIdle(this.clock, this.engine!, this.sim, horizon);
    assert.ok(this.engine!.idle && this.sim.scheduled === 0, `still busy at ${iso(reached)}`);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await stopEngine(this.clock, this.engine!);
  }

  async close(): Promise<void> {
    try {
      await this.stop();
    } finally {
      this.sim?.close();
      await this.t.dispose();
    }
  }
}

async function inWorld(backend: Backend, start: number, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await World.open(backend, start);
  try {
    await fn(w);
  } finally {
    await w.close();
  }
}

// ---- Reading rows --------------------------------------------------------------------------

interface MsgRow {
  id: number;
  enrollment_id: number;
  sequence_id: number;
  lead_id: number;
  step: number;
  status: string;
  body: string;
  device_id: number;
  not_before: Date;
  created_at: Date;
  sent_at: Date | null;
  finished_at: Date | null;
  error_code: string | null;
  attempts: number;
}

async function messages(db: Db, where = 'true', params: unknown[] = []): Promise<MsgRow[]> {
  const res = await db.query<MsgRow>(
    `select m.id, m.enrollment_id, e.sequence_id, m.lead_id, m.step, m.status, m.body, m.device_id, m.not_before, m.created_at,
            m.sent_at, m.finished_at, m.error_code, m.attempts::int as attempts
       from messages m join enrollments e on e.id = m.enrollment_id
      where ${where}
      order by m.lead_id, e.sequence_id, m.step, m.id`,
    params,
  );
  return res.rows;
}

interface EnrRow {
  id: number;
  sequence_id: number;
  lead_id: number;
  status: string;
  exit_reason: string | null;
  current_step: number;
  message_id: number | null;
  planned_at: Date | null;
  next_due_at: Date | null;
  last_error: string | null;
  source: string;
  chain_root: number | null;
  chain_depth: number;
  enrolled_at: Date;
  completed_at: Date | null;
  updated_at: Date;
}

async function enrollments(db: Db, where = 'true', params: unknown[] = []): Promise<EnrRow[]> {
  const res = await db.query<EnrRow>(
    `select e.id, e.sequence_id, e.lead_id, e.status, e.exit_reason, e.current_step, e.message_id, e.planned_at, e.next_due_at,
            e.last_error, e.source, e.chain_root, e.chain_depth, e.enrolled_at, e.completed_at, e.updated_at
       from enrollments e where ${where} order by e.id`,
    params,
  );
  return res.rows;
}

async function enrollmentOf(db: Db, sequenceId: number, lead: Lead): Promise<EnrRow> {
  const rows = await enrollments(db, `e.sequence_id = $1 and e.lead_id = $2`, [sequenceId, lead.id]);
  assert.equal(rows.length, 1, `one enrollment of lead ${lead.id} in sequence ${sequenceId}`);
  return rows[0]!;
}

/**
 * What each lead received, in the order it went out, as labels ("A1" = step 1 of the sequence
 * labelled A), from the transport's own record.
 */
function received(rec: Recorder, rows: readonly MsgRow[], labels: ReadonlyMap<number, string>): Map<number, string[]> {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const out = new Map<number, string[]>();
  for (const h of rec.sent) {
    const m = byId.get(h.id);
    assert.ok(m, `message ${h.id} was sent and is in the outbox`);
    assert.equal(stepOf(h.origin).step, m.step);
    assert.equal(stepOf(h.origin).enrollment, m.enrollment_id);
    out.set(m.lead_id, [...(out.get(m.lead_id) ?? []), `${labels.get(m.sequence_id)}${m.step}`]);
  }
  return out;
}

// ---- The step-time rule, in luxon ------------------------------------------------------------

/**
 * When the step after a message that went out at `done` falls due: its delay (calendar days in the
 * owner's zone, then minutes) counted from the previous planned time, or from an hour before the
 * real send if that was later; then the first instant showing the send time; and never sooner
 * than the delay after the real send.
 */
function nextTimes(prevPlanned: number, done: number, st: StepSpec, zone: string): { planned: number; due: number } {
  const add = (t: number) =>
    DateTime.fromMillis(t, { zone })
      .plus({ days: st.days ?? 0 })
      .plus({ minutes: st.minutes ?? 0 })
      .toMillis();
  const base = Math.max(prevPlanned, done - HOUR);
  let planned = add(base);
  const sm = st.sendMinute ?? null;
  if (sm !== null) {
    const local = DateTime.fromMillis(planned, { zone });
    const time = { hour: Math.floor(sm / 60), minute: sm % 60, second: 0, millisecond: 0 };
    let aligned = local.set(time);
    if (aligned.toMillis() < planned) aligned = local.plus({ days: 1 }).set(time);
    planned = aligned.toMillis();
  }
  return { planned, due: Math.max(planned, add(done)) };
}

/**
 * Checks one enrollment's messages (sorted by step, from step 1) against the rule: each written
 * exactly when due (not earlier: the planner is lazy), due exactly when the rule says, and gone
 * out within `slackMs` of when it could (its window's next opening if the sequence has one).
 * Returns each step's due time.
 */
/** The running engine's planner lookahead (World.start). */
let writeAhead = 0;

function checkRhythm(
  rows: readonly MsgRow[],
  enrolledAt: number,
  steps: readonly StepSpec[],
  zone: string,
  opts: { window?: SendWindow; slackMs?: number; slack?: (step: number) => number | undefined } = {},
): number[] {
  let prevPlanned = enrolledAt;
  let done = enrolledAt;
  const dues: number[] = [];
  for (const [i, m] of rows.entries()) {
    assert.equal(m.step, i + 1);
    const { planned, due } = nextTimes(prevPlanned, done, steps[i]!, zone);
    const label = `lead ${m.lead_id} step ${m.step} (due ${wall(due, zone)})`;
    const created = m.created_at.getTime();
    // Written at most the planner's lookahead before it is due, never before the previous one finished.
    const writable = Math.max(due - writeAhead, done);
    assert.ok(created >= writable, `${label}: written at ${wall(created, zone)}, before ${wall(writable, zone)}`);
    // The planner wakes when the first waiting step is due and writes the ones due soon after with it.
    assert.ok(created - Math.max(due, done) <= 2000, `${label}: written late, at ${wall(created, zone)}`);
    if (!opts.window) assert.equal(iso(m.not_before.getTime()), iso(due), `${label}: not_before`);
    const finished = (m.sent_at ?? m.finished_at)!.getTime();
    const could = opts.window ? nextWindowOpening(opts.window, due) : due;
    const slack = opts.slack?.(m.step) ?? opts.slackMs ?? MIN;
    assert.ok(finished >= could && finished - could <= slack, `${label}: went out at ${wall(finished, zone)}, could from ${wall(could, zone)}`);
    dues.push(due);
    prevPlanned = planned;
    done = finished;
  }
  return dues;
}

/** A lead's rows of one sequence, by step. */
function rowsOf(rows: readonly MsgRow[], sequenceId: number, lead: Lead): MsgRow[] {
  return rows.filter((r) => r.sequence_id === sequenceId && r.lead_id === lead.id).sort((a, b) => a.step - b.step);
}

function sentAt(r: MsgRow | undefined): number {
  assert.ok(r && r.sent_at, `sent: ${JSON.stringify(r)}`);
  return r.sent_at.getTime();
}

// ---- The tests -------------------------------------------------------------------------------

for (const backend of backends) {
  describe(`sequences in the engine on ${backend}`, () => {
    for (const ahead of [0, PLAN_AHEAD_MS])
    it(`writes a step only once due (written ${ahead / MIN} min ahead) and once the previous one finished: one waiting message per enrollment, every step once, in order`, async () => {
      const zone = 'Asia/Kuala_Lumpur';
      const T0 = at('2026-03-02T09:00', zone);
      await inWorld(backend, T0, async (w) => {
        const paced = { minDelayMs: 20_000, maxDelayMs: 40_000 };
        const ten = await tenant(w.db, T0, zone, [paced, paced, paced]);
        const leads = await addLeads(
          w.db,
          ten.userId,
          Array.from({ length: 15 }, (_, i) => ten.devices[i % 3]!),
          T0,
        );
        const steps: StepSpec[] = [{ body: 'Hi {name}' }, { minutes: 90, body: 'two' }, { days: 1, sendMinute: 600, body: 'three' }, { minutes: 45, body: 'four' }];
        const seq = await sequence(w.db, ten.userId, { steps }, T0);
        assert.equal(await enroll(w.db, seq, leads, T0), 15);
        // Enrolling writes no message: nothing is due before the planner looks.
        assert.equal((await messages(w.db)).length, 0);

        interface Sample {
          at: number;
          multi: number;
          orphan: number;
          ahead: number;
          waiting: number;
          live: number;
        }
        const samples: Promise<Sample>[] = [];
        const sample = async (): Promise<Sample> => {
          const now = w.now();
          // One statement: one snapshot.
          const res = await w.db.query<Omit<Sample, 'at'>>(
            `select
               (select count(*) from (select m.enrollment_id from messages m
                                       where m.enrollment_id is not null and m.status in ('pending', 'held', 'sending')
                                       group by 1 having count(*) > 1) x)::int as multi,
               (select count(*) from messages m join enrollments e on e.id = m.enrollment_id
                 where m.status in ('pending', 'held', 'sending')
                   and (e.status not in ('active', 'paused') or e.message_id is distinct from m.id))::int as orphan,
               (select count(*) from messages m join enrollments e on e.id = m.enrollment_id where m.step > e.current_step)::int as ahead,
               (select count(*) from messages m where m.enrollment_id is not null and m.status in ('pending', 'held', 'sending'))::int as waiting,
               (select count(*) from enrollments where status in ('active', 'paused'))::int as live`,
          );
          return { at: now, ...res.rows[0]! };
        };
        await w.start({
          aheadMs: ahead,
          before: (engine) => {
            // After every recorded batch of outcomes (enrollments moved on) and every planned batch.
            engine.events.on('outcomes.recorded', () => {
              samples.push(w.clock.track(sample()));
            });
            engine.events.on('sequence.planned', () => {
              samples.push(w.clock.track(sample()));
            });
          },
        });
        await w.idle(T0 + 10 * DAY);
        await w.stop();

        const seen = await Promise.all(samples);
        assert.ok(seen.length >= 20, `${seen.length} samples`);
        for (const s of seen) {
          const when = wall(s.at, zone);
          assert.equal(s.multi, 0, `${when}: an enrollment with two waiting messages`);
          assert.equal(s.orphan, 0, `${when}: a waiting message not linked to its live enrollment`);
          assert.equal(s.ahead, 0, `${when}: a message for a step the enrollment has not reached`);
          assert.ok(s.waiting <= s.live, `${when}: ${s.waiting} waiting messages for ${s.live} live enrollments`);
        }
        // The samples did see messages waiting for a device (pacing spreads each step over minutes).
        assert.ok(Math.max(...seen.map((s) => s.waiting)) >= 5, `at most ${Math.max(...seen.map((s) => s.waiting))} waiting`);

        const rows = await messages(w.db);
        assert.equal(rows.length, 60);
        assert.ok(rows.every((r) => r.status === 'sent'));
        const got = received(w.rec, rows, new Map([[seq, 'S']]));
        assert.equal(w.rec.log.length, 60, 'one attempt per message');
        const ends = await enrollments(w.db);
        for (const lead of leads) {
          assert.deepEqual(got.get(lead.id), ['S1', 'S2', 'S3', 'S4'], `lead ${lead.id}`);
          const mine = rowsOf(rows, seq, lead);
          const e = ends.find((x) => x.lead_id === lead.id)!;
          assert.equal(e.status, 'completed');
          assert.equal(e.current_step, 4);
          assert.equal(e.message_id, mine[3]!.id);
          assert.ok(e.completed_at!.getTime() >= mine[3]!.sent_at!.getTime());
          // Step k+1 written only after step k finished.
          for (let k = 1; k < mine.length; k++) {
            assert.ok(mine[k]!.created_at.getTime() >= mine[k - 1]!.finished_at!.getTime(), `lead ${lead.id} step ${k + 1} written before step ${k} finished`);
          }
          assert.equal(mine[0]!.body, `Hi ${lead.name}`);
          assert.deepEqual(
            mine.map((m) => m.device_id),
            mine.map(() => mine[0]!.device_id),
          );
          const dues = checkRhythm(mine, e.enrolled_at.getTime(), steps, zone, { slackMs: 5 * MIN });
          // Step 2 went out around 10:30 on the first day; a day after that is past 10:00, so step 3
          // waits for 10:00 the day after.
          assert.equal(wall(dues[2]!, zone).slice(0, 16), '2026-03-04 10:00');
        }
      });
    });

    for (const c of [
      { name: 'spring forward in Europe/Berlin', zone: 'Europe/Berlin', start: '2026-03-25T12:00', first: '2026-03-26', change: '2026-03-29', hours: 23 },
      { name: 'fall back in America/New_York', zone: 'America/New_York', start: '2026-10-28T12:00', first: '2026-10-29', change: '2026-11-01', hours: 25 },
    ]) {
      it(`keeps daily steps at 10:00 local through a DST week (${c.name})`, async () => {
        const T0 = at(c.start, c.zone);
        await inWorld(backend, T0, async (w) => {
          const paced = { minDelayMs: 2000, maxDelayMs: 4000 };
          const ten = await tenant(w.db, T0, c.zone, [paced, paced]);
          const leads = await addLeads(w.db, ten.userId, [0, 1, 0, 1, 0, 1].map((i) => ten.devices[i]!), T0);
          const steps: StepSpec[] = [{ sendMinute: 600, body: 'day 1' }];
          for (let k = 2; k <= 7; k++) steps.push({ days: 1, sendMinute: 600, body: `day ${k}` });
          const seq = await sequence(w.db, ten.userId, { steps }, T0);
          assert.equal(await enroll(w.db, seq, leads, T0), 6);
          await w.start();
          await w.idle(T0 + 14 * DAY);
          await w.stop();

          const rows = await messages(w.db);
          assert.equal(rows.length, 42);
          const ends = await enrollments(w.db);
          assert.ok(ends.every((e) => e.status === 'completed'));
          const firstDay = DateTime.fromISO(c.first, { zone: c.zone });
          for (const lead of leads) {
            const mine = rowsOf(rows, seq, lead);
            assert.equal(mine.length, 7);
            for (const [i, m] of mine.entries()) {
              const sent = localOf(sentAt(m), c.zone);
              assert.equal(sent.toISODate(), firstDay.plus({ days: i }).toISODate(), `lead ${lead.id} step ${i + 1}`);
              const late = sent.toMillis() - sent.set({ hour: 10, minute: 0, second: 0, millisecond: 0 }).toMillis();
              assert.ok(late >= 0 && late < MIN, `lead ${lead.id} step ${i + 1} went out at ${sent.toISO()}`);
              if (i === 0) continue;
              const prev = sentAt(mine[i - 1]);
              // A calendar day after the previous send, never less (23 or 25 hours across the change).
              assert.ok(sent.toMillis() >= localOf(prev, c.zone).plus({ days: 1 }).toMillis(), `lead ${lead.id}: step ${i + 1} sooner than a day after step ${i}`);
              if (sent.toISODate() === c.change) {
                const hours = (sent.toMillis() - prev) / HOUR;
                assert.ok(Math.abs(hours - c.hours) < 1 / 60, `lead ${lead.id}: ${hours} h across the change`);
              }
            }
            checkRhythm(mine, T0, steps, c.zone);
          }
          // The change day had its sends, at 10:00 local (a different UTC hour than the day before).
          const onChange = rows.filter((r) => localOf(sentAt(r), c.zone).toISODate() === c.change);
          assert.equal(onChange.length, 6);
        });
      });
    }

    it(
      'counts a delay in minutes as elapsed time across the spring-forward night',
      async () => {
        const zone = 'Europe/Berlin';
        const T0 = at('2026-03-29T01:45', zone);
        await inWorld(backend, T0, async (w) => {
          const ten = await tenant(w.db, T0, zone, [{}]);
          const leads = await addLeads(w.db, ten.userId, [ten.devices[0]!], T0);
          const steps: StepSpec[] = [{ body: 'one' }, { minutes: 90, body: 'two' }];
          const seq = await sequence(w.db, ten.userId, { steps }, T0);
          await enroll(w.db, seq, leads, T0);
          await w.start();
          await w.idle(T0 + DAY);
          const mine = rowsOf(await messages(w.db), seq, leads[0]!);
          const gap = sentAt(mine[1]) - sentAt(mine[0]);
          assert.ok(gap >= 90 * MIN, `step 2 went out ${gap / MIN} minutes after step 1 (${wall(sentAt(mine[1]), zone)})`);
        });
      },
    );

    it('steps without send times follow each send by exactly their delay (minutes, hours, a day and more)', async () => {
      const zone = 'Asia/Kuala_Lumpur';
      const T0 = at('2026-06-01T08:17:23', zone);
      await inWorld(backend, T0, async (w) => {
        const paced = { minDelayMs: 5000, maxDelayMs: 10_000 };
        const ten = await tenant(w.db, T0, zone, [paced, paced]);
        const leads = await addLeads(w.db, ten.userId, [0, 1, 0, 1].map((i) => ten.devices[i]!), T0);
        const steps: StepSpec[] = [{ body: 'a' }, { minutes: 45, body: 'b' }, { minutes: 180, body: 'c' }, { days: 1, minutes: 90, body: 'd' }, { minutes: 1500, body: 'e' }];
        const seq = await sequence(w.db, ten.userId, { steps }, T0);
        await enroll(w.db, seq, leads, T0);
        await w.start();
        await w.idle(T0 + 7 * DAY);
        await w.stop();
        const rows = await messages(w.db);
        assert.equal(rows.length, 20);
        for (const lead of leads) {
          const mine = rowsOf(rows, seq, lead);
          for (let k = 1; k < 5; k++) {
            const st = steps[k]!;
            const prev = sentAt(mine[k - 1]);
            const least = localOf(prev, zone)
              .plus({ days: st.days ?? 0 })
              .plus({ minutes: st.minutes ?? 0 })
              .toMillis();
            const sent = sentAt(mine[k]);
            assert.ok(sent >= least, `lead ${lead.id} step ${k + 1}: ${(sent - prev) / MIN} min after step ${k}`);
            assert.ok(sent - least < MIN, `lead ${lead.id} step ${k + 1}: ${(sent - least) / 1000} s later than its delay`);
          }
          checkRhythm(mine, T0, steps, zone);
        }
      });
    });

    it('a step that went out hours late (device offline) restarts the rhythm: full delay after the real send, next send time after that', async () => {
      const zone = 'Asia/Kuala_Lumpur';
      const T0 = at('2026-06-01T00:00', zone);
      await inWorld(backend, T0, async (w) => {
        const paced = { minDelayMs: 10_000, maxDelayMs: 10_000 };
        const ten = await tenant(w.db, T0, zone, [paced, paced]);
        const [A, B] = ten.devices as [number, number];
        const leads = await addLeads(w.db, ten.userId, [A, A, B], T0);
        const steps: StepSpec[] = [{ body: 'l1' }, { minutes: 480, body: 'l2' }, { minutes: 180, body: 'l3' }, { days: 1, sendMinute: 720, body: 'l4' }, { minutes: 90, body: 'l5' }];
        const seq = await sequence(w.db, ten.userId, { steps }, T0);
        await enroll(w.db, seq, leads, T0);
        await w.start();
        // Device A drops from 07:00 to 13:00, over step 2 (due 08:00).
        await w.to(at('2026-06-01T07:00', zone));
        w.sim.dropFor(A, 6 * HOUR);
        await w.to(at('2026-06-01T09:00', zone));
        // Step 2 was written when due even though its device is down, and waits for it.
        const waiting = await messages(w.db, `m.step = 2 and m.device_id = $1`, [A]);
        assert.equal(waiting.length, 2);
        for (const m of waiting) {
          assert.equal(m.status, 'pending');
          assert.equal(wall(m.created_at.getTime(), zone).slice(0, 16), '2026-06-01 08:00');
        }
        await w.idle(T0 + 7 * DAY);
        await w.stop();

        const rows = await messages(w.db);
        assert.equal(rows.length, 15);
        const [a1, a2, b1] = leads as [Lead, Lead, Lead];
        const hm = (r: MsgRow | undefined) => wall(sentAt(r), zone).slice(0, 16);
        // On time (device B): 00:00, 08:00, 11:00, 12:00 the next day, 13:30.
        const b = rowsOf(rows, seq, b1);
        assert.deepEqual(b.map(hm), ['2026-06-01 00:00', '2026-06-01 08:00', '2026-06-01 11:00', '2026-06-02 12:00', '2026-06-02 13:30']);
        // Late (device A): step 2 five hours late at 13:00; step 3 three hours after that (16:00,
        // not 11:00); step 4 a day after an hour before that (15:00 on the 2nd), so the next 12:00 is
        // on the 3rd; step 5 ninety minutes later.
        for (const lead of [a1, a2]) {
          const a = rowsOf(rows, seq, lead);
          assert.deepEqual(a.map(hm), ['2026-06-01 00:00', '2026-06-01 13:00', '2026-06-01 16:00', '2026-06-03 12:00', '2026-06-03 13:30']);
          assert.ok(sentAt(a[2]) - sentAt(a[1]) >= 3 * HOUR);
          assert.ok(sentAt(a[3]) - sentAt(a[2]) >= DAY);
          checkRhythm(a, T0, steps, zone, { slack: (k) => (k === 2 ? 5 * HOUR + MIN : undefined) });
        }
        checkRhythm(b, T0, steps, zone);
      });
    });

    it("a step the sequence's window deferred by days leaves the next one its full delay and the next send time", async () => {
      const zone = 'Asia/Kuala_Lumpur';
      // Friday 2026-06-05 10:00; the window is 09:00-18:00 on weekdays.
      const T0 = at('2026-06-05T10:00', zone);
      await inWorld(backend, T0, async (w) => {
        const window: SendWindow = { timeZone: zone, startMinute: 9 * 60, endMinute: 18 * 60, days: 31 };
        const windowId = await ensureWindow(w.db, window);
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 5000, maxDelayMs: 5000 }]);
        const leads = await addLeads(w.db, ten.userId, [ten.devices[0]!, ten.devices[0]!], T0);
        const steps: StepSpec[] = [{ body: 'w1' }, { days: 1, sendMinute: 600, body: 'w2' }, { days: 1, sendMinute: 600, body: 'w3' }, { minutes: 120, body: 'w4' }];
        const seq = await sequence(w.db, ten.userId, { steps, windowId }, T0);
        await enroll(w.db, seq, leads, T0);
        await w.start();
        await w.idle(T0 + 10 * DAY);
        await w.stop();
        const rows = await messages(w.db);
        assert.equal(rows.length, 8);
        for (const lead of leads) {
          const mine = rowsOf(rows, seq, lead);
          const day = (r: MsgRow) => localOf(sentAt(r), zone);
          // Step 2 is written on Saturday at 10:00 and held back by the window until Monday 09:00.
          assert.equal(wall(mine[1]!.created_at.getTime(), zone).slice(0, 16), '2026-06-06 10:00');
          assert.equal(day(mine[1]!).toFormat('ccc yyyy-MM-dd HH:mm'), 'Mon 2026-06-08 09:00');
          // Counted from Saturday, step 3 would be due on Monday 09:00 + a day = Tuesday 09:00; it
          // starts again from the real send instead and waits for Tuesday's 10:00.
          assert.equal(day(mine[2]!).toFormat('ccc yyyy-MM-dd HH:mm'), 'Tue 2026-06-09 10:00');
          assert.equal(day(mine[3]!).toFormat('ccc yyyy-MM-dd HH:mm'), 'Tue 2026-06-09 12:00');
          assert.ok(sentAt(mine[2]) - sentAt(mine[1]) >= DAY);
          checkRhythm(mine, T0, steps, zone, { window, slackMs: MIN });
        }
      });
    });

    it('a reply ends the sequences that exit on reply (waiting message cancelled, no later step) and not the others', async () => {
      const zone = 'Europe/Madrid';
      const T0 = at('2026-06-01T10:00', zone);
      await inWorld(backend, T0, async (w) => {
        const windowId = await ensureWindow(w.db, { timeZone: zone, startMinute: 9 * 60, endMinute: 18 * 60, days: 127 });
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 1000, maxDelayMs: 1000 }]);
        const device = ten.devices[0]!;
        const [l1, l2, l3, l4, l5] = (await addLeads(w.db, ten.userId, [device, device, device, device, device], T0)) as [Lead, Lead, Lead, Lead, Lead];
        // R ends on a reply; step 2 is due at 20:00, after its window closes, so it waits written.
        const R = await sequence(w.db, ten.userId, { windowId, steps: [{ body: 'r1' }, { days: 1, sendMinute: 20 * 60, body: 'r2' }, { days: 1, sendMinute: 600, body: 'r3' }] }, T0);
        const K = await sequence(w.db, ten.userId, { exitOnReply: false, steps: [{ body: 'k1' }, { days: 1, sendMinute: 600, body: 'k2' }, { days: 1, sendMinute: 600, body: 'k3' }] }, T0);
        await enroll(w.db, R, [l1, l2, l3, l5], T0);
        await enroll(w.db, K, [l4, l5], T0);
        const exitedEvents: { reason: string; exited: number }[] = [];
        await w.start({ before: (e) => e.events.on('enrollments.exited', (x) => exitedEvents.push({ reason: x.reason, exited: x.exited })) });

        // l2 replies while waiting for step 2 (nothing written): the event a transport raises.
        const noon = at('2026-06-02T12:00', zone);
        await w.to(noon);
        w.engine!.events.emit('message.reply', { deviceId: device, from: l2.phone, text: 'who is this?', at: noon });
        await w.to(noon + MIN);
        const e2 = await enrollmentOf(w.db, R, l2);
        assert.equal(e2.status, 'exited');
        assert.equal(e2.exit_reason, 'replied');
        assert.equal(e2.message_id, null);

        // 21:00: step 2 of R is written for l1, l3, l5 and held back by the window until 09:00.
        const nine = at('2026-06-02T21:00', zone);
        await w.to(nine);
        const r2 = await messages(w.db, `e.sequence_id = $1 and m.step = 2`, [R]);
        assert.deepEqual(
          r2.map((m) => [m.lead_id, m.status]),
          [
            [l1.id, 'pending'],
            [l3.id, 'pending'],
            [l5.id, 'pending'],
          ],
        );
        for (const l of [l1, l4, l5]) w.sim.receive(device, l.phone, 'Thanks, tell me more');
        await w.to(nine + MIN);

        const after = await messages(w.db, `e.sequence_id = $1 and m.step = 2`, [R]);
        for (const l of [l1, l5]) {
          const m = after.find((x) => x.lead_id === l.id)!;
          assert.equal(m.status, 'cancelled');
          assert.equal(m.error_code, 'replied');
          assert.equal(m.finished_at?.getTime(), nine);
          const e = await enrollmentOf(w.db, R, l);
          assert.equal(e.status, 'exited');
          assert.equal(e.exit_reason, 'replied');
        }
        assert.equal(after.find((x) => x.lead_id === l3.id)!.status, 'pending');
        // K does not end on a reply: l4 and l5 stay in it.
        assert.equal((await enrollmentOf(w.db, K, l4)).status, 'active');
        assert.equal((await enrollmentOf(w.db, K, l5)).status, 'active');
        const replied = await w.db.query<{ id: number; last_reply_at: Date | null }>(`select id, last_reply_at from leads where id = any($1::bigint[]) order by id`, [[l1.id, l4.id, l5.id]]);
        assert.ok(replied.rows.every((r) => r.last_reply_at?.getTime() === nine));

        await w.idle(T0 + 10 * DAY);
        await w.stop();
        const rows = await messages(w.db);
        const got = received(
          w.rec,
          rows,
          new Map([
            [R, 'R'],
            [K, 'K'],
          ]),
        );
        assert.deepEqual(got.get(l1.id), ['R1']);
        assert.deepEqual(got.get(l2.id), ['R1']);
        assert.deepEqual(got.get(l3.id), ['R1', 'R2', 'R3']);
        assert.deepEqual(got.get(l4.id), ['K1', 'K2', 'K3']);
        assert.deepEqual(got.get(l5.id), ['R1', 'K1', 'K2', 'K3']);
        // No message was ever written for a later step of an exited enrollment.
        assert.equal(rows.filter((r) => r.sequence_id === R && r.step === 3).length, 1);
        assert.equal((await enrollmentOf(w.db, R, l3)).status, 'completed');
        assert.equal((await enrollmentOf(w.db, K, l4)).status, 'completed');
        assert.equal((await enrollmentOf(w.db, K, l5)).status, 'completed');
        // l3's step 2 went out at 09:00 (11 hours late), so step 3 waits for 10:00 two days on.
        assert.equal(wall(sentAt(rowsOf(rows, R, l3)[2]), zone).slice(0, 16), '2026-06-04 10:00');
        assert.deepEqual(exitedEvents, [
          { reason: 'replied', exited: 1 },
          { reason: 'replied', exited: 1 },
          { reason: 'replied', exited: 1 },
        ]);
      });
    });

    it('an opt-out reply ends every sequence of the lead and cancels its waiting message; a lead opted out before its step is exited by the planner', async () => {
      const zone = 'America/Sao_Paulo';
      const T0 = at('2026-06-01T10:00', zone);
      await inWorld(backend, T0, async (w) => {
        const windowId = await ensureWindow(w.db, { timeZone: zone, startMinute: 9 * 60, endMinute: 18 * 60, days: 127 });
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 1000, maxDelayMs: 1000 }]);
        const device = ten.devices[0]!;
        const [o1, o2, o3, o4, o5] = (await addLeads(w.db, ten.userId, [device, device, device, device, device], T0)) as [Lead, Lead, Lead, Lead, Lead];
        // Neither sequence ends on a plain reply: only an opt-out ends them.
        const P = await sequence(w.db, ten.userId, { windowId, exitOnReply: false, steps: [{ body: 'p1' }, { days: 1, sendMinute: 20 * 60, body: 'p2' }, { days: 1, sendMinute: 600, body: 'p3' }] }, T0);
        const Q = await sequence(w.db, ten.userId, { exitOnReply: false, steps: [{ body: 'q1' }, { days: 1, sendMinute: 600, body: 'q2' }, { days: 1, sendMinute: 600, body: 'q3' }] }, T0);
        await enroll(w.db, P, [o1, o2, o3, o4, o5], T0);
        await enroll(w.db, Q, [o1], T0);
        const optedOut: number[] = [];
        await w.start({ before: (e) => e.events.on('lead.opted_out', (x) => optedOut.push(x.leadId)) });

        const noon = at('2026-06-02T12:00', zone);
        await w.to(noon);
        // o2 opts out while waiting for step 2; o3 is opted out by hand (no exit run for it).
        w.sim.receive(device, o2.phone, ' Stop! ');
        await w.db.query(`update leads set opted_out_at = $2 where id = $1`, [o3.id, new Date(noon)]);
        await w.to(noon + MIN);
        const e2 = await enrollmentOf(w.db, P, o2);
        assert.deepEqual([e2.status, e2.exit_reason], ['exited', 'opted_out']);
        assert.equal((await enrollmentOf(w.db, P, o3)).status, 'active');

        // 20:00: step 2 is due. o3 is exited by the planner instead of being written to.
        const eight = at('2026-06-02T20:00', zone);
        await w.to(eight + MIN);
        const e3 = await enrollmentOf(w.db, P, o3);
        assert.deepEqual([e3.status, e3.exit_reason, e3.message_id], ['exited', 'opted_out', null]);
        assert.equal(e3.updated_at.getTime(), eight);
        assert.equal((await messages(w.db, `m.lead_id = $1 and m.step = 2`, [o3.id])).length, 0);

        const nine = at('2026-06-02T21:00', zone);
        await w.to(nine);
        assert.equal((await messages(w.db, `m.lead_id = $1 and e.sequence_id = $2 and m.step = 2`, [o1.id, P]))[0]?.status, 'pending');
        w.sim.receive(device, o1.phone, 'STOP');
        w.sim.receive(device, o4.phone, 'please stop sending these');
        await w.to(nine + MIN);
        const m1 = (await messages(w.db, `m.lead_id = $1 and e.sequence_id = $2 and m.step = 2`, [o1.id, P]))[0]!;
        assert.deepEqual([m1.status, m1.error_code, m1.finished_at?.getTime()], ['cancelled', 'opted_out', nine]);
        for (const s of [P, Q]) {
          const e = await enrollmentOf(w.db, s, o1);
          assert.deepEqual([e.status, e.exit_reason], ['exited', 'opted_out'], `sequence ${s}`);
        }
        const leadRows = await w.db.query<{ id: number; opted_out_at: Date | null; last_reply_at: Date | null }>(
          `select id, opted_out_at, last_reply_at from leads where id = any($1::bigint[]) order by id`,
          [[o1.id, o2.id, o3.id, o4.id, o5.id]],
        );
        const lr = new Map(leadRows.rows.map((r) => [r.id, r]));
        assert.equal(lr.get(o1.id)!.opted_out_at?.getTime(), nine);
        assert.equal(lr.get(o2.id)!.opted_out_at?.getTime(), noon);
        // A sentence that merely contains an opt-out word is a reply, not an opt-out.
        assert.equal(lr.get(o4.id)!.opted_out_at, null);
        assert.equal(lr.get(o4.id)!.last_reply_at?.getTime(), nine);
        assert.equal((await enrollmentOf(w.db, P, o4)).status, 'active');

        await w.idle(T0 + 10 * DAY);
        await w.stop();
        const rows = await messages(w.db);
        const got = received(
          w.rec,
          rows,
          new Map([
            [P, 'P'],
            [Q, 'Q'],
          ]),
        );
        assert.deepEqual(got.get(o1.id), ['P1', 'Q1', 'Q2']);
        assert.deepEqual(got.get(o2.id), ['P1']);
        assert.deepEqual(got.get(o3.id), ['P1']);
        assert.deepEqual(got.get(o4.id), ['P1', 'P2', 'P3']);
        assert.deepEqual(got.get(o5.id), ['P1', 'P2', 'P3']);
        assert.deepEqual(optedOut.sort(), [o1.id, o2.id].sort());
        // Nothing at all was sent to an opted-out lead after its opt-out.
        for (const [l, when] of [
          [o1, nine],
          [o2, noon],
          [o3, noon],
        ] as const) {
          assert.ok(w.rec.log.filter((h) => h.to === l.phone).every((h) => h.at < when), `sent to lead ${l.id} after it opted out`);
        }
      });
    });

    it('chains a completed lead into the next sequence, and never back into one it passed (re-entry rules too)', async () => {
      const zone = 'Asia/Kuala_Lumpur';
      const T0 = at('2026-06-01T09:00', zone);
      await inWorld(backend, T0, async (w) => {
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 1000, maxDelayMs: 1000 }]);
        const d = ten.devices[0]!;
        const [x, z, v] = (await addLeads(w.db, ten.userId, [d, d, d], T0)) as [Lead, Lead, Lead];
        const B = await sequence(w.db, ten.userId, { steps: [{ minutes: 30, body: 'b1' }, { minutes: 30, body: 'b2' }] }, T0);
        const A = await sequence(w.db, ten.userId, { next: B, steps: [{ body: 'a1' }, { minutes: 60, body: 'a2' }] }, T0);
        // F takes a lead once ('never'); E hands on to F.
        const F = await sequence(w.db, ten.userId, { reentry: 'never', steps: [{ body: 'f1' }, { minutes: 10, body: 'f2' }] }, T0);
        const E = await sequence(w.db, ten.userId, { next: F, steps: [{ minutes: 60, body: 'e1' }] }, T0);
        await enroll(w.db, A, [x], T0);
        // z goes through F first, then E (which completes after F): E must not take it into F again.
        await enroll(w.db, F, [z], T0);
        await enroll(w.db, E, [z, v], T0);
        await w.start();
        await w.idle(T0 + 5 * DAY);
        await w.stop();

        const rows = await messages(w.db);
        const labels = new Map([
          [A, 'A'],
          [B, 'B'],
          [E, 'E'],
          [F, 'F'],
        ]);
        const got = received(w.rec, rows, labels);
        assert.deepEqual(got.get(x.id), ['A1', 'A2', 'B1', 'B2']);
        const ea = await enrollmentOf(w.db, A, x);
        const eb = await enrollmentOf(w.db, B, x);
        assert.equal(ea.status, 'completed');
        assert.deepEqual([eb.status, eb.source, eb.chain_depth, eb.chain_root], ['completed', 'chain', 1, ea.id]);
        assert.equal(eb.enrolled_at.getTime(), ea.completed_at!.getTime());
        // B's steps follow from the moment x completed A.
        checkRhythm(rowsOf(rows, B, x), eb.enrolled_at.getTime(), [{ minutes: 30, body: 'b1' }, { minutes: 30, body: 'b2' }], zone);
        assert.ok(sentAt(rowsOf(rows, B, x)[0]) - sentAt(rowsOf(rows, A, x)[1]) >= 30 * MIN);

        assert.deepEqual(got.get(z.id), ['F1', 'F2', 'E1']);
        const zf = await enrollments(w.db, `e.lead_id = $1 and e.sequence_id = $2`, [z.id, F]);
        assert.equal(zf.length, 1, 'F (never again) is not entered a second time');
        assert.equal(zf[0]!.source, 'api');
        assert.equal((await enrollmentOf(w.db, E, z)).status, 'completed');
        // v had never been in F: E hands it on.
        assert.deepEqual(got.get(v.id), ['E1', 'F1', 'F2']);
        const vf = await enrollmentOf(w.db, F, v);
        assert.deepEqual([vf.status, vf.source, vf.chain_depth], ['completed', 'chain', 1]);
      });
    });

    it('a chain made into a loop in SQL stops before re-entering a sequence (even one that allows re-entry)', async () => {
      const zone = 'UTC';
      const T0 = at('2026-06-01T09:00', zone);
      await inWorld(backend, T0, async (w) => {
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 1000, maxDelayMs: 1000 }]);
        const d = ten.devices[0]!;
        const [y, y2] = (await addLeads(w.db, ten.userId, [d, d], T0)) as [Lead, Lead];
        const D = await sequence(w.db, ten.userId, { reentry: 'after_completion', steps: [{ minutes: 10, body: 'd1' }] }, T0);
        const C = await sequence(w.db, ten.userId, { reentry: 'after_completion', next: D, steps: [{ body: 'c1' }, { minutes: 10, body: 'c2' }] }, T0);
        // The API refuses this; the store must cope anyway.
        await w.db.query(`update sequences set next_sequence_id = $1 where id = $2`, [C, D]);
        await enroll(w.db, C, [y], T0);
        await enroll(w.db, D, [y2], T0);
        await w.start();
        await w.idle(T0 + 5 * DAY);
        await w.stop();

        const rows = await messages(w.db);
        const got = received(
          w.rec,
          rows,
          new Map([
            [C, 'C'],
            [D, 'D'],
          ]),
        );
        assert.deepEqual(got.get(y.id), ['C1', 'C2', 'D1']);
        assert.deepEqual(got.get(y2.id), ['D1', 'C1', 'C2']);
        const ey = await enrollments(w.db, `e.lead_id = $1`, [y.id]);
        assert.deepEqual(
          ey.map((e) => [e.sequence_id, e.status, e.source, e.chain_depth]),
          [
            [C, 'completed', 'api', 0],
            [D, 'completed', 'chain', 1],
          ],
        );
        assert.equal(ey[1]!.chain_root, ey[0]!.id);
        const ey2 = await enrollments(w.db, `e.lead_id = $1`, [y2.id]);
        assert.deepEqual(
          ey2.map((e) => [e.sequence_id, e.status, e.source, e.chain_depth, e.chain_root]),
          [
            [D, 'completed', 'api', 0, null],
            [C, 'completed', 'chain', 1, ey2[0]!.id],
          ],
        );
      });
    });

    it('an edited step reaches the messages written after the edit; those already written keep their body', async () => {
      const zone = 'Europe/Lisbon';
      const T0 = at('2026-06-01T10:00', zone);
      await inWorld(backend, T0, async (w) => {
        const windowId = await ensureWindow(w.db, { timeZone: zone, startMinute: 9 * 60, endMinute: 18 * 60, days: 127 });
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 2000, maxDelayMs: 2000 }]);
        const d = ten.devices[0]!;
        const early = await addLeads(w.db, ten.userId, [d, d, d], T0);
        const late = await addLeads(w.db, ten.userId, [d, d, d], T0);
        const seq = await sequence(w.db, ten.userId, { windowId, steps: [{ body: 'first {name}' }, { minutes: 540, body: 'old two {name}' }, { minutes: 60, body: 'old three {name}' }] }, T0);
        await enroll(w.db, seq, early, T0);
        await w.start();
        // The later leads join at 15:00: their step 2 falls due at 00:00, the early ones' at 19:00.
        const three = at('2026-06-01T15:00', zone);
        await w.to(three);
        await enroll(w.db, seq, late, three);
        const eight = at('2026-06-01T20:00', zone);
        await w.to(eight);
        const written = await messages(w.db, `m.step = 2`);
        assert.deepEqual(
          written.map((m) => [m.lead_id, m.status, m.body]),
          early.map((l) => [l.id, 'pending', `old two ${l.name}`]),
        );
        // Held back by the window until 09:00 tomorrow.
        assert.ok(written.every((m) => wall(m.not_before.getTime(), zone) === '2026-06-02 09:00:00'));
        for (const l of late) {
          const e = await enrollmentOf(w.db, seq, l);
          assert.deepEqual([e.current_step, e.message_id], [2, null]);
        }

        await w.db.query(`update sequence_steps set body = 'new two {name}' where sequence_id = $1 and position = 2`, [seq]);
        await w.db.query(`update sequence_steps set body = 'new three {name}' where sequence_id = $1 and position = 3`, [seq]);
        await w.idle(T0 + 5 * DAY);
        await w.stop();

        const rows = await messages(w.db);
        assert.equal(rows.length, 18);
        const bodies = new Map(w.rec.sent.map((h) => [h.id, h.body]));
        assert.equal(w.rec.sent.length, 18);
        for (const l of early) {
          const mine = rowsOf(rows, seq, l);
          assert.deepEqual(
            mine.map((m) => bodies.get(m.id)),
            [`first ${l.name}`, `old two ${l.name}`, `new three ${l.name}`],
          );
          assert.deepEqual(
            mine.map((m) => m.body),
            mine.map((m) => bodies.get(m.id)),
          );
        }
        for (const l of late) {
          const mine = rowsOf(rows, seq, l);
          assert.deepEqual(
            mine.map((m) => bodies.get(m.id)),
            [`first ${l.name}`, `new two ${l.name}`, `new three ${l.name}`],
          );
          // Written at midnight (after the edit), sent when the window opened.
          assert.equal(wall(mine[1]!.created_at.getTime(), zone).slice(0, 16), '2026-06-02 00:00');
        }
      });
    });

    it('a paused sequence holds its waiting messages and plans nothing; on resume it goes on, paced, and completes', async () => {
      const zone = 'UTC';
      const T0 = at('2026-06-01T09:00', zone);
      await inWorld(backend, T0, async (w) => {
        const paced = { minDelayMs: 60_000, maxDelayMs: 90_000 };
        const ten = await tenant(w.db, T0, zone, [paced, paced]);
        const leads = await addLeads(
          w.db,
          ten.userId,
          Array.from({ length: 16 }, (_, i) => ten.devices[i % 2]!),
          T0,
        );
        const steps: StepSpec[] = [{ body: 's1' }, { minutes: 20, body: 's2' }, { minutes: 20, body: 's3' }];
        const seq = await sequence(w.db, ten.userId, { steps }, T0);
        await enroll(w.db, seq, leads, T0);
        await w.start();

        const pausedAt = T0 + 4 * MIN;
        await w.to(pausedAt);
        const held = await pauseSequence(w.db, seq);
        assert.ok(held >= 4, `${held} held`);
        const attemptsAtPause = w.rec.log.length;
        assert.ok(attemptsAtPause >= 4 && attemptsAtPause < 16, `${attemptsAtPause} sent before the pause`);
        const before = await messages(w.db);
        assert.equal(before.filter((m) => m.status === 'held').length, held);
        assert.equal(before.filter((m) => m.status === 'pending').length, 0);

        // Three hours paused: step 2 of the leads already reached falls due meanwhile.
        const resumedAt = T0 + 3 * HOUR;
        await w.to(resumedAt);
        assert.equal(w.rec.log.length, attemptsAtPause, 'nothing sent while paused');
        const during = await messages(w.db);
        assert.equal(during.length, before.length, 'no step planned while paused');
        assert.equal(during.filter((m) => m.status === 'held').length, held);
        const waiting = await enrollments(w.db, `e.current_step = 2`);
        assert.equal(waiting.length, attemptsAtPause);
        assert.ok(waiting.every((e) => e.status === 'active' && e.message_id === null && e.next_due_at!.getTime() < resumedAt));

        const devices = await resumeSequence(w.db, seq, resumedAt);
        assert.ok(devices.length > 0);
        // Released, due now (the dispatcher may already be sending the first of them).
        const released = await messages(w.db, `m.id = any($1::bigint[])`, [before.filter((m) => m.status === 'held').map((m) => m.id)]);
        assert.equal(released.length, held);
        assert.ok(released.every((m) => ['pending', 'sending'].includes(m.status) && m.not_before.getTime() === resumedAt));
        await w.idle(resumedAt + 2 * DAY);
        await w.stop();

        const rows = await messages(w.db);
        assert.equal(rows.length, 48);
        assert.ok(rows.every((m) => m.status === 'sent'));
        const got = received(w.rec, rows, new Map([[seq, 'S']]));
        for (const l of leads) assert.deepEqual(got.get(l.id), ['S1', 'S2', 'S3']);
        assert.ok((await enrollments(w.db)).every((e) => e.status === 'completed'));
        assert.ok(w.rec.log.every((h) => h.at <= pausedAt || h.at >= resumedAt), 'nothing went out while paused');
        // Paced throughout, the burst of released and overdue steps included.
        for (const dev of ten.devices) {
          const times = w.rec.log.filter((h) => h.deviceId === dev).map((h) => h.at);
          for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 60_000, `device ${dev}: sends ${(times[i]! - times[i - 1]!) / 1000} s apart`);
        }
        // The overdue steps and released messages did go out soon after the resume.
        assert.ok(w.rec.log.some((h) => h.at >= resumedAt && h.at < resumedAt + 2 * MIN));
      });
    });

    it('a paused enrollment holds its message and its later steps; resumed, it goes on from where it was', async () => {
      const zone = 'UTC';
      const T0 = at('2026-06-01T09:00', zone);
      await inWorld(backend, T0, async (w) => {
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 60_000, maxDelayMs: 60_000 }]);
        const d = ten.devices[0]!;
        const [p1, p2, p3] = (await addLeads(w.db, ten.userId, [d, d, d], T0)) as [Lead, Lead, Lead];
        const steps: StepSpec[] = [{ body: 's1' }, { minutes: 10, body: 's2' }, { minutes: 10, body: 's3' }];
        const seq = await sequence(w.db, ten.userId, { steps }, T0);
        await enroll(w.db, seq, [p1, p2, p3], T0);
        await w.start();
        await w.to(T0 + 30_000);
        // p3's step 1 waits for the device (one send a minute): held.
        const e3 = await enrollmentOf(w.db, seq, p3);
        assert.equal((await messages(w.db, `m.id = $1`, [e3.message_id]))[0]!.status, 'pending');
        assert.equal(await pauseEnrollment(w.db, e3.id, new Date(w.now())), true);
        assert.equal(await pauseEnrollment(w.db, e3.id, new Date(w.now())), false);
        assert.equal((await messages(w.db, `m.id = $1`, [e3.message_id]))[0]!.status, 'held');
        // p1 waits for its step 2 (due at +10 min) with nothing written: paused, nothing will be.
        await w.to(T0 + 5 * MIN);
        const e1 = await enrollmentOf(w.db, seq, p1);
        assert.deepEqual([e1.current_step, e1.message_id], [2, null]);
        assert.equal(await pauseEnrollment(w.db, e1.id, new Date(w.now())), true);

        const resumedAt = T0 + 2 * HOUR;
        await w.to(resumedAt);
        assert.equal((await enrollmentOf(w.db, seq, p2)).status, 'completed');
        const still1 = await enrollmentOf(w.db, seq, p1);
        const still3 = await enrollmentOf(w.db, seq, p3);
        assert.deepEqual([still1.status, still1.current_step, still1.message_id], ['paused', 2, null]);
        assert.deepEqual([still3.status, still3.current_step, still3.message_id], ['paused', 1, e3.message_id]);
        assert.equal((await messages(w.db, `m.lead_id = $1`, [p1.id])).length, 1);
        assert.equal(w.rec.log.filter((h) => h.to === p3.phone).length, 0);
        // Only a paused enrollment resumes.
        assert.equal(await resumeEnrollment(w.db, (await enrollmentOf(w.db, seq, p2)).id, new Date(resumedAt)), null);

        assert.deepEqual(await resumeEnrollment(w.db, e3.id, new Date(resumedAt)), [d]);
        assert.deepEqual(await resumeEnrollment(w.db, e1.id, new Date(resumedAt)), []);
        await w.db.notify(WORK_CHANNEL, JSON.stringify({ devices: [d] }));
        await w.db.notify(SEQUENCES_CHANNEL, '{}');
        await w.idle(resumedAt + DAY);
        await w.stop();

        const rows = await messages(w.db);
        const got = received(w.rec, rows, new Map([[seq, 'S']]));
        for (const l of [p1, p2, p3]) assert.deepEqual(got.get(l.id), ['S1', 'S2', 'S3']);
        assert.ok((await enrollments(w.db)).every((e) => e.status === 'completed'));
        // Resumed at once: p1's overdue step 2 and p3's released step 1 go out within the device's pace.
        const firstAfter = (l: Lead) => Math.min(...w.rec.log.filter((h) => h.to === l.phone && h.at >= resumedAt).map((h) => h.at));
        assert.ok(firstAfter(p1) - resumedAt <= 2 * MIN);
        assert.ok(firstAfter(p3) - resumedAt <= 2 * MIN);
        // p3's step 2 still waits its full delay after its (late) step 1.
        const p3rows = rowsOf(rows, seq, p3);
        assert.ok(sentAt(p3rows[1]) - sentAt(p3rows[0]) >= 10 * MIN);
      });
    });

    it('failure policy: continue moves on after a failed step, stop exits (step_failed), not on WhatsApp exits (not_on_whatsapp)', async () => {
      const zone = 'UTC';
      const T0 = at('2026-06-01T09:00', zone);
      await inWorld(backend, T0, async (w) => {
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 1000, maxDelayMs: 1000 }]);
        const d = ten.devices[0]!;
        const [f1, f2, f3, f4, f5, f6] = (await addLeads(w.db, ten.userId, [d, d, d, d, d, d], T0)) as [Lead, Lead, Lead, Lead, Lead, Lead];
        const steps: StepSpec[] = [{ body: 'x1' }, { minutes: 30, body: 'x2' }, { minutes: 30, body: 'x3' }];
        const CONT = await sequence(w.db, ten.userId, { steps, onFailure: 'continue' }, T0);
        const STOP = await sequence(w.db, ten.userId, { steps, onFailure: 'stop' }, T0);
        await enroll(w.db, CONT, [f1, f3, f5], T0);
        await enroll(w.db, STOP, [f2, f4, f6], T0);
        let flaky = 0;
        const fail = (m: OutboundMessage): SendResult | undefined => {
          const step = stepOf(m.origin).step;
          if ((m.to === f1.phone || m.to === f2.phone) && step === 2) return { ok: false, code: 'REJECTED', message: 'rejected', transient: false };
          if ((m.to === f3.phone || m.to === f4.phone) && step === 1) return { ok: false, code: 'NOT_ON_WHATSAPP', message: 'no such account', transient: false };
          if (m.to === f6.phone && step === 2 && flaky++ === 0) return { ok: false, code: 'NETWORK', message: 'timeout', transient: true };
          return undefined;
        };
        await w.start({ fail });
        await w.idle(T0 + 2 * DAY);
        await w.stop();

        const rows = await messages(w.db);
        const ok = received(
          w.rec,
          rows,
          new Map([
            [CONT, 'C'],
            [STOP, 'S'],
          ]),
        );
        const statuses = (l: Lead, s: number) => rowsOf(rows, s, l).map((m) => `${m.step}:${m.status}`);
        // continue: the failed step 2 is recorded failed, step 3 still goes out, the lead completes.
        assert.deepEqual(statuses(f1, CONT), ['1:sent', '2:failed', '3:sent']);
        assert.deepEqual(ok.get(f1.id), ['C1', 'C3']);
        assert.equal((await enrollmentOf(w.db, CONT, f1)).status, 'completed');
        const f1rows = rowsOf(rows, CONT, f1);
        assert.equal(f1rows[1]!.error_code, 'REJECTED');
        checkRhythm(f1rows, T0, steps, zone);
        // stop: exited on the failed step, nothing more written.
        assert.deepEqual(statuses(f2, STOP), ['1:sent', '2:failed']);
        const e2 = await enrollmentOf(w.db, STOP, f2);
        assert.deepEqual([e2.status, e2.exit_reason, e2.current_step], ['exited', 'step_failed', 2]);
        // Not on WhatsApp ends the enrollment whatever the policy.
        for (const [l, s] of [
          [f3, CONT],
          [f4, STOP],
        ] as const) {
          assert.deepEqual(statuses(l, s), ['1:skipped']);
          const e = await enrollmentOf(w.db, s, l);
          assert.deepEqual([e.status, e.exit_reason, e.current_step], ['exited', 'not_on_whatsapp', 1]);
          assert.equal(ok.get(l.id), undefined);
        }
        // A transient failure is retried, not a step failure.
        assert.deepEqual(statuses(f6, STOP), ['1:sent', '2:sent', '3:sent']);
        assert.equal(rowsOf(rows, STOP, f6)[1]!.attempts, 2);
        assert.equal((await enrollmentOf(w.db, STOP, f6)).status, 'completed');
        assert.deepEqual(ok.get(f5.id), ['C1', 'C2', 'C3']);
        assert.deepEqual(
          w.rec.log
            .filter((h) => !h.ok)
            .map((h) => `${h.to} ${h.code}`)
            .sort(),
          [`${f1.phone} REJECTED`, `${f2.phone} REJECTED`, `${f3.phone} NOT_ON_WHATSAPP`, `${f4.phone} NOT_ON_WHATSAPP`, `${f6.phone} NETWORK`].sort(),
        );
      });
    });

    it("pool leads get one of the owner's online devices at their first step and keep it; an owner without devices waits hourly (no_device)", async () => {
      const zone = 'UTC';
      const T0 = at('2026-06-01T09:00', zone);
      await inWorld(backend, T0, async (w) => {
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 1000, maxDelayMs: 1000 }, { minDelayMs: 1000, maxDelayMs: 1000 }, { minDelayMs: 1000, maxDelayMs: 1000 }]);
        const [d1, d2, d3] = ten.devices as [number, number, number];
        const steps: StepSpec[] = [{ body: 'p1' }, { minutes: 60, body: 'p2' }, { minutes: 60, body: 'p3' }];
        const seq = await sequence(w.db, ten.userId, { steps }, T0);
        const bare = await tenant(w.db, T0, zone, []);
        const bareSeq = await sequence(w.db, bare.userId, { steps }, T0);
        const orphans = await addLeads(w.db, bare.userId, [null, null], T0);
        await enroll(w.db, bareSeq, orphans, T0);
        // d3 never comes online.
        await w.start({ sim: { offlineDevices: [d3] } });
        await w.to(T0 + 10 * MIN);
        const st = await w.db.query<{ id: number; status: string }>(`select id, status from devices where id = any($1::bigint[]) order by id`, [ten.devices]);
        assert.deepEqual(
          st.rows.map((r) => r.status),
          ['online', 'online', 'offline'],
        );
        // The owner without devices: waiting, with the reason, tried again in an hour.
        for (const e of await enrollments(w.db, `e.sequence_id = $1`, [bareSeq])) {
          assert.deepEqual([e.status, e.message_id, e.last_error], ['active', null, 'no_device']);
          assert.equal(iso(e.next_due_at!.getTime()), iso(T0 + HOUR));
        }
        assert.equal((await messages(w.db, `m.user_id = $1`, [bare.userId])).length, 0);

        const enrolledAt = w.now();
        const pool = await addLeads(w.db, ten.userId, [null, null, null, null, null, null], enrolledAt);
        await enroll(w.db, seq, pool, enrolledAt);
        await w.to(enrolledAt + MIN);
        const given = await w.db.query<{ id: number; device_id: number | null }>(`select id, device_id from leads where id = any($1::bigint[]) order by id`, [pool.map((l) => l.id)]);
        const deviceOf = new Map(given.rows.map((r) => [r.id, r.device_id]));
        for (const l of pool) assert.ok([d1, d2].includes(deviceOf.get(l.id)!), `lead ${l.id} got device ${deviceOf.get(l.id)}`);
        assert.equal(new Set(deviceOf.values()).size, 2, 'spread over both online devices');
        // d1 drops for two hours and d3 comes online: d1's leads keep waiting for d1.
        w.sim.dropFor(d1, 2 * HOUR);
        w.sim.bringOnline(d3);
        const dropEnd = w.now() + 2 * HOUR;

        await w.to(T0 + HOUR + MIN);
        for (const e of await enrollments(w.db, `e.sequence_id = $1`, [bareSeq])) {
          assert.deepEqual([e.message_id, e.last_error], [null, 'no_device']);
          assert.equal(iso(e.next_due_at!.getTime()), iso(T0 + 2 * HOUR));
        }
        // The bare owner gets a device; its next hourly try writes the step through it.
        const [late] = await insertDevices(w.db, bare.userId, [{ name: 'late', minDelayMs: 1000, maxDelayMs: 1000 }], new Date(w.now()));
        await w.db.notify(DEVICES_CHANNEL, JSON.stringify({ devices: [late] }));
        await w.idle(T0 + 3 * DAY);
        await w.stop();

        const rows = await messages(w.db);
        const after = await w.db.query<{ id: number; device_id: number | null }>(`select id, device_id from leads where id = any($1::bigint[]) order by id`, [pool.map((l) => l.id)]);
        for (const r of after.rows) assert.equal(r.device_id, deviceOf.get(r.id), 'the lead keeps its device');
        for (const l of pool) {
          const mine = rowsOf(rows, seq, l);
          assert.deepEqual(
            mine.map((m) => [m.status, m.device_id]),
            [1, 2, 3].map(() => ['sent', deviceOf.get(l.id)]),
          );
          if (deviceOf.get(l.id) === d1) assert.ok(sentAt(mine[1]) >= dropEnd, 'd1 leads waited for d1');
        }
        assert.equal(rows.filter((m) => m.device_id === d3).length, 0);
        for (const l of orphans) {
          const mine = rowsOf(rows, bareSeq, l);
          assert.deepEqual(
            mine.map((m) => [m.status, m.device_id]),
            [1, 2, 3].map(() => ['sent', late]),
          );
          assert.equal(mine[0]!.created_at.getTime(), T0 + 2 * HOUR);
        }
        for (const e of await enrollments(w.db, `e.sequence_id = $1`, [bareSeq])) assert.deepEqual([e.status, e.last_error], ['completed', null]);
      });
    });

    it('moves on, at start-up, an enrollment whose message was recorded finished but never advanced', async () => {
      const zone = 'UTC';
      const T0 = at('2026-06-01T09:00', zone);
      await inWorld(backend, T0, async (w) => {
        const ten = await tenant(w.db, T0, zone, [{ minDelayMs: 1000, maxDelayMs: 1000 }]);
        const d = ten.devices[0]!;
        const [c1, c2, c3] = (await addLeads(w.db, ten.userId, [d, d, d], T0)) as [Lead, Lead, Lead];
        const steps: StepSpec[] = [{ body: 's1' }, { minutes: 120, body: 's2' }, { minutes: 60, body: 's3' }];
        const S = await sequence(w.db, ten.userId, { steps }, T0);
        const U = await sequence(w.db, ten.userId, { steps: [{ minutes: 5, body: 'u1' }] }, T0);
        const T = await sequence(w.db, ten.userId, { next: U, steps: [{ body: 't1' }] }, T0);
        const V = await sequence(w.db, ten.userId, { onFailure: 'stop', steps: [{ body: 'v1' }, { minutes: 5, body: 'v2' }] }, T0);
        await enroll(w.db, S, [c1], T0);
        await enroll(w.db, T, [c2], T0);
        await enroll(w.db, V, [c3], T0);
        // A process wrote the first steps, sent them and recorded the outcomes, then stopped
        // before moving the enrollments on.
        const due = await dueEnrollments(w.db, new Date(T0), 100);
        assert.equal(due.length, 3);
        const written = await writeDueMessages(w.db, due.map((x) => x.id), await stepsOf(w.db, [S, T, V]), new Date(T0));
        assert.equal(written.length, 3);
        const sent = T0 + 2 * MIN;
        await w.db.query(
          `update messages set status = case when lead_id = $3 then 'failed' else 'sent' end,
                  sent_at = case when lead_id = $3 then null else $1::timestamptz end, finished_at = $1, attempts = 1, last_attempt_at = $1,
                  error_code = case when lead_id = $3 then 'REJECTED' end
            where user_id = $2`,
          [new Date(sent), ten.userId, c3.id],
        );
        const stalled = await enrollments(w.db);
        assert.ok(stalled.every((e) => e.status === 'active' && e.current_step === 1 && e.message_id !== null));

        const restart = T0 + 10 * MIN;
        await w.to(restart);
        await w.start();
        // The planner's start-up recovery has run before anything else.
        const s = await enrollmentOf(w.db, S, c1);
        assert.deepEqual([s.status, s.current_step, s.message_id], ['active', 2, null]);
        assert.equal(iso(s.next_due_at!.getTime()), iso(sent + 120 * MIN));
        assert.equal(iso(s.planned_at!.getTime()), iso(T0 + 120 * MIN));
        const t = await enrollmentOf(w.db, T, c2);
        assert.equal(t.status, 'completed');
        const u = await enrollmentOf(w.db, U, c2);
        assert.deepEqual([u.status, u.source, u.chain_depth, u.chain_root], ['active', 'chain', 1, t.id]);
        const v = await enrollmentOf(w.db, V, c3);
        assert.deepEqual([v.status, v.exit_reason], ['exited', 'step_failed']);

        await w.idle(restart + 2 * DAY);
        await w.stop();
        const rows = await messages(w.db);
        const got = received(
          w.rec,
          rows,
          new Map([
            [S, 'S'],
            [T, 'T'],
            [U, 'U'],
            [V, 'V'],
          ]),
        );
        // Nothing sent again; the rest follows.
        assert.deepEqual(got.get(c1.id), ['S2', 'S3']);
        assert.deepEqual(got.get(c2.id), ['U1']);
        assert.equal(got.get(c3.id), undefined);
        assert.equal((await enrollmentOf(w.db, S, c1)).status, 'completed');
        assert.equal((await enrollmentOf(w.db, U, c2)).status, 'completed');
        const s2 = rowsOf(rows, S, c1)[1]!;
        assert.equal(iso(s2.created_at.getTime()), iso(sent + 120 * MIN));
      });
    });
  });
}
