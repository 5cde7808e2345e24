/**
 * The baseline: the dispatch benchmark's workload (N messages over D devices, no pacing, the
 * simulator answering at once) through graphile-worker, a well-regarded PostgreSQL job queue, on the
 * same server: one job per message, whose task hands the message to the same simulator. It keeps no
 * per-device order and no pacing (graphile-worker has neither); its job rows are deleted when done,
 * where Fleetcast keeps every message's outcome.
 *
 * graphile-worker runs with the settings its own performance page uses (24 concurrent jobs, a pool
 * of 25, a local queue of 500, batched completion). As in `bench dispatch`, the jobs are queued
 * first (not timed) and fresh processes work them off, timed from the first process's start until
 * the queue is empty. The processes report the jobs they have run to this one, which tells them
 * when all have; only then do they look at the queue. Asking the database all along instead (a
 * count of the jobs every 100 ms, as this benchmark first did) kept one core scanning the jobs
 * table and was charged to graphile-worker's figure.
 */
import { randomBytes } from 'node:crypto';
import { Logger, run, runMigrations } from 'graphile-worker';
import pg from 'pg';
import { SystemClock } from '../../engine/clock.js';
import { LOCAL_POSTGRES } from '../../store/scratch.js';
import { SimulatorTransport } from '../../transports/simulator.js';
import { leaveParent, machine, onFinish, parseBenchArgs, printTable, reportDone, rssSampler, runSharingChildren } from './report.js';

const USAGE = `usage: fleetcast bench graphile-worker [--messages N] [--devices N] [--processes N] [--concurrency N] [--json]

The dispatch benchmark's workload through graphile-worker on the PostgreSQL server at DATABASE_URL
(else ${LOCAL_POSTGRES}), in a scratch schema dropped afterwards.
  --messages N     jobs, one per message (default 1000000)
  --devices N      devices the messages are spread over (default 3000)
  --processes N    worker processes working the queue at once (default 1)
  --concurrency N  concurrent jobs per process (default 24)
`;

interface RunSpec {
  url: string;
  schema: string;
  expected: number;
  concurrency: number;
}

export async function benchGraphile(args: string[]): Promise<number> {
  const parsed = parseBenchArgs('graphile-worker', USAGE, args, { messages: 1_000_000, devices: 3000, processes: 1, concurrency: 24 });
  if (!parsed.ok) return parsed.exitCode;
  const { messages, devices, processes, concurrency } = parsed.numbers as Record<'messages' | 'devices' | 'processes' | 'concurrency', number>;
  const url = process.env.DATABASE_URL || LOCAL_POSTGRES;
  const schema = `gw_bench_${randomBytes(6).toString('hex')}`;
  const say = (s: string) => !parsed.json && process.stderr.write(s + '\n');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await runMigrations({ connectionString: url, schema, logger: silentLogger() });
    const t0 = Date.now();
    const batch = 20_000;
    for (let from = 0; from < messages; from += batch) {
      const to = Math.min(messages, from + batch);
      // One add_jobs call per batch: graphile-worker's own bulk path.
      await client.query(
        `select count(*) from ${schema}.add_jobs(array(
           select row('send', json_build_object('id', g, 'device', 1 + g % $3, 'to', '+1555' || lpad(g::text, 7, '0'), 'body', 'Hello from the benchmark'),
                      null, null, null, null, null, null)::${schema}.job_spec
             from generate_series($1::int, $2::int - 1) g))`,
        [from, to, devices],
      );
    }
    await client.query(`vacuum analyze ${schema}._private_jobs`);
    say(`setup: ${messages} jobs queued in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    const spec: RunSpec = { url, schema, expected: messages, concurrency };
    const runs = (await runSharingChildren(['graphile-worker-run', JSON.stringify(spec)], 'graphile-worker run', processes, messages)) as unknown as RunResult[];
    const left = await client.query<{ n: number }>(`select count(*)::int as n from ${schema}._private_jobs`);
    const startAt = Math.min(...runs.map((r) => r.startAt));
    const endAt = Math.max(...runs.map((r) => r.endAt));
    const seconds = (endAt - startAt) / 1000;
    const sent = runs.reduce((n, r) => n + r.sent, 0);
    const verified = left.rows[0]!.n === 0 && sent === messages && runs.every((r) => r.failed === 0);
    const out = {
      benchmark: 'graphile-worker',
      messages,
      devices,
      processes,
      concurrency,
      seconds: Math.round(seconds * 100) / 100,
      messagesPerSecond: Math.round(messages / seconds),
      peakRssMB: Math.max(...runs.map((r) => r.peakRssMB)),
      verified,
      ...machine(),
    };
    if (parsed.json) process.stdout.write(JSON.stringify(out) + '\n');
    else printTable(out);
    return verified ? 0 : 1;
  } finally {
    await client.query(`drop schema if exists ${schema} cascade`).catch(() => undefined);
    await client.end();
  }
}

interface RunResult {
  startAt: number;
  endAt: number;
  sent: number;
  failed: number;
  peakRssMB: number;
}

/** The timed half: one graphile-worker process working the queue until it is empty. */
export async function graphileRun(specJson: string): Promise<number> {
  const spec = JSON.parse(specJson) as RunSpec;
  const clock = new SystemClock();
  const sim = new SimulatorTransport({ clock, seed: 1, record: false });
  const connected = new Set<number>();
  let failed = 0;
  const rss = rssSampler();
  const startAt = Date.now();
  const runner = await run({
    connectionString: spec.url,
    schema: spec.schema,
    concurrency: spec.concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: silentLogger(),
    preset: { worker: { maxPoolSize: spec.concurrency + 1, localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    taskList: {
      send: async (payload) => {
        const p = payload as { id: number; device: number; to: string; body: string };
        if (!connected.has(p.device)) {
          connected.add(p.device);
          await sim.connect({ id: p.device, userId: 1, phone: null });
        }
        const res = await sim.send({ id: p.id, deviceId: p.device, to: p.to, body: p.body, media: null, origin: 'bench', attempt: 1 });
        if (!res.ok) {
          failed++;
          throw new Error(res.message);
        }
      },
    },
  });
  // What this process has run, for the parent, at most every 50 ms; the queue is looked at only
  // once the parent says every job has run (completions are batched, so it may lag a little).
  let reported = 0;
  let drain = false;
  onFinish(() => (drain = true));
  const report = setInterval(() => {
    const ran = sim.counts.sent + failed;
    if (ran !== reported) reportDone((reported = ran));
  }, 50);
  while (!drain) await new Promise((r) => setTimeout(r, 20));
  clearInterval(report);
  const client = new pg.Client({ connectionString: spec.url });
  await client.connect();
  // A failed job waits for its retry, minutes away: that run is not verified, so stop looking.
  const giveUpAt = Date.now() + 60_000;
  for (;;) {
    const res = await client.query<{ left: boolean }>(`select exists (select 1 from ${spec.schema}._private_jobs) as left`);
    if (!res.rows[0]!.left || failed > 0 || Date.now() > giveUpAt) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const endAt = Date.now();
  const peak = rss.stop();
  await runner.stop();
  await client.end();
  sim.close();
  const result: RunResult = { startAt, endAt, sent: sim.counts.sent, failed, peakRssMB: peak.rss };
  process.stdout.write(JSON.stringify(result));
  leaveParent();
  return 0;
}

/** The benchmark prints only its figures. */
function silentLogger(): Logger {
  return new Logger(() => () => undefined);
}
