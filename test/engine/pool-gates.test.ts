/**
 * When a recorded batch of sends wakes the pool allocator, on every backend.
 *
 * Under the lockstep rule a device takes its next lead only once every usable device has finished
 * as many as it was given, so only the batch that finishes the last of the slowest ("gate")
 * devices can let anyone take a lead. The allocator pokes itself on that batch, on a batch that
 * wrote device status changes, on any batch while it knows no gates, and on nothing else. These
 * tests check, through rows and counters:
 * - a whole pool campaign runs in lockstep with about one pass per round, not one per batch;
 * - on the allocator alone, which `outcomes.recorded` events start a pass and which do not, and
 *   (PostgreSQL, which has a second connection to lock the campaign with) that a pass which could
 *   not lock its campaign leaves every batch starting one until the gates are known again;
 * - (PostgreSQL) that a batch recorded on another connection while a pass runs, finishing a device
 *   the pass still read as open, does not leave that device among the gates: the batch that
 *   finishes the real last gate starts the pass that hands the next round out;
 * - a device that comes online mid-round gets a lead as soon as its status is written, without
 *   waiting for the round to end.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualClock } from '../../src/engine/clock.js';
import { EngineEvents, type EngineEventMap } from '../../src/engine/events.js';
import { materialiseAll } from '../../src/engine/materialise.js';
import { PoolAllocator } from '../../src/engine/pool-allocator.js';
import type { Db } from '../../src/store/db.js';
import { insertCampaign, startCampaignNow } from '../../src/store/sql/campaigns.js';
import { insertDevices, type NewDevice } from '../../src/store/sql/devices.js';
import { insertUser } from '../../src/store/sql/users.js';
import { SimulatorTransport, type SendAttempt } from '../../src/transports/simulator.js';
import { backends, openSecondPool, openTestDb, type Backend, type TestDb } from '../helpers/db.js';
import { byDevice, duplicates, quietLog, runToIdle, stopEngine, virtualEngine } from '../helpers/world.js';

const T0 = Date.parse('2026-05-04T08:00:00Z');
const SECOND = 1_000;
const DAY = 86_400_000;
/**
 * The allocator's poll, pushed past the end of every run here: it only stands in for another
 * process's device events, and a 10 s poll would both hide a lost wake-up and add passes of its own.
 */
const NO_POLL = { pollMs: DAY };

interface PoolWorld {
  userId: number;
  devices: number[];
  leads: number[];
  campaignId: number;
}

/** A tenant with one device per gap (fixed, min = max), `leads` leads of nobody's, and a pool campaign. */
async function poolWorld(db: Db, gapsMs: readonly number[], leads: number): Promise<PoolWorld> {
  const now = new Date(T0);
  const userId = await insertUser(db, { email: `pool-${T0}-${Math.random()}@example.test`, timeZone: 'UTC' }, now);
  const devices = await insertDevices(db, userId, gapsMs.map((g, i): NewDevice => ({ name: `d${i + 1}`, minDelayMs: g, maxDelayMs: g })), now);
  const res = await db.query<{ id: number }>(
    `insert into leads (user_id, device_id, name, phone, created_at, updated_at)
     select $1, null, 'Lead ' || g, '+3460' || lpad(g::text, 7, '0'), $2, $2 from generate_series(1, $3::int) g
     returning id`,
    [userId, now, leads],
  );
  const campaignId = await insertCampaign(db, userId, { name: 'pool', body: 'Hello', startsAt: now, mode: 'pool' }, now);
  return { userId, devices, leads: res.rows.map((r) => r.id).sort((a, b) => a - b), campaignId };
}

async function messageRows(db: Db, campaignId: number) {
  const res = await db.query<{ id: number; lead_id: number; device_id: number; status: string; attempts: number }>(
    `select id, lead_id, device_id, status, attempts from messages where campaign_id = $1 order by id`,
    [campaignId],
  );
  return res.rows;
}

async function campaignStatus(db: Db, id: number): Promise<string> {
  return (await db.query<{ status: string }>(`select status from campaigns where id = $1`, [id])).rows[0]!.status;
}

/** Per device (in the order given): rows handed to it, of them still pending, and sent. */
async function deviceCounts(db: Db, campaignId: number, devices: readonly number[]) {
  const rows = await messageRows(db, campaignId);
  const of = (d: number) => rows.filter((r) => r.device_id === d);
  return {
    given: devices.map((d) => of(d).length),
    open: devices.map((d) => of(d).filter((r) => r.status === 'pending').length),
    sent: devices.map((d) => of(d).filter((r) => r.status === 'sent').length),
  };
}

async function queueLength(db: Db, campaignId: number): Promise<number> {
  return (await db.query<{ n: number }>(`select count(*)::int as n from pool_queue where campaign_id = $1`, [campaignId])).rows[0]!.n;
}

/** Marks the campaign's pending rows on `devices` sent at `at`, as the dispatcher's flush would. */
async function finishOpenRows(db: Db, campaignId: number, devices: readonly number[], at: Date): Promise<void> {
  await db.query(
    `update messages set status = 'sent', attempts = 1, last_attempt_at = $3, sent_at = $3, finished_at = $3
      where campaign_id = $1 and device_id = any($2::bigint[]) and status = 'pending'`,
    [campaignId, devices, at],
  );
}

const sentOnly = (a: readonly SendAttempt[]) => a.filter((x) => x.outcome === 'sent');

/** Sent attempts per device, zero for a device that has sent nothing yet. */
function sentCounts(attempts: readonly SendAttempt[], devices: readonly number[]): number[] {
  const per = byDevice(sentOnly(attempts));
  return devices.map((d) => per.get(d)?.length ?? 0);
}

const spread = (counts: readonly number[]) => Math.max(...counts) - Math.min(...counts);


/**
 * An allocator on the virtual clock beside a second connection to the same database (another
 * process, as far as the store can tell: its statements are not on this clock), all closed after.
 */
async function withSecondConnection(
  backend: Backend,
  fn: (rig: { clock: VirtualClock; t: TestDb; other: Db; events: EngineEvents; pool: PoolAllocator }) => Promise<void>,
): Promise<void> {
  const clock = new VirtualClock(T0);
  const t = await openTestDb(backend, (p) => clock.track(p));
  const other = await openSecondPool(t);
  const events = new EngineEvents();
  const pool = new PoolAllocator(t.db, clock, events, quietLog, NO_POLL);
  try {
    await fn({ clock, t, other, events, pool });
  } finally {
    await pool.stop();
    await other.close();
    await t.dispose();
  }
}

for (const backend of backends) {
  describe(`pool allocator wake-ups on ${backend}`, () => {
    it('runs a pool campaign in lockstep with about one allocation pass per round, not one per recorded batch', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 21 });
      try {
        // Gaps of 60, 90 and 120 s: within a round the three devices finish at different times, so
        // a round is recorded in two or three batches (one at the campaign start, when all three
        // send at once).
        const w = await poolWorld(t.db, [60 * SECOND, 90 * SECOND, 120 * SECOND], 12);
        const engine = virtualEngine(t.db, clock, sim, { pool: NO_POLL });
        let batches = 0;
        let worstSpread = 0;
        engine.events.on('outcomes.recorded', (e) => {
          if (e.count === 0) return;
          batches++;
          worstSpread = Math.max(worstSpread, spread(sentCounts(sim.attempts, w.devices)));
        });
        await engine.start();
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);

        // Every lead sent exactly once, by one of the campaign's devices.
        const rows = await messageRows(t.db, w.campaignId);
        assert.equal(rows.length, 12);
        assert.deepEqual(rows.map((r) => r.lead_id).sort((a, b) => a - b), w.leads);
        assert.ok(rows.every((r) => r.status === 'sent' && r.attempts === 1), JSON.stringify(rows));
        assert.deepEqual(duplicates(sim.attempts), []);
        assert.equal(sentOnly(sim.attempts).length, 12);
        assert.equal(await campaignStatus(t.db, w.campaignId), 'completed');

        // Lockstep: never more than one message apart while running, level at the end.
        assert.ok(worstSpread <= 1, `spread reached ${worstSpread}`);
        assert.deepEqual(sentCounts(sim.attempts, w.devices), [4, 4, 4]);
        const perDevice = new Map<number, number>();
        for (const r of rows) perDevice.set(r.device_id, (perDevice.get(r.device_id) ?? 0) + 1);
        assert.deepEqual(w.devices.map((d) => perDevice.get(d) ?? 0), [4, 4, 4]);

        // The bound. 12 leads over 3 devices is 4 rounds, and under lockstep a round can be handed
        // out only after the batch that finishes the previous round's last device: one pass per
        // round from the second on. Nothing else wakes the allocator mid-run here (no quota, no
        // pause, no device event, and the poll is off), so the rest is start-up and the end:
        // the loop's first pass, one per notification of the campaign's start (a chunk written,
        // the start finished) and one for the first write of the devices' status, one of which
        // hands round 1 out (at most 4), and at most one at the end that finds the queue empty.
        // Hence at most rounds + 4 passes; and at least `rounds`, since a pass hands each device
        // at most one lead. A pass per recorded batch would cost at least `batches` passes, and
        // there are two to three batches a round here (at least 2 per round, checked below): that
        // breaks both upper bounds.
        const rounds = 12 / 3;
        const passes = engine.pool.stats.passes;
        assert.equal(engine.pool.stats.allocated, 12);
        assert.ok(batches >= 2 * rounds, `only ${batches} batches recorded: the run does not tell the two apart`);
        assert.ok(passes >= rounds, `${passes} passes for ${rounds} rounds`);
        assert.ok(passes <= rounds + 4, `${passes} passes for ${rounds} rounds (${batches} batches)`);
        assert.ok(passes < batches, `${passes} passes for ${batches} batches`);
      } finally {
        sim.close();
        await t.dispose();
      }
    });

    it('passes on the allocator alone: only the batch that finishes the last gate device, or writes statuses, starts one', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const events = new EngineEvents();
      const pool = new PoolAllocator(t.db, clock, events, quietLog, NO_POLL);
      try {
        const w = await poolWorld(t.db, [60 * SECOND, 60 * SECOND, 60 * SECOND], 12);
        const [a, b, c] = w.devices as [number, number, number];
        // No dispatcher here: the devices are online as far as the store can tell, and this test
        // plays the dispatcher's part (a row finished in the store, then the event).
        await t.db.query(`update devices set status = 'online', last_seen_at = $2 where id = any($1::bigint[])`, [w.devices, new Date(T0)]);
        assert.ok(await startCampaignNow(t.db, w.campaignId, new Date(T0)));
        await materialiseAll(t.db, w.campaignId, T0);

        const open = async () => {
          const rows = await messageRows(t.db, w.campaignId);
          return w.devices.map((d) => rows.filter((r) => r.device_id === d && r.status === 'pending').length);
        };
        const given = async () => {
          const rows = await messageRows(t.db, w.campaignId);
          return w.devices.map((d) => rows.filter((r) => r.device_id === d).length);
        };
        const finish = (devices: readonly number[]) => finishOpenRows(t.db, w.campaignId, devices, new Date(clock.now()));
        const record = async (e: Partial<EngineEventMap['outcomes.recorded']>) => {
          events.emit('outcomes.recorded', { count: e.devices?.length ?? 0, at: clock.now(), devices: [], statuses: 0, ...e });
          await clock.settle();
          return pool.stats.passes;
        };

        await pool.start();
        await clock.settle();
        // The first pass hands one lead to each device: all three are now gates.
        assert.equal(pool.stats.passes, 1);
        assert.deepEqual(await open(), [1, 1, 1]);

        // a finishes: b and c still hold the round, nobody may take a lead, no pass.
        await finish([a]);
        assert.equal(await record({ devices: [a] }), 1, 'a gate that is not the last one starts no pass');
        // The same device again, a device that is no gate of anything, an empty batch: no pass.
        assert.equal(await record({ devices: [a] }), 1, 'a device already off the gates starts no pass');
        assert.equal(await record({ devices: [w.devices.reduce((x, y) => Math.max(x, y)) + 1000] }), 1, 'an unknown device starts no pass');
        assert.equal(await record({ count: 0, devices: [], statuses: 0 }), 1, 'an empty batch starts no pass');
        // b finishes: c is still the gate.
        await finish([b]);
        assert.equal(await record({ devices: [b] }), 1, 'the next-to-last gate starts no pass');
        assert.deepEqual(await given(), [1, 1, 1], 'nothing was handed out meanwhile');

        // c finishes the round: one pass, and it hands the next round out.
        await finish([c]);
        assert.equal(await record({ devices: [c] }), 2, 'the last gate starts a pass');
        assert.deepEqual(await open(), [1, 1, 1]);
        assert.deepEqual(await given(), [2, 2, 2]);
        assert.equal(pool.stats.allocated, 6);

        // A batch that wrote a device status change (and named no device) starts a pass.
        assert.equal(await record({ count: 0, devices: [], statuses: 1 }), 3, 'a status change starts a pass');
        assert.deepEqual(await given(), [2, 2, 2], 'with every device busy that pass hands out nothing');

        // One batch finishing every gate at once: one pass, the next round.
        await finish([a, b, c]);
        assert.equal(await record({ devices: [c, a, b] }), 4, 'a batch taking all gates at once starts one pass');
        assert.deepEqual(await given(), [3, 3, 3]);
        // Its devices are gates again: a batch naming only some of them starts nothing.
        await finish([b, c]);
        assert.equal(await record({ devices: [b, c] }), 4);
        await finish([a]);
        assert.equal(await record({ devices: [a] }), 5);
        assert.deepEqual(await given(), [4, 4, 4]);
        assert.equal(pool.stats.allocated, 12);
      } finally {
        await pool.stop();
        await t.dispose();
      }
    });

    it('with no gates known (the last pass found the campaign locked elsewhere), any recorded batch starts a pass', { skip: backend !== 'postgres' && 'needs a second connection' }, async () => {
      await withSecondConnection(backend, async ({ clock, t, other, events, pool }) => {
        const w = await poolWorld(t.db, [60 * SECOND, 60 * SECOND], 4);
        await t.db.query(`update devices set status = 'online', last_seen_at = $2 where id = any($1::bigint[])`, [w.devices, new Date(T0)]);
        assert.ok(await startCampaignNow(t.db, w.campaignId, new Date(T0)));
        await materialiseAll(t.db, w.campaignId, T0);
        const stranger = w.devices.reduce((x, y) => Math.max(x, y)) + 1000;
        const record = async (e: Partial<EngineEventMap['outcomes.recorded']>) => {
          events.emit('outcomes.recorded', { count: e.devices?.length ?? 0, at: clock.now(), devices: [], statuses: 0, ...e });
          await clock.settle();
          return pool.stats.passes;
        };
        await pool.start();
        await clock.settle();
        assert.equal(pool.stats.passes, 1);
        assert.equal(await record({ devices: [stranger] }), 1, 'with gates known, a device outside them starts no pass');

        // The other process holds the campaign row: the next pass skips it and forgets its gates.
        let release!: () => void;
        let locked!: () => void;
        const isLocked = new Promise<void>((r) => (locked = r));
        const held = other.transaction(async (tx) => {
          await tx.query(`select 1 from campaigns where id = $1 for update`, [w.campaignId]);
          locked();
          await new Promise<void>((r) => (release = r));
        });
        await isLocked;
        assert.equal(await record({ count: 0, statuses: 1 }), 1, 'a skipped campaign counts no pass');
        release();
        await held;
        await clock.settle();
        assert.equal(pool.stats.passes, 1, 'releasing the row announces nothing');

        // Now even a batch naming no gate device starts a pass, which learns the gates again.
        assert.equal(await record({ devices: [stranger] }), 2, 'with no gates known, any batch starts a pass');
        assert.equal(await record({ devices: [stranger] }), 2, 'and once they are known again, it does not');
      });
    });

    it('a batch recorded while a pass runs does not leave its devices among the gates that pass sets', { skip: backend !== 'postgres' && 'needs a second connection' }, async () => {
      await withSecondConnection(backend, async ({ clock, t, other, events, pool }) => {
        const w = await poolWorld(t.db, [60 * SECOND, 60 * SECOND, 60 * SECOND, 60 * SECOND], 12);
        const [a, b, c, d] = w.devices as [number, number, number, number];
        // a, b and c are online; d took part in the campaign before and is offline now: it keeps a
        // lane row, inactive, which a pass rewrites when d comes back.
        await t.db.query(`update devices set status = 'online', last_seen_at = $2 where id = any($1::bigint[])`, [[a, b, c], new Date(T0)]);
        assert.ok(await startCampaignNow(t.db, w.campaignId, new Date(T0)));
        await materialiseAll(t.db, w.campaignId, T0);
        await t.db.query(`insert into campaign_devices (campaign_id, device_id, lane, active) values ($1, $2, 0, false)`, [w.campaignId, d]);
        const counts = () => deviceCounts(t.db, w.campaignId, w.devices);
        const finish = (devices: readonly number[]) => finishOpenRows(t.db, w.campaignId, devices, new Date(clock.now()));
        const emit = (e: Partial<EngineEventMap['outcomes.recorded']>) =>
          events.emit('outcomes.recorded', { count: e.devices?.length ?? 0, at: clock.now(), devices: [], statuses: 0, ...e });
        const record = async (e: Partial<EngineEventMap['outcomes.recorded']>) => {
          emit(e);
          await clock.settle();
          return pool.stats.passes;
        };

        await pool.start();
        await clock.settle();
        assert.equal(pool.stats.passes, 1);
        assert.deepEqual((await counts()).open, [1, 1, 1, 0], 'round 1 goes to the three online devices');
        await finish([c]);
        assert.equal(await record({ devices: [c] }), 1, 'c was not the last gate: a and b still are');

        // d comes online. The other process holds d's lane row, so the pass that d's status starts
        // reads the devices (a and b open), then waits in its write of d's lane.
        await t.db.query(`update devices set status = 'online', last_seen_at = $2 where id = $1`, [d, new Date(T0)]);
        let release = () => {};
        let locked!: (pid: number) => void;
        const holder = new Promise<number>((r) => (locked = r));
        const held = other.transaction(async (tx) => {
          await tx.query(`select 1 from campaign_devices where campaign_id = $1 and device_id = $2 for update`, [w.campaignId, d]);
          locked((await tx.query<{ pid: number }>(`select pg_backend_pid() as pid`)).rows[0]!.pid);
          await new Promise<void>((r) => (release = r));
        });
        try {
          const holderPid = await Promise.race([
            holder,
            held.then(() => Promise.reject(new Error('the other connection let go of the row early'))),
          ]);
          emit({ statuses: 1 });
          // Until the pass is blocked behind the holder (no clock.settle here: the pass's
          // statement is tracked and would keep it waiting for good).
          for (let tries = 0; ; tries++) {
            const res = await other.query<{ n: number }>(
              `select count(*)::int as n from pg_stat_activity where $1::int = any(pg_blocking_pids(pid))`,
              [holderPid],
            );
            if (res.rows[0]!.n > 0) break;
            assert.ok(tries < 500, 'the pass never waited for the lane row');
            await new Promise((r) => setTimeout(r, 10));
          }
          assert.equal(pool.stats.passes, 1, 'the pass has not finished');
          // Meanwhile a's send is recorded on another connection: the waiting pass has a open.
          await finish([a]);
          emit({ devices: [a] });
        } finally {
          release();
          await held;
        }
        await clock.settle();
        assert.equal(pool.stats.passes, 2, 'the status pass finished, and a (not the last gate then) started none');
        let seen = await counts();
        assert.deepEqual(seen.given, [1, 1, 1, 1], 'd joined level with the others and got a lead');
        assert.deepEqual(seen.open, [0, 1, 0, 1]);
        assert.deepEqual(seen.sent, [1, 0, 1, 0]);
        assert.equal(await queueLength(t.db, w.campaignId), 8);

        // b and d finish: every device has finished round 1. The pass above read a as open, but a
        // was finished by then: b and d are the last gates, and their batch hands round 2 out.
        await finish([b, d]);
        assert.equal(await record({ devices: [b, d] }), 3, 'the batch finishing the last gates starts a pass');
        seen = await counts();
        assert.deepEqual(seen.sent, [1, 1, 1, 1]);
        assert.deepEqual(seen.open, [1, 1, 1, 1], 'no device idles while leads are queued');
        assert.deepEqual(seen.given, [2, 2, 2, 2]);
        assert.equal(await queueLength(t.db, w.campaignId), 4);
        assert.equal(pool.stats.allocated, 8);
      });
    });

    it('a device that comes online mid-round gets a lead once its status is written, without waiting for the round', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      let sim: SimulatorTransport | undefined;
      try {
        const w = await poolWorld(t.db, [60 * SECOND, 90 * SECOND, 120 * SECOND, 30 * SECOND], 16);
        // The fourth device (30 s gap) is offline when the engine connects it.
        const late = w.devices[3]!;
        sim = new SimulatorTransport({ clock, seed: 22, offlineDevices: [late] });
        const engine = virtualEngine(t.db, clock, sim, { pool: NO_POLL });
        let statusBatches = 0;
        engine.events.on('outcomes.recorded', (e) => {
          if (e.statuses > 0) statusBatches++;
        });
        await engine.start();
        // Rounds start at 1 s, 2 s, 122 s, 242 s (the 120 s device sets the pace): at 150 s the
        // third round is under way, with the 120 s device's lead still open.
        await clock.runUntil(T0 + 150 * SECOND);
        const before = await messageRows(t.db, w.campaignId);
        assert.ok(before.filter((r) => r.status === 'sent').length >= 6, 'the campaign is under way');
        assert.equal(before.filter((r) => r.device_id === late).length, 0, 'an offline device is given nothing');
        assert.ok(before.some((r) => r.status === 'pending'), 'the round is still open');
        const statusBatchesBefore = statusBatches;

        sim.bringOnline(late);
        // The dispatcher writes the status with its next flush (at most 1 s later).
        await clock.runUntil(T0 + 153 * SECOND);
        assert.ok(statusBatches > statusBatchesBefore, 'the status change was recorded');
        const after = await messageRows(t.db, w.campaignId);
        assert.equal(after.filter((r) => r.device_id === late).length, 1, 'the device got a lead as soon as it was online');
        const othersOpen = after.filter((r) => r.device_id !== late && r.status === 'pending');
        assert.ok(othersOpen.length > 0, 'before the round it joined was over');

        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);
        const rows = await messageRows(t.db, w.campaignId);
        assert.equal(rows.length, 16);
        assert.deepEqual(rows.map((r) => r.lead_id).sort((a, b) => a - b), w.leads);
        assert.ok(rows.every((r) => r.status === 'sent'), JSON.stringify(rows));
        assert.deepEqual(duplicates(sim.attempts), []);
        // It joined level with the slowest and took part in the next round as well.
        assert.ok(rows.filter((r) => r.device_id === late).length >= 2, 'the late device kept taking part');
        assert.equal(await campaignStatus(t.db, w.campaignId), 'completed');
      } finally {
        sim?.close();
        await t.dispose();
      }
    });
  });
}
