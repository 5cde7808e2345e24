/**
 * Runs a scenario: a fresh database, the world built at the scenario's start, the real engine
 * against the simulator on a virtual clock, the scenario's events, then the outputs.
 *
 * The run ends when nothing is left to happen (the engine idle, no receipt, reply or reconnect
 * scheduled, no scenario event to come) or at the horizon, whichever is first. Everything is
 * driven by the virtual clock, which only moves when every query and send has settled, so a run
 * is reproducible for a seed and days of pacing take seconds.
 */
import type { Logger } from 'pino';
import { VirtualClock } from '../../engine/clock.js';
import { Engine } from '../../engine/engine.js';
import { seededRandom } from '../../engine/pacing.js';
import { createLogger } from '../../logger.js';
import type { Db } from '../../store/db.js';
import { migrate } from '../../store/migrate.js';
import { SimulatorTransport, type SendAttempt, type SimulatorOptions } from '../../transports/simulator.js';
import { scheduleEvents } from './events.js';
import { buildReport, readStoreFacts, round, sendLines, writeOutputs, type OutputFiles, type SimulationReport } from './report.js';
import { DAY_MS, horizonOf, type Scenario, type SimulatorSpec } from './scenario.js';
import { openScratchStore, type StoreKind } from './store.js';
import { buildWorld, type World } from './world.js';

export interface SimulationOptions {
  /** Where sends.jsonl and report.json go; created if missing. */
  outDir: string;
  store?: StoreKind;
  /** The server for `store: 'postgres'`; the run works in a schema of its own. */
  databaseUrl?: string;
  log?: Logger;
}

export interface SimulationResult {
  report: SimulationReport;
  files: OutputFiles;
}

const LEASE_TTL_MS = 3_600_000;

export async function runSimulation(scenario: Scenario, opts: SimulationOptions): Promise<SimulationResult> {
  const log = opts.log ?? createLogger('warn', 'fleetcast-simulate');
  const wallStart = performance.now();
  const start = Date.parse(scenario.start);
  const until = horizonOf(scenario);
  const clock = new VirtualClock(start);
  const store = await openScratchStore(opts.store ?? 'pglite', (p) => clock.track(p), opts.databaseUrl);
  try {
    await migrate(store.db, new Date(start));
    const world = await buildWorld(store.db, scenario, new Date(start));
    const setupDone = performance.now();
    const run = await drive(store.db, clock, world, scenario, until, log);
    const runDone = performance.now();
    const facts = await readStoreFacts(store.db, world);
    const seconds = (ms: number) => round(ms / 1000, 3);
    const wallSeconds = { setup: seconds(setupDone - wallStart), run: seconds(runDone - setupDone), total: seconds(performance.now() - wallStart) };
    const report = buildReport({
      scenario: scenario.name,
      seed: scenario.seed,
      store: store.kind,
      start,
      until,
      end: run.end,
      stoppedBy: run.stoppedBy,
      wallSeconds,
      attempts: run.attempts,
      world,
      facts,
      engineErrors: run.engineErrors,
    });
    const files = await writeOutputs(opts.outDir, sendLines(run.attempts, world), report);
    return { report, files };
  } finally {
    await store.dispose();
  }
}

interface RunOutcome {
  attempts: readonly SendAttempt[];
  end: number;
  stoppedBy: 'idle' | 'horizon';
  engineErrors: number;
}

async function drive(db: Db, clock: VirtualClock, world: World, scenario: Scenario, until: number, log: Logger): Promise<RunOutcome> {
  const sim = new SimulatorTransport({
    clock,
    seed: scenario.seed,
    ...simulatorOptions(scenario.simulator),
    offlineDevices: world.devices.devices.filter((d) => !d.spec.online).map((d) => d.id),
  });
  const engine = new Engine(db, clock, new Map([['simulator', sim]]), log, {
    dispatcher: { random: seededRandom(dispatcherSeed(scenario.seed)), leaseTtlMs: LEASE_TTL_MS },
    // Retention covers the whole horizon: the report reads every message the run produced.
    maintenance: { intervalMs: DAY_MS, retentionDays: Math.ceil((until - clock.now()) / DAY_MS) + 1 },
  });
  let engineErrors = 0;
  const offError = engine.events.on('error', ({ where, error }) => {
    engineErrors++;
    log.error({ err: error, where }, 'engine error');
  });
  try {
    await engine.start();
    const events = scheduleEvents(clock, sim, world, scenario.events);
    const finished = () => engine.idle && sim.scheduled === 0 && events.pending === 0;
    await clock.runUntil(until, finished);
    const end = clock.now();
    const stoppedBy = finished() ? 'idle' : 'horizon';
    await stopOnClock(engine, clock);
    return { attempts: sim.attempts, end, stoppedBy, engineErrors };
  } finally {
    sim.close();
    offError();
  }
}

/**
 * A graceful stop may itself wait on virtual time (a send's latency, a flush), so the clock keeps
 * running until it is done. `finally`: a failed stop must still end the loop, or the simulator's
 * endless background of random drops would keep the clock going forever.
 */
async function stopOnClock(engine: Engine, clock: VirtualClock): Promise<void> {
  let stopped = false;
  const done = engine.stop().finally(() => {
    stopped = true;
  });
  await clock.runUntil(Number.MAX_SAFE_INTEGER, () => stopped);
  await done;
}

/** The dispatcher's gap draws get a stream of their own: sharing the simulator's seed would tie each gap to a send's fate. */
function dispatcherSeed(seed: number): number {
  return (seed ^ 0x9e3779b9) >>> 0;
}

function simulatorOptions(s: SimulatorSpec): Omit<SimulatorOptions, 'clock'> {
  const range = (r: { min: number; max: number }) => ({ minMs: r.min, maxMs: r.max });
  return {
    latency: s.latencyMs && range(s.latencyMs),
    transientFailureRate: s.transientFailureRate,
    permanentFailureRate: s.permanentFailureRate,
    connectDelayMs: s.connectDelayMs,
    receipts: s.receipts && {
      deliveredAfter: range(s.receipts.deliveredAfterMs),
      readRate: s.receipts.readRate,
      readAfter: range(s.receipts.readAfterMs),
    },
    replies: s.replies && { rate: s.replies.rate, after: range(s.replies.afterMs), text: s.replies.text },
    disconnects: s.disconnects && { perHour: s.disconnects.perHour, downtime: range(s.disconnects.downtimeMs) },
  };
}
