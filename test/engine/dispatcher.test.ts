/**
 * The dispatcher end to end on the virtual clock, against the simulator, on every backend:
 * what was sent to whom and when (the simulator's record) and what the outbox holds afterwards.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DateTime } from 'luxon';
import { VirtualClock } from '../../src/engine/clock.js';
import { DEVICES_CHANNEL } from '../../src/engine/events.js';
import { HOUR_MS } from '../../src/engine/pacing.js';
import { SimulatorTransport, type SendAttempt } from '../../src/transports/simulator.js';
import { backends, openTestDb } from '../helpers/db.js';
import { buildWorld, byDevice, duplicates, runToIdle, statusCounts, stopEngine, virtualEngine, withoutProof } from '../helpers/world.js';

/** Restart and crash tests need a dead engine's leases to expire within the minutes they run. */
const EXPIRING_LEASES = { leaseTtlMs: 60_000 };

const T0 = Date.parse('2026-03-06T12:00:00Z');
const DAY = 86_400_000;

function sentOnly(attempts: readonly SendAttempt[]): SendAttempt[] {
  return attempts.filter((a) => a.outcome === 'sent');
}

for (const backend of backends) {
  describe(`dispatcher on ${backend}`, () => {
    it('sends every message exactly once, each device pacing its gaps within [min, max]', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        const w = await buildWorld(
          t.db,
          { devices: 3, leads: 150, startsAt: new Date(T0), device: { minDelayMs: 5000, maxDelayMs: 15000 } },
          new Date(T0),
        );
        const sim = new SimulatorTransport({ clock, seed: 3, latency: { minMs: 100, maxMs: 2000 } });
        const engine = virtualEngine(t.db, clock, sim);
        await engine.start();
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);

        assert.equal(sim.attempts.length, 150);
        assert.deepEqual(duplicates(sim.attempts), []);
        assert.deepEqual(await statusCounts(t.db), { sent: 150 });
        const perDevice = byDevice(sim.attempts);
        assert.deepEqual([...perDevice.keys()].sort(), [...w.deviceIds].sort());
        for (const [, list] of perDevice) {
          assert.equal(list.length, 50);
          assert.equal(list[0]!.at, T0, 'each device starts at the campaign start');
          for (let i = 1; i < list.length; i++) {
            const gap = list[i]!.at - list[i - 1]!.at;
            assert.ok(gap >= 5000 && gap <= 15000, `gap ${gap} ms outside [5000, 15000]`);
          }
        }
        const rows = await t.db.query<{ n: number }>(
          `select count(*)::int as n from messages where status = 'sent' and attempts = 1 and sent_at is not null
             and finished_at is not null and last_attempt_at is not null and transport_id like 'sim-%'`,
        );
        assert.equal(rows.rows[0]!.n, 150);
        const camp = await t.db.query<{ status: string }>('select status from campaigns where id = $1', [w.campaignId]);
        assert.equal(camp.rows[0]!.status, 'completed');
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('never exceeds the hourly cap (rolling) or the daily cap (owner local day)', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        const zone = 'Asia/Kuala_Lumpur';
        await buildWorld(
          t.db,
          { timeZone: zone, devices: 2, leads: 160, startsAt: new Date(T0), device: { minDelayMs: 1000, maxDelayMs: 3000, hourlyLimit: 12, dailyLimit: 30 } },
          new Date(T0),
        );
        const sim = new SimulatorTransport({ clock, seed: 5 });
        const engine = virtualEngine(t.db, clock, sim);
        await engine.start();
        await runToIdle(clock, engine, sim, T0 + 10 * DAY);
        await stopEngine(clock, engine);

        assert.deepEqual(await statusCounts(t.db), { sent: 160 });
        assert.deepEqual(duplicates(sim.attempts), []);
        for (const [, list] of byDevice(sim.attempts)) {
          const times = list.map((a) => a.at);
          for (let i = 0; i < times.length; i++) {
            const inHour = times.filter((x) => x >= times[i]! && x < times[i]! + HOUR_MS).length;
            assert.ok(inHour <= 12, `${inHour} sends in the hour from ${new Date(times[i]!).toISOString()}`);
          }
          const perDay = new Map<string, number>();
          for (const x of times) {
            const day = DateTime.fromMillis(x, { zone }).toISODate()!;
            perDay.set(day, (perDay.get(day) ?? 0) + 1);
          }
          for (const [day, n] of perDay) assert.ok(n <= 30, `${n} sends on ${day}`);
          // The cap binds: a full day is exactly 30, and the next day starts at local midnight or later.
          assert.equal(Math.max(...perDay.values()), 30);
        }
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('honours a 09:00-18:00 America/New_York window across the March DST change', async () => {
      const start = Date.parse('2026-03-07T12:00:00Z'); // 07:00 EST, before the window opens
      const clock = new VirtualClock(start);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        const zone = 'America/New_York';
        await buildWorld(
          t.db,
          {
            timeZone: zone,
            devices: 2,
            leads: 90,
            startsAt: new Date(start),
            device: { minDelayMs: 60_000, maxDelayMs: 120_000, dailyLimit: 20 },
            window: { startMinute: 9 * 60, endMinute: 18 * 60, days: 127 },
          },
          new Date(start),
        );
        const sim = new SimulatorTransport({ clock, seed: 9 });
        const engine = virtualEngine(t.db, clock, sim);
        await engine.start();
        await runToIdle(clock, engine, sim, start + 10 * DAY);
        await stopEngine(clock, engine);

        assert.deepEqual(await statusCounts(t.db), { sent: 90 });
        for (const a of sim.attempts) {
          const local = DateTime.fromMillis(a.at, { zone });
          const minute = local.hour * 60 + local.minute;
          assert.ok(minute >= 540 && minute < 1080, `sent at ${local.toISO()} outside 09:00-18:00`);
        }
        const firstOfDay = (isoDay: string) =>
          Math.min(...sim.attempts.filter((a) => DateTime.fromMillis(a.at, { zone }).toISODate() === isoDay).map((a) => a.at));
        // 09:00 EST is 14:00Z; after the change 09:00 EDT is 13:00Z.
        assert.equal(new Date(firstOfDay('2026-03-07')).toISOString(), '2026-03-07T14:00:00.000Z');
        assert.equal(new Date(firstOfDay('2026-03-08')).toISOString(), '2026-03-08T13:00:00.000Z');
        assert.equal(new Date(firstOfDay('2026-03-09')).toISOString(), '2026-03-09T13:00:00.000Z');
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('retries transient errors with backoff up to 3 attempts, then fails with the last error', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        await buildWorld(t.db, { devices: 1, leads: 2, startsAt: new Date(T0) }, new Date(T0));
        const sim = new SimulatorTransport({ clock, seed: 1, transientFailureRate: 1 });
        const engine = virtualEngine(t.db, clock, sim, { dispatcher: { retryBaseMs: 30_000 } });
        await engine.start();
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);

        assert.equal(sim.attempts.length, 6);
        for (const [, list] of byDevice(sim.attempts)) assert.equal(list.length, 6);
        const perMessage = new Map<number, number[]>();
        for (const a of sim.attempts) perMessage.set(a.message, [...(perMessage.get(a.message) ?? []), a.at]);
        for (const [, times] of perMessage) {
          assert.equal(times.length, 3);
          assert.ok(times[1]! - times[0]! >= 30_000, 'second attempt waits the base backoff');
          assert.ok(times[2]! - times[1]! >= 60_000, 'third attempt waits twice as long');
        }
        const rows = await t.db.query<{ status: string; attempts: number; error_code: string; error: string }>(
          'select status, attempts, error_code, error from messages order by id',
        );
        for (const r of rows.rows) {
          assert.equal(r.status, 'failed');
          assert.equal(r.attempts, 3);
          assert.equal(r.error_code, 'NETWORK');
          assert.match(r.error, /transient/);
        }
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('fails a permanent error at once, without retrying', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        await buildWorld(t.db, { devices: 1, leads: 3, startsAt: new Date(T0) }, new Date(T0));
        const sim = new SimulatorTransport({ clock, seed: 1, permanentFailureRate: 1 });
        const engine = virtualEngine(t.db, clock, sim);
        await engine.start();
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);
        assert.equal(sim.attempts.length, 3);
        assert.deepEqual(await statusCounts(t.db), { failed: 3 });
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('keeps an offline device’s messages pending until it is back', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        const w = await buildWorld(t.db, { devices: 2, leads: 20, startsAt: new Date(T0), device: { minDelayMs: 1000, maxDelayMs: 2000 } }, new Date(T0));
        const offline = w.deviceIds[1]!;
        const sim = new SimulatorTransport({ clock, seed: 2, offlineDevices: [offline] });
        const engine = virtualEngine(t.db, clock, sim);
        await engine.start();
        await clock.runUntil(T0 + HOUR_MS);
        const mid = await t.db.query<{ status: string; n: number }>(
          'select status, count(*)::int as n from messages where device_id = $1 group by status',
          [offline],
        );
        assert.deepEqual(mid.rows, [{ status: 'pending', n: 10 }]);
        const devRow = await t.db.query<{ status: string }>('select status from devices where id = $1', [offline]);
        assert.notEqual(devRow.rows[0]!.status, 'online');

        const back = T0 + 2 * HOUR_MS;
        await clock.advanceTo(back);
        sim.bringOnline(offline);
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);

        assert.deepEqual(await statusCounts(t.db), { sent: 20 });
        const late = sim.attempts.filter((a) => a.device === offline);
        assert.equal(late.length, 10);
        assert.ok(late.every((a) => a.at >= back));
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('pauses a restricted device until the restriction ends and never retries that send', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        const w = await buildWorld(t.db, { devices: 1, leads: 10, startsAt: new Date(T0), device: { minDelayMs: 60_000, maxDelayMs: 60_000 } }, new Date(T0));
        const sim = new SimulatorTransport({ clock, seed: 2 });
        const engine = virtualEngine(t.db, clock, sim);
        const restrictedUntil = T0 + 5 * 60_000 + 3 * HOUR_MS;
        await engine.start();
        await clock.advanceTo(T0 + 3 * 60_000 + 30_000); // 4 sends, at 0, 1, 2 and 3 minutes
        // Unannounced: the dispatcher learns of it from the next send's error.
        sim.restrict(w.deviceIds[0]!, restrictedUntil, 'reachout time lock', false);
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);

        const outcomes = sim.attempts.map((a) => a.outcome);
        assert.deepEqual(outcomes.slice(0, 5), ['sent', 'sent', 'sent', 'sent', 'restricted']);
        const restrictedMsg = sim.attempts[4]!.message;
        assert.equal(sim.attempts.filter((a) => a.message === restrictedMsg).length, 1, 'never retried');
        const after = sim.attempts.slice(5);
        assert.equal(after.length, 5);
        assert.ok(after.every((a) => a.at >= restrictedUntil && a.outcome === 'sent'));
        const row = await t.db.query<{ status: string; error_code: string }>('select status, error_code from messages where id = $1', [restrictedMsg]);
        assert.deepEqual(row.rows[0], { status: 'failed', error_code: 'RESTRICTED' });
        const dev = await t.db.query<{ paused_until: Date }>('select paused_until from devices where id = $1', [w.deviceIds[0]]);
        assert.equal(dev.rows[0]!.paused_until.getTime(), restrictedUntil);
        assert.deepEqual(await statusCounts(t.db), { sent: 9, failed: 1 });
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('pauses a device at once when the transport announces a restriction', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        const w = await buildWorld(t.db, { devices: 1, leads: 6, startsAt: new Date(T0), device: { minDelayMs: 60_000, maxDelayMs: 60_000 } }, new Date(T0));
        const sim = new SimulatorTransport({ clock, seed: 2 });
        const engine = virtualEngine(t.db, clock, sim);
        const restricted: number[] = [];
        engine.events.on('device.restricted', (e) => restricted.push(e.until));
        const until = T0 + 2 * 60_000 + 30_000 + 24 * HOUR_MS;
        await engine.start();
        await clock.advanceTo(T0 + 2 * 60_000 + 30_000); // 3 sends
        sim.restrict(w.deviceIds[0]!, until, 'message capping');
        await runToIdle(clock, engine, sim, T0 + 3 * DAY);
        await stopEngine(clock, engine);
        assert.deepEqual(restricted, [until]);
        assert.deepEqual(sim.attempts.map((a) => a.outcome), Array(6).fill('sent'));
        assert.ok(sim.attempts.slice(3).every((a) => a.at >= until), 'nothing is attempted while restricted');
        const dev = await t.db.query<{ paused_until: Date; pause_reason: string }>('select paused_until, pause_reason from devices where id = $1', [w.deviceIds[0]]);
        assert.deepEqual(dev.rows[0], { paused_until: new Date(until), pause_reason: 'message capping' });
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('re-reads a device it serves when told it changed: a pause takes effect at once', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        const w = await buildWorld(t.db, { devices: 1, leads: 8, startsAt: new Date(T0), device: { minDelayMs: 60_000, maxDelayMs: 60_000 } }, new Date(T0));
        const sim = new SimulatorTransport({ clock, seed: 2 });
        const engine = virtualEngine(t.db, clock, sim);
        await engine.start();
        await clock.advanceTo(T0 + 2 * 60_000 + 30_000); // 3 sends
        const until = T0 + 2 * HOUR_MS;
        await t.db.query('update devices set paused_until = $2, pause_reason = $3 where id = $1', [w.deviceIds[0], new Date(until), 'paused by the owner']);
        await t.db.notify(DEVICES_CHANNEL, JSON.stringify({ devices: w.deviceIds }));
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);
        assert.equal(sim.attempts.length, 8);
        assert.ok(sim.attempts.slice(0, 3).every((a) => a.at < T0 + 3 * 60_000));
        assert.equal(sim.attempts[3]!.at, until, 'the next send waits for the end of the pause');
        assert.deepEqual(await statusCounts(t.db), { sent: 8 });
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('sends nothing twice when stopped and restarted mid-run', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        await buildWorld(t.db, { devices: 4, leads: 200, startsAt: new Date(T0), device: { minDelayMs: 2000, maxDelayMs: 4000 } }, new Date(T0));
        const sim = new SimulatorTransport({ clock, seed: 4, latency: { minMs: 200, maxMs: 900 } });
        let engine = virtualEngine(t.db, clock, sim, { dispatcher: EXPIRING_LEASES });
        await engine.start();
        for (let round = 1; round <= 3; round++) {
          await clock.runUntil(T0 + round * 40_000);
          await stopEngine(clock, engine);
          engine = virtualEngine(t.db, clock, sim, { dispatcher: EXPIRING_LEASES });
          await engine.start();
        }
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);
        assert.equal(sentOnly(sim.attempts).length, 200);
        assert.deepEqual(duplicates(sim.attempts), []);
        assert.deepEqual(await statusCounts(t.db), { sent: 200 });
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('after a crash mid-send, settles in-flight rows from the transport’s proof: nothing resent, nothing lost', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        await buildWorld(t.db, { devices: 5, leads: 100, startsAt: new Date(T0), device: { minDelayMs: 1000, maxDelayMs: 2000 } }, new Date(T0));
        const sim = new SimulatorTransport({ clock, seed: 8, latency: { minMs: 500, maxMs: 3000 } });
        const first = virtualEngine(t.db, clock, sim, { dispatcher: { ...EXPIRING_LEASES, flushIntervalMs: 10_000 } });
        await first.start();
        await clock.runUntil(T0 + 20_000);
        await first.abandon(); // as if killed: nothing more is recorded, leases stay
        const left = await t.db.query<{ n: number }>(`select count(*)::int as n from messages where status = 'sending'`);
        assert.ok(left.rows[0]!.n > 0, 'the crash left rows in flight');

        // A new process takes over once the dead one's leases expire.
        await clock.advanceTo(T0 + 20_000 + 61_000);
        const second = virtualEngine(t.db, clock, sim, { dispatcher: EXPIRING_LEASES });
        await second.start();
        await runToIdle(clock, second, sim, T0 + DAY);
        await stopEngine(clock, second);
        assert.equal(sentOnly(sim.attempts).length, 100);
        assert.deepEqual(duplicates(sim.attempts), []);
        assert.deepEqual(await statusCounts(t.db), { sent: 100 });
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('marks in-flight rows unknown after a crash when the transport cannot prove anything (at-most-once)', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        await buildWorld(t.db, { devices: 3, leads: 30, startsAt: new Date(T0), device: { minDelayMs: 1000, maxDelayMs: 1000 } }, new Date(T0));
        const sim = new SimulatorTransport({ clock, seed: 8, latency: { minMs: 5000, maxMs: 5000 } });
        // Like a real network, it cannot say what got out.
        const blind = withoutProof(sim);
        const first = virtualEngine(t.db, clock, blind, { dispatcher: EXPIRING_LEASES });
        await first.start();
        await clock.runUntil(T0 + 2_000); // three sends are in flight (5 s latency)
        await first.abandon();
        const inFlight = (await t.db.query<{ id: number }>(`select id from messages where status = 'sending' order by id`)).rows.map((r) => r.id);
        assert.equal(inFlight.length, 3);

        await clock.advanceTo(T0 + 120_000);
        const second = virtualEngine(t.db, clock, blind, { dispatcher: EXPIRING_LEASES });
        await second.start();
        await runToIdle(clock, second, sim, T0 + DAY);
        await stopEngine(clock, second);

        const unknown = await t.db.query<{ id: number; error_code: string; finished_at: Date }>(
          `select id, error_code, finished_at from messages where status = 'unknown' order by id`,
        );
        assert.deepEqual(unknown.rows.map((r) => r.id), inFlight);
        assert.ok(unknown.rows.every((r) => r.error_code === 'INTERRUPTED' && r.finished_at !== null));
        for (const id of inFlight) assert.equal(sim.attempts.filter((a) => a.message === id).length, 1, 'never resent');
        assert.deepEqual(await statusCounts(t.db), { sent: 27, unknown: 3 });
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('resends in-flight rows after a crash when the campaign chose at-least-once', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        await buildWorld(t.db, { devices: 2, leads: 10, startsAt: new Date(T0), delivery: 'at_least_once', device: { minDelayMs: 1000, maxDelayMs: 1000 } }, new Date(T0));
        const sim = new SimulatorTransport({ clock, seed: 8, latency: { minMs: 5000, maxMs: 5000 } });
        const blind = withoutProof(sim);
        const first = virtualEngine(t.db, clock, blind, { dispatcher: EXPIRING_LEASES });
        await first.start();
        await clock.runUntil(T0 + 2_000);
        await first.abandon();
        await clock.advanceTo(T0 + 120_000);
        const second = virtualEngine(t.db, clock, blind, { dispatcher: EXPIRING_LEASES });
        await second.start();
        await runToIdle(clock, second, sim, T0 + DAY);
        await stopEngine(clock, second);
        assert.deepEqual(await statusCounts(t.db), { sent: 10 });
        // The two in flight at the crash went out again: at-least-once, by the user's choice.
        assert.equal(sentOnly(sim.attempts).length, 12);
        sim.close();
      } finally {
        await t.dispose();
      }
    });

    it('records delivered and read receipts without moving a status backwards', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        await buildWorld(t.db, { devices: 2, leads: 40, startsAt: new Date(T0), device: { minDelayMs: 1000, maxDelayMs: 2000 } }, new Date(T0));
        const sim = new SimulatorTransport({
          clock,
          seed: 12,
          receipts: { deliveredAfter: { minMs: 1000, maxMs: 5000 }, readRate: 0.5, readAfter: { minMs: 1000, maxMs: 60_000 } },
        });
        const engine = virtualEngine(t.db, clock, sim);
        await engine.start();
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);
        const counts = await statusCounts(t.db);
        assert.equal((counts.delivered ?? 0) + (counts.read ?? 0), 40);
        assert.ok((counts.read ?? 0) > 5 && (counts.delivered ?? 0) > 5);
        const bad = await t.db.query<{ n: number }>(
          `select count(*)::int as n from messages
            where delivered_at is null or delivered_at < sent_at or (status = 'read') <> (read_at is not null) or read_at < delivered_at`,
        );
        assert.equal(bad.rows[0]!.n, 0);
        sim.close();
      } finally {
        await t.dispose();
      }
    });
  });
}
