/**
 * The dispatcher: sends the outbox, one device at a time per device, every device at once.
 *
 * Ownership. A process serves only the devices whose lease row it holds (heartbeat + TTL). Leases
 * are acquired and renewed every TTL/3; a device whose lease is not renewed is dropped locally
 * before the lease can expire, and the claim statement itself joins the lease row, so two
 * processes never claim for one device even if one of them stalls.
 *
 * Sharing (a store several processes open: PostgreSQL). Every dispatcher keeps a heartbeat row in
 * engine_processes, renewed with its leases, and serves at most its fair share: ceil(devices / live
 * processes). A process above its share SHEDS the excess at its next refresh: it stops claiming for
 * those devices, disconnects them, records their buffered outcomes and only then releases their
 * leases, so the next owner finds nothing in flight to guess about. Joining, leaving and shedding
 * are announced on LEASES_CHANNEL, so the others refresh at once instead of at their next TTL/3;
 * a process that dies stops counting when its heartbeat lapses, together with its leases. Devices
 * shed are the highest ids without a send in flight; devices taken are the lowest free ids. The
 * trade-off: a join or a death moves devices (each move rebuilds pacing history from the outbox and
 * reconnects), in exchange for no coordinator and no protocol beyond rows and notifications.
 *
 * Per-device state lives in memory (a Slot): connected, in flight, the pacing history, and the
 * earliest time it may send again. A device is READY when it is connected, has nothing in flight,
 * its pacing allows a send now, and it may have due work (its head not_before is due or unknown).
 *
 * Loop (one per process):
 *   refresh leases if due -> claim the due head message of every ready device in ONE statement ->
 *   messages whose window is closed are deferred (with every other pending message of that device
 *   in the same window) -> the rest are sent with bounded concurrency -> outcomes are buffered and
 *   recorded in batches -> sleep until the earliest time any device may act, or until poked
 *   (new work, a send finished, a device came online, a notification).
 *
 * Message states: pending -> sending (claimed) -> sent | failed | skipped, or back to pending for a
 * retry (transient error, up to maxAttempts, with exponential backoff) or a deferral (closed
 * window, device found offline). Delivered/read receipts move sent -> delivered -> read.
 *
 * Crash recovery. A row is `sending` only while its claimer holds the lease. When a device is taken
 * over (at start, or after another process died) its `sending` rows are settled before anything
 * else: `sent` if the transport proves it sent them, `pending` if it proves it did not or the
 * campaign chose at-least-once, otherwise `unknown` (at-most-once: never silently resent).
 *
 * Trade-offs. Outcomes are buffered, so a crash between send and record leaves rows `sending`; that
 * is exactly the case recovery settles, and buffering is what makes 10,000+ messages/s possible.
 * Pacing history is rebuilt from the outbox on takeover (last attempt per message), so retried
 * attempts before a crash count once; caps are never loosened by anything else.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { acquireLeases, releaseLeases, renewLeases } from '../store/sql/leases.js';
import { fairShare, heartbeatProcess, removeProcess, type ProcessInfo } from '../store/sql/processes.js';
import { loadEngineDevices, pauseDevice, setDeviceStatuses, type EngineDevice } from '../store/sql/devices.js';
import {
  claimDueHeads,
  deferMessages,
  findInFlight,
  loadPacingHistory,
  pendingHeads,
  recordOutcomes,
  recordReceipts,
  settleInFlight,
  type ClaimedMessage,
  type Deferral,
  type Outcome,
  type Receipt,
  type Settlement,
} from '../store/sql/messages.js';
import { loadWindows } from '../store/sql/windows.js';
import { loadCampaignGaps, type CampaignGap } from '../store/sql/campaigns.js';
import type { Clock } from './clock.js';
import { closeFinishedCampaigns } from './campaign-completion.js';
import { DEVICES_CHANNEL, deviceIdsOf, EngineEvents, LEASES_CHANNEL, SEQUENCES_CHANNEL, WORK_CHANNEL } from './events.js';
import { progressEnrollments, type Progressed } from './sequence-progress.js';
import {
  drawGap,
  emptyHistory,
  localDayStart,
  nextLocalDayStart,
  nextSendTime,
  nextWindowOpening,
  recordSend,
  type PacingSettings,
  type SendHistory,
  type SendWindow,
} from './pacing.js';
import type { OutboundMessage, SendResult, Transport, TransportEvent } from '../transports/transport.js';

export interface DispatcherOptions {
  /** This process's lease owner name; random by default. */
  owner?: string;
  leaseTtlMs?: number;
  /** The most devices this process serves. */
  maxDevices?: number;
  /** Sends in flight at once across all devices. */
  sendConcurrency?: number;
  /** Outcomes buffered before a flush is forced. */
  recordBatchSize?: number;
  /** The longest an outcome waits in the buffer before it is recorded. */
  flushIntervalMs?: number;
  maxAttempts?: number;
  retryBaseMs?: number;
  random?: () => number;
  /**
   * Share the devices with the other live processes (heartbeat, fair share, shedding). Default: on
   * a store other processes can open (PostgreSQL), off on PGlite.
   */
  share?: boolean;
  /** How this process appears among the others (engine_processes): its role, e.g. `worker`. */
  role?: string;
}

interface Slot {
  device: EngineDevice;
  transport: Transport;
  settings: PacingSettings;
  history: SendHistory;
  connected: boolean;
  inFlight: boolean;
  /** Earliest time pacing allows the next send. */
  readyAt: number;
  /** Earliest pending not_before: undefined = unknown (ask), null = nothing pending. */
  headAt: number | null | undefined;
  /**
   * Bumped by every "new work" notification for the device. A look at its head that started before
   * a bump may have read a snapshot without the new row: it must not conclude "nothing pending".
   */
  workSeq: number;
}

const OFFLINE_CODE = 'DEVICE_OFFLINE';
const POKE = 'poke';

export class Dispatcher {
  readonly owner: string;
  private readonly leaseTtlMs: number;
  private readonly maxDevices: number;
  private readonly sendConcurrency: number;
  private readonly recordBatchSize: number;
  private readonly flushIntervalMs: number;
  /** When the oldest buffered outcome or receipt arrived (null: buffer empty). */
  private bufferedSince: number | null = null;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly random: () => number;
  private readonly share: boolean;
  private readonly process: ProcessInfo;

  private readonly slots = new Map<number, Slot>();
  private readonly windows = new Map<number, SendWindow>();
  /** Campaigns' own gaps (null: the device's), loaded on first sight; fixed once a campaign runs. */
  private readonly gaps = new Map<number, CampaignGap | null>();
  private outcomes: Outcome[] = [];
  private receipts: Receipt[] = [];
  /** Latest connection status per device, written with the next flush. */
  private statuses = new Map<number, { id: number; status: string; at: number }>();
  private touchedCampaigns = new Set<number>();
  /** Enrollments whose current message finished in the buffered outcomes: moved on when recorded. */
  private touchedEnrollments = new Set<number>();
  /** Device of each buffered outcome's message, until it is recorded. */
  private readonly messageDevice = new Map<number, number>();
  private inFlight = 0;
  private leaseValidUntil = 0;
  private nextLeaseRefresh = 0;

  private running = false;
  private stopping = false;
  private abandoned = false;
  private loopDone: Promise<void> | undefined;
  private wake = new AbortController();
  private flushing: Promise<void> = Promise.resolve();
  private readonly unsubscribe: (() => void | Promise<void>)[] = [];
  private settledWaiters: (() => void)[] = [];
  private readonly inFlightDevices = new Set<number>();

  /** Counters for health, metrics and benchmarks. */
  readonly stats = { claimed: 0, sent: 0, failed: 0, retried: 0, deferred: 0, recorded: 0, claimStatements: 0 };

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly transports: ReadonlyMap<string, Transport>,
    private readonly events: EngineEvents,
    private readonly log: Logger,
    opts: DispatcherOptions = {},
  ) {
    this.owner = opts.owner ?? `dispatcher-${randomUUID()}`;
    this.leaseTtlMs = opts.leaseTtlMs ?? 30_000;
    this.maxDevices = opts.maxDevices ?? 100_000;
    this.sendConcurrency = opts.sendConcurrency ?? 512;
    this.recordBatchSize = opts.recordBatchSize ?? 4096;
    this.flushIntervalMs = opts.flushIntervalMs ?? 1000;
    this.maxAttempts = opts.maxAttempts ?? 3;
    this.retryBaseMs = opts.retryBaseMs ?? 30_000;
    this.random = opts.random ?? Math.random;
    this.share = opts.share ?? db.profile.crossProcessNotify;
    this.process = { owner: this.owner, host: hostname(), pid: process.pid, role: opts.role ?? 'all', startedAt: new Date(clock.now()) };
  }

  /** Devices this process serves right now. */
  get deviceIds(): number[] {
    return [...this.slots.keys()];
  }

  /** True when nothing is due, in flight or unrecorded on any connected device. */
  get idle(): boolean {
    if (this.inFlight > 0 || this.buffered > 0) return false;
    for (const s of this.slots.values()) {
      if (s.connected && s.headAt !== null) return false;
    }
    return true;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    for (const t of new Set(this.transports.values())) {
      this.unsubscribe.push(t.onEvent((e) => this.onTransportEvent(e)));
    }
    this.unsubscribe.push(
      await this.db.listen(WORK_CHANNEL, (payload) => this.onWork(payload)),
      await this.db.listen(DEVICES_CHANNEL, (payload) => this.onDevicesChanged(payload)),
    );
    if (this.share) this.unsubscribe.push(await this.db.listen(LEASES_CHANNEL, (payload) => this.onLeasesChanged(payload)));
    await this.refreshLeases();
    // The others learn there is one more of us now, and hand over their excess.
    if (this.share) await this.announceLeases('joined');
    this.loopDone = this.loop();
  }

  /** Graceful stop: finish what is in flight, record it, hand the devices back. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.stopping = true;
    this.poke();
    await this.loopDone;
    await this.sendsSettled();
    await this.flushing;
    await this.flush();
    const ids = this.deviceIds;
    await Promise.all(ids.map((id) => this.slots.get(id)!.transport.disconnect(id).catch(() => undefined)));
    await this.flush().catch(() => undefined);
    this.slots.clear();
    await releaseLeases(this.db, this.owner).catch((error) => this.events.emit('error', { where: 'release', error }));
    if (this.share) {
      await removeProcess(this.db, this.owner).catch((error) => this.events.emit('error', { where: 'release', error }));
      await this.announceLeases('left').catch(() => undefined);
    }
    await this.detach();
    this.running = false;
  }

  /**
   * Stops as a crash would: no flush, no lease release. Sends already handed to a transport finish
   * there, but nothing more is recorded. For tests of recovery.
   */
  async abandon(): Promise<void> {
    this.stopping = true;
    this.abandoned = true;
    this.outcomes = [];
    this.receipts = [];
    this.statuses = new Map();
    this.poke();
    await this.loopDone?.catch(() => undefined);
    this.slots.clear();
    await this.detach();
    this.running = false;
  }

  private async detach(): Promise<void> {
    for (const off of this.unsubscribe.splice(0)) await off();
  }

  /** Asks the loop to look again now. */
  poke(): void {
    // A reason of our own: abort() without one builds a DOMException with a stack trace, which
    // measured 2-3% of the whole dispatch benchmark when every finished send pokes.
    if (!this.wake.signal.aborted) this.wake.abort(POKE);
  }

  private onWork(payload: string): void {
    const ids = deviceIdsOf(payload);
    const slots = ids === null ? [...this.slots.values()] : ids.map((id) => this.slots.get(id));
    for (const s of slots) {
      if (!s) continue;
      s.headAt = undefined;
      s.workSeq++;
    }
    this.poke();
  }

  /**
   * A device was added, edited, paused or deleted: re-read the ones this process serves, and look
   * for new ones at once instead of at the next lease refresh.
   */
  private onDevicesChanged(payload: string): void {
    for (const id of deviceIdsOf(payload) ?? []) {
      if (this.slots.has(id)) {
        void this.clock.track(this.reloadDevice(id)).catch((error) => this.events.emit('error', { where: 'reloadDevice', error }));
      }
    }
    this.nextLeaseRefresh = 0;
    this.poke();
  }

  /** Another process joined, left or shed devices: look at the shares now. Our own announcements are ignored. */
  private onLeasesChanged(payload: string): void {
    try {
      if ((JSON.parse(payload) as { owner?: unknown }).owner === this.owner) return;
    } catch {
      // Not ours to validate: any other payload still means "look again".
    }
    this.nextLeaseRefresh = 0;
    this.poke();
  }

  private async announceLeases(change: 'joined' | 'left' | 'shed'): Promise<void> {
    await this.db.notify(LEASES_CHANNEL, JSON.stringify({ owner: this.owner, change }));
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        const now = this.clock.now();
        if (now >= this.nextLeaseRefresh) await this.refreshLeases();
        const ready = this.readyDevices(this.clock.now());
        if (ready.length > 0) {
          const progressed = await this.claimAndSend(ready);
          if (progressed) {
            // Let sends that finish at once (zero latency) come back before the next claim, so
            // claims stay batched across devices.
            await this.clock.track(new Promise<void>((r) => setImmediate(r)));
            await this.maybeFlush(false);
            continue;
          }
        }
        await this.maybeFlush(this.stopping);
        await this.sleep();
      } catch (error) {
        this.events.emit('error', { where: 'dispatcher', error });
        this.log.error({ err: error }, 'dispatcher loop failed; retrying in 1s');
        await this.clock.sleepUntil(this.clock.now() + 1000, this.wake.signal);
        this.wake = new AbortController();
      }
    }
  }

  private async sleep(): Promise<void> {
    if (this.stopping) return;
    const now = this.clock.now();
    let wakeAt = Math.min(this.nextLeaseRefresh, now + this.leaseTtlMs);
    if (this.bufferedSince !== null) wakeAt = Math.min(wakeAt, this.bufferedSince + this.flushIntervalMs);
    for (const s of this.slots.values()) {
      if (!s.connected || s.inFlight || s.headAt === null) continue;
      const due = s.headAt === undefined ? s.readyAt : Math.max(s.readyAt, s.headAt);
      if (due < wakeAt) wakeAt = due;
    }
    if (wakeAt <= now && this.readyDevices(now).length > 0) return;
    if (wakeAt <= now) wakeAt = now + 1;
    const signal = this.wake.signal;
    if (!signal.aborted) await this.clock.sleepUntil(wakeAt, signal);
    this.wake = new AbortController();
  }

  private readyDevices(now: number): Slot[] {
    const out: Slot[] = [];
    if (now >= this.leaseValidUntil) return out;
    let room = this.sendConcurrency - this.inFlight;
    for (const s of this.slots.values()) {
      if (room <= 0) break;
      if (!s.connected || s.inFlight || s.readyAt > now) continue;
      if (s.headAt === null || (s.headAt !== undefined && s.headAt > now)) continue;
      out.push(s);
      room--;
    }
    return out;
  }

  /** One claim round. Returns whether anything was claimed. */
  private async claimAndSend(ready: Slot[]): Promise<boolean> {
    const now = this.clock.now();
    const nowDate = new Date(now);
    const seqBefore = new Map(ready.map((s) => [s.device.id, s.workSeq]));
    const claimed = await claimDueHeads(
      this.db,
      this.owner,
      ready.map((s) => s.device.id),
      nowDate,
    );
    this.stats.claimStatements++;
    this.stats.claimed += claimed.length;
    const got = new Set(claimed.map((m) => m.device_id));
    const empty = ready.filter((s) => !got.has(s.device.id)).map((s) => s.device.id);
    if (empty.length > 0) {
      const heads = await pendingHeads(this.db, empty);
      for (const id of empty) {
        const s = this.slots.get(id);
        // Work announced meanwhile (another connection committed after this look began) wins.
        if (s && s.workSeq === seqBefore.get(id)) s.headAt = heads.get(id) ?? null;
      }
    }
    if (claimed.length === 0) return false;

    const missing = [...new Set(claimed.map((m) => m.window_id).filter((w): w is number => w !== null && !this.windows.has(w)))];
    if (missing.length > 0) for (const [id, w] of await loadWindows(this.db, missing)) this.windows.set(id, w);
    const unseen = [...new Set(claimed.map((m) => m.campaign_id).filter((c): c is number => c !== null && !this.gaps.has(c)))];
    if (unseen.length > 0) for (const [id, g] of await loadCampaignGaps(this.db, unseen)) this.gaps.set(id, g);

    const deferrals: Deferral[] = [];
    // Row order from the database differs between stores; device order keeps a seeded run repeatable.
    claimed.sort((a, b) => a.device_id - b.device_id);
    for (const m of claimed) {
      const slot = this.slots.get(m.device_id);
      const w = m.window_id === null ? undefined : this.windows.get(m.window_id);
      const opens = w ? nextWindowOpening(w, now) : now;
      if (!slot || opens > now || this.stopping) {
        deferrals.push({ id: m.id, deviceId: m.device_id, windowId: m.window_id, notBefore: slot ? opens : now });
        if (slot) slot.headAt = undefined;
        continue;
      }
      this.startSend(slot, m);
    }
    if (deferrals.length > 0) {
      this.stats.deferred += deferrals.length;
      await deferMessages(this.db, deferrals);
    }
    return true;
  }

  private startSend(slot: Slot, m: ClaimedMessage): void {
    slot.inFlight = true;
    slot.headAt = undefined;
    this.inFlight++;
    this.inFlightDevices.add(m.device_id);
    const attempt = m.attempts + 1;
    const msg: OutboundMessage = {
      id: m.id,
      deviceId: m.device_id,
      to: m.phone,
      body: m.body,
      media: (m.media as OutboundMessage['media']) ?? null,
      origin: m.campaign_id !== null ? `campaign:${m.campaign_id}` : `sequence-enrollment:${m.enrollment_id}/step:${m.step}`,
      attempt,
    };
    // Not tracked on the clock: a send may be waiting on virtual time (latency) itself. One
    // promise per send, and a counter instead of a set of them: this is the hot path.
    let sending: Promise<SendResult>;
    try {
      sending = slot.transport.send(msg);
    } catch (err) {
      sending = Promise.reject(err);
    }
    // The send's moment is read once the transport has it, not when the claim round began (the
    // claim statement takes tens of ms under load, more for one round than the next) nor just
    // before the hand-over (a pause between the two readings, a GC say, would put the transport's
    // own stamp after ours): so the next send, paced from here, is never closer to this one than
    // the gap, as the transport sees them. The same instant is the attempt time recorded in the
    // outbox, from which a new owner rebuilds the pacing history.
    const now = this.clock.now();
    // A campaign's own gap replaces the device's after each of its messages; caps stay the device's.
    const own = m.campaign_id === null ? null : (this.gaps.get(m.campaign_id) ?? null);
    const gap = own ? drawGap(own.min_delay_ms, own.max_delay_ms, this.random) : drawGap(slot.settings.minDelayMs, slot.settings.maxDelayMs, this.random);
    slot.history = recordSend(slot.settings, slot.history, now, gap);
    slot.readyAt = nextSendTime(slot.settings, slot.history, now);
    sending.then(
      (result) => this.onSent(slot, m, attempt, now, result),
      (err: unknown) =>
        this.onSent(slot, m, attempt, now, {
          ok: false,
          code: 'TRANSPORT_ERROR',
          message: err instanceof Error ? err.message : String(err),
          transient: true,
        }),
    );
  }

  /** Resolves once no send is in flight. */
  private sendsSettled(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  private onSent(slot: Slot, m: ClaimedMessage, attempt: number, attemptAt: number, result: SendResult): void {
    this.inFlight--;
    slot.inFlight = false;
    this.inFlightDevices.delete(m.device_id);
    if (this.inFlight === 0 && this.settledWaiters.length > 0) for (const w of this.settledWaiters.splice(0)) w();
    if (this.abandoned) return;
    const at = this.clock.now();
    const base = { id: m.id, attempted: true, attemptAt, at, transportId: null, retryAt: null, errorCode: null, error: null, dueAt: m.not_before.getTime() } as const;
    let outcome: Outcome;
    if (result.ok) {
      outcome = { ...base, status: 'sent', transportId: result.transportId };
      this.stats.sent++;
    } else if (result.code === OFFLINE_CODE) {
      // The device dropped under us: the message waits for it, and this was no attempt of its own.
      slot.connected = false;
      outcome = { ...base, status: 'pending', attempted: false, errorCode: result.code, error: result.message };
    } else if (result.restrictedUntil !== undefined) {
      outcome = { ...base, status: 'failed', errorCode: result.code, error: result.message };
      this.restrict(slot, result.restrictedUntil, result.message, at);
      this.stats.failed++;
    } else if (result.transient && attempt < this.maxAttempts) {
      const retryAt = at + this.retryBaseMs * 2 ** (attempt - 1);
      outcome = { ...base, status: 'pending', retryAt, errorCode: result.code, error: result.message };
      this.stats.retried++;
    } else {
      outcome = { ...base, status: result.code === 'NOT_ON_WHATSAPP' ? 'skipped' : 'failed', errorCode: result.code, error: result.message };
      this.stats.failed++;
    }
    if (outcome.status !== 'pending' && m.campaign_id !== null) this.touchedCampaigns.add(m.campaign_id);
    if (outcome.status !== 'pending' && m.enrollment_id !== null) this.touchedEnrollments.add(m.enrollment_id);
    this.buffer();
    this.outcomes.push(outcome);
    this.messageDevice.set(m.id, m.device_id);
    this.poke();
  }

  private buffer(): void {
    this.bufferedSince ??= this.clock.now();
  }

  private restrict(slot: Slot, until: number, reason: string, at: number): void {
    const prev = slot.settings.pausedUntil ?? 0;
    if (until <= prev) return;
    slot.settings = { ...slot.settings, pausedUntil: until };
    slot.readyAt = nextSendTime(slot.settings, slot.history, at);
    this.events.emit('device.restricted', { deviceId: slot.device.id, until, reason, at });
    void this.clock
      .track(pauseDevice(this.db, slot.device.id, new Date(until), reason, new Date(at)))
      .catch((error) => this.events.emit('error', { where: 'pauseDevice', error }));
  }

  private get buffered(): number {
    return this.outcomes.length + this.receipts.length + this.statuses.size;
  }

  private async maybeFlush(force: boolean): Promise<void> {
    const pending = this.buffered;
    if (pending === 0) return;
    const overdue = this.bufferedSince !== null && this.clock.now() >= this.bufferedSince + this.flushIntervalMs;
    if (!force && !overdue && pending < this.recordBatchSize) return;
    await this.flushing;
    const run = this.flush();
    if (this.db.profile.statementParallelism > 1 && !force) {
      // Record this batch while the next claim runs on another connection.
      this.flushing = this.clock.track(run).catch(() => undefined);
    } else {
      await run;
    }
  }

  private async flush(): Promise<void> {
    const outcomes = this.outcomes;
    const receipts = this.receipts;
    const statuses = this.statuses;
    const campaigns = [...this.touchedCampaigns];
    const enrollments = [...this.touchedEnrollments];
    if (this.buffered === 0) return;
    this.outcomes = [];
    this.receipts = [];
    this.statuses = new Map();
    this.touchedCampaigns = new Set();
    this.touchedEnrollments = new Set();
    this.bufferedSince = null;
    try {
      let progressed: Progressed | null = null;
      if (enrollments.length === 0) {
        await recordOutcomes(this.db, outcomes);
      } else {
        // A step recorded as finished and its enrollment moved on commit together.
        const at = new Date(this.clock.now());
        progressed = await this.db.transaction(async (tx) => {
          await recordOutcomes(tx, outcomes);
          return progressEnrollments(tx, enrollments, at);
        });
      }
      await recordReceipts(this.db, receipts);
      await setDeviceStatuses(this.db, [...statuses.values()]);
      // Rows put back to pending (a retry, a device found offline) are work the slots must see.
      for (const o of outcomes) {
        if (o.status !== 'pending') continue;
        const m = this.messageDevice.get(o.id);
        const slot = m === undefined ? undefined : this.slots.get(m);
        if (slot) slot.headAt = undefined;
      }
      const devices = new Set<number>();
      for (const o of outcomes) {
        const d = this.messageDevice.get(o.id);
        if (d !== undefined) devices.add(d);
        this.messageDevice.delete(o.id);
      }
      this.stats.recorded += outcomes.length;
      const now = this.clock.now();
      this.events.emit('outcomes.recorded', { count: outcomes.length, at: now, devices: [...devices], statuses: statuses.size, outcomes, campaigns });
      await closeFinishedCampaigns(this.db, this.events, campaigns, now);
      if (progressed) await this.announceProgress(progressed, now);
    } catch (error) {
      // Keep them: the next flush tries again. Rows stay `sending` meanwhile, which is safe.
      this.outcomes = outcomes.concat(this.outcomes);
      this.receipts = receipts.concat(this.receipts);
      for (const [id, st] of statuses) if (!this.statuses.has(id)) this.statuses.set(id, st);
      for (const c of campaigns) this.touchedCampaigns.add(c);
      for (const e of enrollments) this.touchedEnrollments.add(e);
      this.bufferedSince ??= this.clock.now();
      this.events.emit('error', { where: 'flush', error });
      throw error;
    }
  }

  /** Tells the planner (here and in other processes) when the next of these steps falls due. */
  private async announceProgress(p: Progressed, now: number): Promise<void> {
    this.events.emit('enrollments.progressed', { next: p.next, completed: p.completed, exited: p.exited, chained: p.chained, at: now });
    if (p.firstDue !== null) await this.db.notify(SEQUENCES_CHANNEL, JSON.stringify({ due: p.firstDue.getTime() }));
  }

  private onTransportEvent(e: TransportEvent): void {
    const slot = this.slots.get(e.deviceId);
    if (!slot) return;
    switch (e.type) {
      case 'status': {
        const connected = e.status === 'online';
        if (slot.connected !== connected) {
          slot.connected = connected;
          if (connected) slot.headAt = undefined;
          this.poke();
        }
        this.events.emit('device.status', { deviceId: e.deviceId, status: e.status, at: e.at, reason: e.reason });
        this.buffer();
        this.statuses.set(e.deviceId, { id: e.deviceId, status: e.status, at: e.at });
        this.poke();
        break;
      }
      case 'receipt':
        this.buffer();
        this.receipts.push({ id: e.messageId, deviceId: e.deviceId, status: e.status, at: e.at });
        this.poke();
        break;
      case 'restricted':
        this.restrict(slot, e.until, e.reason, e.at);
        break;
      case 'incoming':
        this.events.emit('message.reply', { deviceId: e.deviceId, from: e.from, text: e.text, at: e.at });
        break;
    }
  }

  /** Renews held leases, drops lost ones, takes free ones (settling what a dead owner left in flight). */
  private async refreshLeases(): Promise<void> {
    const now = this.clock.now();
    const expires = new Date(now + this.leaseTtlMs);
    const held = new Set(await renewLeases(this.db, this.owner, new Date(now), expires));
    // A lease we could not renew in time is treated as lost a third of a TTL before it expires.
    this.leaseValidUntil = now + (this.leaseTtlMs * 2) / 3;
    this.nextLeaseRefresh = now + this.leaseTtlMs / 3;
    const lost = this.deviceIds.filter((id) => !held.has(id));
    if (lost.length > 0) this.drop(lost, now);
    // Leases held with no device served behind them (a release or an adoption that failed half-way)
    // are handed back: renewing them would keep the devices from everyone.
    const orphans = [...held].filter((id) => !this.slots.has(id));
    if (orphans.length > 0) {
      await releaseLeases(this.db, this.owner, orphans);
      for (const id of orphans) held.delete(id);
    }
    let target = this.maxDevices;
    if (this.share) {
      const fleet = await heartbeatProcess(this.db, this.process, new Date(now), expires, held.size);
      target = Math.min(this.maxDevices, fairShare(fleet));
      if (held.size > target) {
        const shed = await this.shed(held.size - target, now);
        for (const id of shed) held.delete(id);
      }
    }
    const room = target - held.size;
    if (room <= 0) return;
    const exclusive = !this.db.profile.crossProcessNotify;
    const taken = await acquireLeases(this.db, this.owner, new Date(now), expires, room, exclusive);
    // A device taken back after our own lease lapsed may still have a send of ours in flight:
    // let it finish before recovery judges the row, or a "not sent yet" proof would resend it.
    if (taken.some((id) => this.inFlightDevices.has(id))) await this.sendsSettled();
    if (taken.length > 0) await this.adopt(taken, now);
    // A missed notification (a dropped listener connection) must not leave work unseen for long:
    // every refresh looks again at devices believed to have nothing pending.
    for (const s of this.slots.values()) if (s.headAt === null) s.headAt = undefined;
  }

  /**
   * Hands `count` devices over to the other processes: the highest ids with no send in flight
   * (a device mid-send waits for a later refresh). Their outcomes are recorded before their leases
   * go, so the next owner's recovery finds nothing of ours in flight. Returns the devices released.
   */
  private async shed(count: number, now: number): Promise<number[]> {
    const ids = [...this.slots.values()]
      .filter((s) => !s.inFlight)
      .map((s) => s.device.id)
      .sort((a, b) => b - a)
      .slice(0, count);
    if (ids.length === 0) return [];
    // Nothing is claimed while the loop is here, so once this flush is done nothing of theirs is
    // unrecorded. If it fails, nothing has changed yet and the next refresh tries again.
    await this.flushing;
    await this.flush();
    const leaving = ids.map((id) => this.slots.get(id)!);
    for (const id of ids) this.slots.delete(id);
    // A linked device must be closed here before it is opened elsewhere (WhatsApp replaces a
    // session opened twice).
    await Promise.all(leaving.map((s) => s.transport.disconnect(s.device.id).catch(() => undefined)));
    await releaseLeases(this.db, this.owner, ids);
    this.events.emit('device.released', { deviceIds: ids, at: now });
    await this.announceLeases('shed');
    return ids;
  }

  private drop(ids: number[], at: number): void {
    for (const id of ids) {
      const s = this.slots.get(id);
      if (!s) continue;
      this.slots.delete(id);
      void s.transport.disconnect(id).catch(() => undefined);
    }
    this.events.emit('device.released', { deviceIds: ids, at });
  }

  private async adopt(ids: number[], now: number): Promise<void> {
    const devices = await loadEngineDevices(this.db, ids);
    const usable = devices.filter((d) => this.transports.has(d.transport));
    const unusable = ids.filter((id) => !usable.some((d) => d.id === id));
    if (unusable.length > 0) await releaseLeases(this.db, this.owner, unusable);
    if (usable.length === 0) return;
    await this.recover(usable, now);
    // Read the clock again: the refresh that took these devices began before their last owner's
    // final sends were recorded (it may have waited on a flush, a release, sends in flight), and
    // history read as of that earlier moment would leave those sends out and pace from the one before.
    now = this.clock.now();
    const history = await loadPacingHistory(
      this.db,
      usable.map((d) => ({ id: d.id, dayStart: localDayStart(now, d.time_zone), hourlyLimit: d.hourly_limit })),
      new Date(now),
    );
    const byDevice = new Map(history.map((h) => [h.device_id, h]));
    for (const d of usable) {
      const settings = settingsOf(d);
      const h = byDevice.get(d.id);
      let hist = emptyHistory();
      if (h?.last_at) {
        hist = {
          lastSendAt: h.last_at.getTime(),
          gapMs: drawGap(settings.minDelayMs, settings.maxDelayMs, this.random),
          recent: h.recent.map((t) => t.getTime()).sort((a, b) => a - b),
          dayStart: localDayStart(now, d.time_zone),
          dayEnd: nextLocalDayStart(now, d.time_zone),
          dayCount: h.day_count,
        };
      }
      this.slots.set(d.id, {
        device: d,
        transport: this.transports.get(d.transport)!,
        settings,
        history: hist,
        connected: false,
        inFlight: false,
        readyAt: nextSendTime(settings, hist, now),
        headAt: undefined,
        workSeq: 0,
      });
    }
    this.events.emit('device.acquired', { deviceIds: usable.map((d) => d.id), at: now });
    for (const d of usable) {
      await this.slots
        .get(d.id)!
        .transport.connect({ id: d.id, userId: d.user_id, phone: d.phone })
        .catch((error) => this.events.emit('error', { where: 'connect', error }));
    }
  }

  /** Settles rows a previous owner left `sending` on these devices. */
  private async recover(devices: EngineDevice[], now: number): Promise<void> {
    const rows = await findInFlight(
      this.db,
      devices.map((d) => d.id),
    );
    if (rows.length === 0) return;
    const byTransport = new Map<string, number[]>();
    const kindOf = new Map(devices.map((d) => [d.id, d.transport]));
    for (const r of rows) {
      const kind = kindOf.get(r.device_id)!;
      byTransport.set(kind, [...(byTransport.get(kind) ?? []), r.id]);
    }
    const proofs = new Map<number, { status: 'sent'; at: number } | { status: 'not_sent' }>();
    for (const [kind, ids] of byTransport) {
      const t = this.transports.get(kind);
      if (!t?.proveSends) continue;
      for (const [id, p] of await t.proveSends(ids)) proofs.set(id, p);
    }
    const settlements: Settlement[] = rows.map((r) => {
      const p = proofs.get(r.id);
      if (p?.status === 'sent') return { id: r.id, status: 'sent', at: p.at };
      if (p?.status === 'not_sent' || r.at_least_once) return { id: r.id, status: 'pending', at: now };
      return { id: r.id, status: 'unknown', at: now };
    });
    const enrollments = [...new Set(rows.map((r) => r.enrollment_id).filter((e): e is number => e !== null))];
    const progressed = await this.db.transaction(async (tx) => {
      await settleInFlight(tx, settlements);
      return progressEnrollments(tx, enrollments, new Date(now));
    });
    // A campaign whose last messages were in flight at the crash is finished now.
    const campaigns = [...new Set(rows.map((r) => r.campaign_id).filter((c): c is number => c !== null))];
    await closeFinishedCampaigns(this.db, this.events, campaigns, now);
    if (enrollments.length > 0) await this.announceProgress(progressed, now);
    const count = (s: string) => settlements.filter((x) => x.status === s).length;
    this.events.emit('message.recovered', { sent: count('sent'), pending: count('pending'), unknown: count('unknown'), at: now });
    this.log.info({ sent: count('sent'), pending: count('pending'), unknown: count('unknown') }, 'settled messages left in flight');
  }

  /** Re-reads a device's settings (after an edit or a pause). */
  async reloadDevice(id: number): Promise<void> {
    const s = this.slots.get(id);
    if (!s) return;
    const [d] = await loadEngineDevices(this.db, [id]);
    if (!d) {
      this.drop([id], this.clock.now());
      await releaseLeases(this.db, this.owner, [id]);
      return;
    }
    s.device = d;
    s.settings = settingsOf(d);
    s.readyAt = nextSendTime(s.settings, s.history, this.clock.now());
    this.poke();
  }
}

function settingsOf(d: EngineDevice): PacingSettings {
  return {
    minDelayMs: d.min_delay_ms,
    maxDelayMs: d.max_delay_ms,
    hourlyLimit: d.hourly_limit,
    dailyLimit: d.daily_limit,
    timeZone: d.time_zone,
    pausedUntil: d.paused_until ? d.paused_until.getTime() : null,
  };
}
