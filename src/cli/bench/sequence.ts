/**
 * `fleetcast bench sequence`: enrolling N leads into a sequence of S steps, and the lazy planner's
 * work after it, on a store holding those leads.
 *
 * Untimed setup: one tenant, `--devices` devices, N leads spread over them, a sequence of S daily
 * steps (the first due at once, the others at 10:00 in the owner's zone). Timed:
 * 1. enrollment: every lead enrolled by one filter (the API's path), in one statement;
 * 2. planning: the planner writes every first step's message, batch after batch, as it does live;
 * 3. with `--walk K`: K more steps, each as a day of the drip: every waiting message marked sent in
 *    bulk (standing in for the dispatcher), every enrollment moved on in batches of the size the
 *    dispatcher records in (as its flushes do), the clock moved to the next step, and planned.
 * The outbox's pending rows are counted after every phase; they may never exceed the live
 * enrollments (one waiting message per enrollment at most).
 */
import { VirtualClock } from '../../engine/clock.js';
import { EngineEvents } from '../../engine/events.js';
import { SequencePlanner } from '../../engine/sequence-planner.js';
import { progressEnrollments } from '../../engine/sequence-progress.js';
import { migrate } from '../../store/migrate.js';
import { disposeScratch, newScratchLocation, openScratch } from '../../store/scratch.js';
import { insertDevices } from '../../store/sql/devices.js';
import { enrollLeadsWhere } from '../../store/sql/enrollments.js';
import { generateLeads } from '../../store/sql/leads.js';
import { insertUser } from '../../store/sql/users.js';
import { pino } from 'pino';
import { machine, parseBenchArgs, printTable, rssSampler } from './report.js';

const USAGE = `usage: fleetcast bench sequence [--leads N] [--steps N] [--devices N] [--walk K] [--db pglite|postgres] [--json]

Enrolls N leads into a sequence of S steps, then plans the first step, timed.
  --leads N       leads to enroll (default 1000000)
  --steps N       steps of the sequence (default 7)
  --devices N     devices the leads belong to (default 3000)
  --walk K        then move every enrollment through K more steps (default 0)
  --db            pglite (default, a temporary data directory) or postgres (DATABASE_URL, or
                  postgresql://postgres@127.0.0.1:5432/postgres), in a scratch schema
  --json          print one JSON object instead of a table

Target: 1,000,000 leads into a 7-step sequence in <= 20 s on PostgreSQL, never more than one
pending outbox message per active enrollment.
`;

const TARGET_SECONDS = 20;
const DAY = 86_400_000;
/** Monday 2026-03-02 00:30 in Kuala Lumpur. */
const START = Date.parse('2026-03-01T16:30:00Z');
/** Enrollments moved on per statement: the dispatcher's record batch. */
const ADVANCE_BATCH = 4096;

export async function benchSequence(args: string[]): Promise<number> {
  const parsed = parseBenchArgs('sequence', USAGE, args, { leads: 1_000_000, steps: 7, devices: 3000, walk: 0 });
  if (!parsed.ok) return parsed.exitCode;
  const { leads, steps, devices, walk } = parsed.numbers as { leads: number; steps: number; devices: number; walk: number };
  if (walk > steps - 1) {
    process.stderr.write(`fleetcast bench sequence: --walk must be at most --steps - 1 (${steps - 1})\n`);
    return 2;
  }
  const say = (s: string) => !parsed.json && process.stderr.write(`${s}\n`);
  const loc = newScratchLocation(parsed.db, 'bench_sequence');
  const clock = new VirtualClock(START);
  const db = await openScratch(loc);
  try {
    const now = new Date(START);
    await migrate(db, now);
    const userId = await insertUser(db, { email: 'bench-sequence@example.test', timeZone: 'Asia/Kuala_Lumpur' }, now);
    const deviceIds = await insertDevices(
      db,
      userId,
      Array.from({ length: devices }, (_, i) => ({ name: `device ${i + 1}`, minDelayMs: 5000, maxDelayMs: 15_000 })),
      now,
    );
    say(`setup: ${leads} leads over ${devices} devices...`);
    for (let first = 1; first <= leads; first += 250_000) {
      await generateLeads(db, userId, deviceIds, Math.min(250_000, leads - first + 1), '+6012', first, now);
    }
    const seq = await db.query<{ id: number }>(
      `insert into sequences (user_id, name, trigger, created_at, updated_at) values ($1, 'bench drip', 'bench', $2, $2) returning id`,
      [userId, now],
    );
    const sequenceId = seq.rows[0]!.id;
    for (let k = 1; k <= steps; k++) {
      await db.query(
        `insert into sequence_steps (sequence_id, position, delay_days, delay_minutes, send_minute, body) values ($1, $2, $3, 0, $4, $5)`,
        [sequenceId, k, k === 1 ? 0 : 1, k === 1 ? null : 600, `Day ${k}: hi {first_name:there}, {here is|this is} part ${k}.`],
      );
    }
    await db.exec('analyze');

    const pending = async () => (await db.query<{ n: number }>(`select count(*)::int as n from messages where status in ('pending', 'held')`)).rows[0]!.n;
    const live = async () => (await db.query<{ n: number }>(`select count(*)::int as n from enrollments where status in ('active', 'paused')`)).rows[0]!.n;
    const memory = rssSampler();
    let peakPending = 0;
    let worstRatioOk = true;
    const check = async () => {
      const p = await pending();
      const l = await live();
      peakPending = Math.max(peakPending, p);
      if (p > l) worstRatioOk = false;
      return p;
    };

    say('enrolling...');
    const t0 = Date.now();
    const enrolled = await enrollLeadsWhere(db, sequenceId, `l.user_id = $1`, [userId], 'api', now, 'fail');
    const enrollSeconds = (Date.now() - t0) / 1000;
    await check();

    say('planning the first step...');
    const planner = new SequencePlanner(db, clock, new EngineEvents(), pino({ level: 'silent' }));
    const t1 = Date.now();
    const firstWritten = await planner.planDue();
    const planSeconds = (Date.now() - t1) / 1000;
    await check();

    const walks: { step: number; sendSeconds: number; advanceSeconds: number; planSeconds: number; written: number }[] = [];
    for (let k = 1; k <= walk; k++) {
      say(`walking step ${k} -> ${k + 1}...`);
      const sentAt = new Date(clock.now() + 60_000);
      const s0 = Date.now();
      await db.query(
        `update messages set status = 'sent', attempts = 1, last_attempt_at = $1, sent_at = $1, finished_at = $1 where status = 'pending'`,
        [sentAt],
      );
      const sendSeconds = (Date.now() - s0) / 1000;
      const a0 = Date.now();
      const ids = (await db.query<{ id: number }>(`select id from enrollments where status = 'active' and message_id is not null order by id`)).rows.map((r) => r.id);
      for (let i = 0; i < ids.length; i += ADVANCE_BATCH) {
        const batch = ids.slice(i, i + ADVANCE_BATCH);
        await db.transaction((tx) => progressEnrollments(tx, batch, sentAt));
      }
      const advanceSeconds = (Date.now() - a0) / 1000;
      await clock.advanceTo(clock.now() + DAY + 12 * 3_600_000);
      const p0 = Date.now();
      const written = await planner.planDue();
      walks.push({ step: k + 1, sendSeconds: round(sendSeconds), advanceSeconds: round(advanceSeconds), planSeconds: round((Date.now() - p0) / 1000), written });
      await check();
    }
    const peak = memory.stop();

    const perStep = await db.query<{ step: number; n: number; leads: number }>(
      `select step, count(*)::int as n, count(distinct lead_id)::int as leads from messages group by step order by step`,
    );
    const stepsOk = perStep.rows.length === walk + 1 && perStep.rows.every((r) => r.n === leads && r.leads === leads);
    const verified = enrolled.enrolled === leads && firstWritten === leads && stepsOk && worstRatioOk;
    const out = {
      benchmark: 'sequence',
      db: parsed.db,
      leads,
      steps,
      devices,
      seconds: round(enrollSeconds),
      enrollPerSecond: Math.round(leads / enrollSeconds),
      planSeconds: round(planSeconds),
      planPerSecond: Math.round(firstWritten / planSeconds),
      planStatements: planner.stats.statements,
      walked: walks,
      peakPendingOutboxRows: peakPending,
      liveEnrollments: await live(),
      atMostOnePendingPerEnrollment: worstRatioOk,
      peakRssMB: peak.rss,
      verified,
      target: { seconds: TARGET_SECONDS, met: parsed.db === 'postgres' ? enrollSeconds <= TARGET_SECONDS : null },
      ...machine(),
    };
    if (parsed.json) process.stdout.write(JSON.stringify(out) + '\n');
    else printTable(out);
    return verified ? 0 : 1;
  } finally {
    await db.close();
    await disposeScratch(loc);
  }
}

const round = (x: number) => Math.round(x * 100) / 100;
