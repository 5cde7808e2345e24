/**
 * The checks a chaos run is judged by, on hand-made send logs: each finds what it must and nothing
 * else, so a run that passes has really been looked at.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capViolations, duplicateSends, gapViolations, resumeTimes } from '../../src/cli/chaos/checks.js';
import type { SendAttempt, SendOutcome } from '../../src/transports/simulator.js';

const T = 1_800_000_000_000;
const HOUR = 3_600_000;
let nextId = 1;
const a = (device: number, at: number, outcome: SendOutcome = 'sent', by = 'pid-1', message = nextId++): SendAttempt => ({
  at,
  device,
  to: '+1',
  message,
  origin: 'campaign:1',
  attempt: 1,
  outcome,
  by,
});

describe('chaos checks', () => {
  it('finds messages sent twice, not messages attempted twice', () => {
    const log = [a(1, T, 'sent', 'pid-1', 7), a(1, T + 10, 'offline', 'pid-1', 8), a(2, T + 20, 'sent', 'pid-2', 8), a(2, T + 30, 'sent', 'pid-2', 7), a(3, T, 'transient_error', 'pid-1', 9), a(3, T + 5, 'sent', 'pid-1', 9)];
    assert.deepEqual(duplicateSends(log), [7]);
  });

  it('finds gaps below a device’s minimum, ignoring sends that never left a disconnected device', () => {
    const log = [a(1, T), a(1, T + 1000), a(1, T + 1999, 'sent', 'pid-2'), a(2, T), a(2, T + 500, 'offline'), a(2, T + 1000), a(3, T), a(3, T + 10)];
    const v = gapViolations(log, new Map([[1, 1000], [2, 1000]]));
    assert.deepEqual(v.map((x) => [x.device, x.gapMs, x.by]), [[1, 999, ['pid-1', 'pid-2']]]);
  });

  it('finds a rolling hour over the cap, wherever it starts, and reports its worst count', () => {
    // 3 per rolling hour allowed: 3 in the first hour, then 2 more inside an hour of the second one.
    const log = [a(1, T), a(1, T + 10 * 60_000), a(1, T + 50 * 60_000), a(1, T + HOUR), a(1, T + HOUR + 5 * 60_000), a(2, T), a(2, T + 1), a(2, T + 2)];
    const v = capViolations(log, new Map([[1, 3], [2, 3]]));
    assert.deepEqual(v.map((x) => [x.device, x.count, x.from - T]), [[1, 4, 10 * 60_000]]);
    assert.deepEqual(capViolations([a(1, T), a(1, T + HOUR), a(1, T + 2 * HOUR)], new Map([[1, 1]])), []);
  });

  it('measures how long a killed worker’s devices waited: for a new lease, and to send again by someone else', () => {
    const kill = { at: T, pid: 1, tag: 'pid-1', devices: [1, 2, 3] };
    const log = [a(1, T - 100, 'sent', 'pid-1'), a(1, T + 50, 'sent', 'pid-1'), a(1, T + 6000, 'sent', 'pid-2'), a(2, T + 7000, 'offline', 'pid-3'), a(2, T + 7500, 'sent', 'pid-3')];
    const leased = new Map([[1, T + 5000], [2, T + 5200], [3, T + 5100]]);
    const [r] = resumeTimes([kill], log, (d) => leased.get(d) ?? null);
    assert.deepEqual(r, { at: T, pid: 1, devices: 3, leasedAgainMs: 5200, sendingAgainMs: 7500, idle: 1 });
    const [never] = resumeTimes([kill], log, (d) => (d === 3 ? null : leased.get(d)!));
    assert.equal(never!.leasedAgainMs, null, 'a device never leased again is reported, not hidden');
  });
});
