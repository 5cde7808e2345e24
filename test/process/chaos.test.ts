/**
 * A small chaos run as part of the suite: three workers on a private PostgreSQL server, two of
 * them SIGKILLed mid-campaign and restarted, PostgreSQL restarted once, a tenth of the devices
 * flapping, a tenth capped below their load. `npm run chaos` runs the full-size one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runChaos } from '../../src/cli/chaos/run.js';

const skip = process.env.DATABASE_URL ? false : 'runs with the PostgreSQL half of the suite (DATABASE_URL), on a PostgreSQL server of its own';

describe('chaos run', { skip }, () => {
  it('loses nothing and sends nothing twice through kills, a database restart and flapping devices', async () => {
    const r = await runChaos({
      workers: 3,
      devices: 60,
      messages: 1_800,
      kills: 2,
      killEveryMs: 2_500,
      restartAfterMs: 500,
      leaseTtlMs: 3_000,
      minGapMs: 200,
      maxGapMs: 600,
      flapShare: 0.1,
      cappedShare: 0.25,
      hourlyCap: 10,
      restartDatabase: true,
      timeoutMs: 240_000,
      seed: 3,
      progress: false,
    });
    assert.deepEqual(r.failures, []);
    assert.equal(r.passed, true);
    assert.equal(r.duplicates, 0);
    assert.equal(r.gapViolations, 0);
    assert.equal(r.capViolations, 0);
    assert.equal(r.kills, 2);
    assert.ok(r.databaseRestart, 'PostgreSQL was restarted');
    // Capped tenants' devices stopped at their cap, and the rest of their campaign was cancelled.
    const statuses = r.statuses as Record<string, number>;
    assert.equal((statuses.sent ?? 0) + (statuses.cancelled ?? 0), 1_800);
    assert.ok((statuses.cancelled ?? 0) > 0, 'the caps held some messages back');
    assert.ok((r.maxResumeLeasedMs as number) <= 6_000);
  });
});
