/**
 * Campaigns through the real engine on the virtual clock, on every backend: windows in the owner's
 * zone across a DST change, pause and resume, cancel, opt-outs, personalisation and spintax, the
 * campaign's own gap, chunked materialisation resumed after a crash, and pool campaigns (quotas,
 * even spread, reassignment, the lead kept by the device that sent it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DateTime } from 'luxon';
import { VirtualClock } from '../../src/engine/clock.js';
import { parseTemplate, expansions } from '../../src/engine/content/template.js';
import { CampaignService } from '../../src/services/campaigns.js';
import type { Actor } from '../../src/services/actor.js';
import type { Db } from '../../src/store/db.js';
import { completeFinishedCampaigns, insertCampaign, startCampaignNow, type NewCampaign } from '../../src/store/sql/campaigns.js';
import { materialiseNextChunk } from '../../src/engine/materialise.js';
import { insertDevices, type NewDevice } from '../../src/store/sql/devices.js';
import { cancelPendingForLeads } from '../../src/store/sql/leads.js';
import { insertUser } from '../../src/store/sql/users.js';
import { ensureWindow } from '../../src/store/sql/windows.js';
import { SimulatorTransport, type SendAttempt } from '../../src/transports/simulator.js';
import { backends, openTestDb } from '../helpers/db.js';
import { byDevice, duplicates, runToIdle, stopEngine, virtualEngine } from '../helpers/world.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/**
 * An engine for runs of several virtual days: the pool allocator polls every ten minutes instead of
 * every 10 s (device and campaign changes still wake it at once); a pool campaign waiting for its
 * next local day otherwise ran 5,800 empty passes.
 */
function longRunEngine(db: Db, clock: VirtualClock, sim: SimulatorTransport) {
  return virtualEngine(db, clock, sim, { pool: { pollMs: 10 * 60_000 } });
}

interface Tenant {
  userId: number;
  actor: Actor;
  devices: number[];
}

async function tenant(db: Db, now: number, timeZone: string, devices: Partial<NewDevice>[]): Promise<Tenant> {
  const userId = await insertUser(db, { email: `t-${now}-${Math.random()}@example.test`, timeZone }, new Date(now));
  const ids = await insertDevices(db, userId, devices.map((d, i) => ({ name: `d${i + 1}`, minDelayMs: 0, maxDelayMs: 0, ...d })), new Date(now));
  return { userId, devices: ids, actor: { userId, tenantId: userId, teamMember: false, deviceScope: null, timeZone, defaultCountry: null } as Actor };
}

/** `n` leads, named and with a city on every other one, spread over `devices` (null: the pool). */
async function leads(db: Db, userId: number, n: number, devices: number[] | null, now: number, first = 1): Promise<number[]> {
  const res = await db.query<{ id: number }>(
    `insert into leads (user_id, device_id, name, phone, attributes, created_at, updated_at)
     select $1, case when $2::bigint[] is null then null else ($2::bigint[])[1 + (g % cardinality($2::bigint[]))] end,
            'Ana ' || g || ' Silva', '+3460' || lpad(g::text, 7, '0'),
            case when g % 2 = 0 then jsonb_build_object('city', 'Porto') else '{}'::jsonb end, $3, $3
       from generate_series($4::int, $4::int + $5::int - 1) g
     returning id`,
    [userId, devices, new Date(now), first, n],
  );
  return res.rows.map((r) => r.id);
}

async function campaign(db: Db, userId: number, c: Partial<NewCampaign>, now: number): Promise<number> {
  return insertCampaign(db, userId, { name: 'c', body: 'Hello', startsAt: new Date(now), ...c }, new Date(now));
}

async function rows(db: Db, campaignId: number) {
  const res = await db.query<{ id: number; lead_id: number; device_id: number; status: string; body: string; sent_at: Date | null; last_attempt_at: Date | null }>(
    `select id, lead_id, device_id, status, body, sent_at, last_attempt_at from messages where campaign_id = $1 order by id`,
    [campaignId],
  );
  return res.rows;
}

async function campaignStatus(db: Db, id: number): Promise<string> {
  return (await db.query<{ status: string }>(`select status from campaigns where id = $1`, [id])).rows[0]!.status;
}

const sent = (a: readonly SendAttempt[]) => a.filter((x) => x.outcome === 'sent');

for (const backend of backends) {
  describe(`campaigns in the engine on ${backend}`, () => {
    it('sends only inside the window in the owner zone, across the spring DST change', async () => {
      // Europe/London moves to BST on 2026-03-29: 09:00 local is 09:00Z before, 08:00Z after.
      const T0 = Date.parse('2026-03-27T12:00:00Z');
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 5 });
      try {
        const w = await tenant(t.db, T0, 'Europe/London', [{ minDelayMs: 600_000, maxDelayMs: 600_000 }]);
        await leads(t.db, w.userId, 200, w.devices, T0);
        const windowId = await ensureWindow(t.db, { timeZone: 'Europe/London', startMinute: 9 * 60, endMinute: 18 * 60, days: 127 });
        const id = await campaign(t.db, w.userId, { windowId }, T0);
        const engine = longRunEngine(t.db, clock, sim);
        await engine.start();
        await runToIdle(clock, engine, sim, T0 + 10 * DAY);
        await stopEngine(clock, engine);
        const s = sent(sim.attempts);
        assert.equal(s.length, 200);
        const days = new Set<string>();
        for (const a of s) {
          const local = DateTime.fromMillis(a.at, { zone: 'Europe/London' });
          const minute = local.hour * 60 + local.minute;
          assert.ok(minute >= 540 && minute < 1080, `sent at ${local.toISO()}`);
          days.add(local.toISODate()!);
        }
        assert.ok(days.has('2026-03-29') && days.has('2026-03-30'), `sent on ${[...days].join(', ')}`);
        // The first send after the change opens at 09:00 BST, which is 08:00Z.
        const firstOnDstDay = Math.min(...s.filter((a) => DateTime.fromMillis(a.at, { zone: 'Europe/London' }).toISODate() === '2026-03-29').map((a) => a.at));
        assert.equal(new Date(firstOnDstDay).toISOString(), '2026-03-29T08:00:00.000Z');
        assert.equal(await campaignStatus(t.db, id), 'completed');
      } finally {
        sim.close();
        await t.dispose();
      }
    });

    it('a paused campaign sends nothing until resumed, and the resume keeps the device pace', async () => {
      const T0 = Date.parse('2026-05-04T08:00:00Z');
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 6 });
      try {
        const w = await tenant(t.db, T0, 'UTC', [{ minDelayMs: 30_000, maxDelayMs: 60_000, hourlyLimit: 50 }]);
        await leads(t.db, w.userId, 80, w.devices, T0);
        const id = await campaign(t.db, w.userId, {}, T0);
        const service = new CampaignService(t.db, clock);
        const engine = longRunEngine(t.db, clock, sim);
        await engine.start();
        await clock.runUntil(T0 + 10 * 60_000);
        const before = sent(sim.attempts).length;
        assert.ok(before > 5 && before < 30, `${before} sent before the pause`);
        await service.pause(w.actor, id);
        const paused = await rows(t.db, id);
        assert.equal(paused.filter((r) => r.status === 'pending').length, 0, 'nothing is left claimable');
        assert.ok(paused.filter((r) => r.status === 'held').length > 0);
        const pausedAt = clock.now();
        await clock.runUntil(pausedAt + 3 * HOUR);
        const during = sent(sim.attempts).filter((a) => a.at > pausedAt + 5_000);
        assert.deepEqual(during, [], 'nothing was sent while paused');
        const resumedAt = clock.now();
        await service.resume(w.actor, id);
        await runToIdle(clock, engine, sim, resumedAt + 2 * DAY);
        await stopEngine(clock, engine);
        const all = sent(sim.attempts);
        assert.equal(all.length, 80);
        assert.deepEqual(duplicates(sim.attempts), []);
        const after = all.filter((a) => a.at >= resumedAt).map((a) => a.at);
        // No burst: every gap after the resume is the device's gap, and no rolling hour holds more than 50.
        for (let i = 1; i < after.length; i++) assert.ok(after[i]! - after[i - 1]! >= 30_000, `gap ${after[i]! - after[i - 1]!} ms after resume`);
        for (let i = 0; i < after.length; i++) assert.ok(after.filter((x) => x >= after[i]! && x < after[i]! + HOUR).length <= 50);
        assert.equal(await campaignStatus(t.db, id), 'completed');
      } finally {
        sim.close();
        await t.dispose();
      }
    });

    it('cancel leaves nothing pending and nothing more is sent; an opted-out lead never receives', async () => {
      const T0 = Date.parse('2026-05-04T08:00:00Z');
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 7 });
      try {
        const w = await tenant(t.db, T0, 'UTC', [{ minDelayMs: 60_000, maxDelayMs: 60_000 }, { minDelayMs: 60_000, maxDelayMs: 60_000 }]);
        const ids = await leads(t.db, w.userId, 40, w.devices, T0);
        // One lead opted out before the start, one after materialisation.
        await t.db.query(`update leads set opted_out_at = $2 where id = $1`, [ids[0], new Date(T0)]);
        const id = await campaign(t.db, w.userId, {}, T0);
        const service = new CampaignService(t.db, clock);
        const engine = longRunEngine(t.db, clock, sim);
        await engine.start();
        await clock.runUntil(T0 + 1_000);
        const materialised = await rows(t.db, id);
        assert.equal(materialised.length, 39, 'the opted-out lead has no row');
        await t.db.query(`update leads set opted_out_at = $2 where id = $1`, [ids[39], new Date(clock.now())]);
        await cancelPendingForLeads(t.db, [ids[39]!], 'opted_out', new Date(clock.now()));
        await clock.runUntil(T0 + 5 * 60_000);
        await service.cancel(w.actor, id);
        const cancelledAt = clock.now();
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);
        const final = await rows(t.db, id);
        assert.equal(final.filter((r) => r.status === 'pending' || r.status === 'held' || r.status === 'sending').length, 0);
        assert.ok(final.filter((r) => r.status === 'cancelled').length > 20);
        assert.deepEqual(sent(sim.attempts).filter((a) => a.at > cancelledAt), []);
        const leadOf = new Map(final.map((r) => [r.id, r.lead_id]));
        const reached = new Set(sent(sim.attempts).map((a) => leadOf.get(a.message)));
        assert.ok(!reached.has(ids[0]) && !reached.has(ids[39]), 'opted-out leads received nothing');
        assert.equal(await campaignStatus(t.db, id), 'cancelled');
      } finally {
        sim.close();
        await t.dispose();
      }
    });

    it('personalises each message and picks one spintax option per lead; the campaign gap replaces the device gap', async () => {
      const T0 = Date.parse('2026-05-04T08:00:00Z');
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 8 });
      try {
        const w = await tenant(t.db, T0, 'UTC', [{ minDelayMs: 1_000, maxDelayMs: 2_000 }]);
        await leads(t.db, w.userId, 60, w.devices, T0);
        const body = '{Hi|Hello} {first_name:there}, {name} from {city:your town}! {{code}}';
        const id = await campaign(t.db, w.userId, { body, minDelayMs: 120_000, maxDelayMs: 180_000 }, T0);
        const engine = longRunEngine(t.db, clock, sim);
        await engine.start();
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);
        const got = await rows(t.db, id);
        assert.equal(got.length, 60);
        const template = parseTemplate(body);
        const greetings = new Set<string>();
        for (const r of got) {
          const lead = (await t.db.query<{ name: string; phone: string; attributes: Record<string, unknown> }>(`select name, phone, attributes from leads where id = $1`, [r.lead_id])).rows[0]!;
          assert.ok(expansions(template, lead)!.includes(r.body), r.body);
          assert.ok(r.body.includes(` ${lead.name.split(' ')[0]}, ${lead.name} from `));
          assert.ok(r.body.endsWith('! {code}'));
          assert.ok(lead.attributes.city ? r.body.includes('from Porto') : r.body.includes('from your town'));
          greetings.add(r.body.split(' ')[0]!);
        }
        assert.deepEqual([...greetings].sort(), ['Hello', 'Hi']);
        const times = sent(sim.attempts).map((a) => a.at);
        for (let i = 1; i < times.length; i++) {
          const gap = times[i]! - times[i - 1]!;
          assert.ok(gap >= 120_000 && gap <= 180_000, `gap ${gap} outside the campaign's [120 s, 180 s]`);
        }
      } finally {
        sim.close();
        await t.dispose();
      }
    });

    it('materialises in chunks, resumes a start cut by a crash at its cursor, and completes only once it is whole', async () => {
      const T0 = Date.parse('2026-05-04T08:00:00Z');
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 9 });
      try {
        const w = await tenant(t.db, T0, 'UTC', [{}, {}, {}]);
        await leads(t.db, w.userId, 100, w.devices, T0);
        const id = await campaign(t.db, w.userId, { body: 'Hi {first_name}' }, T0);
        // A process started it and wrote three chunks of 7 leads, then died.
        assert.ok(await startCampaignNow(t.db, id, new Date(T0), ['scheduled'], 7));
        const plan = await t.db.query<{ lo: number; hi: number }>(`select lo, hi from campaign_chunks where campaign_id = $1 order by lo`, [id]);
        assert.equal(plan.rows.length, 15, '100 leads in chunks of 7');
        for (let i = 0; i < 3; i++) assert.equal((await materialiseNextChunk(t.db, id, T0))!.kind, 'chunk');
        assert.equal((await t.db.query(`select 1 from campaign_chunks where campaign_id = $1`, [id])).rows.length, 12);
        const progress = async () =>
          (await t.db.query<{ at: Date | null }>(`select materialised_at as at from campaigns where id = $1`, [id])).rows[0]!;
        assert.equal((await progress()).at, null);
        assert.equal((await rows(t.db, id)).length, 21);
        assert.equal(await campaignStatus(t.db, id), 'running');
        // Nothing completes a campaign whose start is unfinished, even with every row sent.
        await t.db.query(`update messages set status = 'sent', sent_at = $2, finished_at = $2 where campaign_id = $1`, [id, new Date(T0)]);
        assert.deepEqual(await completeFinishedCampaigns(t.db, [id], new Date(T0)), []);
        // The next process resumes at the cursor.
        const second = virtualEngine(t.db, clock, sim, { campaigns: { chunkLeads: 7 } });
        await second.start();
        await runToIdle(clock, second, sim, T0 + DAY);
        await stopEngine(clock, second);
        const all = await rows(t.db, id);
        assert.equal(all.length, 100);
        assert.equal(sent(sim.attempts).length, 79, 'the resumed chunks were sent, the first ones not again');
        assert.equal(new Set(all.map((r) => r.lead_id)).size, 100);
        assert.ok((await progress()).at !== null);
        assert.equal(await campaignStatus(t.db, id), 'completed');
        assert.equal((await t.db.query<{ n: number }>(`select audience_size as n from campaigns where id = $1`, [id])).rows[0]!.n, 100);
      } finally {
        sim.close();
        await t.dispose();
      }
    });

    it('a pool campaign spreads leads evenly over online devices within its hourly quota, and each lead stays with its sender', async () => {
      const T0 = Date.parse('2026-05-04T08:00:00Z');
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 10, latency: { minMs: 100, maxMs: 900 } });
      try {
        const w = await tenant(
          t.db,
          T0,
          'UTC',
          Array.from({ length: 6 }, (_, i) => ({ minDelayMs: 10_000 + i * 5_000, maxDelayMs: 20_000 + i * 5_000 })),
        );
        // Owned leads are not the pool's; opted-out pool leads are never included.
        await leads(t.db, w.userId, 10, w.devices, T0, 1);
        const pool = await leads(t.db, w.userId, 130, null, T0, 100);
        await t.db.query(`update leads set opted_out_at = $2 where id = any($1::bigint[])`, [pool.slice(0, 4), new Date(T0)]);
        const id = await campaign(t.db, w.userId, { mode: 'pool', deviceHourlyQuota: 10, body: 'Hi {first_name}' }, T0);
        const engine = longRunEngine(t.db, clock, sim);
        await engine.start();
        // Sample the spread of sent counts as the campaign runs.
        let worst = 0;
        for (let at = T0; at < T0 + 5 * HOUR; at += 30_000) {
          await clock.runUntil(at);
          const counts = new Map(w.devices.map((d) => [d, 0]));
          for (const a of sent(sim.attempts)) counts.set(a.device, counts.get(a.device)! + 1);
          worst = Math.max(worst, Math.max(...counts.values()) - Math.min(...counts.values()));
        }
        await runToIdle(clock, engine, sim, T0 + DAY);
        await stopEngine(clock, engine);
        assert.ok(worst <= 1, `spread reached ${worst}`);
        const got = await rows(t.db, id);
        assert.equal(got.length, 126);
        assert.equal(got.filter((r) => r.status === 'sent').length, 126);
        assert.deepEqual(duplicates(sim.attempts), []);
        const per = byDevice(sent(sim.attempts));
        assert.deepEqual([...per.values()].map((l) => l.length).sort(), [21, 21, 21, 21, 21, 21]);
        for (const list of per.values()) {
          const times = list.map((a) => a.at);
          for (let i = 0; i < times.length; i++) assert.ok(times.filter((x) => x >= times[i]! && x < times[i]! + HOUR).length <= 10, 'hourly quota');
        }
        // The quota bound the pace: 21 each at 10 an hour needs more than two hours.
        assert.ok(Math.max(...sent(sim.attempts).map((a) => a.at)) - T0 > 2 * HOUR);
        const kept = await t.db.query<{ n: number }>(
          `select count(*)::int as n from messages m join leads l on l.id = m.lead_id and l.device_id = m.device_id where m.campaign_id = $1`,
          [id],
        );
        assert.equal(kept.rows[0]!.n, 126, 'each lead now belongs to the device that sent to it');
        assert.equal(await campaignStatus(t.db, id), 'completed');
        const owned = await t.db.query<{ n: number }>(`select count(*)::int as n from messages where campaign_id = $1 and lead_id < $2`, [id, pool[0]]);
        assert.equal(owned.rows[0]!.n, 0, "owned leads are not the pool's");
      } finally {
        sim.close();
        await t.dispose();
      }
    });

    it('a pool campaign moves waiting leads off a device that goes offline or is restricted, and keeps its daily limit', async () => {
      const T0 = Date.parse('2026-05-04T08:00:00Z');
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 11 });
      try {
        const w = await tenant(t.db, T0, 'UTC', Array.from({ length: 3 }, () => ({ minDelayMs: 60_000, maxDelayMs: 60_000 })));
        await leads(t.db, w.userId, 60, null, T0);
        const id = await campaign(t.db, w.userId, { mode: 'pool', dailyLimit: 40, body: 'Hello' }, T0);
        const engine = longRunEngine(t.db, clock, sim);
        await engine.start();
        await clock.runUntil(T0 + 10 * 60_000);
        const [d1, d2] = w.devices;
        sim.dropFor(d1!, 6 * HOUR);
        sim.restrict(d2!, T0 + 8 * HOUR);
        const droppedAt = clock.now();
        await clock.runUntil(droppedAt + 2 * HOUR);
        const mid = await rows(t.db, id);
        const waitingOnGone = mid.filter((r) => (r.device_id === d1 || r.device_id === d2) && r.status === 'pending');
        assert.deepEqual(waitingOnGone, [], 'nothing waits on a device that cannot send');
        const afterDrop = sent(sim.attempts).filter((a) => a.at > droppedAt + 5_000);
        assert.ok(afterDrop.length > 0 && afterDrop.every((a) => a.device === w.devices[2]), 'the remaining device carries on');
        await runToIdle(clock, engine, sim, T0 + 3 * DAY);
        await stopEngine(clock, engine);
        const all = sent(sim.attempts);
        assert.equal(all.length, 60);
        assert.deepEqual(duplicates(sim.attempts), []);
        // At most 40 a day (UTC, the owner's zone).
        const perDay = new Map<string, number>();
        for (const a of all) perDay.set(new Date(a.at).toISOString().slice(0, 10), (perDay.get(new Date(a.at).toISOString().slice(0, 10)) ?? 0) + 1);
        assert.deepEqual([...perDay.values()], [40, 20]);
        assert.equal(await campaignStatus(t.db, id), 'completed');
      } finally {
        sim.close();
        await t.dispose();
      }
    });
  });
}
