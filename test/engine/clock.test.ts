/**
 * The two clocks. The virtual clock is what every engine test stands on, so its ordering and its
 * "time stands still while work is pending" rule are checked here on their own, with no database.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as realDelay } from 'node:timers/promises';
import { SystemClock, VirtualClock } from '../../src/engine/clock.js';

const T0 = Date.parse('2026-03-06T12:00:00Z');

describe('VirtualClock', () => {
  it('fires timers in time order, equal times in creation order, each seeing its own time', async () => {
    const clock = new VirtualClock(T0);
    const fired: [string, number][] = [];
    const at = (name: string, offset: number) => void clock.sleepUntil(T0 + offset).then(() => fired.push([name, clock.now()]));
    at('a', 300);
    at('b', 100);
    at('c', 200);
    at('d', 100);
    at('e', 200);
    at('f', 100);

    const reached = await clock.runUntil(T0 + 10_000);

    assert.deepEqual(fired, [
      ['b', T0 + 100],
      ['d', T0 + 100],
      ['f', T0 + 100],
      ['c', T0 + 200],
      ['e', T0 + 200],
      ['a', T0 + 300],
    ]);
    // With no timer left the run ends where the last one fired, not at the horizon.
    assert.equal(reached, T0 + 300);
    assert.equal(clock.now(), T0 + 300);
    assert.equal(clock.nextTimerAt(), undefined);
  });

  it('a sleep until now or the past resolves without a timer', async () => {
    const clock = new VirtualClock(new Date(T0));
    await clock.sleepUntil(T0);
    await clock.sleepUntil(T0 - 5_000);
    assert.equal(clock.nextTimerAt(), undefined);
    assert.equal(clock.now(), T0);
  });

  it('runUntil stops at the horizon (inclusive) and leaves later timers pending', async () => {
    const clock = new VirtualClock(T0);
    const fired: number[] = [];
    for (const offset of [100, 200, 300]) void clock.sleepUntil(T0 + offset).then(() => fired.push(clock.now() - T0));

    assert.equal(await clock.runUntil(T0 + 200), T0 + 200);
    assert.deepEqual(fired, [100, 200]);
    assert.equal(clock.nextTimerAt(), T0 + 300);

    // runUntil only moves time to timers; advanceTo also moves it to the horizon itself.
    assert.equal(await clock.runUntil(T0 + 250), T0 + 200);
    await clock.advanceTo(T0 + 250);
    assert.equal(clock.now(), T0 + 250);
    assert.deepEqual(fired, [100, 200]);

    assert.equal(await clock.runUntil(T0 + 1_000), T0 + 300);
    assert.deepEqual(fired, [100, 200, 300]);
  });

  it('runUntil stops as soon as the stop predicate holds between two instants', async () => {
    const clock = new VirtualClock(T0);
    let ticks = 0;
    let stopLoop = false;
    const loop = (async () => {
      while (!stopLoop) {
        await clock.sleepUntil(clock.now() + 1_000);
        ticks++;
      }
    })();

    const reached = await clock.runUntil(T0 + 60_000, () => ticks >= 5);
    assert.equal(reached, T0 + 5_000);
    assert.equal(ticks, 5);
    assert.equal(clock.nextTimerAt(), T0 + 6_000, 'the loop is asleep again, not run further');

    // A predicate that already holds stops before anything fires.
    assert.equal(await clock.runUntil(T0 + 60_000, () => true), T0 + 5_000);
    assert.equal(ticks, 5);

    stopLoop = true;
    await clock.runUntil(T0 + 60_000);
    await loop;
    assert.equal(ticks, 6);
  });

  it('does not advance while tracked work is pending, even work that waits on a real timer', async () => {
    const clock = new VirtualClock(T0);
    const order: [string, number][] = [];
    let seenDuringWork: number | undefined;
    void clock.sleepUntil(T0 + 1_000).then(() => order.push(['timer', clock.now()]));
    // The continuation schedules an earlier timer: had time jumped to the pending timer while the
    // work ran, this one would fire late and out of order.
    void clock
      .track(realDelay(50).then(() => (seenDuringWork = clock.now())))
      .then(() => clock.sleepUntil(clock.now() + 500))
      .then(() => order.push(['after work', clock.now()]));

    const started = performance.now();
    await clock.runUntil(T0 + 10_000);
    const elapsed = performance.now() - started;

    assert.equal(seenDuringWork, T0);
    assert.deepEqual(order, [
      ['after work', T0 + 500],
      ['timer', T0 + 1_000],
    ]);
    assert.ok(elapsed >= 45, `runUntil returned after ${elapsed.toFixed(1)} ms, before the tracked work settled`);
  });

  it('keeps time still while a tracked promise is pending, and a rejected one releases it too', async () => {
    const clock = new VirtualClock(T0);
    let fired = false;
    void clock.sleepUntil(T0 + 100).then(() => (fired = true));
    const failing = clock.track(realDelay(30).then(() => Promise.reject(new Error('query failed'))));
    const run = clock.runUntil(T0 + 1_000);
    await realDelay(10);
    assert.equal(clock.now(), T0);
    assert.equal(fired, false);
    await assert.rejects(failing, /query failed/);
    assert.equal(await run, T0 + 100);
    assert.equal(fired, true);
  });

  it('an aborted sleep resolves at once and its timer no longer holds the clock', async () => {
    const clock = new VirtualClock(T0);
    const ac = new AbortController();
    let resolved = false;
    const sleeping = clock.sleepUntil(T0 + 3_600_000, ac.signal).then(() => (resolved = true));
    assert.equal(clock.nextTimerAt(), T0 + 3_600_000);

    ac.abort();
    await sleeping;
    assert.equal(resolved, true);
    assert.equal(clock.now(), T0, 'aborting is not waiting');
    assert.equal(clock.nextTimerAt(), undefined);
    assert.equal(await clock.runUntil(Number.MAX_SAFE_INTEGER), T0, 'nothing left to jump to');

    const already = new AbortController();
    already.abort();
    await clock.sleepUntil(T0 + 60_000, already.signal);
    assert.equal(clock.nextTimerAt(), undefined);
  });

  it('an aborted sleep among others is skipped: the run goes to the live timers only', async () => {
    const clock = new VirtualClock(T0);
    const ac = new AbortController();
    const fired: number[] = [];
    void clock.sleepUntil(T0 + 100, ac.signal).then(() => fired.push(clock.now() - T0));
    void clock.sleepUntil(T0 + 200).then(() => fired.push(clock.now() - T0));
    void clock.sleepUntil(T0 + 5_000, ac.signal).then(() => fired.push(clock.now() - T0));
    ac.abort();

    assert.equal(await clock.runUntil(T0 + 10_000), T0 + 200);
    // Both aborted sleeps resolved at T0, without moving time.
    assert.deepEqual(fired, [0, 0, 200]);
  });
});

describe('SystemClock', () => {
  it('reads wall time', () => {
    const before = Date.now();
    const now = new SystemClock().now();
    assert.ok(now >= before && now <= Date.now());
  });

  it('sleepUntil resolves after roughly the time asked', async () => {
    const clock = new SystemClock();
    const started = performance.now();
    await clock.sleepUntil(Date.now() + 120);
    const elapsed = performance.now() - started;
    // Node may fire a timer up to a millisecond early; a loaded machine may fire it late.
    assert.ok(elapsed >= 110 && elapsed < 1_000, `slept ${elapsed.toFixed(1)} ms for 120 ms`);
  });

  it('sleepUntil resolves at once for a time already past, and early when aborted', async () => {
    const clock = new SystemClock();
    let started = performance.now();
    await clock.sleepUntil(Date.now() - 1_000);
    assert.ok(performance.now() - started < 20);

    const ac = new AbortController();
    started = performance.now();
    setTimeout(() => ac.abort(), 40);
    await clock.sleepUntil(Date.now() + 10_000, ac.signal);
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 35 && elapsed < 1_000, `an aborted 10 s sleep took ${elapsed.toFixed(1)} ms`);

    const already = new AbortController();
    already.abort();
    started = performance.now();
    await clock.sleepUntil(Date.now() + 10_000, already.signal);
    assert.ok(performance.now() - started < 20);
  });

  it('tracks nothing: track returns the promise as it is', async () => {
    const clock = new SystemClock();
    const p = Promise.resolve(7);
    assert.equal(clock.track(p), p);
    assert.equal(clock.virtual, false);
    assert.equal(new VirtualClock(T0).virtual, true);
  });
});
