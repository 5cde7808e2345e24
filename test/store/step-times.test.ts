/**
 * The step-time SQL (src/store/sql/step-times.ts) against an independent computation in JavaScript
 * (luxon's copy of the tz database), over thousands of random inputs around the DST changes of
 * 2026 in zones with a one-hour change (Berlin, New York), a half-hour one (Lord Howe) and none
 * (Kuala Lumpur), on every backend.
 *
 * The rule under test, for a step after a message that went out at `done`:
 *   base    = greatest(previous planned time, done - 1 hour)
 *   planned = base + the delay (calendar days on the owner's clock, then minutes), then moved to the
 *             first instant at or after it whose local time is the step's send time (if any)
 *   due     = greatest(planned, done + the delay)
 *
 * Local wall times that a DST change skips or repeats are read as PostgreSQL documents ("Handling
 * of Invalid or Ambiguous Timestamps"): a skipped time as if the offset in force before the change
 * continued (02:30 on a spring-forward night is 03:30), a repeated one as the later instant
 * (standard time). Luxon reads a repeated time differently after `plus({ days })` (it keeps the
 * offset it started from); the examples below assert PostgreSQL's reading explicitly.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DateTime, IANAZone } from 'luxon';
import { seededRandom } from '../../src/engine/pacing.js';
import { alignToMinute, localAdd, RHYTHM_GRACE, stepTimes } from '../../src/store/sql/step-times.js';
import { backends, openTestDb, type TestDb } from '../helpers/db.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** The 2026 DST changes (UTC instants) of each zone used here; checked against luxon below. */
const CHANGES: Record<string, string[]> = {
  'Europe/Berlin': ['2026-03-29T01:00:00Z', '2026-10-25T01:00:00Z'],
  'America/New_York': ['2026-03-08T07:00:00Z', '2026-11-01T06:00:00Z'],
  // 02:00 +11:00 -> 01:30 +10:30 in April, 02:00 +10:30 -> 02:30 +11:00 in October.
  'Australia/Lord_Howe': ['2026-04-04T15:00:00Z', '2026-10-03T15:30:00Z'],
  'Asia/Kuala_Lumpur': [],
};
const ZONES = Object.keys(CHANGES);

interface Wall {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
}

/** The local wall time of instant `t` in `zone`. */
function wallOf(t: number, zone: string): Wall {
  const d = DateTime.fromMillis(t, { zone });
  return { year: d.year, month: d.month, day: d.day, hour: d.hour, minute: d.minute, second: d.second, millisecond: d.millisecond };
}

/** A wall time as a number (the same wall time in UTC), so that wall arithmetic is plain. */
function naive(w: Wall): number {
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second, w.millisecond);
}

/** Wall time plus whole calendar days and wall minutes (no zone involved). */
function wallPlus(w: Wall, days: number, minutes: number): Wall {
  const d = DateTime.fromMillis(naive(w), { zone: 'utc' }).plus({ days, minutes });
  return { year: d.year, month: d.month, day: d.day, hour: d.hour, minute: d.minute, second: d.second, millisecond: d.millisecond };
}

type Reading = 'normal' | 'skipped' | 'repeated';

/**
 * The instant a local wall time stands for in `zone`, read as PostgreSQL reads it: the offsets in
 * force two days either side (DST changes are months apart) are the only candidates; a wall time
 * neither gives is skipped (read with the earlier offset), one both give is repeated (the later
 * instant).
 */
function resolve(w: Wall, zone: string): { at: number; reading: Reading } {
  const z = IANAZone.create(zone);
  const n = naive(w);
  const before = z.offset(n - 2 * DAY);
  const afterward = z.offset(n + 2 * DAY);
  const valid = [...new Set([before, afterward])].map((o) => n - o * MIN).filter((u) => z.offset(u) * MIN === n - u);
  if (valid.length === 0) return { at: n - before * MIN, reading: 'skipped' };
  if (valid.length === 1) return { at: valid[0]!, reading: 'normal' };
  return { at: Math.max(...valid), reading: 'repeated' };
}

/** `t` + `days` on the owner's calendar, then `minutes` of elapsed time. */
function addDelay(t: number, days: number, minutes: number, zone: string): number {
  return resolve(wallPlus(wallOf(t, zone), days, 0), zone).at + minutes * MIN;
}

/** `t` + `days` and `minutes` both on the owner's wall clock (what they agree with when no DST change intervenes). */
function addWall(t: number, days: number, minutes: number, zone: string): number {
  return resolve(wallPlus(wallOf(t, zone), days, minutes), zone).at;
}

/** The first instant at or after `t` whose local time reads `minute` (skipped wall times as PostgreSQL reads them). */
function align(t: number, minute: number | null, zone: string): number {
  if (minute === null) return t;
  const w = wallOf(t, zone);
  const midnight: Wall = { ...w, hour: 0, minute: 0, second: 0, millisecond: 0 };
  const same = resolve(wallPlus(midnight, 0, minute), zone).at;
  if (same >= t) return same;
  return resolve(wallPlus(midnight, 1, minute), zone).at;
}

interface Input {
  prevPlanned: number;
  done: number;
  days: number;
  minutes: number;
  sendMinute: number | null;
  zone: string;
}

/** The rule, computed in JavaScript. */
function expected(x: Input): { planned: number; due: number } {
  const base = Math.max(x.prevPlanned, x.done - HOUR);
  const planned = align(addDelay(base, x.days, x.minutes, x.zone), x.sendMinute, x.zone);
  return { planned, due: Math.max(planned, addDelay(x.done, x.days, x.minutes, x.zone)) };
}

/** Whether counting the minutes on the wall clock and as elapsed time agree for this input. */
function minutesAgree(x: Input): boolean {
  const base = Math.max(x.prevPlanned, x.done - HOUR);
  for (const t of [base, x.done]) {
    if (addWall(t, x.days, x.minutes, x.zone) !== addDelay(t, x.days, x.minutes, x.zone)) return false;
  }
  return true;
}

/** Random inputs, most of them within eleven days of a DST change, send times often in the skipped or repeated hour. */
function randomInputs(n: number, seed: number): Input[] {
  const random = seededRandom(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const out: Input[] = [];
  for (let i = 0; i < n; i++) {
    const zone = ZONES[i % ZONES.length]!;
    const changes = CHANGES[zone]!;
    const around = changes.length > 0 && random() < 0.9 ? Date.parse(pick(changes)) : Date.parse('2026-01-01T00:00:00Z') + int(0, 364) * DAY;
    // Times at whole minutes, seconds and milliseconds alike.
    const grain = pick([MIN, 1000, 1]);
    const mode = random();
    const days = random() < 0.3 ? 0 : int(0, 10);
    // Anywhere within eleven days of the change; or timed so that base + days lands in the hours
    // before the change (the next send time is then on the day of the change).
    const spread = mode < 0.6 ? random() * 22 * DAY - 11 * DAY : -days * DAY - random() * 20 * HOUR;
    const prevPlanned = around + Math.round(spread / grain) * grain;
    // The previous message: exactly on time (first steps), a little late (pacing), within the
    // grace, or hours to days late.
    const lateness = pick([0, 0, int(1, 600) * 1000, int(1, 59) * MIN, HOUR, HOUR + 1, int(61, 3 * 24 * 60) * MIN + int(0, 59_999)]);
    const done = prevPlanned + lateness;
    const minutes = random() < 0.3 ? 0 : pick([int(0, 1500), int(0, 120), 1440, 60, 30]);
    let sendMinute: number | null = null;
    const r = random();
    if (r < 0.25) sendMinute = null;
    else if (r < 0.55) sendMinute = int(0, 1439);
    // 01:00-03:00: the skipped and repeated hours of Berlin and New York, Lord Howe's half hours.
    else if (r < 0.9) sendMinute = int(60, 179);
    else sendMinute = pick([0, 600, 1439, 120, 150, 135]);
    if (random() < 0.1) {
      // Exactly on a send time already: it must stay there, not move a day on.
      const hit = DateTime.fromMillis(addDelay(Math.max(prevPlanned, done - HOUR), days, minutes, zone), { zone });
      if (hit.second === 0 && hit.millisecond === 0) sendMinute = hit.hour * 60 + hit.minute;
    }
    out.push({ prevPlanned, done, days, minutes, sendMinute, zone });
  }
  return out;
}

const INPUTS = randomInputs(3000, 20260329);
/** Which inputs' minutes count the same on the wall clock and as elapsed time. */
const AGREE = INPUTS.map(minutesAgree);

/** Evaluates stepTimes over every input in one statement. */
async function evaluate(t: TestDb, inputs: readonly Input[]): Promise<{ planned: number; due: number }[]> {
  const st = stepTimes({ prevPlanned: 'x.prev_planned', done: 'x.done', days: 'x.days', minutes: 'x.minutes', sendMinute: 'x.send_minute', tz: 'x.tz' });
  const res = await t.db.query<{ i: number; planned: Date; due: Date }>(
    `select x.i::int as i, ${st.planned} as planned, ${st.due} as due
       from unnest($1::timestamptz[], $2::timestamptz[], $3::int[], $4::int[], $5::int[], $6::text[])
            with ordinality as x(prev_planned, done, days, minutes, send_minute, tz, i)
      order by x.i`,
    [
      inputs.map((x) => new Date(x.prevPlanned)),
      inputs.map((x) => new Date(x.done)),
      inputs.map((x) => x.days),
      inputs.map((x) => x.minutes),
      inputs.map((x) => x.sendMinute),
      inputs.map((x) => x.zone),
    ],
  );
  assert.equal(res.rows.length, inputs.length);
  return res.rows.map((r) => ({ planned: r.planned.getTime(), due: r.due.getTime() }));
}

/** One SQL expression over literal parameters. */
async function scalar(t: TestDb, expr: string, params: unknown[]): Promise<number> {
  const res = await t.db.query<{ v: Date }>(`select ${expr} as v`, params);
  return res.rows[0]!.v.getTime();
}

function show(x: Input): string {
  const iso = (ms: number) => DateTime.fromMillis(ms, { zone: x.zone }).toISO();
  return `${x.zone} prev planned ${iso(x.prevPlanned)}, done ${iso(x.done)}, +${x.days}d ${x.minutes}min, send minute ${x.sendMinute}`;
}

const iso = (ms: number) => new Date(ms).toISOString();
const at = (s: string) => new Date(s);

for (const backend of backends) {
  describe(`sequence step times on ${backend}`, () => {
    let t: TestDb;
    before(async () => {
      t = await openTestDb(backend);
    });
    after(async () => {
      await t.dispose();
    });

    it('the DST changes the inputs are built around are where the tz database puts them', () => {
      for (const [zone, changes] of Object.entries(CHANGES)) {
        const z = IANAZone.create(zone);
        for (const c of changes) {
          const ms = Date.parse(c);
          assert.notEqual(z.offset(ms - 1), z.offset(ms), `${zone} changes offset at ${c}`);
        }
      }
      assert.equal(IANAZone.create('Asia/Kuala_Lumpur').offset(Date.parse('2026-03-29T01:00:00Z')), 480);
      assert.equal(RHYTHM_GRACE, `interval '1 hour'`);
    });

    it('matches the JavaScript rule over thousands of random inputs around DST changes', async () => {
      const inputs = INPUTS;
      const got = await evaluate(t, inputs);
      let checked = 0;
      const readings = { skippedSend: 0, repeatedSend: 0, late: 0, aligned: 0, exact: 0 };
      const wrong: string[] = [];
      for (const [i, x] of inputs.entries()) {
        // Inputs whose minutes span a DST change are the subject of the next test.
        if (!AGREE[i]) continue;
        checked++;
        const want = expected(x);
        const g = got[i]!;
        if (g.planned !== want.planned || g.due !== want.due) {
          if (wrong.length < 10) wrong.push(`${show(x)}: planned ${iso(g.planned)} due ${iso(g.due)}, expected ${iso(want.planned)} / ${iso(want.due)}`);
          continue;
        }
        // The rule's promises, read off the result rather than recomputed.
        assert.ok(g.due >= g.planned, show(x));
        assert.ok(g.due >= addDelay(x.done, x.days, x.minutes, x.zone), `never sooner than the delay after the real send: ${show(x)}`);
        const from = addDelay(Math.max(x.prevPlanned, x.done - HOUR), x.days, x.minutes, x.zone);
        assert.ok(g.planned >= from && g.planned < from + DAY + HOUR, `the first send time at or after base + delay: ${show(x)}`);
        if (x.sendMinute !== null) {
          readings.aligned++;
          if (g.planned === from) readings.exact++;
          const local = DateTime.fromMillis(g.planned, { zone: x.zone });
          const shown = local.hour * 60 + local.minute;
          const midnight: Wall = { year: local.year, month: local.month, day: local.day, hour: 0, minute: 0, second: 0, millisecond: 0 };
          const asked = resolve(wallPlus(midnight, 0, x.sendMinute), x.zone);
          if (asked.reading === 'skipped') {
            readings.skippedSend++;
            // Read as if the old offset went on: shown later by exactly the size of the change.
            const jump = IANAZone.create(x.zone).offset(g.planned) - IANAZone.create(x.zone).offset(g.planned - DAY);
            assert.equal(shown, x.sendMinute + jump, `a skipped send time is shown ${jump} minutes later: ${show(x)}`);
          } else {
            if (asked.reading === 'repeated') readings.repeatedSend++;
            assert.equal(shown, x.sendMinute, `the planned time shows the send time: ${show(x)}`);
            assert.equal(local.second * 1000 + local.millisecond, 0);
          }
        }
        if (x.done - HOUR > x.prevPlanned) readings.late++;
      }
      assert.deepEqual(wrong, [], `${wrong.length} of ${checked} inputs differ`);
      // The inputs reach every case the rule has.
      assert.ok(checked > 2500, `${checked} inputs checked`);
      assert.ok(readings.skippedSend > 20 && readings.repeatedSend > 20 && readings.late > 500 && readings.aligned > 1500 && readings.exact > 50, JSON.stringify(readings));
    });

    it(
      'counts the minutes of a delay as elapsed time when they span a DST change',
      async () => {
        const all = INPUTS.filter((_, i) => !AGREE[i]);
        const targeted: Input[] = [
          // 01:45 CET on the spring-forward night, then a 90-minute step.
          { prevPlanned: Date.parse('2026-03-29T00:45:00Z'), done: Date.parse('2026-03-29T00:45:00Z'), days: 0, minutes: 90, sendMinute: null, zone: 'Europe/Berlin' },
          // 00:30 EDT on the fall-back night, then a 3-hour step.
          { prevPlanned: Date.parse('2026-11-01T04:30:00Z'), done: Date.parse('2026-11-01T04:30:00Z'), days: 0, minutes: 180, sendMinute: null, zone: 'America/New_York' },
        ];
        const inputs = [...targeted, ...all];
        assert.ok(all.length > 30, `${all.length} random inputs span a change`);
        const got = await evaluate(t, inputs);
        const wrong: string[] = [];
        for (const [i, x] of inputs.entries()) {
          const want = expected(x);
          const g = got[i]!;
          if (g.planned !== want.planned || g.due !== want.due) wrong.push(`${show(x)}: due ${iso(g.due)}, expected ${iso(want.due)}`);
          // A step never follows the previous message sooner than its delay.
          if (x.days === 0 && g.due - x.done < x.minutes * MIN) wrong.push(`${show(x)}: only ${(g.due - x.done) / MIN} minutes after the previous message`);
        }
        assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} differences`);
      },
    );

    it('reads a send time a spring-forward change skips as PostgreSQL documents: an hour (or half hour) later', async () => {
      const berlin = `'Europe/Berlin'`;
      // 02:30 does not exist in Berlin on 2026-03-29: read as 02:30 CET, i.e. 03:30 CEST (01:30Z).
      assert.equal(iso(await scalar(t, alignToMinute('$1::timestamptz', '150', berlin), [at('2026-03-28T23:00:00Z')])), '2026-03-29T01:30:00.000Z');
      // Luxon agrees here: it moves a skipped time forward by the gap.
      assert.equal(DateTime.fromObject({ year: 2026, month: 3, day: 29, hour: 2, minute: 30 }, { zone: 'Europe/Berlin' }).toUTC().toISO(), '2026-03-29T01:30:00.000Z');
      // Asked from 03:00 CEST, after the gap, the same reading (03:30) is still ahead: that day, not the next.
      assert.equal(iso(await scalar(t, alignToMinute('$1::timestamptz', '150', berlin), [at('2026-03-29T01:00:00Z')])), '2026-03-29T01:30:00.000Z');
      // From 03:45 CEST it has passed: 02:30 the next day.
      assert.equal(iso(await scalar(t, alignToMinute('$1::timestamptz', '150', berlin), [at('2026-03-29T01:45:00Z')])), '2026-03-30T00:30:00.000Z');
      // A day after 02:30 on the eve lands in the gap too, and is read the same way.
      assert.equal(iso(await scalar(t, localAdd('$1::timestamptz', '1', '0', berlin), [at('2026-03-28T01:30:00Z')])), '2026-03-29T01:30:00.000Z');
      // New York, 2026-03-08: 02:30 EST would be 07:30Z, shown as 03:30 EDT.
      assert.equal(iso(await scalar(t, alignToMinute('$1::timestamptz', '150', `'America/New_York'`), [at('2026-03-08T05:00:00Z')])), '2026-03-08T07:30:00.000Z');
      // Lord Howe, 2026-10-04: 02:00-02:30 is skipped; 02:15 is read at +10:30 (15:45Z), shown as 02:45 +11:00.
      const lh = await scalar(t, alignToMinute('$1::timestamptz', '135', `'Australia/Lord_Howe'`), [at('2026-10-03T14:00:00Z')]);
      assert.equal(iso(lh), '2026-10-03T15:45:00.000Z');
      assert.equal(DateTime.fromMillis(lh, { zone: 'Australia/Lord_Howe' }).toFormat('HH:mm ZZ'), '02:45 +11:00');
    });

    it('reads a time a fall-back change repeats as the later instant, where luxon keeps the offset it started from', async () => {
      const berlin = `'Europe/Berlin'`;
      // 02:30 CEST on 2026-10-24 plus a day: 02:30 happens twice on the 25th.
      const eve = Date.parse('2026-10-24T00:30:00Z');
      const pg = await scalar(t, localAdd('$1::timestamptz', '1', '0', berlin), [new Date(eve)]);
      assert.equal(iso(pg), '2026-10-25T01:30:00.000Z', 'PostgreSQL: 02:30 CET, the second 02:30, 25 hours later');
      const lx = DateTime.fromMillis(eve, { zone: 'Europe/Berlin' }).plus({ days: 1 }).toMillis();
      assert.equal(iso(lx), '2026-10-25T00:30:00.000Z', 'luxon: 02:30 CEST, the first one, 24 hours later');
      // A send time in the repeated hour is the second 02:30 as well, even when asked before the first.
      assert.equal(iso(await scalar(t, alignToMinute('$1::timestamptz', '150', berlin), [at('2026-10-24T22:00:00Z')])), '2026-10-25T01:30:00.000Z');
      // New York, 2026-11-01: 01:30 is read as 01:30 EST (06:30Z), not EDT (05:30Z).
      assert.equal(iso(await scalar(t, alignToMinute('$1::timestamptz', '90', `'America/New_York'`), [at('2026-11-01T04:00:00Z')])), '2026-11-01T06:30:00.000Z');
      // Lord Howe, 2026-04-05: 01:30-02:00 repeats; 01:45 is read at +10:30 (15:15Z).
      assert.equal(iso(await scalar(t, alignToMinute('$1::timestamptz', '105', `'Australia/Lord_Howe'`), [at('2026-04-04T13:00:00Z')])), '2026-04-04T15:15:00.000Z');
    });

    it('counts a calendar day as 23 or 25 hours across a change, and keeps a late message on the rhythm within the grace', async () => {
      const cases: { x: Input; planned: string; due: string }[] = [
        // 10:00 CET on the eve of spring-forward, a day later at 10:00: 10:00 CEST, 23 hours on.
        { x: { prevPlanned: Date.parse('2026-03-28T09:00:00Z'), done: Date.parse('2026-03-28T09:00:04Z'), days: 1, minutes: 0, sendMinute: 600, zone: 'Europe/Berlin' }, planned: '2026-03-29T08:00:00.000Z', due: '2026-03-29T08:00:04.000Z' },
        // 10:00 EDT on the eve of fall-back: 10:00 EST, 25 hours on.
        { x: { prevPlanned: Date.parse('2026-10-31T14:00:00Z'), done: Date.parse('2026-10-31T14:00:00Z'), days: 1, minutes: 0, sendMinute: 600, zone: 'America/New_York' }, planned: '2026-11-01T15:00:00.000Z', due: '2026-11-01T15:00:00.000Z' },
        // Sent 59 minutes late: the next day's step stays at 10:00 (but never sooner than a day after the send).
        { x: { prevPlanned: Date.parse('2026-06-01T02:00:00Z'), done: Date.parse('2026-06-01T02:59:00Z'), days: 1, minutes: 0, sendMinute: 600, zone: 'Asia/Kuala_Lumpur' }, planned: '2026-06-02T02:00:00.000Z', due: '2026-06-02T02:59:00.000Z' },
        // Sent 61 minutes late: the rhythm starts again from the real send, and 10:00 the next day has passed.
        { x: { prevPlanned: Date.parse('2026-06-01T02:00:00Z'), done: Date.parse('2026-06-01T03:01:00Z'), days: 1, minutes: 0, sendMinute: 600, zone: 'Asia/Kuala_Lumpur' }, planned: '2026-06-03T02:00:00.000Z', due: '2026-06-03T02:00:00.000Z' },
        // No send time: the full delay after the real send.
        { x: { prevPlanned: Date.parse('2026-06-01T02:00:00Z'), done: Date.parse('2026-06-01T07:00:00Z'), days: 0, minutes: 180, sendMinute: null, zone: 'Asia/Kuala_Lumpur' }, planned: '2026-06-01T09:00:00.000Z', due: '2026-06-01T10:00:00.000Z' },
      ];
      const got = await evaluate(
        t,
        cases.map((c) => c.x),
      );
      for (const [i, c] of cases.entries()) {
        assert.equal(iso(got[i]!.planned), c.planned, show(c.x));
        assert.equal(iso(got[i]!.due), c.due, show(c.x));
        const want = expected(c.x);
        assert.equal(iso(want.planned), c.planned, `JavaScript rule: ${show(c.x)}`);
        assert.equal(iso(want.due), c.due, `JavaScript rule: ${show(c.x)}`);
      }
    });
  });
}
