/**
 * The wait for a quiet machine between benchmarks: it ends as soon as the machine is quiet, gives
 * up (and says so) at its limit, and asks the PostgreSQL server about autovacuum when there is one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { settleMachine } from '../../src/cli/bench/settle.js';

test('a quiet machine is not waited for', async () => {
  const s = await settleMachine({ postgresUrl: null, quietLoad: Number.POSITIVE_INFINITY });
  assert.equal(s.quiet, true);
  assert.equal(s.autovacuumWorkers, null);
  assert.ok(s.waitedMs < 1000, `waited ${s.waitedMs} ms`);
});

test('a machine that never gets quiet is waited for until the limit, and the result says so', async () => {
  // No load average is below zero.
  const s = await settleMachine({ postgresUrl: null, quietLoad: 0, maxWaitMs: 120, pollMs: 20 });
  assert.equal(s.quiet, false);
  assert.ok(s.waitedMs >= 120, `waited ${s.waitedMs} ms`);
});

test('an unreachable server leaves the wait to the load alone', async () => {
  const s = await settleMachine({ postgresUrl: 'postgresql://postgres@127.0.0.1:1/none', quietLoad: Number.POSITIVE_INFINITY });
  assert.equal(s.quiet, true);
  assert.equal(s.autovacuumWorkers, null);
});

test('with a PostgreSQL server, it checkpoints and counts the autovacuum workers', { skip: !process.env.DATABASE_URL && 'DATABASE_URL is not set' }, async () => {
  const s = await settleMachine({ postgresUrl: process.env.DATABASE_URL!, quietLoad: Number.POSITIVE_INFINITY, maxWaitMs: 2000, pollMs: 200 });
  assert.equal(typeof s.autovacuumWorkers, 'number');
  assert.equal(s.quiet, s.autovacuumWorkers === 0);
});
