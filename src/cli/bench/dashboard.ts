/**
 * `fleetcast bench dashboard`: the dashboard's figures (GET /api/v1/dashboard, /monitoring and the
 * live stream's figures) on a big tenant: 1,000,000 leads, 15 devices, 29 finished daily campaigns
 * of 100,000 messages each (the history, some failed, some leads replied), and a campaign running
 * today: 15,000 messages attempted today, 85,000 waiting. A second tenant of the same shape's
 * small sibling shares the tables, as on any real server.
 *
 * Each figure is computed `--runs` times in this process (after 3 untimed runs) through the
 * service the routes call, so the figures are the store's cost without HTTP; `--explain` prints
 * each statement's plan.
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SystemClock } from '../../engine/clock.js';
import { createServices } from '../../services/index.js';
import { DashboardService } from '../../services/dashboard.js';
import type { Actor } from '../../services/actor.js';
import { migrate } from '../../store/migrate.js';
import { disposeScratch, newScratchLocation, openScratch } from '../../store/scratch.js';
import type { Db } from '../../store/db.js';
import { insertDevices } from '../../store/sql/devices.js';
import { generateLeadPopulation } from '../../store/sql/leads.js';
import { insertUser } from '../../store/sql/users.js';
import { machine, printTable } from './report.js';

const USAGE = `usage: fleetcast bench dashboard [--leads N] [--runs N] [--db pglite|postgres] [--explain] [--json]
  --leads N   leads of the big tenant (default 1000000); messages scale with it (3 per lead)
  --runs N    timed runs of each figure (default 50)
  --explain   print the plan of every statement the figures run
`;

const DEVICES = 15;
const ZONE = 'Asia/Kuala_Lumpur';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * History as the engine leaves it: `days` finished campaigns, one a day, each to `perDay` leads,
 * and today's running one. Statuses and times come from a hash of the row number, so every run
 * builds the same rows.
 */
async function generateMessages(db: Db, userId: number, deviceIds: number[], leadLo: number, leadCount: number, now: Date, days: number, perDay: number, today: { attempted: number; waiting: number }): Promise<number> {
  const dayStart = new Date(Math.floor(now.getTime() / 86_400_000) * 86_400_000 - 8 * 3600_000);
  let written = 0;
  for (let day = days; day >= 0; day--) {
    const running = day === 0;
    const campaign = await db.query<{ id: number }>(
      `insert into campaigns (user_id, name, body, status, starts_at, created_at, updated_at, started_at, completed_at, audience_size, materialised_at)
       values ($1, $2, 'Hi {name}', $3, $4, $4, $4, $4, $5, $6, $4) returning id`,
      [userId, running ? 'Running today' : `Day -${day}`, running ? 'running' : 'completed', new Date(dayStart.getTime() - day * 86_400_000), running ? null : new Date(dayStart.getTime() - day * 86_400_000 + 12 * 3600_000), running ? today.attempted + today.waiting : perDay],
    );
    const count = running ? today.attempted + today.waiting : perDay;
    const res = await db.query(
      `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, attempts,
                             last_attempt_at, sent_at, delivered_at, read_at, finished_at, error_code, error, created_at)
       select $1, ($2::bigint[])[1 + (g % cardinality($2::bigint[]))], $3 + ((g * 7919 + $9) % $4), '+60120000000', $5, 'Hi',
              s.status, $6, case when s.attempted then 1 else 0 end,
              case when s.attempted then t.at end,
              case when s.status in ('sent', 'delivered', 'read') then t.at end,
              case when s.status in ('delivered', 'read') then t.at end,
              case when s.status = 'read' then t.at end,
              case when s.attempted then t.at end,
              case when s.status = 'failed' then 'REJECTED' end,
              case when s.status = 'failed' then 'simulated permanent failure' end,
              $6
         from generate_series(0, $7::int - 1) as g
         cross join lateral (select $6::timestamptz + make_interval(secs => (least(g, $10)::float8 / $10) * $8) as at) t
         cross join lateral (select case when g >= $10 then 'pending'
                                         when abs(hashint4(g)) % 50 = 0 then 'failed'
                                         when abs(hashint4(g)) % 3 = 0 then 'read'
                                         when abs(hashint4(g)) % 3 = 1 then 'delivered' else 'sent' end as status,
                                    g < $10 as attempted) s`,
      [
        userId,
        deviceIds,
        leadLo,
        leadCount,
        campaign.rows[0]!.id,
        running ? dayStart : new Date(dayStart.getTime() - day * 86_400_000 + 9 * 3600_000),
        count,
        // Today's sends spread from midnight to now; a past day's over nine hours.
        running ? (now.getTime() - dayStart.getTime()) / 1000 : 9 * 3600,
        day,
        running ? today.attempted : count,
      ],
    );
    written += res.rowCount;
  }
  return written;
}

export async function benchDashboard(args: string[]): Promise<number> {
  let v;
  try {
    v = parseArgs({
      args,
      options: {
        leads: { type: 'string', default: '1000000' },
        runs: { type: 'string', default: '50' },
        db: { type: 'string', default: 'pglite' },
        explain: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`fleetcast bench dashboard: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const leads = Number(v.leads);
  const runs = Number(v.runs);
  if (!Number.isInteger(leads) || leads < 1000 || !Number.isInteger(runs) || runs < 1 || (v.db !== 'pglite' && v.db !== 'postgres')) {
    process.stderr.write(`fleetcast bench dashboard: bad arguments\n\n${USAGE}`);
    return 2;
  }
  const say = (s: string) => !v.json && process.stderr.write(s + '\n');
  const loc = newScratchLocation(v.db as 'pglite' | 'postgres', 'dashboard');
  const clock = new SystemClock();
  const db = await openScratch(loc);
  const dir = mkdtempSync(join(tmpdir(), 'fleetcast-bench-dashboard-'));
  try {
    const t0 = Date.now();
    const now = new Date(clock.now());
    await migrate(db, now);
    const userId = await insertUser(db, { email: 'bench@example.test', timeZone: ZONE, defaultCountry: 'MY' }, now);
    const deviceIds = await insertDevices(db, userId, Array.from({ length: DEVICES }, (_, i) => ({ name: `d${i}`, minDelayMs: 5000, maxDelayMs: 15000 })), now);
    await db.query(`update devices set status = 'online' where user_id = $1`, [userId]);
    const chunk = 200_000;
    for (let start = 0; start < leads; start += chunk) {
      await generateLeadPopulation(db, userId, deviceIds, Math.min(chunk, leads - start), `+6012${String(start / chunk)}`, ['fitness', 'yoga', 'diet'], now);
    }
    const lo = (await db.query<{ lo: number }>(`select min(id)::bigint as lo from leads where user_id = $1`, [userId])).rows[0]!.lo;
    // One lead in a thousand replied at some point, one in ten thousand today.
    await db.query(
      `update leads set last_reply_at = case when id % 10000 = 0 then $2::timestamptz - interval '1 hour' else $2::timestamptz - interval '10 days' end
        where user_id = $1 and id % 1000 = 0`,
      [userId, now],
    );
    const perDay = Math.floor((leads * 29) / 10 / 29);
    const messages = await generateMessages(db, userId, deviceIds, Number(lo), leads, now, 29, perDay, { attempted: Math.floor(leads * 0.015), waiting: Math.floor(leads * 0.085) });
    // A small neighbour tenant in the same tables.
    const other = await insertUser(db, { email: 'other@example.test', timeZone: 'UTC', defaultCountry: 'MY' }, now);
    const otherDevices = await insertDevices(db, other, [{ name: 'o', minDelayMs: 5000, maxDelayMs: 15000 }], now);
    await generateLeadPopulation(db, other, otherDevices, 10_000, '+6013', ['x'], now);
    const olo = (await db.query<{ lo: number }>(`select min(id)::bigint as lo from leads where user_id = $1`, [other])).rows[0]!.lo;
    await generateMessages(db, other, otherDevices, Number(olo), 10_000, now, 3, 10_000, { attempted: 1000, waiting: 1000 });
    await db.exec('vacuum analyze');
    say(`setup: ${leads} leads, ${messages} messages in ${((Date.now() - t0) / 1000).toFixed(1)}s`);

    const services = createServices(db, clock, { log: pino({ level: 'silent' }), importDir: dir, owner: 'bench', transports: ['simulator'] });
    const actor: Actor = { userId, tenantId: userId, email: 'bench@example.test', role: 'admin', teamMember: false, deviceScope: null, timeZone: ZONE, defaultCountry: 'MY' };
    const member: Actor = { ...actor, teamMember: true, role: 'member', deviceScope: [deviceIds[0]!] };
    if (v.explain) await explainAll(db, () => services.dashboard.home(actor), () => services.dashboard.monitoring(actor));
    const figures: Record<string, { p50: number; p99: number; max: number }> = {};
    const cases: [string, () => Promise<unknown>][] = [
      ['dashboard', () => services.dashboard.home(actor)],
      ['monitoring', () => services.dashboard.monitoring(actor)],
      // Unshared: each call reads, as the first viewer of a tenant does.
      ['live figures', () => new DashboardService(db, clock, 0).figures(actor)],
      ['dashboard (team member, 1 device)', () => services.dashboard.home(member)],
    ];
    for (const [name, fn] of cases) {
      for (let i = 0; i < 3; i++) await fn();
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const s = process.hrtime.bigint();
        await fn();
        times.push(Number(process.hrtime.bigint() - s) / 1e6);
      }
      times.sort((x, y) => x - y);
      figures[name] = { p50: Math.round(percentile(times, 50) * 10) / 10, p99: Math.round(percentile(times, 99) * 10) / 10, max: Math.round(times[times.length - 1]! * 10) / 10 };
      say(`${name}: p50 ${figures[name].p50} ms, p99 ${figures[name].p99} ms`);
    }
    const home = (await services.dashboard.home(actor)) as { today: unknown; outbox: unknown };
    const out = { benchmark: 'dashboard', db: v.db, leads, messages, runs, latencyMs: figures, today: home.today, outbox: home.outbox, ...machine() };
    await services.imports.close();
    if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
    else printTable(out);
    return 0;
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
    await disposeScratch(loc);
  }
}

/** The plan of each statement the figures run, with the parameters they ran with. */
async function explainAll(db: Db, ...figures: (() => Promise<unknown>)[]): Promise<void> {
  const seen: [string, readonly unknown[]][] = [];
  const query = db.query.bind(db);
  db.query = (async (sql: string, params?: readonly unknown[]) => {
    seen.push([sql, params ?? []]);
    return query(sql, params);
  }) as Db['query'];
  try {
    for (const f of figures) await f();
  } finally {
    db.query = query;
  }
  const unique = new Map(seen.map(([sql, params]) => [sql, params]));
  for (const [sql, params] of unique) {
    const plan = await db.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers, costs off) ${sql}`, params);
    process.stderr.write(`\n== ${sql.replace(/\s+/g, ' ').slice(0, 140)}\n${plan.rows.map((r) => r['QUERY PLAN']).join('\n')}\n`);
  }
}
