/**
 * Two processes on one PostgreSQL database, each with its own connection pool and dispatcher, sending
 * through one shared simulated WhatsApp. Every send is tagged with the engine that made it, so the
 * tests can say who served which device and when: a device is served by one engine at a time, a
 * message goes out once, and a dead engine's devices pass to the live one only after its lease ends.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as realDelay } from 'node:timers/promises';
import { SystemClock, VirtualClock } from '../../src/engine/clock.js';
import { Engine } from '../../src/engine/engine.js';
import type { Db } from '../../src/store/db.js';
import { CHUNK_LEADS, planChunks, takeDueCampaigns } from '../../src/store/sql/campaigns.js';
import { materialiseAll } from '../../src/engine/materialise.js';
import { SimulatorTransport } from '../../src/transports/simulator.js';
import { openSecondPool, openTestDb, type TestDb } from '../helpers/db.js';
import { SendLog } from '../helpers/send-log.js';
import { buildWorld, duplicates, quietLog, statusCounts, stopEngine, virtualEngine } from '../helpers/world.js';

const T0 = Date.parse('2026-03-06T12:00:00Z');
const DAY = 86_400_000;

/**
 * Starts the campaign before any engine runs. In virtual time a NOTIFY from one pool to another
 * travels over the network, which the clock cannot see: the other engine could sleep through it.
 */
async function startCampaignNow(db: Db, now: number): Promise<number> {
  const [c] = await takeDueCampaigns(db, new Date(now), 1);
  assert.ok(c, 'the campaign is due');
  await planChunks(db, c, CHUNK_LEADS);
  return materialiseAll(db, c.id, now);
}

const skip = process.env.DATABASE_URL ? false : 'needs DATABASE_URL: two processes share a PostgreSQL database (PGlite is one process)';

describe('two dispatchers on one PostgreSQL database', { skip }, () => {
  async function setup(clock: VirtualClock): Promise<{ t: TestDb; second: Db }> {
    const t = await openTestDb('postgres', (p) => clock.track(p));
    const second = await openSecondPool(t, (p) => clock.track(p));
    return { t, second };
  }

  it('split six devices three and three: each device served by one engine, every message sent once', async () => {
    const clock = new VirtualClock(T0);
    const { t, second } = await setup(clock);
    const sim = new SimulatorTransport({ clock, seed: 21, latency: { minMs: 100, maxMs: 500 } });
    try {
      const w = await buildWorld(
        t.db,
        { devices: 6, leads: 120, startsAt: new Date(T0), device: { minDelayMs: 1000, maxDelayMs: 3000 } },
        new Date(T0),
      );
      assert.equal(await startCampaignNow(t.db, T0), 120);
      const log = new SendLog(sim, clock);
      const a = virtualEngine(t.db, clock, log.transportFor('a'), { dispatcher: { owner: 'engine-a', maxDevices: 3 } });
      const b = virtualEngine(second, clock, log.transportFor('b'), { dispatcher: { owner: 'engine-b', maxDevices: 3 } });
      await a.start();
      await b.start();
      assert.deepEqual(a.dispatcher.deviceIds.sort(), w.deviceIds.slice(0, 3));
      assert.deepEqual(b.dispatcher.deviceIds.sort(), w.deviceIds.slice(3));

      await clock.runUntil(T0 + DAY, () => a.idle && b.idle && sim.scheduled === 0);
      await stopEngine(clock, a);
      await stopEngine(clock, b);

      assert.deepEqual(await statusCounts(t.db), { sent: 120 });
      assert.deepEqual(duplicates(sim.attempts), []);
      assert.equal(log.sends.length, 120);
      assert.equal(new Set(log.sends.map((s) => s.message)).size, 120);
      const servedBy = [...log.byDevice()].map(([device, list]) => [device, [...new Set(list.map((s) => s.engine))], list.length]);
      assert.deepEqual(
        servedBy.sort((x, y) => (x[0] as number) - (y[0] as number)),
        w.deviceIds.map((d, i) => [d, [i < 3 ? 'a' : 'b'], 20]),
      );
      // Each row went out through the device its lead belongs to, by the engine holding that device.
      const rows = await t.db.query<{ id: number; device_id: number }>('select id, device_id from messages');
      const deviceOf = new Map(rows.rows.map((r) => [r.id, r.device_id]));
      assert.ok(log.sends.every((s) => deviceOf.get(s.message) === s.device));
    } finally {
      sim.close();
      await second.close();
      await t.dispose();
    }
  });

  it('when one engine dies, the other takes its devices once the lease ends and finishes them: nothing twice, no interleaving', async () => {
    const clock = new VirtualClock(T0);
    const { t, second } = await setup(clock);
    const sim = new SimulatorTransport({ clock, seed: 22, latency: { minMs: 200, maxMs: 1500 } });
    try {
      const w = await buildWorld(
        t.db,
        { devices: 6, leads: 120, startsAt: new Date(T0), device: { minDelayMs: 1000, maxDelayMs: 3000 } },
        new Date(T0),
      );
      await startCampaignNow(t.db, T0);
      const log = new SendLog(sim, clock);
      // A long flush interval leaves outcomes unrecorded at the crash, so recovery has work to do.
      const a = virtualEngine(t.db, clock, log.transportFor('a'), { dispatcher: { owner: 'engine-a', maxDevices: 3, flushIntervalMs: 10_000 } });
      const b = virtualEngine(second, clock, log.transportFor('b'), { dispatcher: { owner: 'engine-b', maxDevices: 6 } });
      const recovered: { sent: number; pending: number; unknown: number }[] = [];
      b.events.on('message.recovered', (e) => recovered.push(e));
      await a.start();
      await b.start();
      const aDevices = w.deviceIds.slice(0, 3);
      assert.deepEqual(a.dispatcher.deviceIds.sort(), aDevices);
      assert.deepEqual(b.dispatcher.deviceIds.sort(), w.deviceIds.slice(3));

      await clock.runUntil(T0 + 15_000);
      await a.abandon();
      const crashAt = clock.now();
      const sentByA = log.sends.filter((s) => s.engine === 'a').length;
      assert.ok(sentByA > 0 && sentByA < 60, `engine a sent ${sentByA} of its 60 before dying`);
      const inFlight = await t.db.query<{ n: number }>(`select count(*)::int as n from messages where status = 'sending' and device_id = any($1::bigint[])`, [aDevices]);
      assert.ok(inFlight.rows[0]!.n > 0, 'the crash left rows in flight');
      const aLeases = await t.db.query<{ device_id: number; expires_at: Date }>(
        `select device_id, expires_at from device_leases where owner = 'engine-a' order by device_id`,
      );
      assert.deepEqual(aLeases.rows.map((r) => r.device_id), aDevices, 'a dead engine keeps its leases until they expire');
      const leaseEnd = Math.max(...aLeases.rows.map((r) => r.expires_at.getTime()));
      assert.ok(leaseEnd > crashAt);

      // Just before the lease ends the devices are still a's; one refresh interval after, b's.
      await clock.advanceTo(leaseEnd - 1);
      assert.deepEqual(b.dispatcher.deviceIds.sort(), w.deviceIds.slice(3));
      await clock.advanceTo(leaseEnd + 20_000);
      assert.deepEqual(b.dispatcher.deviceIds.sort(), w.deviceIds);

      await clock.runUntil(T0 + DAY, () => b.idle && sim.scheduled === 0);
      await stopEngine(clock, b);

      assert.deepEqual(await statusCounts(t.db), { sent: 120 });
      assert.deepEqual(duplicates(sim.attempts), []);
      assert.equal(log.sends.length, 120);
      assert.equal(new Set(log.sends.map((s) => s.message)).size, 120);
      assert.equal(recovered.reduce((n, r) => n + r.sent, 0), inFlight.rows[0]!.n, 'every row left in flight was proven sent');
      assert.equal(recovered.reduce((n, r) => n + r.pending + r.unknown, 0), 0);

      for (const [device, list] of log.byDevice()) {
        const engines = list.map((s) => s.engine).join('');
        if (!aDevices.includes(device)) {
          assert.match(engines, /^b+$/, `device ${device}`);
          continue;
        }
        assert.match(engines, /^a+b+$/, `device ${device}: ${engines}`);
        const lastOfA = list.filter((s) => s.engine === 'a').at(-1)!;
        const firstOfB = list.find((s) => s.engine === 'b')!;
        assert.ok(lastOfA.endAt <= crashAt + 1500, 'a’s last send ended within one latency of the crash');
        assert.ok(firstOfB.startAt >= leaseEnd, `device ${device}: b sent at ${firstOfB.startAt - leaseEnd} ms relative to a’s lease end`);
      }
    } finally {
      sim.close();
      await second.close();
      await t.dispose();
    }
  });

  it('on wall time, two dispatchers racing for ten devices with short gaps send 2,000 messages once, one engine per device at a time', async () => {
    const clock = new SystemClock();
    const t = await openTestDb('postgres');
    const pools = [t.db, await openSecondPool(t)] as const;
    const sim = new SimulatorTransport({ clock, seed: 23, latency: { minMs: 0, maxMs: 3 } });
    const log = new SendLog(sim, clock);
    const leaseTtlMs = 1_200;
    let generation = 0;
    const launch = async (side: 0 | 1): Promise<Engine> => {
      const name = `${side === 0 ? 'a' : 'b'}${++generation}`;
      const engine = new Engine(pools[side], clock, new Map([['simulator', log.transportFor(name)]]), quietLog, {
        // Six each for ten devices: both serve at once, and either can grow into what the other drops.
        dispatcher: { owner: name, leaseTtlMs, maxDevices: 6, flushIntervalMs: 50 },
        maintenance: { intervalMs: DAY },
      });
      await engine.start();
      return engine;
    };
    const running: Engine[] = [];
    try {
      const now = Date.now();
      // Gaps of 15-25 ms make the drain last ~4 s, long enough for every planned handover to happen
      // while work remains (with zero gaps a fast machine drained it before devices changed pools).
      await buildWorld(t.db, { devices: 10, leads: 2_000, startsAt: new Date(now), device: { minDelayMs: 15, maxDelayMs: 25 } }, new Date(now));
      // Both engines' campaign starters race to start it too; only one may.
      running.push(...(await Promise.all([launch(0), launch(1)])));

      const drained = async () => {
        const res = await t.db.query<{ open: number; total: number }>(
          `select count(*) filter (where status in ('pending', 'sending'))::int as open, count(*)::int as total from messages`,
        );
        const { open, total } = res.rows[0]!;
        return total > 0 && open === 0;
      };
      // Hand devices back and forth: one side stops (releasing its leases) and comes back after a
      // pause; a pause longer than a refresh interval lets the other side take some of them first.
      const pauses = [0, 150, 450, 50, 300];
      const deadline = Date.now() + 90_000;
      for (let turn = 0; !(await drained()); turn++) {
        assert.ok(Date.now() < deadline, 'the outbox did not drain in 90 s');
        await realDelay(120);
        if (turn >= 12) continue;
        const side = (turn % 2) as 0 | 1;
        await running[side]!.stop();
        await realDelay(pauses[turn % pauses.length]!);
        running[side] = await launch(side);
      }
      await Promise.all(running.map((e) => e.stop()));

      assert.deepEqual(await statusCounts(t.db), { sent: 2_000 });
      assert.deepEqual(duplicates(sim.attempts), []);
      assert.equal(log.sends.filter((s) => s.ok).length, 2_000);
      assert.equal(new Set(log.sends.map((s) => s.message)).size, 2_000);
      assert.deepEqual(log.crossEngineOverlaps().slice(0, 3), [], 'two engines were sending on one device at once');
      // The handovers happened, so the check above had something to check: devices changed engine,
      // and some passed between the two pools (engine names start with their side).
      const perDevice = [...log.byDevice().values()];
      const changedHands = perDevice.filter((l) => new Set(l.map((s) => s.engine)).size > 1).length;
      assert.ok(changedHands >= 5, `${changedHands} devices changed hands`);
      const crossedPools = perDevice.filter((l) => new Set(l.map((s) => s.engine[0])).size > 1).length;
      assert.ok(crossedPools >= 1, 'no device passed from one pool to the other');
    } finally {
      await Promise.all(running.map((e) => e.stop().catch(() => undefined)));
      sim.close();
      await pools[1].close();
      await t.dispose();
    }
  });
});
