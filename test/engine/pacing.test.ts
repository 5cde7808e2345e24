import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DateTime } from 'luxon';
import {
  EVERY_DAY,
  HOUR_MS,
  drawGap,
  emptyHistory,
  hourlyCapOpensAt,
  isWindowOpen,
  localDayStart,
  nextLocalDayStart,
  nextSendTime,
  nextWindowOpening,
  recordSend,
  seededRandom,
  sendsOnDayOf,
  type PacingSettings,
  type SendHistory,
  type SendWindow,
} from '../../src/engine/pacing.js';

const KL = 'Asia/Kuala_Lumpur';
const NY = 'America/New_York';
const LONDON = 'Europe/London';

const MINUTE_MS = 60_000;
const DAY_MS = 24 * HOUR_MS;

/** Instants are always written as UTC ISO strings so every expectation is unambiguous. */
const at = (isoUtc: string): number => {
  const t = Date.parse(isoUtc);
  if (!isoUtc.endsWith('Z') || Number.isNaN(t)) throw new Error(`not a UTC ISO instant: ${isoUtc}`);
  return t;
};
const iso = (t: number): string => new Date(t).toISOString();

function settings(overrides: Partial<PacingSettings> = {}): PacingSettings {
  return { minDelayMs: 0, maxDelayMs: 0, hourlyLimit: null, dailyLimit: null, timeZone: 'UTC', pausedUntil: null, ...overrides };
}

/** Replays sends (with the gap drawn after each) into a history, as the dispatcher would. */
function historyOf(s: PacingSettings, sends: readonly (readonly [string, number])[]): SendHistory {
  return sends.reduce((h, [when, gap]) => recordSend(s, h, at(when), gap), emptyHistory());
}

function window(timeZone: string, start: string, end: string, days = EVERY_DAY): SendWindow {
  const minutes = (hhmm: string): number => {
    const [h, m] = hhmm.split(':').map(Number);
    return h! * 60 + m!;
  };
  return { timeZone, startMinute: minutes(start), endMinute: minutes(end), days };
}

const MON = 1 << 0;
const TUE = 1 << 1;
const FRI = 1 << 4;
const SAT = 1 << 5;
const SUN = 1 << 6;
const WEEKDAYS = 0b0011111;

// Calendar anchors used below (2026): Sat 7 Mar, Sun 8 Mar (US spring forward), Mon 9 Mar;
// Sun 29 Mar (UK spring forward); Sun 25 Oct (UK fall back); Sun 1 Nov (US fall back).

describe('seededRandom', () => {
  it('replays the same sequence for the same seed', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const seqA = Array.from({ length: 1000 }, a);
    const seqB = Array.from({ length: 1000 }, b);
    assert.deepEqual(seqA, seqB);
  });

  it('produces the reference mulberry32 values', () => {
    // Pinned so that a change to the generator (which would silently change every simulation) is noticed.
    const r = seededRandom(42);
    assert.deepEqual([r(), r(), r()], [0.6011037519201636, 0.44829055899754167, 0.8524657934904099]);
  });

  it('gives different sequences for different seeds', () => {
    const a = Array.from({ length: 20 }, seededRandom(1));
    const b = Array.from({ length: 20 }, seededRandom(2));
    assert.notDeepEqual(a, b);
  });

  it('treats the seed as an unsigned 32-bit integer', () => {
    assert.deepEqual(Array.from({ length: 10 }, seededRandom(-1)), Array.from({ length: 10 }, seededRandom(0xffffffff)));
    assert.deepEqual(Array.from({ length: 10 }, seededRandom(2 ** 32 + 7)), Array.from({ length: 10 }, seededRandom(7)));
  });

  it('only returns values in [0, 1), for many seeds', () => {
    for (const seed of [0, 1, 2, 42, 1234567, 0x7fffffff, 0xffffffff]) {
      const r = seededRandom(seed);
      let min = 1;
      let max = 0;
      for (let i = 0; i < 20_000; i++) {
        const x = r();
        assert.ok(x >= 0 && x < 1, `seed ${seed} draw ${i}: ${x}`);
        min = Math.min(min, x);
        max = Math.max(max, x);
      }
      // Spread over the whole interval, not stuck in a corner.
      assert.ok(min < 0.001 && max > 0.999, `seed ${seed}: min ${min}, max ${max}`);
    }
  });

  it('is roughly uniform (ten buckets of 100 000 draws)', () => {
    const r = seededRandom(2026);
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) buckets[Math.floor(r() * 10)]!++;
    for (const count of buckets) assert.ok(Math.abs(count - 10_000) < 400, `bucket count ${count}`);
  });
});

describe('drawGap', () => {
  it('maps the extremes of random() onto min and max', () => {
    assert.equal(drawGap(5000, 15000, () => 0), 5000);
    // The largest double below 1: still max, never max + 1.
    assert.equal(drawGap(5000, 15000, () => 1 - Number.EPSILON / 2), 15000);
    assert.equal(drawGap(5000, 15000, () => 0.5), 10000);
  });

  it('returns min when min equals max, including zero', () => {
    assert.equal(drawGap(7000, 7000, () => 0.99), 7000);
    assert.equal(drawGap(0, 0, () => 0.5), 0);
  });

  it('returns min when max is below min', () => {
    assert.equal(drawGap(9000, 3000, () => 0.99), 9000);
  });

  it('stays a whole number within [min, max] for many seeds and ranges', () => {
    const ranges: [number, number][] = [[0, 1], [0, 10], [5000, 15000], [1, 2], [0, 120_000], [30_000, 30_001]];
    for (const seed of [1, 2, 3, 42, 99]) {
      const r = seededRandom(seed);
      for (const [min, max] of ranges) {
        for (let i = 0; i < 5000; i++) {
          const g = drawGap(min, max, r);
          assert.ok(Number.isInteger(g), `${g} is not an integer`);
          assert.ok(g >= min && g <= max, `${g} outside [${min}, ${max}]`);
        }
      }
    }
  });

  it('hits every value of a small range, both ends included, about equally often', () => {
    const r = seededRandom(7);
    const counts = new Map<number, number>();
    const draws = 110_000;
    for (let i = 0; i < draws; i++) {
      const g = drawGap(10, 20, r);
      counts.set(g, (counts.get(g) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort((a, b) => a - b), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    // Eleven equally likely values: 10 000 each, the ends no rarer than the middle.
    for (const [value, count] of counts) assert.ok(Math.abs(count - 10_000) < 400, `${value} drawn ${count} times`);
  });

  it('reaches both ends of a realistic range and centres on its middle', () => {
    const r = seededRandom(12345);
    let sum = 0;
    let lowest = Infinity;
    let highest = -Infinity;
    const draws = 200_000;
    for (let i = 0; i < draws; i++) {
      const g = drawGap(5000, 5100, r);
      sum += g;
      lowest = Math.min(lowest, g);
      highest = Math.max(highest, g);
    }
    assert.equal(lowest, 5000);
    assert.equal(highest, 5100);
    assert.ok(Math.abs(sum / draws - 5050) < 0.5, `mean ${sum / draws}`);

    const wide = seededRandom(54321);
    let wideSum = 0;
    for (let i = 0; i < draws; i++) wideSum += drawGap(5000, 15000, wide);
    // Standard error of the mean is about 6.5 ms here; 50 ms leaves ample room.
    assert.ok(Math.abs(wideSum / draws - 10_000) < 50, `mean ${wideSum / draws}`);
  });
});

describe('localDayStart and nextLocalDayStart', () => {
  const cases: { zone: string; t: string; start: string; next: string; why: string }[] = [
    { zone: 'UTC', t: '2026-03-10T12:34:56.789Z', start: '2026-03-10T00:00:00.000Z', next: '2026-03-11T00:00:00.000Z', why: 'UTC' },
    { zone: KL, t: '2026-03-10T12:00:00.000Z', start: '2026-03-09T16:00:00.000Z', next: '2026-03-10T16:00:00.000Z', why: 'UTC+8: 20:00 local' },
    { zone: KL, t: '2026-03-09T16:00:00.000Z', start: '2026-03-09T16:00:00.000Z', next: '2026-03-10T16:00:00.000Z', why: 'exactly local midnight' },
    { zone: KL, t: '2026-03-09T15:59:59.999Z', start: '2026-03-08T16:00:00.000Z', next: '2026-03-09T16:00:00.000Z', why: 'one ms before local midnight' },
    { zone: NY, t: '2026-03-08T12:00:00.000Z', start: '2026-03-08T05:00:00.000Z', next: '2026-03-09T04:00:00.000Z', why: 'spring forward: 23-hour day' },
    { zone: NY, t: '2026-11-01T12:00:00.000Z', start: '2026-11-01T04:00:00.000Z', next: '2026-11-02T05:00:00.000Z', why: 'fall back: 25-hour day' },
    { zone: NY, t: '2026-11-02T04:30:00.000Z', start: '2026-11-01T04:00:00.000Z', next: '2026-11-02T05:00:00.000Z', why: '23:30 EST on 1 Nov, the 25th hour' },
    { zone: NY, t: '2026-03-09T04:30:00.000Z', start: '2026-03-09T04:00:00.000Z', next: '2026-03-10T04:00:00.000Z', why: '00:30 EDT on 9 Mar' },
    { zone: LONDON, t: '2026-01-15T12:00:00.000Z', start: '2026-01-15T00:00:00.000Z', next: '2026-01-16T00:00:00.000Z', why: 'GMT' },
    { zone: LONDON, t: '2026-07-01T12:00:00.000Z', start: '2026-06-30T23:00:00.000Z', next: '2026-07-01T23:00:00.000Z', why: 'BST' },
    { zone: LONDON, t: '2026-03-29T12:00:00.000Z', start: '2026-03-29T00:00:00.000Z', next: '2026-03-29T23:00:00.000Z', why: 'UK spring forward: 23-hour day' },
    { zone: LONDON, t: '2026-10-25T12:00:00.000Z', start: '2026-10-24T23:00:00.000Z', next: '2026-10-26T00:00:00.000Z', why: 'UK fall back: 25-hour day' },
  ];
  for (const c of cases) {
    it(`${c.zone} at ${c.t} (${c.why})`, () => {
      assert.equal(iso(localDayStart(at(c.t), c.zone)), c.start);
      assert.equal(iso(nextLocalDayStart(at(c.t), c.zone)), c.next);
    });
  }

  it('gives the US DST days their true lengths', () => {
    assert.equal(nextLocalDayStart(at('2026-03-08T12:00:00Z'), NY) - localDayStart(at('2026-03-08T12:00:00Z'), NY), 23 * HOUR_MS);
    assert.equal(nextLocalDayStart(at('2026-11-01T12:00:00Z'), NY) - localDayStart(at('2026-11-01T12:00:00Z'), NY), 25 * HOUR_MS);
    assert.equal(nextLocalDayStart(at('2026-11-02T12:00:00Z'), NY) - localDayStart(at('2026-11-02T12:00:00Z'), NY), 24 * HOUR_MS);
  });
});

describe('recordSend', () => {
  it('starts from an empty history', () => {
    assert.deepEqual(emptyHistory(), { lastSendAt: null, gapMs: 0, recent: [], dayStart: null, dayEnd: null, dayCount: 0 });
    // A fresh object each time: histories are values, never shared.
    assert.notEqual(emptyHistory(), emptyHistory());
  });

  it('records the send, the gap drawn for the next one and the local day', () => {
    const s = settings({ hourlyLimit: 10, timeZone: KL });
    const h = recordSend(s, emptyHistory(), at('2026-03-10T02:00:00Z'), 8000);
    assert.deepEqual(h, {
      lastSendAt: at('2026-03-10T02:00:00Z'),
      gapMs: 8000,
      recent: [at('2026-03-10T02:00:00Z')],
      dayStart: at('2026-03-09T16:00:00Z'),
      dayEnd: at('2026-03-10T16:00:00Z'),
      dayCount: 1,
    });
  });

  it('caches the true end of the local day on DST change days', () => {
    const s = settings({ timeZone: NY });
    const spring = recordSend(s, emptyHistory(), at('2026-03-08T12:00:00Z'), 0);
    assert.equal(iso(spring.dayStart!), '2026-03-08T05:00:00.000Z');
    assert.equal(iso(spring.dayEnd!), '2026-03-09T04:00:00.000Z');
    const fall = recordSend(s, emptyHistory(), at('2026-11-01T12:00:00Z'), 0);
    assert.equal(iso(fall.dayStart!), '2026-11-01T04:00:00.000Z');
    assert.equal(iso(fall.dayEnd!), '2026-11-02T05:00:00.000Z');
  });

  it('keeps the cached day while later sends fall inside it and renews it on the next day', () => {
    const s = settings({ timeZone: LONDON });
    // 25-hour day: 00:30 BST, then 23:59 GMT, then 00:00 GMT on the 26th.
    const h1 = historyOf(s, [['2026-10-24T23:30:00Z', 0], ['2026-10-25T23:59:00Z', 0]]);
    assert.deepEqual([iso(h1.dayStart!), iso(h1.dayEnd!), h1.dayCount], ['2026-10-24T23:00:00.000Z', '2026-10-26T00:00:00.000Z', 2]);
    const h2 = recordSend(s, h1, at('2026-10-26T00:00:00Z'), 0);
    assert.deepEqual([iso(h2.dayStart!), iso(h2.dayEnd!), h2.dayCount], ['2026-10-26T00:00:00.000Z', '2026-10-27T00:00:00.000Z', 1]);
  });

  it('does not modify the history it is given', () => {
    const s = settings({ hourlyLimit: 3, dailyLimit: 5 });
    const before = historyOf(s, [['2026-03-10T10:00:00Z', 1000], ['2026-03-10T10:10:00Z', 1000]]);
    const snapshot = structuredClone(before);
    recordSend(s, before, at('2026-03-10T10:20:00Z'), 1000);
    assert.deepEqual(before, snapshot);
  });

  it('keeps no recent sends when there is no hourly cap', () => {
    const s = settings({ dailyLimit: 100 });
    const h = historyOf(s, [['2026-03-10T10:00:00Z', 0], ['2026-03-10T10:01:00Z', 0]]);
    assert.deepEqual(h.recent, []);
    assert.equal(h.dayCount, 2);
  });

  it('keeps at most hourlyLimit recent sends, the newest ones', () => {
    const s = settings({ hourlyLimit: 3 });
    const h = historyOf(s, [
      ['2026-03-10T10:00:00Z', 0],
      ['2026-03-10T10:01:00Z', 0],
      ['2026-03-10T10:02:00Z', 0],
      ['2026-03-10T10:03:00Z', 0],
      ['2026-03-10T10:04:00Z', 0],
    ]);
    assert.deepEqual(h.recent.map(iso), ['2026-03-10T10:02:00.000Z', '2026-03-10T10:03:00.000Z', '2026-03-10T10:04:00.000Z']);
  });

  it('drops sends that no longer count in the rolling hour, including one exactly an hour old', () => {
    const s = settings({ hourlyLimit: 10 });
    const h = historyOf(s, [
      ['2026-03-10T10:00:00Z', 0],
      ['2026-03-10T10:30:00Z', 0],
      ['2026-03-10T11:00:00Z', 0],
    ]);
    assert.deepEqual(h.recent.map(iso), ['2026-03-10T10:30:00.000Z', '2026-03-10T11:00:00.000Z']);
  });

  it('counts sends per local day and restarts the count on a new local day', () => {
    const s = settings({ timeZone: KL });
    // 23:59 and then 00:00 local (Kuala Lumpur): different days although the UTC date is the same.
    const h1 = historyOf(s, [['2026-03-10T14:00:00Z', 0], ['2026-03-10T15:59:00Z', 0]]);
    assert.equal(h1.dayCount, 2);
    assert.equal(iso(h1.dayStart!), '2026-03-09T16:00:00.000Z');
    const h2 = recordSend(s, h1, at('2026-03-10T16:00:00Z'), 0);
    assert.equal(h2.dayCount, 1);
    assert.equal(iso(h2.dayStart!), '2026-03-10T16:00:00.000Z');
  });
});

describe('nextSendTime', () => {
  describe('with no history and no limits', () => {
    it('allows a send right now', () => {
      assert.equal(iso(nextSendTime(settings(), emptyHistory(), at('2026-03-10T10:00:00Z'))), '2026-03-10T10:00:00.000Z');
    });
  });

  describe('gap only', () => {
    const s = settings({ minDelayMs: 5000, maxDelayMs: 15000 });
    const h = historyOf(s, [['2026-03-10T10:00:00Z', 12_345]]);

    it('waits for the drawn gap after the last send', () => {
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T10:00:00Z'))), '2026-03-10T10:00:12.345Z');
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T10:00:05Z'))), '2026-03-10T10:00:12.345Z');
    });

    it('allows a send exactly when the gap has elapsed', () => {
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T10:00:12.345Z'))), '2026-03-10T10:00:12.345Z');
    });

    it('returns now once the gap is over', () => {
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T11:00:00Z'))), '2026-03-10T11:00:00.000Z');
    });

    it('uses the gap stored in the history, not the settings range', () => {
      // The gap is drawn once when the send is recorded, so re-asking never re-rolls it.
      const zero = historyOf(s, [['2026-03-10T10:00:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, zero, at('2026-03-10T10:00:00Z'))), '2026-03-10T10:00:00.000Z');
    });
  });

  describe('pausedUntil', () => {
    it('waits until the pause ends', () => {
      const s = settings({ pausedUntil: at('2026-03-10T12:00:00Z') });
      assert.equal(iso(nextSendTime(s, emptyHistory(), at('2026-03-10T10:00:00Z'))), '2026-03-10T12:00:00.000Z');
    });

    it('allows a send exactly when the pause ends', () => {
      const s = settings({ pausedUntil: at('2026-03-10T12:00:00Z') });
      assert.equal(iso(nextSendTime(s, emptyHistory(), at('2026-03-10T12:00:00Z'))), '2026-03-10T12:00:00.000Z');
    });

    it('ignores a pause in the past', () => {
      const s = settings({ pausedUntil: at('2026-03-10T09:00:00Z') });
      assert.equal(iso(nextSendTime(s, emptyHistory(), at('2026-03-10T10:00:00Z'))), '2026-03-10T10:00:00.000Z');
    });
  });

  describe('combined rules take the latest constraint', () => {
    it('a pause later than the gap wins', () => {
      const s = settings({ pausedUntil: at('2026-03-10T10:05:00Z') });
      const h = historyOf(s, [['2026-03-10T10:00:00Z', 30_000]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T10:00:00Z'))), '2026-03-10T10:05:00.000Z');
    });

    it('a gap later than the pause wins', () => {
      const s = settings({ pausedUntil: at('2026-03-10T10:00:10Z') });
      const h = historyOf(s, [['2026-03-10T10:00:00Z', 30_000]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T10:00:00Z'))), '2026-03-10T10:00:30.000Z');
    });

    it('the hourly cap wins over a shorter gap and an earlier pause', () => {
      const s = settings({ hourlyLimit: 2, pausedUntil: at('2026-03-10T10:30:00Z') });
      const h = historyOf(s, [['2026-03-10T10:00:00Z', 0], ['2026-03-10T10:20:00Z', 60_000]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T10:20:00Z'))), '2026-03-10T11:00:00.000Z');
    });

    it('the hourly cap is judged at the time the pause ends, not at now', () => {
      // At now (10:40) the cap is full, but by 11:30 both sends have left the rolling hour.
      const s = settings({ hourlyLimit: 2, pausedUntil: at('2026-03-10T11:30:00Z') });
      const h = historyOf(s, [['2026-03-10T10:00:00Z', 0], ['2026-03-10T10:20:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T10:40:00Z'))), '2026-03-10T11:30:00.000Z');
    });

    it('the daily cap wins over the gap and the hourly cap', () => {
      const s = settings({ hourlyLimit: 10, dailyLimit: 2 });
      const h = historyOf(s, [['2026-03-10T20:00:00Z', 0], ['2026-03-10T20:10:00Z', 5000]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T20:10:00Z'))), '2026-03-11T00:00:00.000Z');
    });

    it('after a daily-cap jump to midnight the hourly cap still applies', () => {
      // Two sends just before midnight fill both caps: midnight frees the day, not the hour.
      const s = settings({ hourlyLimit: 2, dailyLimit: 2, timeZone: KL });
      const h = historyOf(s, [['2026-03-10T15:40:00Z', 0], ['2026-03-10T15:50:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T15:50:00Z'))), '2026-03-10T16:40:00.000Z');
    });

    it('an hourly wait that crosses midnight lands in a fresh day', () => {
      const s = settings({ hourlyLimit: 1, dailyLimit: 5, timeZone: KL });
      const h = historyOf(s, [['2026-03-10T15:30:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T15:30:00Z'))), '2026-03-10T16:30:00.000Z');
    });

    it('a pause ending on a later day is not held back by yesterday\'s daily cap', () => {
      const s = settings({ dailyLimit: 1, pausedUntil: at('2026-03-12T09:15:00Z') });
      const h = historyOf(s, [['2026-03-10T08:00:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T08:00:00Z'))), '2026-03-12T09:15:00.000Z');
    });

    it('a pause ending within a capped day defers to the next local midnight', () => {
      const s = settings({ dailyLimit: 1, timeZone: NY, pausedUntil: at('2026-03-10T18:00:00Z') });
      const h = historyOf(s, [['2026-03-10T14:00:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T14:00:00Z'))), '2026-03-11T04:00:00.000Z');
    });

    it('does not modify the history', () => {
      const s = settings({ hourlyLimit: 2, dailyLimit: 3 });
      const h = historyOf(s, [['2026-03-10T10:00:00Z', 0], ['2026-03-10T10:20:00Z', 0]]);
      const snapshot = structuredClone(h);
      nextSendTime(s, h, at('2026-03-10T10:30:00Z'));
      assert.deepEqual(h, snapshot);
    });
  });
});

describe('hourly cap', () => {
  describe('hourlyCapOpensAt', () => {
    it('returns t when there is no hourly cap', () => {
      const s = settings();
      const h: SendHistory = { ...emptyHistory(), recent: [at('2026-03-10T10:00:00Z')] };
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T10:00:00Z'))), '2026-03-10T10:00:00.000Z');
    });

    it('returns t while fewer than limit sends are in the last hour', () => {
      const s = settings({ hourlyLimit: 3 });
      const h = historyOf(s, [['2026-03-10T10:00:00Z', 0], ['2026-03-10T10:10:00Z', 0]]);
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T10:10:00Z'))), '2026-03-10T10:10:00.000Z');
    });

    it('waits until the oldest counted send is an hour old', () => {
      const s = settings({ hourlyLimit: 3 });
      const h = historyOf(s, [['2026-03-10T10:00:00Z', 0], ['2026-03-10T10:10:00Z', 0], ['2026-03-10T10:20:00Z', 0]]);
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T10:20:00Z'))), '2026-03-10T11:00:00.000Z');
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T10:59:59.999Z'))), '2026-03-10T11:00:00.000Z');
    });

    it('stops counting a send exactly one hour after it', () => {
      const s = settings({ hourlyLimit: 1 });
      const h = historyOf(s, [['2026-03-10T10:00:00Z', 0]]);
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T11:00:00Z'))), '2026-03-10T11:00:00.000Z');
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T10:59:59.999Z'))), '2026-03-10T11:00:00.000Z');
    });

    it('ignores sends older than an hour', () => {
      const s = settings({ hourlyLimit: 2 });
      const h: SendHistory = {
        ...emptyHistory(),
        recent: [at('2026-03-10T09:00:00Z'), at('2026-03-10T09:30:00Z'), at('2026-03-10T10:15:00Z')],
      };
      // At 10:20 the 09:00 send no longer counts; 09:30 and 10:15 do, so the cap frees when 09:30 leaves.
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T10:20:00Z'))), '2026-03-10T10:30:00.000Z');
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T10:30:00Z'))), '2026-03-10T10:30:00.000Z');
    });

    it('copes with more counted sends than the limit (the owner lowered the cap)', () => {
      // With 3 sends counted and a limit of 2, two must expire before one more is allowed.
      const s = settings({ hourlyLimit: 2 });
      const h: SendHistory = {
        ...emptyHistory(),
        recent: [at('2026-03-10T10:00:00Z'), at('2026-03-10T10:10:00Z'), at('2026-03-10T10:20:00Z')],
      };
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T10:30:00Z'))), '2026-03-10T11:10:00.000Z');
    });

    it('sends in the same millisecond all count and all expire together', () => {
      const s = settings({ hourlyLimit: 3 });
      const h = historyOf(s, [['2026-03-10T10:00:00Z', 0], ['2026-03-10T10:00:00Z', 0], ['2026-03-10T10:00:00Z', 0]]);
      assert.equal(iso(hourlyCapOpensAt(s, h, at('2026-03-10T10:00:00Z'))), '2026-03-10T11:00:00.000Z');
    });
  });

  describe('through nextSendTime and recordSend', () => {
    it('allows exactly limit sends in a burst and then waits for the first to age out', () => {
      const s = settings({ hourlyLimit: 5 });
      let h = emptyHistory();
      const sent: string[] = [];
      let now = at('2026-03-10T10:00:00Z');
      for (let i = 0; i < 12; i++) {
        now = nextSendTime(s, h, now);
        sent.push(iso(now));
        h = recordSend(s, h, now, 0);
      }
      assert.deepEqual(sent, [
        ...Array<string>(5).fill('2026-03-10T10:00:00.000Z'),
        ...Array<string>(5).fill('2026-03-10T11:00:00.000Z'),
        ...Array<string>(2).fill('2026-03-10T12:00:00.000Z'),
      ]);
    });

    it('the (limit+1)th send waits until the oldest of the last limit sends + 1 h', () => {
      const s = settings({ hourlyLimit: 4 });
      const h = historyOf(s, [
        ['2026-03-10T09:30:00Z', 0], // already out of the hour at 10:30
        ['2026-03-10T10:05:00Z', 0],
        ['2026-03-10T10:12:00Z', 0],
        ['2026-03-10T10:19:00Z', 0],
        ['2026-03-10T10:30:00Z', 1000],
      ]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T10:30:00Z'))), '2026-03-10T11:05:00.000Z');
      const h2 = recordSend(s, h, at('2026-03-10T11:05:00Z'), 1000);
      assert.equal(iso(nextSendTime(s, h2, at('2026-03-10T11:05:00Z'))), '2026-03-10T11:12:00.000Z');
    });

    it('a limit of 1 spaces sends exactly an hour apart when the gap is shorter', () => {
      const s = settings({ hourlyLimit: 1, minDelayMs: 1000, maxDelayMs: 1000 });
      let h = emptyHistory();
      let now = at('2026-03-10T10:00:00.123Z');
      const sent: string[] = [];
      for (let i = 0; i < 4; i++) {
        now = nextSendTime(s, h, now);
        sent.push(iso(now));
        h = recordSend(s, h, now, 1000);
      }
      assert.deepEqual(sent, ['2026-03-10T10:00:00.123Z', '2026-03-10T11:00:00.123Z', '2026-03-10T12:00:00.123Z', '2026-03-10T13:00:00.123Z']);
    });
  });
});

describe('daily cap', () => {
  describe('sendsOnDayOf', () => {
    it('falls back to zone arithmetic for a history without a cached day end', () => {
      // Kuala Lumpur's 10 March: 9 March 16:00Z to 10 March 16:00Z.
      const s = settings({ dailyLimit: 10, timeZone: KL });
      const h: SendHistory = { ...emptyHistory(), lastSendAt: at('2026-03-10T02:00:00Z'), dayStart: at('2026-03-09T16:00:00Z'), dayEnd: null, dayCount: 4 };
      assert.equal(sendsOnDayOf(s, h, at('2026-03-09T16:00:00Z')), 4);
      assert.equal(sendsOnDayOf(s, h, at('2026-03-10T15:59:59.999Z')), 4);
      assert.equal(sendsOnDayOf(s, h, at('2026-03-10T16:00:00Z')), 0);
      assert.equal(sendsOnDayOf(s, h, at('2026-03-09T15:59:59.999Z')), 0);
    });

    it('is zero before any send', () => {
      assert.equal(sendsOnDayOf(settings({ dailyLimit: 3 }), emptyHistory(), at('2026-03-10T10:00:00Z')), 0);
    });

    it('counts the local day of the zone, not the UTC day', () => {
      // Kuala Lumpur's 10 March runs from 9 March 16:00Z to 10 March 16:00Z.
      const s = settings({ dailyLimit: 10, timeZone: KL });
      const h = historyOf(s, [['2026-03-09T16:00:00Z', 0], ['2026-03-09T23:00:00Z', 0], ['2026-03-10T15:59:59.999Z', 0]]);
      assert.equal(sendsOnDayOf(s, h, at('2026-03-09T16:00:00Z')), 3);
      assert.equal(sendsOnDayOf(s, h, at('2026-03-10T15:59:59.999Z')), 3);
      assert.equal(sendsOnDayOf(s, h, at('2026-03-10T16:00:00Z')), 0);
      assert.equal(sendsOnDayOf(s, h, at('2026-03-09T15:59:59.999Z')), 0);
    });
  });

  describe('Asia/Kuala_Lumpur (UTC+8, no DST)', () => {
    const s = settings({ dailyLimit: 3, timeZone: KL });
    const h = historyOf(s, [['2026-03-10T02:00:00Z', 0], ['2026-03-10T03:00:00Z', 0], ['2026-03-10T04:00:00Z', 0]]);

    it('allows sends up to the limit', () => {
      const two = historyOf(s, [['2026-03-10T02:00:00Z', 0], ['2026-03-10T03:00:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, two, at('2026-03-10T03:00:00Z'))), '2026-03-10T03:00:00.000Z');
    });

    it('a capped device waits until the next local midnight', () => {
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T04:00:00Z'))), '2026-03-10T16:00:00.000Z');
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T15:59:59.999Z'))), '2026-03-10T16:00:00.000Z');
    });

    it('sends at once after local midnight', () => {
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T16:00:00Z'))), '2026-03-10T16:00:00.000Z');
      assert.equal(iso(nextSendTime(s, h, at('2026-03-11T01:00:00Z'))), '2026-03-11T01:00:00.000Z');
    });

    it('does not reset at UTC midnight', () => {
      // 2026-03-11T00:00Z is 08:00 on 11 March in Kuala Lumpur; the day was already new at 16:00Z.
      const late = historyOf(s, [['2026-03-10T17:00:00Z', 0], ['2026-03-10T20:00:00Z', 0], ['2026-03-10T23:00:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, late, at('2026-03-10T23:00:00Z'))), '2026-03-11T16:00:00.000Z');
    });
  });

  describe('America/New_York', () => {
    it('an ordinary EDT day resets at 04:00Z', () => {
      const s = settings({ dailyLimit: 2, timeZone: NY });
      // 23:00 EDT on 9 March is 03:00Z on 10 March: still the 9th locally.
      const h = historyOf(s, [['2026-03-09T20:00:00Z', 0], ['2026-03-10T03:00:00Z', 0]]);
      assert.equal(sendsOnDayOf(s, h, at('2026-03-10T03:30:00Z')), 2);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-10T03:00:00Z'))), '2026-03-10T04:00:00.000Z');
    });

    it('spring forward (2026-03-08, a 23-hour day): the capped device waits until 2026-03-09T04:00Z', () => {
      const s = settings({ dailyLimit: 3, timeZone: NY });
      // 00:30 EST, 01:59 EST, then 03:00 EDT: the clock skipped 02:00-03:00.
      const h = historyOf(s, [['2026-03-08T05:30:00Z', 0], ['2026-03-08T06:59:00Z', 0], ['2026-03-08T07:00:00Z', 0]]);
      assert.equal(h.dayCount, 3);
      assert.equal(iso(h.dayStart!), '2026-03-08T05:00:00.000Z');
      assert.equal(iso(nextSendTime(s, h, at('2026-03-08T07:00:00Z'))), '2026-03-09T04:00:00.000Z');
      // A day of 24 hours from the local midnight would wrongly end at 05:00Z.
      assert.equal(iso(nextSendTime(s, h, at('2026-03-09T04:00:00Z'))), '2026-03-09T04:00:00.000Z');
      assert.equal(sendsOnDayOf(s, h, at('2026-03-09T03:59:59.999Z')), 3);
      assert.equal(sendsOnDayOf(s, h, at('2026-03-09T04:00:00Z')), 0);
    });

    it('the day before spring forward (EST) resets at 05:00Z on 2026-03-08', () => {
      const s = settings({ dailyLimit: 1, timeZone: NY });
      const h = historyOf(s, [['2026-03-07T15:00:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-07T15:00:00Z'))), '2026-03-08T05:00:00.000Z');
    });

    it('fall back (2026-11-01, a 25-hour day): the capped device waits until 2026-11-02T05:00Z', () => {
      const s = settings({ dailyLimit: 3, timeZone: NY });
      // 01:30 EDT, 01:30 EST (the repeated hour), 23:30 EST (04:30Z on 2 November).
      const h = historyOf(s, [['2026-11-01T05:30:00Z', 0], ['2026-11-01T06:30:00Z', 0], ['2026-11-02T04:30:00Z', 0]]);
      assert.equal(h.dayCount, 3);
      assert.equal(iso(h.dayStart!), '2026-11-01T04:00:00.000Z');
      assert.equal(iso(nextSendTime(s, h, at('2026-11-02T04:30:00Z'))), '2026-11-02T05:00:00.000Z');
      // A day of 24 hours from local midnight would wrongly reopen at 04:00Z.
      assert.equal(sendsOnDayOf(s, h, at('2026-11-02T04:59:59.999Z')), 3);
      assert.equal(sendsOnDayOf(s, h, at('2026-11-02T05:00:00Z')), 0);
    });

    it('the day before fall back (EDT) resets at 04:00Z on 2026-11-01', () => {
      const s = settings({ dailyLimit: 1, timeZone: NY });
      const h = historyOf(s, [['2026-10-31T15:00:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-10-31T15:00:00Z'))), '2026-11-01T04:00:00.000Z');
    });
  });

  describe('Europe/London', () => {
    it('resets at 00:00Z in winter (GMT)', () => {
      const s = settings({ dailyLimit: 1, timeZone: LONDON });
      const h = historyOf(s, [['2026-01-15T10:00:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-01-15T10:00:00Z'))), '2026-01-16T00:00:00.000Z');
    });

    it('resets at 23:00Z in summer (BST)', () => {
      const s = settings({ dailyLimit: 1, timeZone: LONDON });
      const h = historyOf(s, [['2026-07-01T10:00:00Z', 0]]);
      assert.equal(iso(nextSendTime(s, h, at('2026-07-01T10:00:00Z'))), '2026-07-01T23:00:00.000Z');
    });

    it('spring forward (2026-03-29, 23 hours) ends at 23:00Z', () => {
      const s = settings({ dailyLimit: 2, timeZone: LONDON });
      const h = historyOf(s, [['2026-03-29T00:30:00Z', 0], ['2026-03-29T22:30:00Z', 0]]);
      assert.equal(h.dayCount, 2);
      assert.equal(iso(nextSendTime(s, h, at('2026-03-29T22:30:00Z'))), '2026-03-29T23:00:00.000Z');
    });

    it('fall back (2026-10-25, 25 hours) ends at 00:00Z on the 26th', () => {
      const s = settings({ dailyLimit: 2, timeZone: LONDON });
      // 00:30 BST and 23:30 GMT on the 25th.
      const h = historyOf(s, [['2026-10-24T23:30:00Z', 0], ['2026-10-25T23:30:00Z', 0]]);
      assert.equal(h.dayCount, 2);
      assert.equal(iso(nextSendTime(s, h, at('2026-10-25T23:30:00Z'))), '2026-10-26T00:00:00.000Z');
    });
  });

  it('uses the settings zone for a history recorded in the same zone', () => {
    // The same three UTC instants are one day in Kuala Lumpur but span two days in New York.
    const sends: [string, number][] = [['2026-03-10T01:00:00Z', 0], ['2026-03-10T03:00:00Z', 0], ['2026-03-10T05:00:00Z', 0]];
    const kl = settings({ dailyLimit: 3, timeZone: KL });
    const ny = settings({ dailyLimit: 3, timeZone: NY });
    assert.equal(iso(nextSendTime(kl, historyOf(kl, sends), at('2026-03-10T05:00:00Z'))), '2026-03-10T16:00:00.000Z');
    assert.equal(iso(nextSendTime(ny, historyOf(ny, sends), at('2026-03-10T05:00:00Z'))), '2026-03-10T05:00:00.000Z');
  });
});

describe('simulated devices (property checks)', () => {
  interface Send {
    at: number;
    gap: number;
  }

  /** A device that always sends the moment nextSendTime allows, drawing each gap from a seeded generator. */
  function simulate(s: PacingSettings, seed: number, from: number, until: number): Send[] {
    const random = seededRandom(seed);
    let h = emptyHistory();
    const sends: Send[] = [];
    let now = from;
    for (;;) {
      now = nextSendTime(s, h, now);
      if (now >= until) return sends;
      // A regression that stops time advancing must fail the test, not hang it.
      if (sends.length >= 20_000) throw new Error(`runaway simulation: ${sends.length} sends by ${iso(now)}`);
      const gap = drawGap(s.minDelayMs, s.maxDelayMs, random);
      h = recordSend(s, h, now, gap);
      sends.push({ at: now, gap });
    }
  }

  /**
   * An independent answer to "when may the next send start", computed from the full send log rather
   * than the trimmed history. The set of allowed instants after `lower` only grows at lower itself,
   * at s + 1h for a recent send s, or at a local midnight, so the earliest allowed candidate is exact.
   */
  function oracle(s: PacingSettings, days: LocalDays, log: readonly number[], dayCounts: ReadonlyMap<number, number>, lower: number): number {
    let i = log.length;
    while (i > 0 && log[i - 1]! > lower - HOUR_MS) i--;
    const recent = log.slice(i);
    const candidates = [lower, days.of(lower).end, ...recent.map((x) => x + HOUR_MS)]
      .filter((c) => c >= lower)
      .sort((a, b) => a - b);
    for (const c of candidates) {
      if (s.hourlyLimit !== null && recent.filter((x) => x > c - HOUR_MS && x <= c).length >= s.hourlyLimit) continue;
      if (s.dailyLimit !== null && (dayCounts.get(days.of(c).start) ?? 0) >= s.dailyLimit) continue;
      return c;
    }
    throw new Error('oracle found no candidate');
  }

  /** Local day boundaries, remembered per day so the replay does not redo the zone arithmetic per send. */
  class LocalDays {
    private days: { start: number; end: number }[] = [];
    constructor(private readonly zone: string) {}
    of(t: number): { start: number; end: number } {
      const known = this.days.find((d) => d.start <= t && t < d.end);
      if (known) return known;
      const day = { start: localDayStart(t, this.zone), end: nextLocalDayStart(t, this.zone) };
      this.days.push(day);
      return day;
    }
  }

  function maxInAnyHour(times: readonly number[]): number {
    // The busiest window [x, x + 1h) can always be taken to start at a send.
    let best = 0;
    let j = 0;
    for (let i = 0; i < times.length; i++) {
      while (j < times.length && times[j]! < times[i]! + HOUR_MS) j++;
      best = Math.max(best, j - i);
    }
    return best;
  }

  interface Scenario {
    name: string;
    settings: PacingSettings;
    from: string;
    days: number;
  }

  const scenarios: Scenario[] = [
    { name: 'zero delay, hourly 1', settings: settings({ hourlyLimit: 1 }), from: '2026-03-10T00:00:00Z', days: 3 },
    { name: 'zero delay, hourly 7', settings: settings({ hourlyLimit: 7 }), from: '2026-03-10T00:00:00Z', days: 3 },
    { name: 'zero delay, hourly 30, daily 200 (Kuala Lumpur)', settings: settings({ hourlyLimit: 30, dailyLimit: 200, timeZone: KL }), from: '2026-03-09T10:00:00Z', days: 3 },
    { name: '0-60 s, hourly 20', settings: settings({ minDelayMs: 0, maxDelayMs: 60_000, hourlyLimit: 20 }), from: '2026-03-10T00:00:00Z', days: 3 },
    { name: '30-90 s, hourly 50 (gap and cap both bind)', settings: settings({ minDelayMs: 30_000, maxDelayMs: 90_000, hourlyLimit: 50 }), from: '2026-03-10T00:00:00Z', days: 3 },
    { name: '5-15 s, hourly 40, daily 250 (Kuala Lumpur)', settings: settings({ minDelayMs: 5000, maxDelayMs: 15_000, hourlyLimit: 40, dailyLimit: 250, timeZone: KL }), from: '2026-03-09T00:00:00Z', days: 4 },
    { name: '1-5 s, hourly 60, daily 300 across US spring forward', settings: settings({ minDelayMs: 1000, maxDelayMs: 5000, hourlyLimit: 60, dailyLimit: 300, timeZone: NY }), from: '2026-03-06T12:00:00Z', days: 5 },
    { name: '1-5 s, hourly 60, daily 300 across US fall back', settings: settings({ minDelayMs: 1000, maxDelayMs: 5000, hourlyLimit: 60, dailyLimit: 300, timeZone: NY }), from: '2026-10-30T12:00:00Z', days: 5 },
    { name: '0-2 min, daily 150 only, across UK fall back', settings: settings({ minDelayMs: 0, maxDelayMs: 120_000, dailyLimit: 150, timeZone: LONDON }), from: '2026-10-23T08:00:00Z', days: 5 },
    { name: '10-20 s, hourly 25, daily 100, paused for the first 30 h (London, spring forward)', settings: settings({ minDelayMs: 10_000, maxDelayMs: 20_000, hourlyLimit: 25, dailyLimit: 100, timeZone: LONDON, pausedUntil: at('2026-03-28T18:00:00Z') }), from: '2026-03-27T12:00:00Z', days: 4 },
  ];
  const seeds = [1, 2, 3, 42, 2026];

  for (const sc of scenarios) {
    describe(sc.name, () => {
      for (const seed of seeds) {
        it(`seed ${seed}`, () => {
          const s = sc.settings;
          const from = at(sc.from);
          const sends = simulate(s, seed, from, from + sc.days * DAY_MS);
          const times = sends.map((x) => x.at);
          assert.ok(sends.length > 0);

          if (s.hourlyLimit !== null) {
            const busiest = maxInAnyHour(times);
            assert.ok(busiest <= s.hourlyLimit, `${busiest} sends in one hour, limit ${s.hourlyLimit}`);
          }

          for (let i = 1; i < sends.length; i++) {
            const prev = sends[i - 1]!;
            assert.ok(sends[i]!.at - prev.at >= prev.gap, `send ${i} at ${iso(sends[i]!.at)} is closer than ${prev.gap} ms to ${iso(prev.at)}`);
          }

          if (s.pausedUntil !== null) assert.ok(times[0]! >= s.pausedUntil);

          // Replay against the oracle: every send is at exactly the earliest instant the rules allow.
          const days = new LocalDays(s.timeZone);
          const dayCounts = new Map<number, number>();
          const log: number[] = [];
          let lower = Math.max(from, s.pausedUntil ?? -Infinity);
          for (const send of sends) {
            const expected = oracle(s, days, log, dayCounts, lower);
            assert.equal(iso(send.at), iso(expected), `send ${log.length}`);
            log.push(send.at);
            const day = days.of(send.at).start;
            dayCounts.set(day, (dayCounts.get(day) ?? 0) + 1);
            lower = Math.max(send.at + send.gap, s.pausedUntil ?? -Infinity);
          }

          if (s.dailyLimit !== null) {
            for (const [day, count] of dayCounts) assert.ok(count <= s.dailyLimit, `${count} sends on the day starting ${iso(day)}`);
          }
        });
      }
    });
  }

  it('a capped device sends exactly dailyLimit per local day and starts each day at local midnight', () => {
    // Zero delay, no hourly cap: every day's quota goes out at the stroke of local midnight.
    const s = settings({ dailyLimit: 4, timeZone: NY });
    const sends = simulate(s, 1, at('2026-03-07T12:00:00Z'), at('2026-03-10T04:00:00Z'));
    assert.deepEqual(sends.map((x) => iso(x.at)), [
      ...Array<string>(4).fill('2026-03-07T12:00:00.000Z'),
      ...Array<string>(4).fill('2026-03-08T05:00:00.000Z'), // midnight EST
      ...Array<string>(4).fill('2026-03-09T04:00:00.000Z'), // midnight EDT, 23 hours later
    ]);
  });

  it('across the US fall-back night the next day starts 25 hours after the previous one', () => {
    const s = settings({ dailyLimit: 2, timeZone: NY });
    const sends = simulate(s, 1, at('2026-10-31T12:00:00Z'), at('2026-11-03T06:00:00Z'));
    assert.deepEqual(sends.map((x) => iso(x.at)), [
      '2026-10-31T12:00:00.000Z',
      '2026-10-31T12:00:00.000Z',
      '2026-11-01T04:00:00.000Z', // midnight EDT
      '2026-11-01T04:00:00.000Z',
      '2026-11-02T05:00:00.000Z', // midnight EST
      '2026-11-02T05:00:00.000Z',
      '2026-11-03T05:00:00.000Z',
      '2026-11-03T05:00:00.000Z',
    ]);
  });
});

describe('send windows', () => {
  it('answers from its per-day cache exactly as working the occurrences out from the instant itself', () => {
    // The reference is the uncached rule: the occurrences from the local day before t, in order.
    const reference = (w: SendWindow, t: number): number => {
      const first = DateTime.fromMillis(t, { zone: w.timeZone }).startOf('day').minus({ days: 1 });
      const wall = (day: DateTime, minute: number): number =>
        day.startOf('day').plus({ days: Math.floor(minute / 1440) }).set({ hour: Math.floor((minute % 1440) / 60), minute: minute % 60 }).toMillis();
      for (let i = 0; i < 9; i++) {
        const day = first.plus({ days: i });
        if ((w.days & (1 << (day.weekday - 1))) === 0) continue;
        const open = wall(day, w.startMinute);
        const close = wall(w.endMinute > w.startMinute ? day : day.plus({ days: 1 }), w.endMinute);
        if (close > open && close > t) return Math.max(open, t);
      }
      throw new Error('never opens');
    };
    const zones = [KL, NY, LONDON, 'Australia/Lord_Howe', 'Asia/Kathmandu', 'Pacific/Kiritimati', 'Pacific/Pago_Pago', 'America/Sao_Paulo', 'UTC'];
    const random = seededRandom(831);
    const pick = (n: number): number => Math.floor(random() * n);
    const from = at('2026-01-01T00:00:00Z');
    // Instants are asked out of order and the same windows again and again, so most answers come
    // from cache entries made for other instants of the same UTC day.
    for (let i = 0; i < 4000; i++) {
      const start = pick(48) * 30;
      const w: SendWindow = { timeZone: zones[pick(zones.length)]!, startMinute: start, endMinute: (start + 30 + pick(46) * 30) % 1440, days: 1 + pick(127) };
      const t = from + pick(730) * DAY_MS + pick(DAY_MS);
      assert.equal(nextWindowOpening(w, t), reference(w, t), `${JSON.stringify(w)} at ${iso(t)}`);
      const later = t + pick(DAY_MS);
      assert.equal(nextWindowOpening(w, later), reference(w, later), `${JSON.stringify(w)} at ${iso(later)}`);
    }
  });

  describe('09:00-18:00 Asia/Kuala_Lumpur (UTC+8)', () => {
    const w = window(KL, '09:00', '18:00');
    const cases: [string, string, string][] = [
      ['2026-03-10T00:00:00.000Z', '2026-03-10T01:00:00.000Z', '08:00 local: opens at 09:00'],
      ['2026-03-09T16:00:00.000Z', '2026-03-10T01:00:00.000Z', 'local midnight'],
      ['2026-03-10T00:59:59.999Z', '2026-03-10T01:00:00.000Z', 'one ms before opening'],
      ['2026-03-10T01:00:00.000Z', '2026-03-10T01:00:00.000Z', 'exactly at opening'],
      ['2026-03-10T05:17:00.000Z', '2026-03-10T05:17:00.000Z', 'inside'],
      ['2026-03-10T09:59:59.999Z', '2026-03-10T09:59:59.999Z', 'one ms before closing'],
      ['2026-03-10T10:00:00.000Z', '2026-03-11T01:00:00.000Z', 'exactly at closing: next day'],
      ['2026-03-10T15:00:00.000Z', '2026-03-11T01:00:00.000Z', '23:00 local'],
    ];
    for (const [t, expected, why] of cases) {
      it(`${t} (${why}) -> ${expected}`, () => {
        assert.equal(iso(nextWindowOpening(w, at(t))), expected);
      });
    }

    it('isWindowOpen is true at the opening instant and false at the closing instant', () => {
      assert.equal(isWindowOpen(w, at('2026-03-10T01:00:00Z')), true);
      assert.equal(isWindowOpen(w, at('2026-03-10T00:59:59.999Z')), false);
      assert.equal(isWindowOpen(w, at('2026-03-10T09:59:59.999Z')), true);
      assert.equal(isWindowOpen(w, at('2026-03-10T10:00:00Z')), false);
    });
  });

  describe('09:00-18:00 America/New_York around spring forward', () => {
    const w = window(NY, '09:00', '18:00');
    const days: { day: string; open: string; close: string; nextOpen: string }[] = [
      { day: '2026-03-07', open: '2026-03-07T14:00:00.000Z', close: '2026-03-07T23:00:00.000Z', nextOpen: '2026-03-08T13:00:00.000Z' },
      { day: '2026-03-08', open: '2026-03-08T13:00:00.000Z', close: '2026-03-08T22:00:00.000Z', nextOpen: '2026-03-09T13:00:00.000Z' },
      { day: '2026-03-09', open: '2026-03-09T13:00:00.000Z', close: '2026-03-09T22:00:00.000Z', nextOpen: '2026-03-10T13:00:00.000Z' },
    ];
    for (const d of days) {
      it(`${d.day} opens at ${d.open} and closes at ${d.close}`, () => {
        // 05:00Z is before 09:00 local on all three days (00:00 or 01:00 local).
        assert.equal(iso(nextWindowOpening(w, at(`${d.day}T05:00:00.000Z`))), d.open);
        assert.equal(isWindowOpen(w, at(d.open) - 1), false);
        assert.equal(isWindowOpen(w, at(d.open)), true);
        assert.equal(isWindowOpen(w, at(d.close) - 1), true);
        assert.equal(isWindowOpen(w, at(d.close)), false);
        assert.equal(iso(nextWindowOpening(w, at(d.close))), d.nextOpen);
      });
    }
  });

  describe('09:00-18:00 America/New_York around fall back', () => {
    const w = window(NY, '09:00', '18:00');
    it('2026-10-31 (EDT) opens 13:00Z and closes 22:00Z; 2026-11-01 (EST) opens 14:00Z and closes 23:00Z', () => {
      assert.equal(iso(nextWindowOpening(w, at('2026-10-31T04:00:00Z'))), '2026-10-31T13:00:00.000Z');
      assert.equal(isWindowOpen(w, at('2026-10-31T22:00:00Z')), false);
      assert.equal(iso(nextWindowOpening(w, at('2026-10-31T22:00:00Z'))), '2026-11-01T14:00:00.000Z');
      assert.equal(isWindowOpen(w, at('2026-11-01T22:59:59.999Z')), true);
      assert.equal(isWindowOpen(w, at('2026-11-01T23:00:00Z')), false);
    });
  });

  describe('overnight 22:00-06:00', () => {
    const w = window(KL, '22:00', '06:00');
    const cases: [string, string, string][] = [
      ['2026-03-10T13:59:59.999Z', '2026-03-10T14:00:00.000Z', '21:59:59.999 local'],
      ['2026-03-10T14:00:00.000Z', '2026-03-10T14:00:00.000Z', '22:00 local: opens'],
      ['2026-03-10T15:59:59.999Z', '2026-03-10T15:59:59.999Z', 'just before local midnight'],
      ['2026-03-10T16:00:00.000Z', '2026-03-10T16:00:00.000Z', 'local midnight, still open'],
      ['2026-03-10T19:00:00.000Z', '2026-03-10T19:00:00.000Z', '03:00 local'],
      ['2026-03-10T21:59:59.999Z', '2026-03-10T21:59:59.999Z', '05:59:59.999 local'],
      ['2026-03-10T22:00:00.000Z', '2026-03-11T14:00:00.000Z', '06:00 local: closed until 22:00'],
      ['2026-03-11T04:00:00.000Z', '2026-03-11T14:00:00.000Z', 'midday'],
    ];
    for (const [t, expected, why] of cases) {
      it(`Kuala Lumpur ${t} (${why}) -> ${expected}`, () => {
        assert.equal(iso(nextWindowOpening(w, at(t))), expected);
      });
    }

    it('is open at 22:00 and closed at 06:00', () => {
      assert.equal(isWindowOpen(w, at('2026-03-10T14:00:00Z')), true);
      assert.equal(isWindowOpen(w, at('2026-03-10T22:00:00Z')), false);
    });

    it('spans the spring-forward night in New York: 22:00 EST to 06:00 EDT, seven real hours', () => {
      const ny = window(NY, '22:00', '06:00');
      assert.equal(iso(nextWindowOpening(ny, at('2026-03-07T20:00:00Z'))), '2026-03-08T03:00:00.000Z');
      assert.equal(isWindowOpen(ny, at('2026-03-08T07:00:00Z')), true); // 03:00 EDT
      assert.equal(isWindowOpen(ny, at('2026-03-08T09:59:59.999Z')), true);
      assert.equal(isWindowOpen(ny, at('2026-03-08T10:00:00Z')), false);
      assert.equal(iso(nextWindowOpening(ny, at('2026-03-08T10:00:00Z'))), '2026-03-09T02:00:00.000Z'); // 22:00 EDT
    });

    it('spans the fall-back night in New York: 22:00 EDT to 06:00 EST, nine real hours', () => {
      const ny = window(NY, '22:00', '06:00');
      assert.equal(iso(nextWindowOpening(ny, at('2026-10-31T20:00:00Z'))), '2026-11-01T02:00:00.000Z');
      assert.equal(isWindowOpen(ny, at('2026-11-01T10:59:59.999Z')), true);
      assert.equal(isWindowOpen(ny, at('2026-11-01T11:00:00Z')), false);
    });

    it('belongs to the day it opens on for the weekday mask', () => {
      // Friday only: Friday 22:00 to Saturday 06:00 is open; Saturday night is not.
      const fri = window(KL, '22:00', '06:00', FRI);
      assert.equal(isWindowOpen(fri, at('2026-03-06T14:00:00Z')), true); // Fri 6 Mar 22:00 local
      assert.equal(isWindowOpen(fri, at('2026-03-06T18:00:00Z')), true); // Sat 02:00 local
      assert.equal(isWindowOpen(fri, at('2026-03-06T22:00:00Z')), false); // Sat 06:00 local
      assert.equal(iso(nextWindowOpening(fri, at('2026-03-06T18:00:00Z'))), '2026-03-06T18:00:00.000Z');
      // Saturday 22:00 local: the next Friday night is six days away.
      assert.equal(iso(nextWindowOpening(fri, at('2026-03-07T14:00:00Z'))), '2026-03-13T14:00:00.000Z');
    });

    it('a Saturday-only overnight window is still open in its Sunday-morning tail', () => {
      const sat = window(KL, '22:00', '06:00', SAT);
      assert.equal(isWindowOpen(sat, at('2026-03-07T20:00:00Z')), true); // Sun 8 Mar 04:00 local
      assert.equal(isWindowOpen(sat, at('2026-03-08T14:00:00Z')), false); // Sun 22:00 local
      assert.equal(iso(nextWindowOpening(sat, at('2026-03-08T14:00:00Z'))), '2026-03-14T14:00:00.000Z');
    });
  });

  describe('end minute 1440 (local midnight)', () => {
    it('18:00-24:00 closes exactly at the next local midnight', () => {
      const w: SendWindow = { timeZone: KL, startMinute: 18 * 60, endMinute: 1440, days: EVERY_DAY };
      assert.equal(iso(nextWindowOpening(w, at('2026-03-10T04:00:00Z'))), '2026-03-10T10:00:00.000Z');
      assert.equal(isWindowOpen(w, at('2026-03-10T15:59:59.999Z')), true);
      assert.equal(isWindowOpen(w, at('2026-03-10T16:00:00Z')), false);
      assert.equal(iso(nextWindowOpening(w, at('2026-03-10T16:00:00Z'))), '2026-03-11T10:00:00.000Z');
    });

    it('18:00-24:00 in New York on the 23-hour day closes at the real next midnight', () => {
      const w: SendWindow = { timeZone: NY, startMinute: 18 * 60, endMinute: 1440, days: EVERY_DAY };
      assert.equal(iso(nextWindowOpening(w, at('2026-03-08T12:00:00Z'))), '2026-03-08T22:00:00.000Z');
      assert.equal(isWindowOpen(w, at('2026-03-09T03:59:59.999Z')), true);
      assert.equal(isWindowOpen(w, at('2026-03-09T04:00:00Z')), false);
    });

    it('00:00-24:00 every day is always open, local midnight included', () => {
      const w: SendWindow = { timeZone: NY, startMinute: 0, endMinute: 1440, days: EVERY_DAY };
      for (const t of ['2026-03-08T05:00:00Z', '2026-03-08T06:59:59.999Z', '2026-03-08T07:00:00Z', '2026-03-09T04:00:00Z', '2026-11-01T05:30:00Z', '2026-11-02T05:00:00Z', '2026-07-04T16:20:00Z']) {
        assert.equal(isWindowOpen(w, at(t)), true, t);
      }
    });

    it('00:00-24:00 on Mondays only runs from Monday to Tuesday local midnight', () => {
      const w: SendWindow = { timeZone: KL, startMinute: 0, endMinute: 1440, days: MON };
      // Monday 9 March in Kuala Lumpur: 8 March 16:00Z to 9 March 16:00Z.
      assert.equal(iso(nextWindowOpening(w, at('2026-03-08T10:00:00Z'))), '2026-03-08T16:00:00.000Z');
      assert.equal(isWindowOpen(w, at('2026-03-09T15:59:59.999Z')), true);
      assert.equal(isWindowOpen(w, at('2026-03-09T16:00:00Z')), false);
      assert.equal(iso(nextWindowOpening(w, at('2026-03-09T16:00:00Z'))), '2026-03-15T16:00:00.000Z');
    });
  });

  describe('start equal to end', () => {
    it('is a 24-hour window from the start on each enabled day', () => {
      const w = window(KL, '09:00', '09:00', MON);
      // Monday 9 March 09:00 local until Tuesday 09:00 local.
      assert.equal(iso(nextWindowOpening(w, at('2026-03-08T12:00:00Z'))), '2026-03-09T01:00:00.000Z');
      assert.equal(isWindowOpen(w, at('2026-03-10T00:59:59.999Z')), true);
      assert.equal(isWindowOpen(w, at('2026-03-10T01:00:00Z')), false);
      assert.equal(iso(nextWindowOpening(w, at('2026-03-10T01:00:00Z'))), '2026-03-16T01:00:00.000Z');
    });

    it('is always open when every day is enabled', () => {
      const w = window(KL, '09:00', '09:00');
      for (let t = at('2026-03-09T00:00:00Z'); t < at('2026-03-12T00:00:00Z'); t += 17 * MINUTE_MS + 1) {
        assert.equal(isWindowOpen(w, t), true, iso(t));
      }
    });
  });

  describe('weekday mask', () => {
    it('Monday-Friday: a Saturday instant opens on Monday 09:00 local', () => {
      const w = window(KL, '09:00', '18:00', WEEKDAYS);
      // Saturday 7 March 12:00 local.
      assert.equal(isWindowOpen(w, at('2026-03-07T04:00:00Z')), false);
      assert.equal(iso(nextWindowOpening(w, at('2026-03-07T04:00:00Z'))), '2026-03-09T01:00:00.000Z');
      // Friday 6 March 18:00 local, at closing.
      assert.equal(iso(nextWindowOpening(w, at('2026-03-06T10:00:00Z'))), '2026-03-09T01:00:00.000Z');
      // Friday during the window is open.
      assert.equal(isWindowOpen(w, at('2026-03-06T05:00:00Z')), true);
    });

    it('Monday-Friday in New York: the DST Sunday is skipped, Monday opens at 13:00Z', () => {
      const w = window(NY, '09:00', '18:00', WEEKDAYS);
      assert.equal(iso(nextWindowOpening(w, at('2026-03-07T15:00:00Z'))), '2026-03-09T13:00:00.000Z');
      assert.equal(iso(nextWindowOpening(w, at('2026-03-08T15:00:00Z'))), '2026-03-09T13:00:00.000Z');
    });

    it('weekends only: a Monday instant opens on Saturday', () => {
      const w = window(KL, '09:00', '18:00', SAT | SUN);
      assert.equal(iso(nextWindowOpening(w, at('2026-03-09T05:00:00Z'))), '2026-03-14T01:00:00.000Z');
      // Saturday closing time: Sunday's window is next.
      assert.equal(iso(nextWindowOpening(w, at('2026-03-14T10:00:00Z'))), '2026-03-15T01:00:00.000Z');
    });

    it('bit weekday-1 selects ISO weekdays Monday (bit 0) to Sunday (bit 6)', () => {
      const w0 = window(KL, '09:00', '18:00');
      // From Monday 9 March 00:00 local, the only enabled day decides the date.
      const mondayMidnight = at('2026-03-08T16:00:00Z');
      for (let bit = 0; bit < 7; bit++) {
        const w = { ...w0, days: 1 << bit };
        const expectedDay = String(9 + bit).padStart(2, '0');
        assert.equal(iso(nextWindowOpening(w, mondayMidnight)), `2026-03-${expectedDay}T01:00:00.000Z`, `bit ${bit}`);
      }
    });

    it('a single enabled day just missed is found a full week later', () => {
      const w = window(KL, '09:00', '18:00', TUE);
      // Tuesday 10 March 18:00 local, at closing.
      assert.equal(iso(nextWindowOpening(w, at('2026-03-10T10:00:00Z'))), '2026-03-17T01:00:00.000Z');
      // Tuesday 17 March 23:59 local.
      assert.equal(iso(nextWindowOpening(w, at('2026-03-17T15:59:00Z'))), '2026-03-24T01:00:00.000Z');
    });

    it('a window with no enabled day never opens', () => {
      const w = window(KL, '09:00', '18:00', 0);
      assert.throws(() => nextWindowOpening(w, at('2026-03-10T00:00:00Z')), /never opens/);
      assert.throws(() => isWindowOpen(w, at('2026-03-10T00:00:00Z')), /never opens/);
    });
  });

  describe('wall times that do not exist or exist twice', () => {
    it('a start in the spring-forward gap (02:30 on 2026-03-08, New York) opens at 03:30 local', () => {
      const w = window(NY, '02:30', '05:00');
      // 00:00 EST on 8 March.
      assert.equal(iso(nextWindowOpening(w, at('2026-03-08T05:00:00Z'))), '2026-03-08T07:30:00.000Z');
      assert.equal(isWindowOpen(w, at('2026-03-08T07:29:59.999Z')), false);
      assert.equal(isWindowOpen(w, at('2026-03-08T07:30:00Z')), true);
      assert.equal(isWindowOpen(w, at('2026-03-08T08:59:59.999Z')), true); // 04:59:59.999 EDT
      assert.equal(isWindowOpen(w, at('2026-03-08T09:00:00Z')), false);
      // On ordinary days either side it opens at 02:30 local.
      assert.equal(iso(nextWindowOpening(w, at('2026-03-07T05:00:00Z'))), '2026-03-07T07:30:00.000Z');
      assert.equal(iso(nextWindowOpening(w, at('2026-03-09T04:00:00Z'))), '2026-03-09T06:30:00.000Z');
    });

    it('a start at 02:00 on the spring-forward day opens at 03:00 EDT', () => {
      const w = window(NY, '02:00', '04:00');
      assert.equal(iso(nextWindowOpening(w, at('2026-03-08T05:00:00Z'))), '2026-03-08T07:00:00.000Z');
    });

    it('a start in the repeated fall-back hour (01:30 on 2026-11-01, New York) opens at the first 01:30', () => {
      const w = window(NY, '01:30', '05:00');
      assert.equal(iso(nextWindowOpening(w, at('2026-11-01T04:00:00Z'))), '2026-11-01T05:30:00.000Z'); // 01:30 EDT
      assert.equal(isWindowOpen(w, at('2026-11-01T06:30:00Z')), true); // 01:30 EST
      assert.equal(isWindowOpen(w, at('2026-11-01T09:59:59.999Z')), true);
      assert.equal(isWindowOpen(w, at('2026-11-01T10:00:00Z')), false); // 05:00 EST
    });
  });

  describe('agreement with a wall-clock reading (property check)', () => {
    // Windows whose edges avoid the DST transition hours, so "open" is simply a question of the
    // local weekday and minute of day; an overnight window's tail belongs to the previous day.
    const zones = [KL, NY, LONDON];
    const shapes: [string, string, number][] = [
      ['09:00', '18:00', EVERY_DAY],
      ['09:00', '18:00', WEEKDAYS],
      ['22:00', '06:00', EVERY_DAY],
      ['22:00', '06:00', FRI | SAT],
      ['18:00', '00:00', TUE], // an end of 00:00 wraps to the next local midnight
      ['07:15', '07:16', SUN],
    ];

    function openByWallClock(w: SendWindow, t: number): boolean {
      const local = DateTime.fromMillis(t, { zone: w.timeZone });
      const minute = local.hour * 60 + local.minute;
      const enabled = (weekday: number) => (w.days & (1 << (weekday - 1))) !== 0;
      const yesterday = local.weekday === 1 ? 7 : local.weekday - 1;
      if (w.endMinute > w.startMinute) return enabled(local.weekday) && minute >= w.startMinute && minute < w.endMinute;
      return (enabled(local.weekday) && minute >= w.startMinute) || (enabled(yesterday) && minute < w.endMinute);
    }

    for (const zone of zones) {
      for (const [start, end, days] of shapes) {
        it(`${zone} ${start}-${end} days ${days.toString(2).padStart(7, '0')}`, () => {
          const w = window(zone, start, end, days);
          const random = seededRandom(days * 7919 + w.startMinute);
          const yearStart = at('2026-01-01T00:00:00Z');
          for (let i = 0; i < 150; i++) {
            // Arbitrary millisecond instants spread over the whole year, DST changes included.
            const t = yearStart + Math.floor(random() * 365 * DAY_MS);
            const open = nextWindowOpening(w, t);
            assert.equal(isWindowOpen(w, t), openByWallClock(w, t), `isWindowOpen at ${iso(t)}`);
            assert.ok(open >= t);
            assert.equal(openByWallClock(w, open), true, `opening ${iso(open)} for ${iso(t)}`);
            if (open > t) {
              // The opening is the first open instant: the millisecond before it is closed, and so
              // is a sample of instants in between.
              assert.equal(openByWallClock(w, open - 1), false, `just before ${iso(open)}`);
              for (let k = 0; k < 3; k++) {
                const between = t + Math.floor(random() * (open - t));
                assert.equal(openByWallClock(w, between), false, `${iso(between)} between ${iso(t)} and ${iso(open)}`);
              }
            }
          }
        });
      }
    }
  });
});
