/**
 * `fleetcast serve --role`: API processes and workers sharing one PostgreSQL database. An API
 * process answers the API and sends nothing; workers serve only the health routes on their port,
 * split the devices between them, and when one stops the other takes its devices and finishes the
 * campaign: every message sent once. A role that does not exist stops the process with a message.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { migrate } from '../../src/store/migrate.js';
import { buildWorld, statusCounts } from '../helpers/world.js';
import { deployment, killAll, readSimLog, runFleetcast, startFleetcast, tempDir, waitUntil } from '../helpers/process.js';

after(killAll);

const quiet = { HOST: '127.0.0.1', PORT: '0', FLEETCAST_LOG_LEVEL: 'warn' };

describe('fleetcast serve --role', () => {
  it('refuses a role that does not exist, naming the choices', async () => {
    const dir = tempDir('role');
    try {
      const res = await runFleetcast(['serve', '--role', 'boss'], { ...quiet, FLEETCAST_DATA_DIR: dir.path }, 30_000);
      assert.equal(res.code, 1);
      assert.match(res.stderr, /--role must be one of all, api, worker \(got "boss"\)/);
      assert.doesNotMatch(res.stderr, /\n\s+at /, 'a message, not a stack trace');
      const env = await runFleetcast(['serve'], { ...quiet, FLEETCAST_DATA_DIR: dir.path, FLEETCAST_ROLE: 'boss' }, 30_000);
      assert.equal(env.code, 1);
      assert.match(env.stderr, /FLEETCAST_ROLE/);
    } finally {
      dir.remove();
    }
  });
});

const skip = process.env.DATABASE_URL ? false : 'needs DATABASE_URL: several processes share a PostgreSQL database';

describe('an API process and two workers on one PostgreSQL database', { skip }, () => {
  it('the API sends nothing, the workers split the devices, and a stopped worker’s devices finish on the other', async () => {
    const d = await deployment('postgres');
    const tmp = tempDir('roles');
    const log = join(tmp.path, 'simulator.jsonl');
    try {
      const db = await d.open();
      let world;
      try {
        await migrate(db, new Date());
        const now = new Date();
        world = await buildWorld(db, { devices: 10, leads: 1500, startsAt: now, device: { minDelayMs: 20, maxDelayMs: 40 } }, now);
      } finally {
        await db.close();
      }
      const env = { ...d.env, ...quiet, FLEETCAST_SIMULATOR_LOG: log, FLEETCAST_LEASE_TTL_MS: '3000' };
      const api = startFleetcast(['serve', '--role', 'api'], env);
      const apiAddress = await api.ready(60_000);
      const w1 = startFleetcast(['serve', '--role', 'worker'], env);
      const w2 = startFleetcast(['serve'], { ...env, FLEETCAST_ROLE: 'worker' });
      const [a1, a2] = await Promise.all([w1.ready(60_000), w2.ready(60_000)]);

      const health = async (address: string) => (await (await fetch(`${address}/readyz`)).json()) as { devices: number; messages: { sent: number } | null };
      // The API answers the API; a worker only its health routes.
      assert.equal((await fetch(`${apiAddress}/api/v1/me`)).status, 401);
      assert.equal((await fetch(`${a1}/api/v1/me`)).status, 404);
      assert.equal((await fetch(`${a1}/docs`)).status, 404);
      assert.deepEqual(await health(apiAddress), { status: 'ok', store: 'postgres', devices: 0, messages: null } as never);

      await waitUntil(async () => (await health(a1)).devices === 5 && (await health(a2)).devices === 5, {
        timeoutMs: 20_000,
        everyMs: 100,
        what: 'the two workers hold five devices each',
        detail: () => w1.stderr + w2.stderr,
      });
      await waitUntil(() => readSimLog(log).sent.size >= 200, { timeoutMs: 30_000, everyMs: 50, what: 'sending is under way' });
      assert.deepEqual(await w1.stop('SIGTERM'), { code: 0, signal: null }, w1.stderr);
      await waitUntil(async () => (await health(a2)).devices === 10, { timeoutMs: 10_000, everyMs: 100, what: 'the other worker takes all ten' });

      const check = await d.open();
      try {
        await waitUntil(async () => ((await statusCounts(check)).sent ?? 0) === 1500, {
          timeoutMs: 60_000,
          everyMs: 200,
          what: 'every message is sent',
          detail: () => w2.stderr,
        });
        assert.deepEqual(await statusCounts(check), { sent: 1500 });
        const done = await check.query<{ status: string }>('select status from campaigns where id = $1', [world.campaignId]);
        assert.equal(done.rows[0]!.status, 'completed');
      } finally {
        await check.close();
      }
      const sent = readSimLog(log);
      assert.equal(sent.sent.size, 1500);
      assert.deepEqual([...sent.sent.values()].filter((n) => n > 1), [], 'a message went out twice');
      const by = new Set(sent.attempts.map((a) => a.by));
      assert.equal(by.size, 2, 'both workers sent');
      assert.equal((await health(apiAddress)).messages, null, 'the API process sent nothing');
      for (const p of [api, w2]) assert.deepEqual(await p.stop('SIGTERM'), { code: 0, signal: null }, p.stderr);
    } finally {
      await killAll();
      await d.dispose();
      tmp.remove();
    }
  });
});
