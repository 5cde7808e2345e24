/**
 * The dispatch benchmark with several processes sharing the devices: the workers report what they
 * recorded to the parent, which stops them all once the outbox is done; the figures are verified
 * against the rows (every message sent once, by one of the workers).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('three workers dispatch one outbox and all stop when it is done', { skip: !process.env.DATABASE_URL && 'DATABASE_URL is not set' }, () => {
  const res = spawnSync(process.execPath, [main, 'bench', 'dispatch', '--db', 'postgres', '--processes', '3', '--devices', '45', '--messages', '900', '--json'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(res.status, 0, res.stderr);
  const r = JSON.parse(res.stdout.trim().split('\n').at(-1)!) as {
    verified: boolean;
    messages: number;
    statuses: Record<string, number>;
    perProcess: { recorded: number; endedAfterMs: number }[];
    seconds: number;
  };
  assert.equal(r.verified, true);
  assert.deepEqual(r.statuses, { sent: 900 });
  assert.equal(r.perProcess.length, 3);
  assert.equal(r.perProcess.reduce((n, p) => n + p.recorded, 0), 900);
  // The run ends with the last worker's last record (seconds are rounded to hundredths).
  const last = Math.max(...r.perProcess.map((p) => p.endedAfterMs));
  assert.ok(Math.abs(r.seconds * 1000 - last) <= 10, `${r.seconds} s against the last record at ${last} ms`);
});

test('the graphile-worker baseline: three processes work the queue off and stop once it is empty', { skip: !process.env.DATABASE_URL && 'DATABASE_URL is not set' }, () => {
  const res = spawnSync(process.execPath, [main, 'bench', 'graphile-worker', '--processes', '3', '--devices', '45', '--messages', '900', '--json'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(res.status, 0, res.stderr);
  const r = JSON.parse(res.stdout.trim().split('\n').at(-1)!) as { verified: boolean; messages: number; processes: number };
  assert.equal(r.verified, true);
  assert.equal(r.messages, 900);
  assert.equal(r.processes, 3);
});
