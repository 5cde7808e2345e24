/**
 * Campaign options in `fleetcast simulate` scenarios, on small worlds: each test states what the
 * scenario says must happen and checks the sends and the report against it (local times read with
 * luxon, gaps and caps counted from the sends), never against the engine's own functions.
 *
 * The pool tests need the engine's pool allocator; where it is not built they are skipped.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { DateTime } from 'luxon';
import { pino } from 'pino';
import { VirtualClock } from '../src/engine/clock.js';
import type { CampaignReport, SendLine, SimulationReport } from '../src/services/simulation/report.js';
import { driveWorld, runSimulation } from '../src/services/simulation/run.js';
import type { Scenario } from '../src/services/simulation/scenario.js';
import { openMemoryStore } from '../src/services/simulation/store.js';
import { validateScenario } from '../src/services/simulation/validate.js';
import { buildWorld } from '../src/services/simulation/world.js';

const HOUR = 3_600_000;
const poolAllocator = fileURLToPath(new URL('../src/engine/pool-allocator.js', import.meta.url));
const noPool = existsSync(poolAllocator) ? false : 'pool allocator not present';

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'fleetcast-simulation-campaigns-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function scenarioOf(json: unknown): Scenario {
  const v = validateScenario(json);
  if (!v.ok) throw new Error(v.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return v.scenario;
}

interface Run {
  report: SimulationReport;
  sends: SendLine[];
}

async function simulate(json: unknown): Promise<Run> {
  const scenario = scenarioOf(json);
  const outDir = join(scratch, scenario.name);
  await runSimulation(scenario, { outDir, store: 'memory', log: pino({ level: 'silent' }) });
  const sends = (await readFile(join(outDir, 'sends.jsonl'), 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as SendLine);
  const report = JSON.parse(await readFile(join(outDir, 'report.json'), 'utf8')) as SimulationReport;
  assert.equal(report.engineErrors, 0, 'engine errors');
  return { report, sends };
}

const sent = (r: Run) => r.sends.filter((l) => l.outcome === 'sent');
const campaign = (r: Run, name: string): CampaignReport => r.report.campaigns.find((c) => c.name === name)!;

/** Gaps between consecutive send attempts of each device, in ms. */
function gapsByDevice(sends: readonly SendLine[]): Map<string, number[]> {
  const times = new Map<string, number[]>();
  for (const l of sends) times.set(l.deviceKey, [...(times.get(l.deviceKey) ?? []), Date.parse(l.at)]);
  const out = new Map<string, number[]>();
  for (const [key, ts] of times) {
    ts.sort((a, b) => a - b);
    out.set(key, ts.slice(1).map((t, i) => t - ts[i]!));
  }
  return out;
}

describe('a window without a zone opens in the user\'s zone', () => {
  let run: Run;
  before(async () => {
    run = await simulate({
      name: 'tokyo-window',
      seed: 3,
      start: '2026-03-02T00:00:00Z',
      until: '2026-03-06T00:00:00Z',
      users: [
        {
          timeZone: 'Asia/Tokyo',
          devices: [{ key: 'tokyo', count: 2, minDelaySeconds: 60, maxDelaySeconds: 120 }],
          leads: { count: 120, phonePrefix: '+8190' },
          // 10:30 in Tokyo: today's window has closed, so the first send waits for tomorrow's.
          campaigns: [{ name: 'Tokyo', message: 'Hi', startAt: '2026-03-02T01:30:00Z', window: { start: '09:00', end: '10:00' } }],
        },
      ],
    });
  });

  test('every send is between 09:00 and 10:00 Tokyo time, from the next morning on', () => {
    const local = sent(run).map((l) => DateTime.fromISO(l.at, { zone: 'Asia/Tokyo' }));
    assert.equal(local.length, 120);
    for (const t of local) assert.equal(t.hour, 9, `sent at ${t.toISO()}`);
    assert.equal(run.report.firstSend, '2026-03-03T00:00:00.000Z');
    // About 40 sends per device-hour: 120 leads need two mornings.
    assert.equal(new Set(local.map((t) => t.toISODate())).size, 2);
  });

  test('the campaign report', () => {
    const c = campaign(run, 'Tokyo');
    assert.equal(c.mode, 'owned');
    assert.equal(c.status, 'completed');
    assert.equal(c.audience, 120);
    assert.deepEqual([c.sent, c.failed, c.cancelled, c.pending], [120, 0, 0, 0]);
    assert.equal(c.firstSend, run.report.firstSend);
    assert.equal(c.lastSend, run.report.lastSend);
    assert.equal(c.pool, null);
    assert.deepEqual(c.events, []);
  });
});

/** Two devices, 60 leads, one campaign at 09:00 UTC, and the given campaign events. */
function eventWorld(name: string, events: unknown[]): unknown {
  return {
    name,
    seed: 5,
    start: '2026-03-02T09:00:00Z',
    until: '2026-03-03T09:00:00Z',
    users: [
      {
        timeZone: 'UTC',
        devices: [{ key: 'ev', count: 2, minDelaySeconds: 10, maxDelaySeconds: 20 }],
        leads: { count: 60, phonePrefix: '+3460' },
        campaigns: [{ name: 'Promo', message: 'Hi', startAt: '2026-03-02T09:00:00Z' }],
      },
    ],
    events,
  };
}

describe('pause, then resume', () => {
  const pauseAt = Date.parse('2026-03-02T09:02:00Z');
  const resumeAt = Date.parse('2026-03-02T10:00:00Z');
  let run: Run;
  before(async () => {
    run = await simulate(
      eventWorld('pause-resume', [
        { type: 'pause', at: '2026-03-02T09:02:00Z', campaign: 'Promo' },
        { type: 'resume', at: '2026-03-02T10:00:00Z', campaign: 'Promo' },
      ]),
    );
  });

  test('nothing is sent while the campaign is paused', () => {
    const times = run.sends.map((l) => Date.parse(l.at));
    assert.deepEqual(times.filter((t) => t > pauseAt && t < resumeAt).map((t) => new Date(t).toISOString()), []);
    assert.ok(times.some((t) => t <= pauseAt), 'sends before the pause');
    assert.ok(times.some((t) => t >= resumeAt), 'sends after the resume');
  });

  test('after the resume every lead is reached once and the campaign completes', () => {
    const phones = sent(run).map((l) => l.to);
    assert.equal(phones.length, 60);
    assert.equal(new Set(phones).size, 60);
    const c = campaign(run, 'Promo');
    assert.equal(c.status, 'completed');
    assert.deepEqual([c.sent, c.pending, c.cancelled], [60, 0, 0]);
    assert.deepEqual(c.events, [
      { type: 'pause', at: '2026-03-02T09:02:00.000Z', outcome: 'applied', status: 'paused' },
      { type: 'resume', at: '2026-03-02T10:00:00.000Z', outcome: 'applied', status: 'running' },
    ]);
  });
});

describe('cancel', () => {
  const cancelAt = Date.parse('2026-03-02T09:02:00Z');
  let run: Run;
  before(async () => {
    run = await simulate(eventWorld('cancel', [{ type: 'cancel', at: '2026-03-02T09:02:00Z', campaign: 'Promo' }]));
  });

  test('leaves nothing pending and sends nothing after it', () => {
    const c = campaign(run, 'Promo');
    assert.equal(c.status, 'cancelled');
    assert.equal(c.pending, 0);
    assert.ok(c.sent > 0 && c.sent < 60, `${c.sent} sent before the cancel`);
    assert.equal(c.sent + c.cancelled, 60);
    assert.equal(run.report.messages.byStatus.pending, undefined);
    assert.deepEqual(run.sends.filter((l) => Date.parse(l.at) > cancelAt), []);
    assert.deepEqual(c.events, [{ type: 'cancel', at: '2026-03-02T09:02:00.000Z', outcome: 'applied', status: 'cancelled' }]);
    assert.equal(run.report.virtual.stoppedBy, 'idle');
  });
});

describe('a campaign event that comes too late is refused, as the API would refuse it', () => {
  test('pausing a completed campaign', async () => {
    const run = await simulate(eventWorld('late-pause', [{ type: 'pause', at: '2026-03-02T12:00:00Z', campaign: 'Promo' }]));
    const c = campaign(run, 'Promo');
    assert.equal(c.status, 'completed');
    assert.deepEqual(c.events, [{ type: 'pause', at: '2026-03-02T12:00:00.000Z', outcome: 'refused', status: 'completed' }]);
  });
});

describe('a campaign\'s delay override', () => {
  test('paces its sends with its own gap instead of the device\'s', async () => {
    const run = await simulate({
      name: 'delay-override',
      seed: 9,
      start: '2026-03-02T09:00:00Z',
      users: [
        {
          timeZone: 'UTC',
          devices: [{ key: 'slow', count: 2, minDelaySeconds: 5, maxDelaySeconds: 15 }],
          leads: { count: 30, phonePrefix: '+3460' },
          campaigns: [{ name: 'Gentle', message: 'Hi', startAt: '2026-03-02T09:00:00Z', minDelaySeconds: 60, maxDelaySeconds: 90 }],
        },
      ],
    });
    assert.equal(sent(run).length, 30);
    const gaps = [...gapsByDevice(run.sends).values()].flat();
    assert.equal(gaps.length, 28);
    for (const g of gaps) assert.ok(g >= 60_000 && g <= 90_000, `gap ${g} ms outside [60 s, 90 s]`);
  });
});

describe('templates and media', () => {
  const world = {
    name: 'personal',
    seed: 11,
    start: '2026-03-02T09:00:00Z',
    users: [
      {
        timeZone: 'Europe/Madrid',
        devices: [{ key: 'es', minDelaySeconds: 1, maxDelaySeconds: 2 }],
        leads: [
          { name: 'Ana Lopez', phone: '+34600000001', device: 'es', attributes: { company: 'Acme', seats: 12 } },
          { phone: '+34600000002', device: 'es' },
          { name: '  Mary  Ann Smith ', phone: '+34600000003', device: 'es', attributes: { company: 'Blue Ltd' } },
        ],
        campaigns: [
          {
            name: 'Personal',
            message: '{Hi|Hello} {first_name:there}, {company:your team} has {seats:no} seats.',
            media: { type: 'image', url: 'https://cdn.example.com/spring.jpg' },
            startAt: '2026-03-02T09:00:00Z',
          },
        ],
      },
      {
        timeZone: 'UTC',
        devices: [{ key: 'gen', minDelaySeconds: 1, maxDelaySeconds: 2 }],
        leads: { count: 4, phonePrefix: '+4470', names: ['Zoe Park', 'Yan'], attributes: { city: 'Leeds' } },
        campaigns: [{ name: 'Generated', message: 'Hey {first_name} from {city}', startAt: '2026-03-02T09:00:00Z' }],
      },
    ],
  };
  let run: Run;
  before(async () => {
    run = await simulate(world);
  });

  test('each body is the template rendered for its lead', () => {
    const body = new Map(sent(run).map((l) => [l.to, l.body]));
    assert.match(body.get('+34600000001')!, /^(Hi|Hello) Ana, Acme has 12 seats\.$/);
    assert.match(body.get('+34600000002')!, /^(Hi|Hello) there, your team has no seats\.$/);
    assert.match(body.get('+34600000003')!, /^(Hi|Hello) Mary, Blue Ltd has no seats\.$/);
    assert.equal(body.get('+447000000001'), 'Hey Zoe from Leeds');
    assert.equal(body.get('+447000000002'), 'Hey Yan from Leeds');
    assert.equal(body.get('+447000000003'), 'Hey Zoe from Leeds');
  });

  test('the media goes with every message of the campaign that has it, unfetched', () => {
    for (const l of sent(run)) assert.equal(l.media, l.to.startsWith('+34') ? 'image' : null, l.to);
  });

  test('a second run renders the same variants (sends.jsonl is reproducible)', async () => {
    const again = await simulate({ ...world, name: 'personal-again' });
    assert.deepEqual(again.sends, run.sends);
  });
});

// ---- pool campaigns -------------------------------------------------------------------------

const POOL_QUOTA = 12;

/** Four devices and one that never comes online; 96 pool leads; pool-4 drops for an hour. */
const poolWorld = {
  name: 'pool',
  seed: 13,
  start: '2026-03-02T08:00:00Z',
  until: '2026-03-03T08:00:00Z',
  users: [
    {
      timeZone: 'Europe/Madrid',
      devices: [
        { key: 'pool', count: 4, minDelaySeconds: 20, maxDelaySeconds: 40 },
        { key: 'late', minDelaySeconds: 20, maxDelaySeconds: 40, online: false },
      ],
      leads: { count: 96, phonePrefix: '+3460', pool: true, names: ['Lucia Gil', 'Pablo'] },
      campaigns: [
        {
          name: 'Pool promo',
          message: 'Hola {first_name}',
          mode: 'pool',
          startAt: '2026-03-02T08:00:00Z',
          deviceHourlyQuota: POOL_QUOTA,
        },
      ],
    },
  ],
  events: [{ type: 'disconnect', at: '2026-03-02T08:30:00Z', device: 'pool-4', minutes: 60 }],
};

describe('a pool campaign\'s daily limits', { skip: noPool }, () => {
  test('the campaign\'s daily limit and per-device daily quota hold on each local day of the user', async () => {
    // Half an hour before midnight in Sao Paulo: five sends fit today, the other five tomorrow.
    const run = await simulate({
      name: 'pool-daily',
      seed: 17,
      start: '2026-03-03T02:30:00Z',
      until: '2026-03-04T02:30:00Z',
      users: [
        {
          timeZone: 'America/Sao_Paulo',
          devices: [{ key: 'sp', count: 2, minDelaySeconds: 10, maxDelaySeconds: 10 }],
          leads: { count: 10, phonePrefix: '+5511', pool: true },
          campaigns: [
            { name: 'Daily', message: 'Oi', mode: 'pool', startAt: '2026-03-03T02:30:00Z', deviceDailyQuota: 3, dailyLimit: 5 },
          ],
        },
      ],
    });
    const perDay = new Map<string, number>();
    const perDeviceDay = new Map<string, number>();
    for (const l of sent(run)) {
      const day = DateTime.fromISO(l.at, { zone: 'America/Sao_Paulo' }).toISODate()!;
      perDay.set(day, (perDay.get(day) ?? 0) + 1);
      perDeviceDay.set(`${l.deviceKey} ${day}`, (perDeviceDay.get(`${l.deviceKey} ${day}`) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(perDay), { '2026-03-02': 5, '2026-03-03': 5 });
    for (const [k, n] of perDeviceDay) assert.ok(n <= 3, `${k}: ${n}`);
    // The second day starts at local midnight (03:00Z).
    assert.equal(sent(run).map((l) => l.at).filter((at) => at >= '2026-03-03T03:00:00.000Z').sort()[0], '2026-03-03T03:00:00.000Z');
    assert.equal(campaign(run, 'Daily').status, 'completed');
  });
});

describe('a pool campaign', { skip: noPool }, () => {
  let run: Run;
  before(async () => {
    run = await simulate(poolWorld);
  });

  test('reaches every pool lead once', () => {
    const c = campaign(run, 'Pool promo');
    assert.equal(c.mode, 'pool');
    assert.equal(c.status, 'completed');
    assert.equal(c.audience, 96);
    assert.deepEqual([c.sent, c.failed, c.cancelled, c.pending], [96, 0, 0, 0]);
    const phones = sent(run).map((l) => l.to);
    assert.equal(new Set(phones).size, 96);
    for (const l of sent(run)) assert.match(l.body, /^Hola (Lucia|Pablo)$/);
  });

  test('per-device hourly quota holds in every rolling hour, as counted from the sends', () => {
    const c = campaign(run, 'Pool promo');
    assert.ok(c.pool!.maxSentInRollingHour <= POOL_QUOTA, `${c.pool!.maxSentInRollingHour} in an hour`);
    const times = new Map<string, number[]>();
    for (const l of sent(run)) times.set(l.deviceKey, [...(times.get(l.deviceKey) ?? []), Date.parse(l.at)]);
    let most = 0;
    for (const ts of times.values()) {
      ts.sort((a, b) => a - b);
      for (let i = 0, j = 0; i < ts.length; i++) {
        while (ts[j]! <= ts[i]! - HOUR) j++;
        most = Math.max(most, i - j + 1);
      }
    }
    assert.equal(c.pool!.maxSentInRollingHour, most);
  });

  test('an offline device gets nothing, a dropped one nothing while it is down', () => {
    const c = campaign(run, 'Pool promo');
    assert.equal(c.pool!.sentByDevice.late, 0);
    const down = run.sends.filter((l) => l.deviceKey === 'pool-4' && l.at > '2026-03-02T08:30:00.000Z' && l.at < '2026-03-02T09:30:00.000Z');
    assert.deepEqual(down, []);
    assert.equal(Object.values(c.pool!.sentByDevice).reduce((a, b) => a + b, 0), 96);
  });

  test('the spread: devices online throughout stay within one message of each other', () => {
    const c = campaign(run, 'Pool promo');
    assert.deepEqual(c.pool!.steadyDevices, ['pool-1', 'pool-2', 'pool-3']);
    assert.ok(c.pool!.spread !== null && c.pool!.spread <= 1, `spread ${c.pool!.spread}`);
  });

  test('each sent lead now belongs to the device that sent it', async () => {
    const scenario = scenarioOf({ ...poolWorld, name: 'pool-leads' });
    const clock = new VirtualClock(Date.parse(scenario.start));
    const store = await openMemoryStore((p) => clock.track(p));
    try {
      const world = await buildWorld(store.db, scenario, new Date(clock.now()));
      await driveWorld(store.db, clock, world, scenario, { log: pino({ level: 'silent' }) });
      const res = await store.db.query<{ sent: number; owned: number; stray: number }>(
        `select count(*)::int as sent,
                count(*) filter (where l.device_id = m.device_id)::int as owned,
                (select count(*)::int from leads where device_id is null) as stray
           from messages m join leads l on l.id = m.lead_id
          where m.status = 'sent'`,
      );
      assert.deepEqual(res.rows[0], { sent: 96, owned: 96, stray: 0 });
    } finally {
      await store.dispose();
    }
  });
});
