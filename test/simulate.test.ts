/**
 * `fleetcast simulate` end to end: the examples run on a fresh database and their outputs are
 * checked against the scenario itself (audience, windows in the user's zone, pacing and caps),
 * never against the engine's own helpers. Invalid scenarios must fail with the field named.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { DateTime } from 'luxon';
import pg from 'pg';
import { simulateCommand, type Io } from '../src/cli/simulate.js';
import { DeviceDirectory, expandDevices, type ScenarioDevice } from '../src/services/simulation/devices.js';
import type { SendLine, SimulationReport } from '../src/services/simulation/report.js';
import { runSimulation } from '../src/services/simulation/run.js';
import { WEEKDAYS, type CampaignSpec, type Scenario } from '../src/services/simulation/scenario.js';
import { loadScenario, validateScenario } from '../src/services/simulation/validate.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
const HOUR = 3_600_000;

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'fleetcast-simulate-test-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

interface Outputs {
  sends: SendLine[];
  report: SimulationReport;
}

async function readOutputs(dir: string): Promise<Outputs> {
  const text = await readFile(join(dir, 'sends.jsonl'), 'utf8');
  const sends = text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as SendLine);
  const report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as SimulationReport;
  return { sends, report };
}

async function example(name: string): Promise<Scenario> {
  const loaded = await loadScenario(join(EXAMPLES, `${name}.json`));
  if (!loaded.ok) throw new Error(`${name}: ${JSON.stringify(loaded.issues)}`);
  return loaded.scenario;
}

async function runExample(name: string): Promise<Outputs & { scenario: Scenario }> {
  const scenario = await example(name);
  const outDir = join(scratch, name);
  await runSimulation(scenario, { outDir });
  return { scenario, ...(await readOutputs(outDir)) };
}

function capture(): Io & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout: (t: string) => {
      io.out += t;
    },
    stderr: (t: string) => {
      io.err += t;
    },
  };
  return io;
}

// ---- oracles: what the scenario says must happen, computed from the scenario alone ----

interface Campaign {
  spec: CampaignSpec;
  userIndex: number;
  timeZone: string;
}

/** Campaign ids are given in creation order in a fresh database: users, then their campaigns. */
function campaignsById(s: Scenario): Map<string, Campaign> {
  const out = new Map<string, Campaign>();
  s.users.forEach((u, userIndex) =>
    u.campaigns.forEach((spec) => out.set(`campaign:${out.size + 1}`, { spec, userIndex, timeZone: u.timeZone })),
  );
  return out;
}

/**
 * The phones a campaign must reach: the user's leads filtered by the audience; an owned campaign
 * reaches leads with a device, a pool campaign those without one (its device list narrows the
 * devices it may use, not its leads).
 */
function audiencePhones(s: Scenario, userIndex: number, c: CampaignSpec): Set<string> {
  const user = s.users[userIndex]!;
  const directory = new DeviceDirectory(expandDevices(s.users));
  const leads: { phone: string; device: string | null; niches: string[]; status: string; triggers: string[] }[] = [];
  if (Array.isArray(user.leads)) {
    for (const l of user.leads) leads.push({ ...l, device: l.device ?? null });
  } else {
    const g = user.leads;
    const targets = g.devices ? directory.resolveAll(g.devices) : directory.devices.filter((d) => d.userIndex === userIndex);
    // Round-robin as generateLeads documents it: lead g goes to targets[g mod n].
    for (let i = 1; i <= g.count; i++) {
      const phone = g.phonePrefix + String(i).padStart(8, '0');
      leads.push({ phone, device: g.pool ? null : targets[i % targets.length]!.key, niches: g.niches, status: g.status, triggers: [] });
    }
  }
  const a = c.audience;
  const allowed = a.devices && c.mode === 'owned' ? new Set(directory.resolveAll(a.devices).map((d) => d.key)) : undefined;
  const overlaps = (xs: string[], ys: string[] | undefined) => ys === undefined || xs.some((x) => ys.includes(x));
  return new Set(
    leads
      .filter((l) => (c.mode === 'pool' ? l.device === null : l.device !== null))
      .filter((l) => overlaps(l.niches, a.niches) && overlaps(l.triggers, a.triggers))
      .filter((l) => (a.statuses === undefined || a.statuses.includes(l.status)) && (!allowed || allowed.has(l.device!)))
      .map((l) => l.phone),
  );
}

function devicesByKey(s: Scenario): Map<string, ScenarioDevice & { timeZone: string }> {
  return new Map(expandDevices(s.users).map((d) => [d.key, { ...d, timeZone: s.users[d.userIndex]!.timeZone }]));
}

const minuteOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Whether `at` lies in the campaign's window, read with luxon in the window's zone. */
function insideWindow(c: Campaign, at: string): boolean {
  const w = c.spec.window;
  if (!w) return true;
  const local = DateTime.fromISO(at, { zone: w.timeZone ?? c.timeZone });
  const minute = local.hour * 60 + local.minute + local.second / 60 + local.millisecond / 60_000;
  const start = minuteOf(w.start);
  const end = minuteOf(w.end) || 1440;
  const day = WEEKDAYS[local.weekday - 1]!;
  if (start < end) return (!w.days || w.days.includes(day)) && minute >= start && minute < end;
  // Overnight: the part after midnight belongs to the day the window opened.
  const opened = minute >= start ? day : WEEKDAYS[(local.weekday + 5) % 7]!;
  return (!w.days || w.days.includes(opened)) && (minute >= start || minute < end);
}

/** True when `at` is exactly a window's opening (a send waiting for the window starts then). */
function atWindowOpening(c: Campaign, at: string): boolean {
  const w = c.spec.window;
  if (!w) return false;
  const local = DateTime.fromISO(at, { zone: w.timeZone ?? c.timeZone });
  return local.toFormat('HH:mm:ss.SSS') === `${w.start}:00.000`;
}

// ---- assertions shared by the examples ----

function assertAudienceSentOnce(s: Scenario, sends: SendLine[]): void {
  for (const [origin, c] of campaignsById(s)) {
    const expected = audiencePhones(s, c.userIndex, c.spec);
    const sent = new Map<string, number>();
    for (const l of sends) if (l.origin === origin && l.outcome === 'sent') sent.set(l.to, (sent.get(l.to) ?? 0) + 1);
    for (const phone of expected) assert.equal(sent.get(phone), 1, `${origin}: ${phone} sent ${sent.get(phone) ?? 0} times`);
    for (const phone of sent.keys()) assert.ok(expected.has(phone), `${origin}: ${phone} is not in the audience`);
  }
}

function assertNoMessageSentTwice(sends: SendLine[]): void {
  const seen = new Set<number>();
  for (const l of sends.filter((x) => x.outcome === 'sent')) {
    assert.ok(!seen.has(l.message), `message ${l.message} sent twice`);
    seen.add(l.message);
  }
}

function assertInsideWindows(s: Scenario, sends: SendLine[]): void {
  const campaigns = campaignsById(s);
  for (const l of sends) assert.ok(insideWindow(campaigns.get(l.origin)!, l.at), `${l.deviceKey} sent at ${l.at}, outside the window`);
}

/**
 * Every attempt of a device starts at least minDelay after the previous one, caps hold over every
 * rolling hour and local day, and with `strictGaps` a gap longer than maxDelay must be explained
 * by a window opening or by the hourly cap releasing a slot at that very instant.
 */
function assertPacing(s: Scenario, sends: SendLine[], strictGaps: boolean): void {
  const devices = devicesByKey(s);
  const campaigns = campaignsById(s);
  const byDevice = new Map<string, SendLine[]>();
  for (const l of sends) byDevice.set(l.deviceKey, [...(byDevice.get(l.deviceKey) ?? []), l]);
  for (const [key, lines] of byDevice) {
    const d = devices.get(key)!.spec;
    const zone = devices.get(key)!.timeZone;
    const times = lines.map((l) => Date.parse(l.at)).sort((a, b) => a - b);
    const sorted = [...lines].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    for (let i = 1; i < times.length; i++) {
      const gap = times[i]! - times[i - 1]!;
      assert.ok(gap >= d.minDelaySeconds * 1000, `${key}: gap ${gap} ms before ${sorted[i]!.at} is under the minimum`);
      if (!strictGaps || gap <= d.maxDelaySeconds * 1000) continue;
      const released = d.hourlyLimit !== undefined && times.some((t) => t + HOUR === times[i]);
      const opening = atWindowOpening(campaigns.get(sorted[i]!.origin)!, sorted[i]!.at);
      assert.ok(released || opening, `${key}: gap ${gap} ms before ${sorted[i]!.at} exceeds the maximum unexplained`);
    }
    if (d.hourlyLimit !== undefined) {
      for (let i = 0, j = 0; i < times.length; i++) {
        while (times[j]! <= times[i]! - HOUR) j++;
        assert.ok(i - j + 1 <= d.hourlyLimit, `${key}: ${i - j + 1} attempts in the hour before ${new Date(times[i]!).toISOString()}`);
      }
    }
    if (d.dailyLimit !== undefined) {
      const perDay = new Map<string, number>();
      for (const t of times) {
        const day = DateTime.fromMillis(t, { zone }).toISODate()!;
        perDay.set(day, (perDay.get(day) ?? 0) + 1);
      }
      for (const [day, n] of perDay) assert.ok(n <= d.dailyLimit, `${key}: ${n} attempts on ${day}`);
    }
  }
}

function assertReportMatchesSends(report: SimulationReport, sends: SendLine[]): void {
  const count = <K extends string>(items: K[]) => items.reduce<Record<string, number>>((m, k) => ({ ...m, [k]: (m[k] ?? 0) + 1 }), {});
  assert.equal(report.attempts.total, sends.length);
  assert.deepEqual(report.attempts.byOutcome, count(sends.map((l) => l.outcome)));
  for (const [key, d] of Object.entries(report.devices)) {
    const mine = sends.filter((l) => l.deviceKey === key);
    assert.ok(mine.every((l) => l.device === d.id), `${key}: device id`);
    assert.equal(d.attempts, mine.length, `${key}: attempts`);
    assert.equal(d.sent, mine.filter((l) => l.outcome === 'sent').length, `${key}: sent`);
  }
  const sent = sends.filter((l) => l.outcome === 'sent');
  const status = (k: string) => report.messages.byStatus[k] ?? 0;
  assert.equal(status('sent') + status('delivered') + status('read'), sent.length, 'messages sent in the database');
  assert.equal(report.messages.total, Object.values(report.messages.byStatus).reduce((a, b) => a + b, 0));
  const times = sent.map((l) => l.at).sort();
  assert.equal(report.firstSend, times[0] ?? null);
  assert.equal(report.lastSend, times.at(-1) ?? null);
  assert.equal(report.engineErrors, 0);
}

function assertSendLineShape(sends: SendLine[]): void {
  for (const l of sends) {
    assert.deepEqual(Object.keys(l), ['at', 'device', 'deviceKey', 'to', 'message', 'origin', 'attempt', 'outcome', 'body', 'media']);
    assert.equal(new Date(l.at).toISOString(), l.at);
    assert.match(l.to, /^\+[1-9]\d{6,14}$/);
  }
}

// ---- the examples ----

describe('basic-campaign example', () => {
  let run: Outputs & { scenario: Scenario };
  before(async () => {
    run = await runExample('basic-campaign');
  });

  test('every lead of the audience is sent exactly once, and nothing else', () => {
    assertSendLineShape(run.sends);
    assertAudienceSentOnce(run.scenario, run.sends);
    assertNoMessageSentTwice(run.sends);
    assert.equal(run.sends.length, 60);
    assert.deepEqual(run.report.messages.byStatus, { sent: 60 });
    assert.equal(run.report.campaigns[0]!.status, 'completed');
    assert.equal(run.report.virtual.stoppedBy, 'idle');
  });

  test('sends start when the window opens and stay inside it', () => {
    assertInsideWindows(run.scenario, run.sends);
    // The campaign starts at 08:30 Madrid time and waits for the window: 09:00 CET is 08:00Z.
    assert.equal(run.report.firstSend, '2026-03-02T08:00:00.000Z');
  });

  test('pacing: gaps within [min, max] unless the hourly cap held a send back; caps hold', () => {
    assertPacing(run.scenario, run.sends, true);
  });

  test('the report agrees with the sends file', () => {
    assertReportMatchesSends(run.report, run.sends);
    assert.deepEqual(Object.keys(run.report.devices), ['madrid-1', 'madrid-2', 'madrid-3']);
  });

  test('the CLI writes the same outputs for the same seed', async () => {
    const outDir = join(scratch, 'basic-cli');
    const io = capture();
    const code = await simulateCommand([join(EXAMPLES, 'basic-campaign.json'), '--out', outDir], io);
    assert.equal(code, 0, io.err);
    assert.match(io.out, /basic-campaign \(seed 42, pglite\)/);
    assert.match(io.out, /60: 60 sent/);
    const cli = await readOutputs(outDir);
    assert.deepEqual(cli.sends, run.sends);
    const stable = (r: SimulationReport) => ({ ...r, wallSeconds: null, throughput: { ...r.throughput, attemptsPerWallSecond: null } });
    assert.deepEqual(stable(cli.report), stable(run.report));
  });

  test('with --db postgres the same rules hold', { skip: !process.env.DATABASE_URL && 'DATABASE_URL is not set' }, async () => {
    const url = process.env.DATABASE_URL!;
    const schemas = async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const res = await client.query<{ n: number }>(`select count(*)::int as n from pg_namespace where nspname like 'fleetcast_sim_%'`);
        return res.rows[0]!.n;
      } finally {
        await client.end();
      }
    };
    const schemasBefore = await schemas();
    const outDir = join(scratch, 'basic-postgres');
    const io = capture();
    assert.equal(await simulateCommand([join(EXAMPLES, 'basic-campaign.json'), '--out', outDir, '--db', 'postgres'], io), 0, io.err);
    const pgRun = await readOutputs(outDir);
    assert.equal(pgRun.report.store, 'postgres');
    // Not byte-equal to the PGlite run: devices due at one instant may draw their delays in another order.
    assertAudienceSentOnce(run.scenario, pgRun.sends);
    assertNoMessageSentTwice(pgRun.sends);
    assertInsideWindows(run.scenario, pgRun.sends);
    assertPacing(run.scenario, pgRun.sends, true);
    assertReportMatchesSends(pgRun.report, pgRun.sends);
    assert.deepEqual(pgRun.report.messages, run.report.messages);
    assert.equal(await schemas(), schemasBefore, 'the scratch schema is dropped');
  });
});

describe('dst-window example', () => {
  let run: Outputs & { scenario: Scenario };
  before(async () => {
    run = await runExample('dst-window');
  });

  test('every lead of the audience is sent exactly once over several days', () => {
    assertAudienceSentOnce(run.scenario, run.sends);
    assertNoMessageSentTwice(run.sends);
    assert.deepEqual(run.report.messages.byStatus, { sent: 200 });
    const days = new Set(run.sends.map((l) => DateTime.fromISO(l.at, { zone: 'America/New_York' }).toISODate()));
    assert.ok(days.size >= 3, `sent over ${days.size} local days`);
  });

  test('the window follows New York local time across the DST change', () => {
    assertInsideWindows(run.scenario, run.sends);
    const firstOn = (date: string) => run.sends.map((l) => l.at).filter((at) => at.startsWith(date)).sort()[0];
    assert.equal(firstOn('2026-03-07'), '2026-03-07T14:00:00.000Z');
    assert.equal(firstOn('2026-03-08'), '2026-03-08T13:00:00.000Z');
    assert.equal(firstOn('2026-03-09'), '2026-03-09T13:00:00.000Z');
  });

  test('pacing and the daily cap hold on the short day too', () => {
    assertPacing(run.scenario, run.sends, true);
  });

  test('the report agrees with the sends file', () => {
    assertReportMatchesSends(run.report, run.sends);
  });
});

describe('faults example', () => {
  let run: Outputs & { scenario: Scenario };
  before(async () => {
    run = await runExample('faults');
  });

  const attemptsOf = (key: string, from: string, to: string) =>
    run.sends.filter((l) => l.deviceKey === key && l.at >= from && l.at < to);

  test('failures happen, yet no message is sent twice and no lead is sent more than once', () => {
    assertNoMessageSentTwice(run.sends);
    const sentTo = run.sends.filter((l) => l.outcome === 'sent').map((l) => l.to);
    assert.equal(new Set(sentTo).size, sentTo.length);
    assert.ok((run.report.attempts.byOutcome.transient_error ?? 0) > 0);
    assert.ok((run.report.attempts.byOutcome.permanent_error ?? 0) > 0);
    // Every message ended: sent (then delivered or read) or failed for good; none left behind.
    assert.equal(run.report.messages.total, 160);
    assert.equal(run.report.messages.byStatus.pending, undefined);
    assert.ok((run.report.messages.byStatus.read ?? 0) > 0);
  });

  test('scheduled disconnect, restriction and late device are honoured', () => {
    assert.deepEqual(attemptsOf('beta', '2026-03-02T08:20:00.000Z', '2026-03-02T08:50:00.000Z'), []);
    assert.deepEqual(attemptsOf('gamma', '2026-03-02T08:40:00.000Z', '2026-03-02T10:40:00.000Z'), []);
    assert.deepEqual(attemptsOf('spare', '2026-03-02T00:00:00.000Z', '2026-03-02T10:00:00.000Z'), []);
    assert.ok(run.report.devices.spare!.sent > 0);
    assert.ok(run.report.devices.gamma!.attempts > attemptsOf('gamma', '', '2026-03-02T08:40:00.000Z').length);
  });

  test('replies reach the leads', () => {
    assert.ok(run.report.repliedLeads > 0);
  });

  test('windows, minimum gaps and caps hold despite the faults', () => {
    assertInsideWindows(run.scenario, run.sends);
    assertPacing(run.scenario, run.sends, false);
  });

  test('the report agrees with the sends file', () => {
    assertReportMatchesSends(run.report, run.sends);
  });
});

describe('pool-campaign example', () => {
  let run: Outputs & { scenario: Scenario };
  before(async () => {
    run = await runExample('pool-campaign');
  });
  const sent = () => run.sends.filter((l) => l.outcome === 'sent');

  test('every pool lead is sent exactly once, inside the window, in a personalised text', () => {
    assertAudienceSentOnce(run.scenario, run.sends);
    assertNoMessageSentTwice(run.sends);
    assertInsideWindows(run.scenario, run.sends);
    assert.equal(sent().length, 300);
    for (const l of sent()) assert.match(l.body, /^(Hola|Buenas) (Lucia|Pablo|Marta|vecino), new flats in Chamberi this week\.$/);
    const c = run.report.campaigns[0]!;
    assert.deepEqual([c.mode, c.status, c.audience, c.sent, c.pending], ['pool', 'completed', 300, 300, 0]);
  });

  test('the per-device hourly quota holds in every rolling hour', () => {
    const byDevice = new Map<string, number[]>();
    for (const l of sent()) byDevice.set(l.deviceKey, [...(byDevice.get(l.deviceKey) ?? []), Date.parse(l.at)]);
    let most = 0;
    for (const times of byDevice.values()) {
      times.sort((a, b) => a - b);
      for (let i = 0, j = 0; i < times.length; i++) {
        while (times[j]! <= times[i]! - HOUR) j++;
        most = Math.max(most, i - j + 1);
      }
    }
    assert.ok(most <= 12, `${most} sends in an hour`);
    assert.equal(run.report.campaigns[0]!.pool!.maxSentInRollingHour, most);
    assertPacing(run.scenario, run.sends, false);
  });

  test('devices that drop, are restricted or come late get nothing while unavailable', () => {
    const during = (key: string, from: string, to: string) => run.sends.filter((l) => l.deviceKey === key && l.at >= from && l.at < to);
    assert.deepEqual(during('sol-5', '2026-03-02T09:00:00.000Z', '2026-03-02T10:00:00.000Z'), []);
    assert.deepEqual(during('sol-4', '2026-03-02T12:00:00.000Z', '2026-03-02T13:00:00.000Z'), []);
    assert.deepEqual(during('reserve', '', '2026-03-02T11:00:00.000Z'), []);
    const pool = run.report.campaigns[0]!.pool!;
    assert.ok(pool.sentByDevice.reserve! > 0, 'the late device joins');
    assert.equal(Object.values(pool.sentByDevice).reduce((a, b) => a + b, 0), 300);
  });

  test('the spread among devices available throughout stays within one', () => {
    const pool = run.report.campaigns[0]!.pool!;
    assert.deepEqual(pool.steadyDevices, ['sol-1', 'sol-2', 'sol-3']);
    assert.ok(pool.spread !== null && pool.spread <= 1, `spread ${pool.spread}`);
    const counts = pool.steadyDevices.map((k) => pool.sentByDevice[k]!);
    assert.equal(pool.spread, Math.max(...counts) - Math.min(...counts));
  });

  test('the report agrees with the sends file', () => {
    assertReportMatchesSends(run.report, run.sends);
  });
});

describe('campaign-controls example', () => {
  let run: Outputs & { scenario: Scenario };
  before(async () => {
    run = await runExample('campaign-controls');
  });
  const of = (origin: string) => run.sends.filter((l) => l.origin === origin && l.outcome === 'sent');

  test('the check-up: personalised, with its image, nothing sent during the pause, all sent after', () => {
    const checkUp = of('campaign:1');
    assert.deepEqual(checkUp.map((l) => l.to).sort(), ['+351910000001', '+351910000002', '+351910000003', '+351910000004', '+351910000005']);
    const body = new Map(checkUp.map((l) => [l.to, l.body]));
    assert.match(body.get('+351910000001')!, /^(Ola|Bom dia) Ana, Dr Lima has check-up slots this week\.$/);
    assert.match(body.get('+351910000003')!, /^(Ola|Bom dia) Joana, Dr Reis has check-up slots this week\.$/);
    assert.match(body.get('+351910000004')!, /^(Ola|Bom dia) there, our team has check-up slots this week\.$/);
    for (const l of checkUp) assert.equal(l.media, 'image');
    assert.deepEqual(checkUp.filter((l) => l.at > '2026-03-02T12:00:00.000Z' && l.at < '2026-03-02T13:00:00.000Z'), []);
    const c = run.report.campaigns[0]!;
    assert.equal(c.status, 'completed');
    assert.deepEqual(c.events.map((e) => [e.type, e.outcome, e.status]), [
      ['pause', 'applied', 'paused'],
      ['resume', 'applied', 'running'],
    ]);
  });

  test('the check-up keeps its own gap between two of its sends on a device', () => {
    const times = new Map<string, number[]>();
    for (const l of of('campaign:1')) times.set(l.deviceKey, [...(times.get(l.deviceKey) ?? []), Date.parse(l.at)]);
    for (const [key, ts] of times) {
      for (let i = 1; i < ts.length; i++) {
        const gap = ts[i]! - ts[i - 1]!;
        const acrossPause = ts[i]! >= Date.parse('2026-03-02T13:00:00Z') && ts[i - 1]! <= Date.parse('2026-03-02T12:00:00Z');
        assert.ok(acrossPause || (gap >= 240_000 && gap <= 300_000), `${key}: gap ${gap} ms`);
      }
    }
  });

  test('the reminder is cancelled: nothing pending, nothing sent after the cancel', () => {
    const c = run.report.campaigns[1]!;
    assert.deepEqual([c.status, c.sent, c.cancelled, c.pending], ['cancelled', 2, 2, 0]);
    assert.deepEqual(of('campaign:2').filter((l) => l.at > '2026-03-02T09:03:00.000Z'), []);
    for (const l of of('campaign:2')) assert.match(l.body, /^Hi (Pedro|Sofia|Tiago|Marta), your aligner review is due\.$/);
  });

  test('a lead without a device is reached by no owned campaign', () => {
    assert.deepEqual(run.sends.filter((l) => l.to === '+351910000009'), []);
    assertReportMatchesSends(run.report, run.sends);
  });
});

// ---- invalid scenarios ----

describe('invalid scenarios', () => {
  let basic: Record<string, unknown>;
  before(async () => {
    basic = JSON.parse(await readFile(join(EXAMPLES, 'basic-campaign.json'), 'utf8')) as Record<string, unknown>;
  });

  /** A deep copy of the basic example with `edit` applied. */
  const variant = (edit: (s: any) => void): unknown => {
    const copy = structuredClone(basic);
    edit(copy);
    return copy;
  };

  async function rejects(name: string, content: string, expected: RegExp[]): Promise<void> {
    const file = join(scratch, `${name}.json`);
    await writeFile(file, content);
    const outDir = join(scratch, `${name}-out`);
    const io = capture();
    const code = await simulateCommand([file, '--out', outDir], io);
    assert.equal(code, 2, `exit code; stderr: ${io.err}`);
    for (const re of expected) assert.match(io.err, re);
    assert.equal(io.out, '');
    assert.equal(existsSync(outDir), false, 'no output is written');
  }

  const cases: [string, (s: any) => void, RegExp][] = [
    ['unknown field', (s) => (s.users[0].devices[0].colour = 'red'), /users\[0\]\.devices\[0\]\.colour: unknown field/],
    ['bad zone', (s) => (s.users[0].timeZone = 'Mars/Olympus_Mons'), /users\[0\]\.timeZone: unknown IANA time zone "Mars\/Olympus_Mons"/],
    ['bad HH:MM', (s) => (s.users[0].campaigns[0].window.start = '9am'), /users\[0\]\.campaigns\[0\]\.window\.start: expected HH:MM/],
    [
      'unknown device key',
      (s) => (s.users[0].campaigns[0].audience.devices = ['lisbon']),
      /users\[0\]\.campaigns\[0\]\.audience\.devices\[0\]: unknown device "lisbon"/,
    ],
    ['missing required field', (s) => delete s.users[0].timeZone, /users\[0\]\.timeZone: required/],
    [
      'unknown device in an event',
      (s) => (s.events = [{ type: 'disconnect', at: '2026-03-02T09:00:00Z', device: 'nope', minutes: 5 }]),
      /events\[0\]\.device: unknown device "nope"/,
    ],
    ['unknown event type', (s) => (s.events = [{ type: 'explode', at: '2026-03-02T09:00:00Z', device: 'madrid' }]), /events\[0\]\.type: /],
    [
      'event after the horizon',
      (s) => (s.events = [{ type: 'online', at: '2026-04-01T00:00:00Z', device: 'madrid' }]),
      /events\[0\]\.at: is after the scenario horizon/,
    ],
    [
      'bad generator prefix',
      (s) => (s.users[0].leads.phonePrefix = '34600'),
      /users\[0\]\.leads\.phonePrefix: expected '\+' and 1-7 digits/,
    ],
    ['non-UTC start', (s) => (s.start = '2026-03-02T07:00:00+01:00'), /\.json: start: expected an ISO-8601 UTC date-time/],
    [
      'window end equal to its start',
      (s) => (s.users[0].campaigns[0].window = { start: '09:00', end: '09:00' }),
      /users\[0\]\.campaigns\[0\]\.window\.end: must differ from start/,
    ],
    [
      'delay override max under min',
      (s) => Object.assign(s.users[0].campaigns[0], { minDelaySeconds: 60, maxDelaySeconds: 30 }),
      /users\[0\]\.campaigns\[0\]\.maxDelaySeconds: must be >= minDelaySeconds/,
    ],
    [
      'half a delay override',
      (s) => (s.users[0].campaigns[0].minDelaySeconds = 60),
      /users\[0\]\.campaigns\[0\]\.maxDelaySeconds: required with minDelaySeconds/,
    ],
    [
      'quota on an owned campaign',
      (s) => (s.users[0].campaigns[0].deviceHourlyQuota = 10),
      /users\[0\]\.campaigns\[0\]\.deviceHourlyQuota: only a pool campaign \(mode "pool"\) has per-device quotas/,
    ],
    [
      'daily quota on an owned campaign',
      (s) => (s.users[0].campaigns[0].deviceDailyQuota = 10),
      /users\[0\]\.campaigns\[0\]\.deviceDailyQuota: only a pool campaign/,
    ],
    ['unknown mode', (s) => (s.users[0].campaigns[0].mode = 'shared'), /users\[0\]\.campaigns\[0\]\.mode: /],
    [
      'a broken template',
      (s) => (s.users[0].campaigns[0].message = 'Hi {first_name'),
      /users\[0\]\.campaigns\[0\]\.message: Unclosed '\{' at index 3/,
    ],
    ['bad media type', (s) => (s.users[0].campaigns[0].media = { type: 'gif', url: 'https://x.example/a.gif' }), /users\[0\]\.campaigns\[0\]\.media\.type: /],
    ['bad media url', (s) => (s.users[0].campaigns[0].media = { type: 'image', url: 'ftp://x.example/a.jpg' }), /users\[0\]\.campaigns\[0\]\.media\.url: expected an http\(s\) URL/],
    [
      'nested lead attribute',
      (s) => (s.users[0].leads = [{ phone: '+34600000001', device: 'madrid-1', attributes: { company: { name: 'Acme' } } }]),
      /users\[0\]\.leads\[0\]\.attributes\.company: expected a string, number, boolean or null/,
    ],
    [
      'pool leads with devices',
      (s) => Object.assign(s.users[0].leads, { pool: true, devices: ['madrid'] }),
      /users\[0\]\.leads\.devices: a pool of leads has no devices/,
    ],
    [
      'unknown campaign in a pause event',
      (s) => (s.events = [{ type: 'pause', at: '2026-03-02T09:00:00Z', campaign: 'Autumn sale' }]),
      /events\[0\]\.campaign: unknown campaign "Autumn sale" \(campaigns: "Spring check-up"\)/,
    ],
    [
      'pause before the campaign starts',
      (s) => (s.events = [{ type: 'pause', at: '2026-03-02T07:00:00Z', campaign: 'Spring check-up' }]),
      /events\[0\]\.at: is before the campaign "Spring check-up" starts \(startAt 2026-03-02T07:30:00\.000Z\)/,
    ],
    [
      'resume without a pause',
      (s) => (s.events = [{ type: 'resume', at: '2026-03-02T09:00:00Z', campaign: 'Spring check-up' }]),
      /events\[0\]\.type: the campaign "Spring check-up" is not paused at that time/,
    ],
    [
      'pause twice',
      (s) =>
        (s.events = [
          { type: 'pause', at: '2026-03-02T09:00:00Z', campaign: 'Spring check-up' },
          { type: 'pause', at: '2026-03-02T09:30:00Z', campaign: 'Spring check-up' },
        ]),
      /events\[1\]\.type: the campaign "Spring check-up" is already paused by events\[0\]/,
    ],
    [
      'an event after a cancel',
      (s) =>
        (s.events = [
          { type: 'resume', at: '2026-03-02T10:00:00Z', campaign: 'Spring check-up' },
          { type: 'cancel', at: '2026-03-02T09:00:00Z', campaign: 'Spring check-up' },
        ]),
      /events\[0\]\.type: the campaign "Spring check-up" is already cancelled by events\[1\]/,
    ],
    [
      'a campaign event naming a device',
      (s) => (s.events = [{ type: 'cancel', at: '2026-03-02T09:00:00Z', device: 'madrid-1', campaign: 'Spring check-up' }]),
      /events\[0\]\.device: unknown field/,
    ],
    [
      'an ambiguous campaign name',
      (s) => {
        s.users[0].campaigns.push({ ...s.users[0].campaigns[0] });
        s.events = [{ type: 'cancel', at: '2026-03-02T09:00:00Z', campaign: 'Spring check-up' }];
      },
      /events\[0\]\.campaign: "Spring check-up" names 2 campaigns \(users\[0\]\.campaigns\[0\], users\[0\]\.campaigns\[1\]\)/,
    ],
  ];
  for (const [name, edit, expected] of cases) {
    test(`${name}: exit 2 naming the field`, async () => {
      await rejects(name.replace(/\W+/g, '-'), JSON.stringify(variant(edit)), [expected]);
    });
  }

  test('every error is reported at once, one line each', async () => {
    const content = JSON.stringify(
      variant((s) => {
        s.users[0].timeZone = 'Nowhere/City';
        s.users[0].campaigns[0].window.end = '25:00';
        s.users[0].devices[0].maxDelaySeconds = 1;
        s.surprise = true;
      }),
    );
    await rejects('many-errors', content, [
      /users\[0\]\.timeZone: unknown IANA time zone/,
      /users\[0\]\.campaigns\[0\]\.window\.end: expected HH:MM/,
      /users\[0\]\.devices\[0\]\.maxDelaySeconds: must be >= minDelaySeconds/,
      /many-errors\.json: surprise: unknown field/,
    ]);
  });

  test('a missing file and invalid JSON are clear errors', async () => {
    const io = capture();
    assert.equal(await simulateCommand([join(scratch, 'absent.json'), '--out', join(scratch, 'absent-out')], io), 2);
    assert.match(io.err, /absent\.json: cannot read the scenario: no such file/);
    await rejects('broken-json', '{ "name": "x", ', [/broken-json\.json: invalid JSON: /]);
  });

  test('bad usage exits 2', async () => {
    const file = join(EXAMPLES, 'basic-campaign.json');
    for (const args of [[], [file], [file, '--out', join(scratch, 'u'), '--db', 'mysql'], [file, '--out', join(scratch, 'u'), '--bogus']]) {
      const io = capture();
      assert.equal(await simulateCommand(args, io), 2, args.join(' '));
      assert.match(io.err, /usage: fleetcast simulate/);
    }
    assert.equal(existsSync(join(scratch, 'u')), false);
  });

  test('cross-field rules: device keys, references, timeline', () => {
    const issues = (edit: (s: any) => void) => {
      const r = validateScenario(variant(edit));
      assert.equal(r.ok, false);
      return r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`);
    };
    assert.deepEqual(
      issues((s) => s.users[0].devices.push({ key: 'madrid-2' })),
      ['users[0].devices[1].key: "madrid-2" is already used by users[0].devices[0]'],
    );
    assert.deepEqual(
      issues((s) => (s.users[0].leads = [{ phone: '+34600000001', device: 'madrid' }])),
      ['users[0].leads[0].device: "madrid" is a group of 3 devices; a lead belongs to one, such as "madrid-1"'],
    );
    assert.deepEqual(
      issues((s) => (s.users[0].leads = [{ phone: '+34600000001', device: 'madrid-1' }, { phone: '+34600000001', device: 'madrid-2' }])),
      ['users[0].leads[1].phone: duplicate of users[0].leads[0].phone'],
    );
    assert.deepEqual(
      issues((s) => (s.users[0].campaigns[0].startAt = '2026-03-01T00:00:00Z')),
      ['users[0].campaigns[0].startAt: is before the scenario start (2026-03-02T06:00:00Z)'],
    );
    assert.deepEqual(issues((s) => (s.until = '2026-03-01T00:00:00Z')).slice(0, 1), ['until: must be after start (2026-03-02T06:00:00Z)']);
  });
});
