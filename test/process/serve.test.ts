/**
 * The `fleetcast` command as an operator meets it: `serve` answers health checks on the port it
 * is given, refuses a data directory another process holds, exits when its port is taken, refuses
 * bad configuration by name; `migrate` is idempotent; an unknown command gets the usage.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { backends } from '../helpers/db.js';
import { deployment, freePort, killAll, runFleetcast, startFleetcast, tempDir, waitUntil } from '../helpers/process.js';

after(killAll);

const quiet = { HOST: '127.0.0.1', FLEETCAST_LOG_LEVEL: 'warn' };

describe('fleetcast serve on PGlite', () => {
  it('listens on PORT, answers /healthz and /readyz, keeps a second process out of its data directory, exits 0 on SIGTERM', async () => {
    const dir = tempDir('serve');
    try {
      const port = await freePort();
      const env = { ...quiet, PORT: String(port), FLEETCAST_DATA_DIR: dir.path };
      // A fresh directory: the process creates the database (initdb) and migrates it itself.
      const server = startFleetcast(['serve'], env);
      const address = await server.ready(60_000);
      assert.equal(address, `http://127.0.0.1:${port}`);

      const alive = await fetch(`${address}/healthz`);
      assert.equal(alive.status, 200);
      assert.deepEqual(await alive.json(), { status: 'ok' });
      const res = await fetch(`${address}/readyz`);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { status: string; store: string; devices: number };
      assert.equal(body.status, 'ok');
      assert.equal(body.store, 'pglite');
      assert.equal(body.devices, 0);
      assert.ok(existsSync(join(dir.path, 'fleetcast.lock')));

      const second = await runFleetcast(['serve'], { ...env, PORT: '0' }, 30_000);
      assert.notEqual(second.code, 0);
      assert.equal(second.signal, null, 'it exited by itself, without waiting to be killed');
      assert.match(second.stderr, /data directory .* is in use/);
      assert.ok(second.stderr.includes(`process ${server.child.pid}`), second.stderr);
      assert.doesNotMatch(second.stderr, /\n\s+at /, 'a message, not a stack trace');
      assert.doesNotMatch(second.stdout, /listening on/);

      const health = await fetch(`${address}/healthz`);
      assert.equal(health.status, 200, 'the refused process left the running one alone');

      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null }, server.stderr);
      assert.ok(!existsSync(join(dir.path, 'fleetcast.lock')), 'a clean exit releases the directory');
    } finally {
      await killAll();
      dir.remove();
    }
  });

  it('fails fast, naming the address, when PORT is taken', async () => {
    const dir = tempDir('busy');
    const blocker = createServer();
    try {
      const port = await freePort();
      await new Promise<void>((resolve, reject) => blocker.once('error', reject).listen(port, '127.0.0.1', resolve));
      const p = startFleetcast(['serve'], { ...quiet, PORT: String(port), FLEETCAST_DATA_DIR: dir.path });
      let exited = false;
      void p.exited.then(() => (exited = true));
      await waitUntil(() => exited || /in use/.test(p.stderr), { timeoutMs: 60_000, everyMs: 50, what: 'serve reports the taken port' });
      // The engine started before the listen failed: the process must still end, not linger
      // holding the data directory (and sending campaigns) without an HTTP server.
      await waitUntil(() => exited, {
        timeoutMs: 10_000,
        everyMs: 50,
        what: 'serve exits after failing to listen',
        detail: () => p.stderr,
      });
      const exit = await p.exited;
      assert.notEqual(exit.code, 0);
      assert.equal(exit.signal, null);
      assert.ok(p.stderr.includes(`127.0.0.1:${port}`), p.stderr);
      assert.doesNotMatch(p.stdout, /listening on/);
      assert.ok(!existsSync(join(dir.path, 'fleetcast.lock')), 'the data directory was released');
    } finally {
      await killAll();
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
      dir.remove();
    }
  });
});

// PGlite's health check is part of the first test above.
for (const backend of backends.filter((b) => b === 'postgres')) {
  describe(`fleetcast serve on ${backend}`, () => {
    it('answers /readyz with the store kind', async () => {
      const d = await deployment(backend);
      try {
        const server = startFleetcast(['serve'], { ...quiet, PORT: '0', ...d.env });
        const res = await fetch(`${await server.ready()}/readyz`);
        assert.equal(res.status, 200);
        const body = (await res.json()) as { status: string; store: string };
        assert.equal(body.status, 'ok');
        assert.equal(body.store, 'postgres');
        assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null }, server.stderr);
      } finally {
        await killAll();
        await d.dispose();
      }
    });
  });
}

for (const backend of backends) {
  describe(`fleetcast migrate on ${backend}`, () => {
    it('applies the migrations once, then finds the database up to date', async () => {
      const d = await deployment(backend, { fresh: true });
      try {
        const env = { ...quiet, ...d.env };
        const first = await runFleetcast(['migrate'], env, 60_000);
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stdout, /^applied migrations \d+(, \d+)*\n$/);
        const again = await runFleetcast(['migrate'], env, 60_000);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(again.stdout, 'database is up to date\n');
      } finally {
        await d.dispose();
      }
    });
  });
}

describe('fleetcast command line', () => {
  it('refuses an invalid PORT by name, without starting', async () => {
    const dir = tempDir('badenv');
    try {
      const res = await runFleetcast(['serve'], { ...quiet, PORT: 'abc', FLEETCAST_DATA_DIR: dir.path }, 30_000);
      assert.equal(res.code, 1);
      assert.match(res.stderr, /invalid configuration/);
      assert.match(res.stderr, /PORT/);
      assert.doesNotMatch(res.stderr, /\n\s+at /, 'a message, not a stack trace');
      assert.doesNotMatch(res.stdout, /listening on/);
      assert.ok(!existsSync(join(dir.path, 'pglite')), 'no database was created');
    } finally {
      dir.remove();
    }
  });

  it('exits 2 with the usage on an unknown command', async () => {
    const res = await runFleetcast(['frobnicate'], quiet, 30_000);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /unknown command "frobnicate"/);
    assert.match(res.stderr, /usage: fleetcast <command>/);
    assert.match(res.stderr, /serve/);
    assert.match(res.stderr, /migrate/);
  });
});
