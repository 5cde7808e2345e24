/**
 * The dispatch benchmark: the real Dispatcher, end to end (claimed -> sent -> recorded), with
 * pacing off (zero gaps, no caps) and the simulator answering at once, over N devices and M
 * pending messages of one running campaign. The setup is not timed; the run is.
 */
import { pino } from 'pino';
import { SystemClock } from '../../engine/clock.js';
import { Dispatcher } from '../../engine/dispatcher.js';
import { EngineEvents } from '../../engine/events.js';
import { migrate } from '../../store/migrate.js';
import { insertCampaign, materialiseCampaign } from '../../store/sql/campaigns.js';
import { insertDevices } from '../../store/sql/devices.js';
import { generateLeads } from '../../store/sql/leads.js';
import { countByStatus } from '../../store/sql/messages.js';
import { insertUser } from '../../store/sql/users.js';
import { SimulatorTransport } from '../../transports/simulator.js';
import { rssSampler } from './report.js';
import { openScratchDb, profileStatements } from './scratch-db.js';

export interface DispatchBenchOptions {
  devices: number;
  messages: number;
  db: 'pglite' | 'postgres';
  progress: boolean;
  /** Time every statement of the timed run and include the table in the result. */
  profile?: boolean;
}

const DEVICES_PER_USER = 15;

export async function benchDispatch(o: DispatchBenchOptions) {
  const clock = new SystemClock();
  const say = (s: string) => o.progress && process.stderr.write(s + '\n');
  const { db, dispose } = await openScratchDb(o.db);
  try {
    const setupStart = clock.now();
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
      campaignIds.push(
        await insertCampaign(db, userId, { name: 'bench', body: 'Hello from the benchmark', startsAt: now, status: 'draft' }, now),
      );
    }
    say(`setup: ${o.devices} devices, ${made} leads in ${((clock.now() - setupStart) / 1000).toFixed(1)}s`);
    const matStart = clock.now();
    let queued = 0;
    for (const id of campaignIds) {
      const [c] = (
        await db.query<{ id: number; user_id: number; starts_at: Date; window_id: number | null; audience: object }>(
          `update campaigns set status = 'running', started_at = $2 where id = $1 returning id, user_id, starts_at, window_id, audience`,
          [id, now],
        )
      ).rows;
      queued += await materialiseCampaign(db, c!, now, now);
    }
    const materialiseSeconds = (clock.now() - matStart) / 1000;
    await db.exec('vacuum analyze');
    say(`materialised ${queued} messages in ${materialiseSeconds.toFixed(1)}s`);
    const setupRssMB = Math.round(process.memoryUsage.rss() / 2 ** 20);

    const sim = new SimulatorTransport({ clock, seed: 1, record: false });
    const events = new EngineEvents();
    const dispatcher = new Dispatcher(db, clock, new Map([['simulator', sim]]), events, pino({ level: 'warn' }), {
      sendConcurrency: o.devices,
      recordBatchSize: o.devices,
    });
    let failure: unknown;
    events.on('error', ({ error }) => (failure ??= error));
    const profiler = o.profile ? profileStatements(db) : undefined;
    const rss = rssSampler();
    const start = clock.now();
    await dispatcher.start();
    let lastReport = start;
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (dispatcher.stats.recorded >= queued || failure) {
          clearInterval(check);
          resolve();
        }
        if (o.progress && clock.now() - lastReport >= 1000) {
          lastReport = clock.now();
          process.stderr.write(`\r  recorded ${dispatcher.stats.recorded}/${queued}`);
        }
      }, 20);
    });
    const seconds = (clock.now() - start) / 1000;
    const peakRssMB = rss.stop();
    if (o.progress) process.stderr.write('\n');
    await dispatcher.stop();
    sim.close();
    const counts = await countByStatus(db);
    const verified = !failure && counts.sent === queued && sim.counts.sent === queued;
    return {
      db: o.db,
      devices: o.devices,
      messages: queued,
      seconds: Math.round(seconds * 100) / 100,
      messagesPerSecond: Math.round(queued / seconds),
      peakRssMB,
      setupRssMB,
      claimStatements: dispatcher.stats.claimStatements,
      materialiseSeconds: Math.round(materialiseSeconds * 100) / 100,
      verified,
      statuses: counts,
      ...(failure ? { error: String(failure) } : {}),
      ...(profiler ? { statements: profiler.report() } : {}),
    };
  } finally {
    await dispose();
  }
}
