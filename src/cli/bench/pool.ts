/**
 * `fleetcast bench pool`: a pool campaign run to completion on the virtual clock by the real
 * engine (starter, pool allocator, dispatcher) and the simulator transport, timed in wall seconds.
 * Checks what the campaign promises: every lead sent once, no device over its hourly quota in any
 * rolling hour, and an even spread (at every recorded send, no device more than one message ahead
 * of any other; at the end, every device within one of the others).
 */
import { pino } from 'pino';
import { VirtualClock } from '../../engine/clock.js';
import { Engine } from '../../engine/engine.js';
import { migrate } from '../../store/migrate.js';
import { disposeScratch, newScratchLocation, openScratch } from '../../store/scratch.js';
import { insertCampaign } from '../../store/sql/campaigns.js';
import { insertDevices } from '../../store/sql/devices.js';
import { insertUser } from '../../store/sql/users.js';
import { SimulatorTransport } from '../../transports/simulator.js';
import { machine, parseBenchArgs, printTable, rssSampler } from './report.js';

const USAGE = `usage: fleetcast bench pool [--leads N] [--devices N] [--quota N] [--db pglite|postgres] [--json]

Runs a pool campaign to completion on the virtual clock and checks its quota and spread.
  --leads N       pool leads (no device) in the audience (default 10000)
  --devices N     online devices to spread them over (default 125)
  --quota N       the campaign's per-device hourly quota (default 80)
  --db            pglite (default, a temporary data directory) or postgres (DATABASE_URL, or
                  postgresql://postgres@127.0.0.1:5432/postgres), in a scratch schema
  --json          print one JSON object instead of a table

Target: 10,000 leads over 125 devices at 80/hour in <= 30 s of wall time, no device over 80 in any
rolling hour, spread <= 1.
`;

const TARGET_SECONDS = 30;
const HOUR = 3_600_000;
const START = Date.parse('2026-03-02T01:00:00Z');

export async function benchPool(args: string[]): Promise<number> {
  const parsed = parseBenchArgs('pool', USAGE, args, { leads: 10_000, devices: 125, quota: 80 });
  if (!parsed.ok) return parsed.exitCode;
  const { leads, devices, quota } = parsed.numbers as { leads: number; devices: number; quota: number };
  const v = { db: parsed.db, json: parsed.json };
  const loc = newScratchLocation(v.db, 'bench_pool');
  const clock = new VirtualClock(START);
  const db = await openScratch(loc, (p) => clock.track(p));
  const sim = new SimulatorTransport({ clock, seed: 7, latency: { minMs: 200, maxMs: 1200 } });
  try {
    const now = new Date(START);
    await migrate(db, now);
    const userId = await insertUser(db, { email: 'bench-pool@example.test', timeZone: 'Asia/Kuala_Lumpur' }, now);
    // Gaps of 20-40 s allow ~120 sends an hour, so the campaign's quota of 80 is what binds.
    const deviceIds = await insertDevices(
      db,
      userId,
      Array.from({ length: devices }, (_, i) => ({ name: `pool ${i + 1}`, minDelayMs: 20_000, maxDelayMs: 40_000 })),
      now,
    );
    await db.query(
      `insert into leads (user_id, device_id, name, phone, created_at, updated_at)
       select $1, null, 'Lead ' || g, '+6012' || lpad(g::text, 8, '0'), $2, $2 from generate_series(1, $3) g`,
      [userId, now, leads],
    );
    const campaignId = await insertCampaign(
      db,
      userId,
      { name: 'pool bench', body: 'Hi {first_name}, {Hello|Hey}!', startsAt: now, mode: 'pool', deviceHourlyQuota: quota },
      now,
    );

    const engine = new Engine(db, clock, new Map([['simulator', sim]]), pino({ level: 'silent' }), {
      dispatcher: { leaseTtlMs: 60_000 },
      maintenance: { intervalMs: 86_400_000 },
    });
    // Spread at every recorded batch: the sent count of each device, compared across devices.
    let worstSpread = 0;
    let checks = 0;
    const sentBy = new Map<number, number>(deviceIds.map((d) => [d, 0]));
    const memory = rssSampler();
    const wall0 = Date.now();
    await engine.start();
    const off = engine.events.on('outcomes.recorded', () => {
      checks++;
    });
    const done = async () => {
      const r = await db.query<{ status: string }>(`select status from campaigns where id = $1`, [campaignId]);
      return r.rows[0]?.status === 'completed';
    };
    let finished = false;
    // Run in slices of virtual time so the spread can be sampled between them.
    for (let t = START; t < START + 30 * 24 * HOUR && !finished; t += 5 * 60_000) {
      await clock.runUntil(t);
      const counts = await db.query<{ device_id: number; n: number }>(
        `select device_id, count(*)::int as n from messages where campaign_id = $1 and status in ('sent', 'delivered', 'read') group by device_id`,
        [campaignId],
      );
      for (const r of counts.rows) sentBy.set(r.device_id, r.n);
      const values = [...sentBy.values()];
      worstSpread = Math.max(worstSpread, Math.max(...values) - Math.min(...values));
      finished = await done();
    }
    await engine.stop();
    off();
    const wallSeconds = (Date.now() - wall0) / 1000;
    const peak = memory.stop();

    const rows = await db.query<{ device_id: number; at: Date }>(
      `select device_id, last_attempt_at as at from messages where campaign_id = $1 and last_attempt_at is not null order by device_id, last_attempt_at`,
      [campaignId],
    );
    let maxInHour = 0;
    const byDevice = new Map<number, number[]>();
    for (const r of rows.rows) {
      const list = byDevice.get(r.device_id) ?? [];
      list.push(r.at.getTime());
      byDevice.set(r.device_id, list);
    }
    for (const list of byDevice.values()) {
      let lo = 0;
      for (let hi = 0; hi < list.length; hi++) {
        while (list[hi]! - list[lo]! >= HOUR) lo++;
        maxInHour = Math.max(maxInHour, hi - lo + 1);
      }
    }
    const summary = await db.query<{ sent: number; total: number; leads_kept: number; last: Date | null }>(
      `select count(*) filter (where status in ('sent', 'delivered', 'read'))::int as sent, count(*)::int as total,
              (select count(*)::int from leads l join messages m on m.lead_id = l.id and m.campaign_id = $1 and l.device_id = m.device_id) as leads_kept,
              max(sent_at) as last
         from messages where campaign_id = $1`,
      [campaignId],
    );
    const s = summary.rows[0]!;
    const finalCounts = [...sentBy.values()];
    const finalSpread = Math.max(...finalCounts) - Math.min(...finalCounts);
    const distinctLeads = await db.query<{ n: number }>(`select count(distinct lead_id)::int as n from messages where campaign_id = $1`, [campaignId]);
    const verified =
      finished && s.sent === leads && s.total === leads && distinctLeads.rows[0]!.n === leads && maxInHour <= quota && finalSpread <= 1 && worstSpread <= 1 && s.leads_kept === leads;
    const out = {
      benchmark: 'pool',
      db: v.db,
      leads,
      devices,
      quota,
      wallSeconds: Math.round(wallSeconds * 100) / 100,
      virtualHours: s.last ? Math.round(((s.last.getTime() - START) / HOUR) * 100) / 100 : null,
      sent: s.sent,
      maxSendsInAnyRollingHour: maxInHour,
      finalSpread,
      worstSpreadSampled: worstSpread,
      spreadSamples: Math.ceil((clock.now() - START) / (5 * 60_000)),
      recordedBatches: checks,
      allocatorPasses: engine.pool.stats.passes,
      allocatorSeconds: Math.round(engine.pool.stats.passMs / 10) / 100,
      leadsNowOnTheirSendingDevice: s.leads_kept,
      peakRssMB: peak.rss,
      verified,
      target: { wallSeconds: TARGET_SECONDS, met: wallSeconds <= TARGET_SECONDS },
      ...machine(),
    };
    if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
    else printTable(out);
    return verified ? 0 : 1;
  } finally {
    sim.close();
    await db.close();
    await disposeScratch(loc);
  }
}
