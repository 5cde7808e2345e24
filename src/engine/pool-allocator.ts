/**
 * The pool allocator: hands a pool campaign's queued leads (leads without a device, frozen at the
 * start) to the owner's usable devices, one lead per device at a time, as each has spare quota.
 *
 * Rules of one pass over a running pool campaign (under its row lock, so one process at a time):
 * - usable devices: live, online, not paused or restricted, and in the audience's device list if
 *   it has one. Rows not yet claimed on a device that stopped being usable move to usable ones
 *   first (and their leads with them): reassignment.
 * - even spread: a device's lane counts the leads it was given; its finished count is lane minus
 *   what it still has open. A device gets its next lead only when it has nothing open and its
 *   lane is no higher than every usable device's finished count. So at every instant no device
 *   has finished more than one message more than any other ("lockstep"); the price is that a
 *   round goes at the pace of the slowest device. A device that joins (or comes back) starts
 *   level with the others instead of holding them back until it has caught up.
 * - quotas: a device's attempts for this campaign in the rolling hour and since the owner's local
 *   midnight stay under the campaign's per-device quotas, and the campaign's attempts today under
 *   its daily limit. Open rows count, so nothing allocated can overshoot.
 * - each device's own pacing (gap, caps, window) is still the dispatcher's: a lead handed over is
 *   a pending row through that device, and the lead now belongs to it.
 *
 * States of the loop: idle (no running pool campaign) -> pass (every running pool campaign) ->
 * sleeping until the earliest quota frees, a poll interval, or a poke (a recorded batch of sends
 * that can let a device take a lead, a device status change, a campaign change). The poll covers
 * what a poke cannot reach: another process's device events on a shared PostgreSQL.
 *
 * Which recorded sends poke: under the lockstep rule a device that finishes gets its next lead only
 * once the slowest devices (those whose finished count is the floor) have all finished theirs. A
 * pass therefore remembers those "gate" devices per campaign, and a recorded batch pokes only when
 * it takes the last gate of some campaign (or when no gates are known yet). Measured in the pool
 * benchmark (10,000 leads, 125 devices): 1,472 passes, 13.5 s of a 34 s run, poking on every batch;
 * most of them found no device to serve. A send counted against a gate that was another campaign's
 * only brings a pass forward, which is harmless.
 */
import type { Logger } from 'pino';
import type { Db, Queryable } from '../store/db.js';
import {
  campaignAttemptsSince,
  allocateFromQueue,
  lockPoolCampaign,
  movableRows,
  moveRows,
  poolDevices,
  queueIsEmpty,
  recentAttempts,
  runningPoolCampaignIds,
  saveLanes,
  type PoolCampaign,
  type PoolDevice,
} from '../store/sql/pool.js';
import { loadWindows } from '../store/sql/windows.js';
import { closeFinishedCampaigns } from './campaign-completion.js';
import type { Clock } from './clock.js';
import { campaignBodySql } from './materialise.js';
import { CAMPAIGNS_CHANNEL, DEVICES_CHANNEL, EngineEvents, WORK_CHANNEL, workPayload } from './events.js';
import { localDayStart, nextLocalDayStart, nextWindowOpening } from './pacing.js';

const HOUR_MS = 3_600_000;

export interface PoolAllocatorOptions {
  /** How often running pool campaigns are looked at without a poke. */
  pollMs?: number;
}

export interface PassResult {
  allocated: number;
  moved: number;
  /** When a quota frees next (null: nothing to wait for). */
  wakeAt: number | null;
}

export class PoolAllocator {
  private stopping = false;
  private wake = new AbortController();
  private done: Promise<void> | undefined;
  private readonly offs: (() => void | Promise<void>)[] = [];
  private readonly pollMs: number;
  private running: number[] = [];
  private nextWake: number | null = null;
  private dirty = true;
  /** Per campaign, the devices whose sends must finish before any device can take a lead. */
  private readonly gates = new Map<number, Set<number>>();
  /** Devices whose sends were recorded while a pass ran: the pass read them as still open. */
  private recordedDuringPass: Set<number> | null = null;
  readonly stats = { passes: 0, allocated: 0, moved: 0, passMs: 0 };

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly events: EngineEvents,
    private readonly log: Logger,
    opts: PoolAllocatorOptions = {},
  ) {
    this.pollMs = opts.pollMs ?? 10_000;
  }

  /** No pass is due: nothing changed since the last one, and no quota is about to free. */
  get idle(): boolean {
    return !this.dirty && (this.running.length === 0 || this.nextWake === null);
  }

  async start(): Promise<void> {
    this.offs.push(
      await this.db.listen(CAMPAIGNS_CHANNEL, () => this.poke()),
      await this.db.listen(DEVICES_CHANNEL, () => this.poke()),
      // A device status written by the dispatcher (online, offline) can change who is usable.
      this.events.on('outcomes.recorded', ({ devices, statuses }) => {
        if (this.running.length > 0 && (this.opensAGate(devices) || statuses > 0)) this.poke();
      }),
      this.events.on('device.status', () => this.poke()),
      this.events.on('device.restricted', () => this.poke()),
    );
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.poke();
    await this.done;
    for (const off of this.offs.splice(0)) await off();
  }

  /** Takes finished devices off the gates; true when some campaign has none left (or none known). */
  private opensAGate(devices: readonly number[]): boolean {
    if (this.recordedDuringPass) for (const d of devices) this.recordedDuringPass.add(d);
    let opened = false;
    for (const id of this.running) {
      const gate = this.gates.get(id);
      if (gate === undefined) return true;
      if (gate.size === 0) continue;
      for (const d of devices) gate.delete(d);
      if (gate.size === 0) opened = true;
    }
    return opened;
  }

  poke(): void {
    this.dirty = true;
    if (!this.wake.signal.aborted) this.wake.abort('poke');
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        this.dirty = false;
        this.running = await runningPoolCampaignIds(this.db);
        for (const id of this.gates.keys()) if (!this.running.includes(id)) this.gates.delete(id);
        let wakeAt: number | null = null;
        for (const id of this.running) {
          const r = await this.allocate(id);
          if (r && r.wakeAt !== null) wakeAt = wakeAt === null ? r.wakeAt : Math.min(wakeAt, r.wakeAt);
        }
        this.nextWake = wakeAt;
        const signal = this.wake.signal;
        if (!signal.aborted && !this.stopping) {
          if (this.running.length === 0) {
            await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
          } else {
            const poll = this.clock.now() + this.pollMs;
            await this.clock.sleepUntil(wakeAt === null ? poll : Math.min(wakeAt, poll), signal);
          }
        }
        this.wake = new AbortController();
      } catch (error) {
        this.events.emit('error', { where: 'pool-allocator', error });
        this.log.error({ err: error }, 'pool allocation failed; retrying in 5s');
        await this.clock.sleepUntil(this.clock.now() + 5000, this.wake.signal);
        this.wake = new AbortController();
      }
    }
  }

  /** One pass over one campaign; null when it is not a running pool campaign or is locked elsewhere. */
  async allocate(campaignId: number): Promise<PassResult | null> {
    const now = this.clock.now();
    const t0 = performance.now();
    const recorded = new Set<number>();
    this.recordedDuringPass = recorded;
    let out;
    try {
      out = await this.db.transaction(async (tx) => {
        const c = await lockPoolCampaign(tx, campaignId);
        if (!c) return null;
        const r = await allocatePass(tx, c, now);
        return { ...r, userId: c.user_id };
      });
    } finally {
      this.recordedDuringPass = null;
    }
    this.stats.passMs += performance.now() - t0;
    if (!out) {
      this.gates.delete(campaignId);
      return null;
    }
    // On PostgreSQL a batch can be recorded on another connection while the pass runs; the pass
    // then saw those sends open. They are not gates any more, and may have been the last ones.
    const gate = new Set(out.gates.filter((d) => !recorded.has(d)));
    this.gates.set(campaignId, gate);
    if (gate.size === 0 && out.gates.length > 0) this.poke();
    this.stats.passes++;
    this.stats.allocated += out.allocated;
    this.stats.moved += out.moved;
    if (out.devices.length > 0) await this.db.notify(WORK_CHANNEL, workPayload(out.devices));
    if (out.queueEmpty) await closeFinishedCampaigns(this.db, this.events, [campaignId], now);
    return { allocated: out.allocated, moved: out.moved, wakeAt: out.wakeAt };
  }
}

interface PassOutcome extends PassResult {
  /** Devices given work (the dispatcher is told). */
  devices: number[];
  /** Devices holding the floor with a send open: the next lead waits for all of them. */
  gates: number[];
  queueEmpty: boolean;
}

async function allocatePass(tx: Queryable, c: PoolCampaign, now: number): Promise<PassOutcome> {
  const nowDate = new Date(now);
  const allowed = c.audience?.deviceIds?.length ? new Set(c.audience.deviceIds) : null;
  const devices = await poolDevices(tx, c, nowDate);
  const usable = (d: PoolDevice) => d.usable && (allowed === null || allowed.has(d.id));
  const active = devices.filter(usable);
  const gone = devices.filter((d) => !usable(d));

  // Lanes: a device keeps its lane while it stays usable; one that joins or returns starts level
  // with the lowest finished count among those that stayed (or among all, if none stayed).
  const finished = (d: PoolDevice) => (d.lane ?? 0) - d.outstanding;
  const stayed = active.filter((d) => d.was_active && d.lane !== null);
  const base = stayed.length > 0 ? Math.min(...stayed.map(finished)) : active.length > 0 ? Math.min(...active.map((d) => (d.lane === null ? 0 : finished(d)))) : 0;
  const laneUpdates: { deviceId: number; lane: number; active: boolean }[] = [];
  for (const d of active) {
    if (d.lane === null || !d.was_active) {
      const lane = Math.max(d.lane ?? 0, base + d.outstanding);
      laneUpdates.push({ deviceId: d.id, lane, active: true });
      d.lane = lane;
    }
  }
  for (const d of gone) if (d.was_active && d.lane !== null) laneUpdates.push({ deviceId: d.id, lane: d.lane, active: false });
  await saveLanes(tx, c.id, laneUpdates);

  const result: PassOutcome = { allocated: 0, moved: 0, wakeAt: null, devices: [], gates: [], queueEmpty: false };
  // A paused or restricted device comes back by itself, with nothing to announce it: wake then.
  for (const d of gone) {
    if (d.paused_until !== null && (allowed === null || allowed.has(d.id))) {
      const at = d.paused_until.getTime();
      result.wakeAt = result.wakeAt === null ? at : Math.min(result.wakeAt, at);
    }
  }
  // Completion is possible only with nothing open anywhere: only then is the queue worth a look.
  const nothingOpen = devices.every((d) => d.outstanding === 0);
  if (active.length === 0) {
    if (nothingOpen) result.queueEmpty = await queueIsEmpty(tx, c.id);
    return result;
  }

  // Who may take a lead now: nothing open, and no further ahead than the slowest has finished.
  const floor = Math.min(...active.map(finished));
  const gatesAfter = (served: readonly number[]): number[] =>
    active.filter((d) => finished(d) === floor && (d.outstanding > 0 || served.includes(d.id))).map((d) => d.id);
  result.gates = gatesAfter([]);
  let candidates = active.filter((d) => d.outstanding === 0 && (d.lane ?? 0) <= floor).sort((a, b) => (a.lane ?? 0) - (b.lane ?? 0) || a.id - b.id);

  // Quotas, counted from attempts (and nothing open, by construction of the candidates).
  const dayStart = localDayStart(now, c.time_zone);
  const dayEnd = nextLocalDayStart(now, c.time_zone);
  if (candidates.length > 0 && (c.device_hourly_quota !== null || c.device_daily_quota !== null)) {
    const recent = new Map(
      (await recentAttempts(tx, c.id, candidates.map((d) => d.id), new Date(now - HOUR_MS), new Date(dayStart))).map((r) => [r.device_id, r]),
    );
    candidates = candidates.filter((d) => {
      const r = recent.get(d.id);
      if (!r) return true;
      if (c.device_hourly_quota !== null && r.hour_count >= c.device_hourly_quota) {
        const frees = (r.hour_oldest?.getTime() ?? now) + HOUR_MS;
        result.wakeAt = result.wakeAt === null ? frees : Math.min(result.wakeAt, frees);
        return false;
      }
      if (c.device_daily_quota !== null && r.day_count >= c.device_daily_quota) {
        result.wakeAt = result.wakeAt === null ? dayEnd : Math.min(result.wakeAt, dayEnd);
        return false;
      }
      return true;
    });
  }
  if (candidates.length > 0 && c.daily_limit !== null) {
    const open = devices.reduce((n, d) => n + d.outstanding, 0);
    const today = await campaignAttemptsSince(tx, c.id, devices.map((d) => d.id), new Date(dayStart));
    const room = Math.max(0, c.daily_limit - today - open);
    if (room < candidates.length) {
      candidates = candidates.slice(0, room);
      if (room === 0) result.wakeAt = result.wakeAt === null ? dayEnd : Math.min(result.wakeAt, dayEnd);
    }
  }
  if (candidates.length === 0) {
    if (nothingOpen) result.queueEmpty = await queueIsEmpty(tx, c.id);
    return result;
  }

  let notBefore = Math.max(now, c.starts_at.getTime());
  if (c.window_id !== null) {
    const w = (await loadWindows(tx, [c.window_id])).get(c.window_id);
    if (w) notBefore = nextWindowOpening(w, notBefore);
  }

  // Rows stranded on devices that went away go first, then new leads from the queue.
  const stranded = await movableRows(tx, c.id, gone.filter((d) => d.movable > 0).map((d) => d.id));
  const moves = stranded.slice(0, candidates.length).map((m, i) => ({ id: m.id, leadId: m.lead_id, from: m.device_id, to: candidates[i]!.id }));
  result.moved = await moveRows(tx, c.id, moves, new Date(notBefore));
  for (const m of moves) result.devices.push(m.to);
  let waiting = candidates.slice(moves.length);

  const body = campaignBodySql(c.body, c.id);
  // A popped lead that opted out or got its own device meanwhile gives its device nothing to send:
  // pop again for the devices still waiting (a few rounds at most in practice).
  while (waiting.length > 0) {
    const rows = await allocateFromQueue(tx, c, waiting.map((d) => d.id), body, new Date(notBefore), nowDate);
    // Fewer rows than asked: the queue ran dry (or a lead was deleted; completion checks properly).
    if (rows.length < waiting.length) result.queueEmpty = true;
    const served = new Set(rows.filter((r) => r.status === 'pending').map((r) => r.device_id));
    result.allocated += served.size;
    for (const d of served) result.devices.push(d);
    waiting = waiting.filter((d) => !served.has(d.id));
    if (result.queueEmpty || rows.length === 0) break;
  }
  result.gates = gatesAfter(result.devices);
  return result;
}
