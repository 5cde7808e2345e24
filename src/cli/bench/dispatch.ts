/**
 * The dispatch benchmark: the real Dispatcher, end to end (claimed -> sent -> recorded), with
 * pacing off (zero gaps, no caps) and the simulator answering at once, over N devices and M
 * pending messages (one running campaign per user of 15 devices).
 *
 * Two processes, as in production: this one builds the outbox (not timed), then a fresh process
 * opens that database and dispatches it all (timed), the way a server started on a full outbox
 * would. Its peak RSS is the dispatching process's own: the setup's bulk inserts grow PGlite's
 * WebAssembly heap, which never shrinks, and would otherwise be charged to the dispatcher.
 */
import { pino } from 'pino';
import { SystemClock } from '../../engine/clock.js';
import { Dispatcher } from '../../engine/dispatcher.js';
import { EngineEvents } from '../../engine/events.js';
import { migrate } from '../../store/migrate.js';
import { insertCampaign, startCampaignNow } from '../../store/sql/campaigns.js';
import { materialiseAll } from '../../engine/materialise.js';
import { insertDevices } from '../../store/sql/devices.js';
import { generateLeads } from '../../store/sql/leads.js';
import { countByStatus } from '../../store/sql/messages.js';
import { insertUser } from '../../store/sql/users.js';
import { insertSubscription } from '../../store/sql/webhooks.js';
import { SimulatorTransport } from '../../transports/simulator.js';
import { leaveParent, onFinish, reportDone, runBenchChild, rssSampler, runSharingChildren } from './report.js';
import { disposeScratch, newScratchLocation, openScratch, type ScratchLocation } from '../../store/scratch.js';
import { profileStatements } from './profile.js';

export interface DispatchBenchOptions {
  devices: number;
  messages: number;
  db: 'pglite' | 'postgres';
  progress: boolean;
  /** Time every statement of the timed run and include the table in the result. */
  profile?: boolean;
  /** Dispatching processes sharing the devices (PostgreSQL only): each serves its fair share. */
  processes?: number;
  /** Give every user a webhook subscription to these events (queued, never delivered here). */
  webhookEvents?: string[];
}

const DEVICES_PER_USER = 15;

export async function benchDispatch(o: DispatchBenchOptions): Promise<Record<string, unknown> & { verified: boolean }> {
  const clock = new SystemClock();
  const say = (s: string) => o.progress && process.stderr.write(s + '\n');
  const loc = newScratchLocation(o.db, 'bench');
  try {
    const setupStart = clock.now();
    const { queued, materialiseSeconds } = await buildOutbox(loc, o, clock);
    say(`setup: ${o.devices} devices, ${queued} messages in ${((clock.now() - setupStart) / 1000).toFixed(1)}s`);
    const processes = o.processes ?? 1;
    const run = processes === 1 ? await runWorker(loc, queued, o) : await runWorkers(loc, queued, o, processes);
    return { db: o.db, devices: o.devices, messages: queued, processes, ...run, materialiseSeconds, verified: run.verified === true };
  } finally {
    await disposeScratch(loc);
  }
}

async function buildOutbox(loc: ScratchLocation, o: DispatchBenchOptions, clock: SystemClock) {
  const db = await openScratch(loc);
  try {
    const now = new Date(clock.now());
    await migrate(db, now);
    const users = Math.ceil(o.devices / DEVICES_PER_USER);
    let made = 0;
    const campaignIds: number[] = [];
    for (let u = 0; u < users; u++) {
      const n = Math.min(DEVICES_PER_USER, o.devices - u * DEVICES_PER_USER);
      const userId = await insertUser(db, { email: `bench-${u}@example.test`, timeZone: 'UTC' }, now);
      const deviceIds = await insertDevices(
        db,
        userId,
        Array.from({ length: n }, (_, i) => ({ name: `bench ${u}-${i}`, minDelayMs: 0, maxDelayMs: 0 })),
        now,
      );
      // Messages spread evenly over users (and so devices); the last user takes the remainder.
      const share = u === users - 1 ? o.messages - made : Math.floor(o.messages / users);
      await generateLeads(db, userId, deviceIds, share, `+1${String(200 + (u % 700)).padStart(3, '0')}`, made, now);
      made += share;
      campaignIds.push(await insertCampaign(db, userId, { name: 'bench', body: 'Hello from the benchmark', startsAt: now, status: 'draft' }, now));
      if (o.webhookEvents?.length) {
        await insertSubscription(db, userId, { url: 'http://127.0.0.1:9/bench', events: o.webhookEvents, description: 'bench', active: true, secret: 'plain:bench', createdBy: userId }, now);
      }
    }
    const matStart = clock.now();
    let queued = 0;
    for (const id of campaignIds) {
      await startCampaignNow(db, id, now);
      queued += await materialiseAll(db, id, now.getTime());
    }
    const materialiseSeconds = Math.round((clock.now() - matStart) / 10) / 100;
    await db.exec('vacuum analyze');
    return { queued, materialiseSeconds };
  } finally {
    await db.close();
  }
}

/** Runs the timed part in a fresh process and returns what it measured. */
function runWorker(loc: ScratchLocation, expected: number, o: DispatchBenchOptions): Promise<Record<string, unknown>> {
  const spec = JSON.stringify({ loc, expected, devices: o.devices, profile: !!o.profile, progress: o.progress });
  return runBenchChild(['dispatch-worker', spec], 'dispatch worker');
}

/**
 * Several fresh processes dispatch the same outbox at once, sharing the devices as `fleetcast serve`
 * workers do. Each reports what it has recorded to this process, which tells them all to stop once
 * the outbox is done: asking the database instead (a probe every 250 ms from each worker) measured
 * 7% of the server's statement time in the 3-process run, charged to the figure it was measuring.
 * The run is timed from the first one's start to the last one's final record.
 */
async function runWorkers(loc: ScratchLocation, expected: number, o: DispatchBenchOptions, processes: number): Promise<Record<string, unknown>> {
  const spec = JSON.stringify({ loc, expected, devices: o.devices, profile: !!o.profile, progress: false, shared: true });
  const runs = await runSharingChildren(['dispatch-worker', spec], 'dispatch worker', processes, expected);
  const startAt = Math.min(...runs.map((r) => r.startAt as number));
  const endAt = Math.max(...runs.map((r) => r.endAt as number));
  const seconds = (endAt - startAt) / 1000;
  const db = await openScratch(loc);
  const counts = await countByStatus(db).finally(() => db.close());
  const sent = runs.reduce((n, r) => n + (r.simulatorSent as number), 0);
  return {
    seconds: Math.round(seconds * 100) / 100,
    messagesPerSecond: Math.round(expected / seconds),
    peakRssMB: Math.max(...runs.map((r) => r.peakRssMB as number)),
    perProcess: runs.map((r) => ({
      recorded: r.recorded,
      startedAfterMs: (r.startAt as number) - startAt,
      endedAfterMs: (r.endAt as number) - startAt,
      claimStatements: r.claimStatements,
      peakRssMB: r.peakRssMB,
      ...(r.statements ? { statements: r.statements } : {}),
    })),
    verified: counts.sent === expected && sent === expected && runs.every((r) => !r.error),
    statuses: counts,
  };
}

/** The timed part: open the prepared outbox, dispatch every message, verify the rows. */
export async function dispatchWorker(spec: string): Promise<number> {
  const { loc, expected, devices, profile, progress, shared } = JSON.parse(spec) as {
    loc: ScratchLocation;
    expected: number;
    devices: number;
    profile: boolean;
    progress: boolean;
    /** Other processes dispatch the same outbox: done when the outbox is, not when this one has recorded `expected`. */
    shared?: boolean;
  };
  const clock = new SystemClock();
  const db = await openScratch(loc);
  const sim = new SimulatorTransport({ clock, seed: 1, record: false });
  const events = new EngineEvents();
  const dispatcher = new Dispatcher(db, clock, new Map([['simulator', sim]]), events, pino({ level: 'warn' }), {
    sendConcurrency: devices,
    recordBatchSize: devices,
  });
  let failure: unknown;
  events.on('error', ({ error }) => (failure ??= error));
  const profiler = profile ? profileStatements(db) : undefined;
  const rss = rssSampler();
  const start = clock.now();
  await dispatcher.start();
  let lastReport = start;
  // Shared: the parent sums what every worker has recorded and says when the outbox is done.
  let outboxDone = false;
  let lastRecordAt = start;
  if (shared) {
    onFinish(() => (outboxDone = true));
    events.on('outcomes.recorded', () => {
      lastRecordAt = clock.now();
      reportDone(dispatcher.stats.recorded);
    });
  }
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (dispatcher.stats.recorded >= expected || outboxDone || failure) {
        clearInterval(check);
        resolve();
      }
      if (progress && clock.now() - lastReport >= 1000) {
        lastReport = clock.now();
        process.stderr.write(`  recorded ${dispatcher.stats.recorded}/${expected}\n`);
      }
    }, 20);
  });
  // A shared worker is done at its own last record, not when the others' news reached it.
  const end = shared ? lastRecordAt : clock.now();
  const seconds = (end - start) / 1000;
  const peak = rss.stop();
  await dispatcher.stop();
  sim.close();
  const counts = await countByStatus(db);
  const webhooks = (await db.query<{ n: number }>('select count(*)::int as n from webhook_deliveries')).rows[0]!.n;
  await db.close();
  const verified = !failure && counts.sent === expected && (shared || sim.counts.sent === expected);
  const result = {
    startAt: start,
    endAt: end,
    recorded: dispatcher.stats.recorded,
    simulatorSent: sim.counts.sent,
    seconds: Math.round(seconds * 100) / 100,
    messagesPerSecond: Math.round(expected / seconds),
    peakRssMB: peak.rss,
    peakHeapMB: peak.heap,
    claimStatements: dispatcher.stats.claimStatements,
    verified,
    statuses: counts,
    webhookDeliveriesQueued: webhooks,
    ...(failure ? { error: String(failure) } : {}),
    ...(profiler ? { statements: profiler.report() } : {}),
  };
  process.stdout.write(JSON.stringify(result));
  if (shared) leaveParent();
  return verified ? 0 : 1;
}
