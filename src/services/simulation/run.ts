/**
 * Runs a scenario: a fresh database, the world built at the scenario's start, the real engine
 * against the simulator on a virtual clock, the scenario's events, then the outputs. driveWorld,
 * the middle part, also runs the campaign forecast's worlds (services/forecast.ts).
 *
 * The run ends when nothing is left to happen (the engine idle, no receipt, reply or reconnect
 * scheduled, no scenario event to come) or at the horizon, whichever is first. Everything is
 * driven by the virtual clock, which only moves when every query and send has settled, so a run
 * is reproducible for a seed and days of pacing take seconds.
 */
import type { Logger } from 'pino';
import { VirtualClock } from '../../engine/clock.js';
import type { DispatcherOptions } from '../../engine/dispatcher.js';
import { Engine } from '../../engine/engine.js';
import type { PoolAllocatorOptions } from '../../engine/pool-allocator.js';
import { seededRandom } from '../../engine/pacing.js';
import { createLogger } from '../../logger.js';
import type { Db } from '../../store/db.js';
import { migrate } from '../../store/migrate.js';
import { SimulatorTransport, type SendAttempt, type SimulatorOptions } from '../../transports/simulator.js';
import { scheduleEvents, type CampaignEventResult, type SequenceEventResult, type TagEventResult } from './events.js';
import { RunObserver } from './observer.js';
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
const SEQUENCE_POLL_MS = 3_600_000;

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
    const run = await driveWorld(store.db, clock, world, scenario, { log });
    const runDone = performance.now();
    const facts = await readStoreFacts(store.db);
    const seconds = (ms: number) => round(ms / 1000, 3);
    const wallSeconds = { setup: seconds(setupDone - wallStart), run: seconds(runDone - setupDone), total: seconds(performance.now() - wallStart) };
    const report = buildReport({
      scenario: scenario.name,
      seed: scenario.seed,
      store: store.kind,
      start,
      until,
      end: run.end,
      stoppedBy: run.stoppedBy === 'idle' ? 'idle' : 'horizon',
      wallSeconds,
      run,
      world,
      facts,
    });
    const files = await writeOutputs(opts.outDir, sendLines(run.attempts, world, run.observer), report);
    return { report, files };
  } finally {
    await store.dispose();
  }
}

export interface DriveOptions {
  log: Logger;
  /** A condition that ends the run early, given the running engine (checked whenever time would move). */
  stopWhen?: (engine: Engine) => () => boolean;
  /**
   * The caller's own timers on the clock, set once the engine runs; the function it returns says
   * whether any is still to come, and the run is not over while one is.
   */
  onStart?: (engine: Engine) => () => boolean;
  /** Overrides of the dispatcher's settings (the seeded random and lease stay the run's). */
  dispatcher?: Omit<DispatcherOptions, 'random' | 'leaseTtlMs'>;
  pool?: PoolAllocatorOptions;
}

export interface WorldRun {
  attempts: readonly SendAttempt[];
  observer: RunObserver;
  campaignEvents: readonly CampaignEventResult[];
  sequenceEvents: readonly SequenceEventResult[];
  tagEvents: readonly TagEventResult[];
  end: number;
  /** `condition`: the caller's stopWhen held before anything else ended the run. */
  stoppedBy: 'idle' | 'horizon' | 'condition';
  engineErrors: number;
}

/**
 * Runs the real engine over a world already in `db`, with the simulator as every device's
 * transport, from the clock's time until nothing is left to happen, the scenario's horizon, or
 * the caller's condition. The world is left in `db` for the caller to read.
 */
export async function driveWorld(db: Db, clock: VirtualClock, world: World, scenario: Scenario, opts: DriveOptions): Promise<WorldRun> {
  const { log } = opts;
  const until = horizonOf(scenario);
  const sim = new SimulatorTransport({
    clock,
    seed: scenario.seed,
    ...simulatorOptions(scenario.simulator),
    offlineDevices: world.devices.devices.filter((d) => !d.spec.online).map((d) => d.id),
  });
  const observer = new RunObserver();
  const engine = new Engine(db, clock, new Map([['simulator', observer.wrap(sim)]]), log, {
    dispatcher: { ...opts.dispatcher, random: seededRandom(dispatcherSeed(scenario.seed)), leaseTtlMs: LEASE_TTL_MS },
    // Retention covers the whole horizon: the report reads every message the run produced.
    maintenance: { intervalMs: DAY_MS, retentionDays: Math.ceil((until - clock.now()) / DAY_MS) + 1 },
    ...(opts.pool ? { pool: opts.pool } : {}),
    // Everything that brings sequence work sooner (enrollments, tags, resumes, finished steps)
    // notifies the planner in-process, so its safety poll can be long: each look is queries,
    // and over weeks of virtual time a short poll would be most of the run's work.
    sequences: { pollMs: SEQUENCE_POLL_MS },
  });
  let engineErrors = 0;
  const offError = engine.events.on('error', ({ where, error }) => {
    engineErrors++;
    log.error({ err: error, where }, 'engine error');
  });
  try {
    await engine.start();
    const events = scheduleEvents(db, clock, sim, world, scenario);
    const condition = opts.stopWhen?.(engine);
    const callerWaits = opts.onStart?.(engine);
    const finished = () => engine.idle && sim.scheduled === 0 && events.pending === 0 && !(callerWaits?.() ?? false);
    await clock.runUntil(until, () => finished() || (condition?.() ?? false) || events.errors.length > 0);
    const end = clock.now();
    const stoppedBy = finished() ? 'idle' : condition?.() ? 'condition' : 'horizon';
    await stopOnClock(engine, clock);
    if (events.errors.length > 0) throw events.errors[0];
    return {
      attempts: sim.attempts,
      observer,
      campaignEvents: events.results,
      sequenceEvents: events.sequenceResults,
      tagEvents: events.tagResults,
      end,
      stoppedBy,
      engineErrors,
    };
  } finally {
    sim.close();
    observer.close();
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
