/** Small worlds for engine tests: a user, devices, leads and a campaign, built through the store. */
import { pino } from 'pino';
import type { VirtualClock } from '../../src/engine/clock.js';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import { seededRandom, type SendWindow } from '../../src/engine/pacing.js';
import type { Db } from '../../src/store/db.js';
import { insertCampaign } from '../../src/store/sql/campaigns.js';
import { insertDevices, type NewDevice } from '../../src/store/sql/devices.js';
import { generateLeads } from '../../src/store/sql/leads.js';
import { insertUser } from '../../src/store/sql/users.js';
import { ensureWindow } from '../../src/store/sql/windows.js';
import type { SendAttempt, SimulatorTransport } from '../../src/transports/simulator.js';
import type { Transport } from '../../src/transports/transport.js';

export const quietLog = pino({ level: 'silent' });

export interface WorldSpec {
  timeZone?: string;
  devices: number;
  device?: Partial<NewDevice>;
  leads: number;
  startsAt: Date;
  window?: Omit<SendWindow, 'timeZone'> & { timeZone?: string };
  delivery?: 'at_most_once' | 'at_least_once';
}

export interface World {
  userId: number;
  deviceIds: number[];
  campaignId: number;
  timeZone: string;
}

export async function buildWorld(db: Db, spec: WorldSpec, now: Date): Promise<World> {
  const timeZone = spec.timeZone ?? 'UTC';
  const userId = await insertUser(db, { email: `owner-${now.getTime()}-${Math.random()}@example.test`, timeZone }, now);
  const deviceIds = await insertDevices(
    db,
    userId,
    Array.from({ length: spec.devices }, (_, i) => ({ name: `device ${i + 1}`, minDelayMs: 0, maxDelayMs: 0, ...spec.device })),
    now,
  );
  await generateLeads(db, userId, deviceIds, spec.leads, '+6012', 1, now);
  const windowId = spec.window ? await ensureWindow(db, { timeZone, ...spec.window }) : null;
  const campaignId = await insertCampaign(
    db,
    userId,
    { name: 'test campaign', body: 'Hello', startsAt: spec.startsAt, windowId, ...(spec.delivery ? { delivery: spec.delivery } : {}) },
    now,
  );
  return { userId, deviceIds, campaignId, timeZone };
}

/**
 * An engine on the virtual clock. Leases last an hour and the sequence planner polls hourly unless
 * a test says otherwise: over days of virtual time, 60 s leases and the planner's one-minute safety
 * poll were most of these tests' wall time (tens of thousands of renewals and empty looks). Tests of
 * restarts and crashes pass short leases themselves.
 */
export function virtualEngine(db: Db, clock: VirtualClock, transport: Transport, opts: EngineOptions = {}): Engine {
  return new Engine(db, clock, new Map([['simulator', transport]]), quietLog, {
    ...opts,
    dispatcher: { random: seededRandom(11), leaseTtlMs: 3_600_000, ...opts.dispatcher },
    maintenance: { intervalMs: 86_400_000, ...opts.maintenance },
    sequences: { pollMs: 3_600_000, ...opts.sequences },
  });
}

/** Runs the virtual world until the engine has nothing left to do (or `until`). */
export async function runToIdle(clock: VirtualClock, engine: Engine, sim: SimulatorTransport, until: number): Promise<number> {
  return clock.runUntil(until, () => engine.idle && sim.scheduled === 0);
}

/** Stops an engine whose stop may wait on virtual time (sends in flight). */
export async function stopEngine(clock: VirtualClock, engine: Engine): Promise<void> {
  let stopped = false;
  const p = engine.stop().then(() => {
    stopped = true;
  });
  await clock.runUntil(Number.MAX_SAFE_INTEGER, () => stopped);
  await p;
}

export function byDevice(attempts: readonly SendAttempt[]): Map<number, SendAttempt[]> {
  const out = new Map<number, SendAttempt[]>();
  for (const a of attempts) out.set(a.device, [...(out.get(a.device) ?? []), a]);
  return out;
}

/** Message ids sent more than once (by the simulator's record). */
export function duplicates(attempts: readonly SendAttempt[]): number[] {
  const seen = new Set<number>();
  const dup = new Set<number>();
  for (const a of attempts) {
    if (a.outcome !== 'sent') continue;
    if (seen.has(a.message)) dup.add(a.message);
    seen.add(a.message);
  }
  return [...dup];
}

export async function statusCounts(db: Db): Promise<Record<string, number>> {
  const res = await db.query<{ status: string; n: number }>('select status, count(*)::int as n from messages group by status');
  return Object.fromEntries(res.rows.map((r) => [r.status, r.n]));
}

/** The same simulator, minus its ability to prove what it sent (as a real network would be). */
export function withoutProof(sim: SimulatorTransport): Transport {
  return {
    kind: sim.kind,
    connect: (d) => sim.connect(d),
    disconnect: (id) => sim.disconnect(id),
    send: (m) => sim.send(m),
    onEvent: (l) => sim.onEvent(l),
  };
}
