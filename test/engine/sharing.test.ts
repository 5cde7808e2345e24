/**
 * Several dispatchers on one PostgreSQL database share the devices fairly: each serves about
 * devices / live processes. A process that joins is handed devices by the others, one that stops
 * hands its own back at once, one that dies stops counting when its heartbeat lapses; through every
 * move each message goes out once, no two engines send on one device at once, and a device's
 * pacing gap holds across the handover.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualClock } from '../../src/engine/clock.js';
import type { Engine } from '../../src/engine/engine.js';
import { materialiseAll } from '../../src/engine/materialise.js';
import type { Db } from '../../src/store/db.js';
import { CHUNK_LEADS, planChunks, takeDueCampaigns } from '../../src/store/sql/campaigns.js';
import { fairShare, heartbeatProcess, liveProcesses, removeProcess } from '../../src/store/sql/processes.js';
import { SimulatorTransport } from '../../src/transports/simulator.js';
import { backends, openSecondPool, openTestDb } from '../helpers/db.js';
import { SendLog } from '../helpers/send-log.js';
import { buildWorld, duplicates, statusCounts, stopEngine, virtualEngine } from '../helpers/world.js';

const T0 = Date.parse('2026-03-06T12:00:00Z');
const DAY = 86_400_000;
const TTL = 30_000;
const MIN_GAP = 1_000;

describe('fair share', () => {
  it('is the ceiling of devices over live processes, so every device has a process', () => {
    assert.equal(fairShare({ devices: 3000, live: 3 }), 1000);
    assert.equal(fairShare({ devices: 10, live: 3 }), 4);
    assert.equal(fairShare({ devices: 2, live: 3 }), 1);
    assert.equal(fairShare({ devices: 0, live: 2 }), 0);
    assert.equal(fairShare({ devices: 5, live: 0 }), 5);
  });
});

for (const backend of backends) {
  describe(`engine process heartbeats on ${backend}`, () => {
    it('counts live processes with the new one, lets lapsed ones stop counting and prunes them after a day', async () => {
      const t = await openTestDb(backend);
      try {
        const now = new Date(T0);
        await buildWorld(t.db, { devices: 7, leads: 0, startsAt: now }, now);
        const info = (owner: string) => ({ owner, host: 'h', pid: 1, role: 'worker', startedAt: now });
        assert.deepEqual(await heartbeatProcess(t.db, info('a'), now, new Date(T0 + TTL), 0), { live: 1, devices: 7 });
        assert.deepEqual(await heartbeatProcess(t.db, info('b'), now, new Date(T0 + TTL), 0), { live: 2, devices: 7 });
        // a renews, b does not: once b's heartbeat lapses a is alone.
        const later = new Date(T0 + TTL + 1);
        assert.deepEqual(await heartbeatProcess(t.db, info('a'), later, new Date(later.getTime() + TTL), 4), { live: 1, devices: 7 });
        assert.deepEqual((await liveProcesses(t.db, later)).map((p) => [p.owner, p.devices]), [['a', 4]]);
        const rows = await t.db.query<{ owner: string }>('select owner from engine_processes order by owner');
        assert.deepEqual(rows.rows.map((r) => r.owner), ['a', 'b'], 'a lapsed row stays for a while');
        const dayLater = new Date(T0 + DAY + TTL + 1);
        await heartbeatProcess(t.db, info('a'), dayLater, new Date(dayLater.getTime() + TTL), 4);
        const left = await t.db.query<{ owner: string }>('select owner from engine_processes order by owner');
        assert.deepEqual(left.rows.map((r) => r.owner), ['a']);
        await removeProcess(t.db, 'a');
        assert.equal((await liveProcesses(t.db, dayLater)).length, 0);
      } finally {
        await t.dispose();
      }
    });
  });
}

/** Starts the campaign before any engine runs (see two-dispatchers.test.ts for why). */
async function startCampaignNow(db: Db, now: number): Promise<number> {
  const [c] = await takeDueCampaigns(db, new Date(now), 1);
  assert.ok(c, 'the campaign is due');
  await planChunks(db, c, CHUNK_LEADS);
  return materialiseAll(db, c.id, now);
}

const skip = process.env.DATABASE_URL ? false : 'needs DATABASE_URL: several processes share a PostgreSQL database (PGlite is one process)';

describe('dispatchers sharing one PostgreSQL database', { skip }, () => {
  it('rebalance as engines join, stop and die: 30 / 15+15 / 10+10+10 / 15+15 / 30, every message once, gaps kept', async () => {
    const clock = new VirtualClock(T0);
    const t = await openTestDb('postgres', (p) => clock.track(p));
    const pools = [t.db, await openSecondPool(t, (p) => clock.track(p)), await openSecondPool(t, (p) => clock.track(p))];
    const sim = new SimulatorTransport({ clock, seed: 31, latency: { minMs: 50, maxMs: 400 } });
    const log = new SendLog(sim, clock);
    const engines: Engine[] = [];
    try {
      const w = await buildWorld(
        t.db,
        { devices: 30, leads: 30 * 60, startsAt: new Date(T0), device: { minDelayMs: MIN_GAP, maxDelayMs: 3_000 } },
        new Date(T0),
      );
      assert.equal(await startCampaignNow(t.db, T0), 1800);
      const launch = async (i: number, name: string) => {
        const e = virtualEngine(pools[i]!, clock, log.transportFor(name), { dispatcher: { owner: name, leaseTtlMs: TTL } });
        await e.start();
        engines[i] = e;
        return e;
      };
      const counts = () => engines.map((e) => e.dispatcher.deviceIds.length);
      const disjoint = () => {
        const all = engines.flatMap((e) => e.dispatcher.deviceIds);
        assert.equal(new Set(all).size, all.length, 'a device served by two engines');
      };
      /** Lets every engine refresh twice: one round to shed, one to take. */
      const settle = async () => {
        await clock.advanceTo(clock.now() + TTL);
        disjoint();
      };

      const a = await launch(0, 'a');
      assert.deepEqual(counts(), [30]);
      await launch(1, 'b');
      await settle();
      assert.deepEqual(counts(), [15, 15]);
      // a kept the lowest ids, b took the ones a shed.
      assert.deepEqual(a.dispatcher.deviceIds.sort((x, y) => x - y), w.deviceIds.slice(0, 15));
      const c = await launch(2, 'c');
      await settle();
      assert.deepEqual(counts(), [10, 10, 10]);
      const live = await liveProcesses(t.db, new Date(clock.now()));
      assert.deepEqual(live.map((p) => p.owner).sort(), ['a', 'b', 'c']);

      // A graceful stop hands everything back at once and leaves the process list.
      await stopEngine(clock, c);
      engines.pop();
      assert.deepEqual((await liveProcesses(t.db, new Date(clock.now()))).map((p) => p.owner).sort(), ['a', 'b']);
      await settle();
      assert.deepEqual(counts(), [15, 15]);

      // A crash keeps its leases and its heartbeat until they lapse; then a takes everything.
      const b = engines.pop()!;
      await b.abandon();
      const crashAt = clock.now();
      await clock.advanceTo(crashAt + TTL / 2);
      assert.deepEqual(counts(), [15], 'a dead engine’s devices wait for its lease to end');
      await clock.advanceTo(crashAt + 2 * TTL);
      assert.deepEqual(counts(), [30]);

      await clock.runUntil(T0 + DAY, () => a.idle && sim.scheduled === 0);
      await stopEngine(clock, a);

      assert.deepEqual(await statusCounts(t.db), { sent: 1800 });
      assert.deepEqual(duplicates(sim.attempts), []);
      assert.equal(new Set(log.sends.map((s) => s.message)).size, 1800);
      assert.deepEqual(log.crossEngineOverlaps().slice(0, 3), [], 'two engines were sending on one device at once');
      let handovers = 0;
      for (const [device, list] of log.byDevice()) {
        for (let i = 1; i < list.length; i++) {
          const gap = list[i]!.startAt - list[i - 1]!.startAt;
          assert.ok(gap >= MIN_GAP, `device ${device}: ${gap} ms between sends ${i - 1} and ${i} (${list[i - 1]!.engine} -> ${list[i]!.engine})`);
          if (list[i]!.engine !== list[i - 1]!.engine) handovers++;
        }
      }
      assert.ok(handovers >= 30, `${handovers} handovers while sending`);
    } finally {
      await Promise.all(engines.map((e) => e.stop().catch(() => undefined)));
      sim.close();
      await pools[1]!.close();
      await pools[2]!.close();
      await t.dispose();
    }
  });
});
