/**
 * forecastCampaign: its answer is checked against what actually happens when the same campaign
 * runs on the same devices (the real engine on a virtual clock against the simulator, in the
 * tenant's own database), and against times worked out by hand for windows and daily caps.
 *
 * Tolerances. With a fixed gap (min = max delay) both timelines are deterministic and must agree
 * to the second (the second covers nothing but rounding: send times are exact on both sides).
 * With random gaps the forecast and the real run draw different gaps, so a device's finish differs
 * by the difference of two sums of n - 1 independent uniform draws, nearly normal with a standard
 * deviation s = sqrt(2 (n - 1)) (max - min) / sqrt(12). The campaign's finish is the latest
 * device's, which moves by no more than the largest of the devices' differences; five s plus a
 * second is exceeded by chance with probability under 15 devices x 6e-7, about 1e-5.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { DateTime } from 'luxon';
import { VirtualClock } from '../../src/engine/clock.js';
import { AppError } from '../../src/services/errors.js';
import { forecastCampaign, type Forecast } from '../../src/services/forecast.js';
import type { Db } from '../../src/store/db.js';
import { insertCampaign, type NewCampaign } from '../../src/store/sql/campaigns.js';
import { insertDevices, setDeviceStatuses, type NewDevice } from '../../src/store/sql/devices.js';
import { generateLeads, insertLeads } from '../../src/store/sql/leads.js';
import { insertUser } from '../../src/store/sql/users.js';
import { ensureWindow } from '../../src/store/sql/windows.js';
import { SimulatorTransport } from '../../src/transports/simulator.js';
import { backends, openTestDb, type TestDb } from '../helpers/db.js';
import { stopEngine, virtualEngine } from '../helpers/world.js';

const DAY = 86_400_000;
const poolAllocator = fileURLToPath(new URL('../../src/engine/pool-allocator.js', import.meta.url));
const noPool = existsSync(poolAllocator) ? false : 'pool allocator not present';

interface Tenant {
  userId: number;
  deviceIds: number[];
}

let phones = 0;

async function tenant(db: Db, now: Date, timeZone: string, devices: Partial<NewDevice>[], opts: { online?: boolean } = {}): Promise<Tenant> {
  const userId = await insertUser(db, { email: `forecast-${++phones}-${now.getTime()}@example.test`, timeZone }, now);
  const deviceIds = await insertDevices(
    db,
    userId,
    devices.map((d, i) => ({ name: `phone ${i + 1}`, minDelayMs: 10_000, maxDelayMs: 10_000, ...d })),
    now,
  );
  if (opts.online !== false) await setDeviceStatuses(db, deviceIds.map((id) => ({ id, status: 'online', at: now.getTime() })));
  return { userId, deviceIds };
}

/** `count` leads spread round-robin over the tenant's devices (lead g on deviceIds[g mod n]). */
async function leads(db: Db, t: Tenant, count: number, now: Date, deviceIds = t.deviceIds): Promise<void> {
  phones += 1;
  await generateLeads(db, t.userId, deviceIds, count, `+3469${String(phones).padStart(2, '0')}`, 1, now);
}

async function campaign(db: Db, t: Tenant, now: Date, c: Partial<NewCampaign> & { window?: { start: number; end: number; zone: string } }): Promise<number> {
  const { window, ...rest } = c;
  const windowId = window ? await ensureWindow(db, { timeZone: window.zone, startMinute: window.start, endMinute: window.end, days: 127 }) : null;
  return insertCampaign(db, t.userId, { name: 'spring', body: 'Hello {first_name:there}', startsAt: now, windowId, ...rest }, now);
}

/** Runs the engine over the whole database as production would, and reads when each device finished the campaign. */
async function runForReal(db: Db, clock: VirtualClock, campaignId: number, horizon: number): Promise<{ finish: number; perDevice: Map<number, number> }> {
  const sim = new SimulatorTransport({ clock, seed: 99 });
  // A long lease: renewing it every 20 s of virtual time would cost a query round each time over
  // days of waiting, and leases play no part in when messages go out.
  const engine = virtualEngine(db, clock, sim, { dispatcher: { leaseTtlMs: 3_600_000 } });
  // Until the campaign completes: an engine waiting for a pause to end counts as idle.
  let completed = false;
  engine.events.on('campaign.completed', (e) => {
    if (e.campaignId === campaignId) completed = true;
  });
  await engine.start();
  await clock.runUntil(horizon, () => completed);
  await stopEngine(clock, engine);
  const res = await db.query<{ device_id: number; last: Date; unsent: number }>(
    `select device_id, max(sent_at) as last, count(*) filter (where status not in ('sent', 'delivered', 'read'))::int as unsent
       from messages where campaign_id = $1 group by device_id`,
    [campaignId],
  );
  for (const r of res.rows) assert.equal(r.unsent, 0, `device ${r.device_id} left messages unsent`);
  const perDevice = new Map(res.rows.map((r) => [r.device_id, r.last.getTime()]));
  return { finish: Math.max(...perDevice.values()), perDevice };
}

const at = (f: Forecast) => Date.parse(f.finishes_at!);

function assertClose(actual: number, expected: number, tolerance: number, what: string): void {
  const diff = Math.abs(actual - expected);
  assert.ok(diff <= tolerance, `${what}: forecast ${new Date(expected).toISOString()}, actual ${new Date(actual).toISOString()} (${diff} ms apart, tolerance ${tolerance} ms)`);
}

/** The tolerance for a device's finish after n sends with gaps uniform in [min, max] ms (see the header). */
const randomGapTolerance = (n: number, minMs: number, maxMs: number) => Math.ceil(5 * Math.sqrt(2 * (n - 1)) * ((maxMs - minMs) / Math.sqrt(12))) + 1000;

for (const backend of backends) {
  describe(`forecastCampaign (${backend})`, () => {
    let t: TestDb;
    let clock: VirtualClock;
    // Each test works in its own tenant; every test but the real runs leaves the outbox alone.
    before(async () => {
      clock = new VirtualClock(Date.parse('2026-03-02T07:00:00Z'));
      t = await openTestDb(backend, (p) => clock.track(p));
    });
    after(async () => {
      await t.dispose();
    });

    const fresh = async (): Promise<{ db: Db; now: Date }> => {
      // A fresh database per comparison: the real run must see only this test's world.
      await t.dispose();
      clock = new VirtualClock(Date.parse('2026-03-02T07:00:00Z'));
      t = await openTestDb(backend, (p) => clock.track(p));
      return { db: t.db, now: new Date(clock.now()) };
    };

    test('with a fixed gap it matches running the campaign to the second, per device too', async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'Europe/Madrid', [{ minDelayMs: 20_000, maxDelayMs: 20_000 }, { minDelayMs: 30_000, maxDelayMs: 30_000 }, {}]);
      await leads(db, tn, 90, now);
      const id = await campaign(db, tn, now, { startsAt: new Date(now.getTime() + 600_000) });
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      assert.equal(f.exact, true);
      assert.equal(f.messages, 90);
      assert.equal(f.devices, 3);
      assert.equal(f.simulated_messages, 90);
      assert.equal(f.starts_at, '2026-03-02T07:10:00.000Z');
      // 30 messages per device: 29 gaps after the first at 07:10; the 30 s device is last.
      assert.equal(f.finishes_at, new Date(now.getTime() + 600_000 + 29 * 30_000).toISOString());
      const real = await runForReal(db, clock, id, now.getTime() + DAY);
      assertClose(real.finish, at(f), 1000, 'finish');
      for (const d of f.per_device) assertClose(real.perDevice.get(d.device_id)!, Date.parse(d.finishes_at!), 1000, `device ${d.device_id}`);
      assert.deepEqual(
        f.per_device.map((d) => [d.name, d.messages]),
        [
          ['phone 1', 30],
          ['phone 2', 30],
          ['phone 3', 30],
        ],
      );
    });

    test('with random gaps it matches running the campaign within the tolerance', async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'UTC', Array.from({ length: 15 }, () => ({ minDelayMs: 5_000, maxDelayMs: 15_000 })));
      await leads(db, tn, 300, now);
      const id = await campaign(db, tn, now, {});
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      assert.equal(f.devices, 15);
      const real = await runForReal(db, clock, id, now.getTime() + DAY);
      assertClose(real.finish, at(f), randomGapTolerance(20, 5_000, 15_000), 'finish');
    });

    test('messages already waiting on a device go first', async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'UTC', [{}, {}]);
      await leads(db, tn, 20, now);
      // An earlier campaign already has 15 messages waiting on the first device.
      const earlier = await campaign(db, tn, now, { name: 'earlier' });
      await db.query(
        `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, created_at)
         select $1, $2, 1000000 + g, '+1555' || g, $3, 'earlier', 'pending', $4, $4 from generate_series(1, 15) g`,
        [tn.userId, tn.deviceIds[0], earlier, now],
      );
      await db.query(`update campaigns set status = 'running', started_at = $2, materialised_at = $2 where id = $1`, [earlier, now]);
      const id = await campaign(db, tn, now, {});
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      assert.ok(f.notes.some((n) => /15 messages of other campaigns and sequences already wait/.test(n)), f.notes.join('\n'));
      const [first, second] = f.per_device;
      // 15 waiting + 10 of this campaign at 10 s on the first device; 10 on the second.
      assert.equal(first!.finishes_at, new Date(now.getTime() + 24 * 10_000).toISOString());
      assert.equal(second!.finishes_at, new Date(now.getTime() + 9 * 10_000).toISOString());
      const real = await runForReal(db, clock, id, now.getTime() + DAY);
      assertClose(real.finish, at(f), 1000, 'finish');
    });

    test('a running campaign: the forecast covers what it has not sent yet', async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'UTC', [
        { minDelayMs: 20_000, maxDelayMs: 20_000 },
        { minDelayMs: 20_000, maxDelayMs: 20_000 },
      ]);
      await leads(db, tn, 60, now);
      const id = await campaign(db, tn, now, {});
      // Five minutes of the real thing: 16 sends per device (at 0, 20, ..., 300 s).
      const sim = new SimulatorTransport({ clock, seed: 5 });
      const engine = virtualEngine(db, clock, sim, { dispatcher: { leaseTtlMs: 3_600_000 } });
      await engine.start();
      await clock.runUntil(now.getTime() + 300_000);
      await stopEngine(clock, engine);
      // Stopping disconnected the devices; in production they stay connected.
      await setDeviceStatuses(db, tn.deviceIds.map((d) => ({ id: d, status: 'online', at: clock.now() })));
      const f = await forecastCampaign(db, tn.userId, id, clock.now());
      assert.equal(f.messages, 28);
      assert.ok(f.notes.some((n) => /has started/.test(n)), f.notes.join('\n'));
      // The gap after each device's last send (300 s) is kept: the 30th goes at 300 + 14 x 20 s.
      assert.equal(f.finishes_at, new Date(now.getTime() + 580_000).toISOString());
      const real = await runForReal(db, clock, id, clock.now() + DAY);
      assertClose(real.finish, at(f), 1000, 'finish');
    });

    test('a window pushes the finish to the next day', async () => {
      const { db, now } = await fresh();
      // 08:00 in Madrid; the window is 09:00-10:00 there; 60 s gaps: 60 sends per device a morning.
      const tn = await tenant(db, now, 'Europe/Madrid', [
        { minDelayMs: 60_000, maxDelayMs: 60_000 },
        { minDelayMs: 60_000, maxDelayMs: 60_000 },
      ]);
      await leads(db, tn, 200, now);
      const id = await campaign(db, tn, now, { window: { start: 9 * 60, end: 10 * 60, zone: 'Europe/Madrid' } });
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      const local = DateTime.fromISO(f.finishes_at!, { zone: 'Europe/Madrid' });
      // 100 per device: 60 on Monday 09:00-09:59, the other 40 on Tuesday 09:00-09:39.
      assert.equal(local.toISO(), '2026-03-03T09:39:00.000+01:00');
      for (const d of f.per_device) assert.equal(d.finishes_at, f.finishes_at);
      const real = await runForReal(db, clock, id, now.getTime() + 3 * DAY);
      assertClose(real.finish, at(f), 1000, 'finish');
    });

    test('a device with a daily cap, counting what it already sent today', async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'UTC', [{ minDelayMs: 30_000, maxDelayMs: 30_000, dailyLimit: 10 }]);
      // Eight sends earlier today leave two for today.
      await db.query(
        `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, attempts, not_before,
                               last_attempt_at, sent_at, finished_at, created_at)
         select $1, $2, 2000000 + g, '+1666' || g, 999999, 'old', 'sent', 1, $3::timestamptz, $3::timestamptz + g * interval '1 minute',
                $3::timestamptz + g * interval '1 minute', $3::timestamptz + g * interval '1 minute', $3::timestamptz
           from generate_series(1, 8) g`,
        [tn.userId, tn.deviceIds[0], new Date('2026-03-02T05:00:00Z')],
      );
      await leads(db, tn, 25, now);
      const id = await campaign(db, tn, now, {});
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      // Monday: 2 (07:00:00, 07:00:30); Tuesday: 10; Wednesday: 10; Thursday: 3 from midnight.
      assert.equal(f.finishes_at, '2026-03-05T00:01:00.000Z');
      assert.deepEqual(
        f.per_device.map((d) => [d.device_id, d.messages, d.finishes_at]),
        [[tn.deviceIds[0], 25, '2026-03-05T00:01:00.000Z']],
      );
      const real = await runForReal(db, clock, id, now.getTime() + 5 * DAY);
      assertClose(real.finish, at(f), 1000, 'finish');
    });

    test('above maxMessages it simulates a share and extrapolates, across windows and days', async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'Europe/Madrid', [
        { minDelayMs: 45_000, maxDelayMs: 45_000 },
        { minDelayMs: 75_000, maxDelayMs: 75_000 },
        { minDelayMs: 60_000, maxDelayMs: 60_000, hourlyLimit: 40 },
      ]);
      await leads(db, tn, 450, now);
      const id = await campaign(db, tn, now, { window: { start: 9 * 60, end: 12 * 60, zone: 'Europe/Madrid' } });
      const f = await forecastCampaign(db, tn.userId, id, now.getTime(), { maxMessages: 60 });
      assert.equal(f.exact, false);
      assert.equal(f.messages, 450);
      assert.ok(f.simulated_messages >= 60 && f.simulated_messages < 80, `simulated ${f.simulated_messages}`);
      assert.ok(f.notes.some((n) => /extrapolated/.test(n)), f.notes.join('\n'));
      const exact = await forecastCampaign(db, tn.userId, id, now.getTime());
      assert.equal(exact.exact, true);
      // Fixed gaps: the continuation must land where the full simulation does, device by device.
      for (const d of f.per_device) {
        const e = exact.per_device.find((x) => x.device_id === d.device_id)!;
        assertClose(Date.parse(d.finishes_at!), Date.parse(e.finishes_at!), 1000, `device ${d.device_id}`);
      }
      const real = await runForReal(db, clock, id, now.getTime() + 10 * DAY);
      assertClose(real.finish, at(f), 1000, 'finish');
    });

    test('no online device: finishes_at is null, and the notes say why', async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'UTC', [{}, {}], { online: false });
      await leads(db, tn, 10, now);
      const id = await campaign(db, tn, now, {});
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      assert.equal(f.finishes_at, null);
      assert.equal(f.messages, 10);
      assert.ok(f.per_device.every((d) => d.finishes_at === null));
      assert.ok(f.notes.some((n) => /no online device/.test(n)), f.notes.join('\n'));
      assert.ok(f.notes.some((n) => /assumed to stay offline/.test(n)), f.notes.join('\n'));
    });

    test('no online device for a pool campaign: finishes_at is null, and the notes say why', async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'UTC', [{}, {}], { online: false });
      await insertLeads(
        db,
        tn.userId,
        Array.from({ length: 5 }, (_, i) => ({ name: '', phone: `+4477${String(i).padStart(8, '0')}`, deviceId: null, niches: [], status: 'prospect', triggers: [] })),
        now,
      );
      const id = await campaign(db, tn, now, { mode: 'pool' });
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      assert.deepEqual([f.messages, f.devices, f.finishes_at, f.per_device], [5, 0, null, []]);
      assert.ok(f.notes.some((n) => /no online device can take the pool campaign's leads/.test(n)), f.notes.join('\n'));
    });

    test('an offline device leaves its own leads unsent while the others finish', async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'UTC', [{}, {}]);
      await setDeviceStatuses(db, [{ id: tn.deviceIds[1]!, status: 'offline', at: now.getTime() }]);
      await leads(db, tn, 10, now);
      const id = await campaign(db, tn, now, {});
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      assert.equal(f.finishes_at, null);
      const [up, down] = f.per_device;
      assert.equal(up!.finishes_at, new Date(now.getTime() + 4 * 10_000).toISOString());
      assert.equal(down!.finishes_at, null);
    });

    test('a pool campaign', { skip: noPool }, async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'UTC', [
        { minDelayMs: 20_000, maxDelayMs: 20_000 },
        { minDelayMs: 20_000, maxDelayMs: 20_000 },
        { minDelayMs: 20_000, maxDelayMs: 20_000 },
      ]);
      await insertLeads(
        db,
        tn.userId,
        Array.from({ length: 60 }, (_, i) => ({ name: '', phone: `+4479${String(i).padStart(8, '0')}`, deviceId: null, niches: [], status: 'prospect', triggers: [] })),
        now,
      );
      const id = await campaign(db, tn, now, { mode: 'pool', deviceHourlyQuota: 10 });
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      assert.equal(f.messages, 60);
      assert.equal(f.devices, 3);
      assert.deepEqual(f.per_device.map((d) => d.messages), [20, 20, 20]);
      // Ten an hour per device: the 20th send of each is in the second hour.
      assert.ok(at(f) > now.getTime() + 3_600_000 && at(f) < now.getTime() + 2 * 3_600_000, f.finishes_at!);
      const real = await runForReal(db, clock, id, now.getTime() + DAY);
      assertClose(real.finish, at(f), 1000, 'finish');
    });

    test('a pool campaign whose devices are all paused for now starts when the pause ends', { skip: noPool }, async () => {
      const { db, now } = await fresh();
      const tn = await tenant(db, now, 'UTC', [
        { minDelayMs: 30_000, maxDelayMs: 30_000 },
        { minDelayMs: 30_000, maxDelayMs: 30_000 },
      ]);
      const until = new Date(now.getTime() + 2 * 3_600_000);
      await db.query(`update devices set paused_until = $2, pause_reason = 'cooling down' where id = any($1::bigint[])`, [tn.deviceIds, until]);
      await insertLeads(
        db,
        tn.userId,
        Array.from({ length: 10 }, (_, i) => ({ name: '', phone: `+4478${String(i).padStart(8, '0')}`, deviceId: null, niches: [], status: 'prospect', triggers: [] })),
        now,
      );
      const id = await campaign(db, tn, now, { mode: 'pool' });
      const f = await forecastCampaign(db, tn.userId, id, now.getTime());
      assert.ok(f.notes.some((n) => /paused until 2026-03-02T09:00:00.000Z/.test(n)), f.notes.join('\n'));
      // Five rounds of two, 30 s apart, from the end of the pause.
      assertClose(at(f), until.getTime() + 4 * 30_000, 2000, 'finish');
      // The real allocator also looks every 10 s on its own, so it may start up to 10 s later.
      const real = await runForReal(db, clock, id, now.getTime() + DAY);
      assertClose(real.finish, at(f), 11_000, 'finish');
    });

    test('another tenant\'s campaign is not found', async () => {
      const now = new Date(clock.now());
      const owner = await tenant(t.db, now, 'UTC', [{}]);
      const other = await tenant(t.db, now, 'UTC', [{}]);
      const id = await campaign(t.db, owner, now, {});
      await assert.rejects(forecastCampaign(t.db, other.userId, id, now.getTime()), (err: unknown) => {
        assert.ok(err instanceof AppError);
        assert.equal(err.code, 'CAMPAIGN_NOT_FOUND');
        assert.equal(err.status, 404);
        return true;
      });
      await assert.rejects(forecastCampaign(t.db, owner.userId, id + 1000, now.getTime()), /campaign not found/);
    });
  });
}
