/**
 * The real `fleetcast serve` process stopped mid-campaign, by SIGKILL or by SIGTERM, and started
 * again on the same store: every message ends `sent`, none twice (by the simulator's own log of
 * what went out), and the campaign completes. The send log the simulator appends to before
 * answering is what lets the second process prove which of the rows the first left `sending` went
 * out, so nothing is left `unknown` and nothing is resent.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { migrate } from '../../src/store/migrate.js';
import { backends, type Backend } from '../helpers/db.js';
import { buildWorld, statusCounts, type World } from '../helpers/world.js';
import {
  countLines,
  deployment,
  killAll,
  readSimLog,
  startFleetcast,
  tempDir,
  waitUntil,
  type Deployment,
  type Fleetcast,
} from '../helpers/process.js';

const DEVICES = 20;
const LEADS = 3000;
/** Enough sends to be well into the run, few enough to leave most of it to the second process. */
const KILL_AFTER_LINES = 300;

after(killAll);

interface Run {
  d: Deployment;
  world: World;
  log: string;
  env: Record<string, string>;
  dispose(): Promise<void>;
}

async function prepare(backend: Backend): Promise<Run> {
  const d = await deployment(backend);
  const tmp = tempDir('crash');
  const log = join(tmp.path, 'simulator.jsonl');
  let world: World;
  try {
    const db = await d.open();
    try {
      await migrate(db, new Date());
      const now = new Date();
      world = await buildWorld(db, { devices: DEVICES, leads: LEADS, startsAt: now, device: { minDelayMs: 0, maxDelayMs: 5 } }, now);
    } finally {
      // PGlite: the directory is locked until closed, and the child must be able to take it.
      await db.close();
    }
  } catch (err) {
    await d.dispose();
    tmp.remove();
    throw err;
  }
  return {
    d,
    world,
    log,
    env: {
      ...d.env,
      PORT: '0',
      HOST: '127.0.0.1',
      FLEETCAST_LOG_LEVEL: 'warn',
      FLEETCAST_SIMULATOR_LOG: log,
      FLEETCAST_SIMULATOR_LATENCY_MS: '2',
      FLEETCAST_LEASE_TTL_MS: '2000',
    },
    dispose: async () => {
      await killAll();
      await d.dispose();
      tmp.remove();
    },
  };
}

function serve(run: Run): Fleetcast {
  return startFleetcast(['serve'], run.env);
}

function output(...ps: Fleetcast[]): () => string {
  return () => ps.map((p, i) => `process ${i + 1} (pid ${p.child.pid}) stderr:\n${p.stderr}`).join('\n');
}

/** Waits until the simulator has logged a `sent` line for every message, `sender` still running. */
async function waitAllSent(run: Run, sender: Fleetcast, earlier: Fleetcast[]): Promise<void> {
  await waitUntil(
    () => {
      sender.assertRunning();
      return readSimLog(run.log).sent.size >= LEADS;
    },
    {
      timeoutMs: 60_000,
      everyMs: 50,
      what: `all ${LEADS} messages are logged as sent`,
      detail: () => `${readSimLog(run.log).sent.size} sent so far\n${output(...earlier, sender)()}`,
    },
  );
}

async function health(p: Fleetcast): Promise<{ status: string; store: string; devices: number }> {
  const res = await fetch(`${await p.ready()}/readyz`);
  assert.equal(res.status, 200);
  return (await res.json()) as { status: string; store: string; devices: number };
}

/** What the store and the send log hold once the last process has exited. */
async function assertSettled(run: Run, pids: number[]): Promise<void> {
  const sim = readSimLog(run.log);
  const db = await run.d.open();
  try {
    assert.deepEqual(await statusCounts(db), { sent: LEADS }, 'every message sent: none lost, none unknown');
    const ids = (await db.query<{ id: number }>('select id from messages order by id')).rows.map((r) => r.id);
    assert.deepEqual(
      [...sim.sent.keys()].sort((a, b) => a - b),
      ids,
      'the simulator sent exactly the messages of the outbox',
    );
    const twice = [...sim.sent].filter(([, n]) => n > 1).map(([id]) => id);
    assert.deepEqual(twice, [], 'no message sent twice');
    const camp = await db.query<{ status: string }>('select status from campaigns where id = $1', [run.world.campaignId]);
    assert.equal(camp.rows[0]!.status, 'completed', 'the campaign completed');
  } finally {
    await db.close();
  }
  for (const pid of pids) {
    assert.ok(
      sim.attempts.some((a) => a.by === `pid-${pid}`),
      `process ${pid} sent some of the campaign`,
    );
  }
}

for (const backend of backends) {
  describe(`fleetcast serve stopped mid-campaign and restarted, on ${backend}`, () => {
    it('SIGKILL: the restarted process proves what was in flight, sends the rest once, completes the campaign', async () => {
      const run = await prepare(backend);
      try {
        const first = serve(run);
        await first.ready();
        await waitUntil(() => {
          first.assertRunning();
          return countLines(run.log) >= KILL_AFTER_LINES;
        }, {
          timeoutMs: 30_000,
          what: `${KILL_AFTER_LINES} send attempts are logged`,
          detail: output(first),
        });
        first.kill('SIGKILL');
        assert.deepEqual(await first.exited, { code: null, signal: 'SIGKILL' });
        if (backend === 'pglite') {
          // The dead process's lock stays behind; the restart below must take it over.
          assert.ok(existsSync(join(run.env.FLEETCAST_DATA_DIR!, 'fleetcast.lock')));
        }

        const atKill = readSimLog(run.log);
        // A kill can land mid-write; only the last line can be cut short.
        assert.ok(atKill.unparsable.length <= 1, `unparsable lines: ${JSON.stringify(atKill.unparsable)}`);
        assert.ok(atKill.sent.size < LEADS, 'the kill landed mid-campaign');
        const counts = await run.d.peek(statusCounts);
        assert.ok((counts.sending ?? 0) > 0, `the kill left rows in flight: ${JSON.stringify(counts)}`);

        const second = serve(run);
        await second.ready();
        await waitAllSent(run, second, [first]);
        assert.deepEqual(await second.stop('SIGTERM'), { code: 0, signal: null }, output(first, second)());

        assert.ok(readSimLog(run.log).unparsable.length <= 1);
        await assertSettled(run, [first.child.pid!, second.child.pid!]);
      } finally {
        await run.dispose();
      }
    });

    it('SIGKILL after the last send, before it was recorded: the restart settles the rows and completes the campaign', async () => {
      const run = await prepare(backend);
      try {
        const first = serve(run);
        await first.ready();
        // Outcomes are recorded in batches up to a second apart: killed right after the last send,
        // the process leaves the campaign's last rows `sending` and the campaign running.
        await waitUntil(() => {
          first.assertRunning();
          return readSimLog(run.log).sent.size >= LEADS;
        }, {
          timeoutMs: 60_000,
          everyMs: 2,
          what: `all ${LEADS} messages are logged as sent`,
          detail: output(first),
        });
        first.kill('SIGKILL');
        await first.exited;
        const left = await run.d.peek(async (db) => {
          const counts = await statusCounts(db);
          const camp = await db.query<{ status: string }>('select status from campaigns where id = $1', [run.world.campaignId]);
          return { counts, campaign: camp.rows[0]!.status };
        });
        if (left.campaign === 'completed' || (left.counts.sending ?? 0) === 0) {
          // The batch was recorded before the kill landed: nothing left to settle this time. The
          // campaign may still be running (killed between the record and the completion, which
          // are two statements): the restart must complete it all the same.
          assert.deepEqual(left.counts, { sent: LEADS });
        } else {
          assert.ok((left.counts.sending ?? 0) > 0, JSON.stringify(left));
        }

        const second = serve(run);
        await second.ready();
        // Devices are adopted (and what was in flight settled) before they are served.
        await waitUntil(async () => {
          second.assertRunning();
          return (await health(second)).devices === DEVICES;
        }, {
          timeoutMs: 30_000,
          everyMs: 100,
          what: `the restarted process serves all ${DEVICES} devices`,
          detail: output(first, second),
        });
        assert.deepEqual(await second.stop('SIGTERM'), { code: 0, signal: null }, output(first, second)());

        await assertSettled(run, [first.child.pid!]);
        assert.ok(!readSimLog(run.log).attempts.some((a) => a.by === `pid-${second.child.pid}`), 'nothing was resent');
      } finally {
        await run.dispose();
      }
    });

    it('SIGTERM: the first process finishes what it has in flight and exits 0, the second finishes the campaign', async () => {
      const run = await prepare(backend);
      try {
        const first = serve(run);
        await first.ready();
        await waitUntil(() => {
          first.assertRunning();
          return countLines(run.log) >= KILL_AFTER_LINES;
        }, {
          timeoutMs: 30_000,
          what: `${KILL_AFTER_LINES} send attempts are logged`,
          detail: output(first),
        });
        assert.deepEqual(await first.stop('SIGTERM'), { code: 0, signal: null }, output(first)());

        const atStop = readSimLog(run.log);
        assert.deepEqual(atStop.unparsable, []);
        assert.ok(atStop.sent.size < LEADS, 'stopped mid-campaign');
        await run.d.peek(async (db) => {
          const counts = await statusCounts(db);
          assert.equal(counts.sending, undefined, `a graceful stop leaves nothing in flight: ${JSON.stringify(counts)}`);
          assert.equal(counts.sent, atStop.sent.size, 'every send that went out was recorded');
          const leases = await db.query<{ n: number }>('select count(*)::int as n from device_leases');
          assert.equal(leases.rows[0]!.n, 0, 'the devices were handed back');
        });

        const second = serve(run);
        await second.ready();
        await waitAllSent(run, second, [first]);
        assert.deepEqual(await second.stop('SIGTERM'), { code: 0, signal: null }, output(first, second)());

        assert.deepEqual(readSimLog(run.log).unparsable, []);
        await assertSettled(run, [first.child.pid!, second.child.pid!]);
      } finally {
        await run.dispose();
      }
    });
  });
}
