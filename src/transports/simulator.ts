/**
 * A simulated WhatsApp: what the tests, the demo, the forecast and the benchmarks send through.
 * It behaves like a fleet of phones: each send takes a latency drawn from a distribution, fails
 * transiently or permanently at configured rates, devices drop and come back, WhatsApp restricts
 * some of them for a while, delivered and read receipts follow, recipients reply. It records every
 * send attempt, optionally to a file it appends to synchronously before answering, so that after a
 * crash it can prove which messages went out and which did not.
 *
 * All randomness comes from one seeded generator and all time from the injected clock: a run is
 * reproducible, and in virtual time thousands of devices cost nothing while they wait.
 *
 * Linking. A simulator device counts as linked unless `isLinked` (the devices table) says
 * otherwise; an unlinked one stays down when asked to connect. `link()` runs the flow a phone
 * would: QR codes `fleetcast-sim:<device>:<nonce>`, each replaced after `qrRefreshMs`, the link
 * expiring after `qrCodes` of them unless `simulateScan()` completes it; or a pairing code that
 * links by itself after `pairingDelayMs`. A linked device then comes online as after connect().
 */
import { setMaxListeners } from 'node:events';
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import type { Clock } from '../engine/clock.js';
import { seededRandom } from '../engine/pacing.js';
import type { DeviceRef, DeviceStatus, LinkRequest, OutboundMessage, SendProof, SendResult, Transport, TransportEvent } from './transport.js';

export type SendOutcome = 'sent' | 'transient_error' | 'permanent_error' | 'restricted' | 'offline';

export interface SendAttempt {
  /** Virtual or real time the attempt was handed to the simulator (epoch ms). */
  at: number;
  device: number;
  to: string;
  message: number;
  origin: string;
  attempt: number;
  outcome: SendOutcome;
  /** Set by whoever owns the simulator (e.g. a dispatcher id), to tell who sent. */
  by?: string;
}

export interface Range {
  minMs: number;
  maxMs: number;
}

export interface SimulatorOptions {
  clock: Clock;
  seed?: number;
  /** Per-send latency, uniform in the range; zero by default. */
  latency?: Range;
  /** Probability (0-1) that an attempt fails and is worth retrying. */
  transientFailureRate?: number;
  /** Probability (0-1) that an attempt fails for good (e.g. a number that cannot receive). */
  permanentFailureRate?: number;
  /** Time from connect() to online. */
  connectDelayMs?: number;
  /** Devices that stay offline when asked to connect, until reconnected by an event. */
  offlineDevices?: Iterable<number>;
  /**
   * Random disconnects: expected drops per device-hour, and how long each lasts. `share` (0-1)
   * limits them to that fraction of the devices, chosen by device id, so processes sharing the
   * devices agree on which ones flap.
   */
  disconnects?: { perHour: number; downtime: Range; share?: number };
  receipts?: { deliveredAfter: Range; readRate: number; readAfter: Range };
  replies?: { rate: number; after: Range; text?: string };
  /** Appends each attempt as a JSON line and reads it back on start, for crash-proof records. */
  logFile?: string;
  /** Tags every attempt in the log (the sending process or dispatcher). */
  tag?: string;
  /**
   * Keep every attempt in memory (`attempts`) and what it proves (default true). Benchmarks of a
   * million messages turn it off and read `counts` instead.
   */
  record?: boolean;
  /** Whether a device is linked (the devices table); without it every device counts as linked. */
  isLinked?: (deviceId: number) => Promise<boolean>;
  link?: SimulatorLinkOptions;
}

export interface SimulatorLinkOptions {
  /** How long each QR code is shown before the next replaces it (default 20 s). */
  qrRefreshMs?: number;
  /** QR codes shown before the link expires (default 5). */
  qrCodes?: number;
  /** How long after showing a pairing code the simulated phone enters it (default 5 s). */
  pairingDelayMs?: number;
  /** How long a pairing code is said to be valid (default 3 minutes). */
  pairingCodeTtlMs?: number;
}

interface SimDevice {
  ref: DeviceRef;
  connected: boolean;
  wanted: boolean;
  restrictedUntil: number;
  generation: number;
  linked: boolean;
  /** The link in progress, if any; `gen` tells its timers apart from a replaced link's. */
  linking: { gen: number; method: LinkRequest['method'] } | null;
  linkGen: number;
}

const PAIRING_ALPHABET = 'ABCDEFGHJKLMNPQRSTVWXYZ123456789';

export class SimulatorTransport implements Transport {
  readonly kind = 'simulator';
  readonly attempts: SendAttempt[] = [];
  /** Attempts by outcome, kept even when `record` is off. */
  readonly counts: Record<SendOutcome, number> = { sent: 0, transient_error: 0, permanent_error: 0, restricted: 0, offline: 0 };
  private readonly random: () => number;
  private readonly devices = new Map<number, SimDevice>();
  private readonly listeners = new Set<(e: TransportEvent) => void>();
  private readonly offline: Set<number>;
  private readonly proven = new Map<number, number>();
  /** Bytes of the log file already read into `proven`. */
  private logRead = 0;
  private pendingTimers = 0;
  private readonly abort = new AbortController();
  tag: string | undefined;

  constructor(private readonly opts: SimulatorOptions) {
    this.random = seededRandom(opts.seed ?? 1);
    this.offline = new Set(opts.offlineDevices ?? []);
    this.tag = opts.tag;
    // Every pending receipt, reply and reconnect listens on this one signal.
    setMaxListeners(0, this.abort.signal);
    if (opts.logFile && existsSync(opts.logFile)) {
      const text = readFileSync(opts.logFile, 'utf8');
      // A line cut short by a kill must not swallow the next run's first line.
      if (text.length > 0 && !text.endsWith('\n')) appendFileSync(opts.logFile, '\n');
      this.learn(text);
      this.logRead = Buffer.byteLength(text);
    }
  }

  private learn(text: string): void {
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        this.remember(JSON.parse(line) as SendAttempt);
      } catch {
        // A line cut short by a kill mid-write proves nothing; the attempt it began is unknown.
      }
    }
  }

  /**
   * Reads what other processes appended to a shared log since we last looked: a process taking
   * over a dead one's devices must know the sends the dead one made after this one started, or it
   * would call them unsent and send them again. Only whole lines are read; a line still being
   * written is read next time.
   */
  private catchUpLog(): void {
    const file = this.opts.logFile;
    if (!file || !existsSync(file)) return;
    const size = statSync(file).size;
    if (size <= this.logRead) return;
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(size - this.logRead);
      const n = readSync(fd, buf, 0, buf.length, this.logRead);
      const end = buf.lastIndexOf(0x0a, n - 1);
      if (end < 0) return;
      this.learn(buf.subarray(0, end + 1).toString('utf8'));
      this.logRead += end + 1;
    } finally {
      closeSync(fd);
    }
  }

  private get clock(): Clock {
    return this.opts.clock;
  }

  onEvent(listener: (event: TransportEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: TransportEvent): void {
    for (const l of this.listeners) l(event);
  }

  /** Timers the simulator still has scheduled (receipts, reconnects): a run is over when none are. */
  get scheduled(): number {
    return this.pendingTimers;
  }

  /** `counted: false` for the endless background of random drops, which never "finish". */
  private later(delayMs: number, fn: () => void, counted = true): void {
    if (counted) this.pendingTimers++;
    void this.clock.sleepUntil(this.clock.now() + delayMs, this.abort.signal).then(() => {
      if (counted) this.pendingTimers--;
      if (!this.abort.signal.aborted) fn();
    });
  }

  private draw(r: Range): number {
    return r.minMs + Math.floor(this.random() * (r.maxMs - r.minMs + 1));
  }

  private device(ref: DeviceRef): SimDevice {
    const dev = this.devices.get(ref.id) ?? { ref, connected: false, wanted: true, restrictedUntil: 0, generation: 0, linked: true, linking: null, linkGen: 0 };
    dev.ref = ref;
    this.devices.set(ref.id, dev);
    return dev;
  }

  async connect(ref: DeviceRef): Promise<void> {
    const dev = this.device(ref);
    dev.wanted = true;
    // A link in progress brings the device up itself; an unlinked one has no account to go online with.
    if (dev.linking) return;
    if (this.opts.isLinked && !dev.connected) dev.linked = await this.opts.isLinked(ref.id);
    if (!dev.linked) return;
    if (this.offline.has(ref.id)) return;
    if (dev.connected) {
      // A new owner (after a takeover) must hear the device is up.
      this.emit({ type: 'status', deviceId: ref.id, status: 'online', at: this.clock.now() });
      return;
    }
    const gen = ++dev.generation;
    this.emit({ type: 'status', deviceId: ref.id, status: 'connecting', at: this.clock.now() });
    const up = () => {
      if (!dev.wanted || dev.generation !== gen || this.offline.has(ref.id)) return;
      dev.connected = true;
      this.emit({ type: 'status', deviceId: ref.id, status: 'online', at: this.clock.now() });
      this.scheduleDrop(dev);
    };
    const delay = this.opts.connectDelayMs ?? 0;
    if (delay > 0) this.later(delay, up);
    else up();
  }

  async disconnect(deviceId: number): Promise<void> {
    const dev = this.devices.get(deviceId);
    if (!dev) return;
    dev.wanted = false;
    dev.generation++;
    // Whoever serves the device next starts its link again.
    dev.linking = null;
    dev.linkGen++;
    if (dev.connected) {
      dev.connected = false;
      this.emit({ type: 'status', deviceId, status: 'offline', at: this.clock.now() });
    }
  }

  private goOnline(dev: SimDevice): void {
    if (!dev.wanted || dev.connected || this.offline.has(dev.ref.id)) return;
    const gen = ++dev.generation;
    this.emit({ type: 'status', deviceId: dev.ref.id, status: 'connecting', at: this.clock.now() });
    const up = () => {
      if (!dev.wanted || dev.generation !== gen || !dev.linked) return;
      dev.connected = true;
      this.emit({ type: 'status', deviceId: dev.ref.id, status: 'online', at: this.clock.now() });
      this.scheduleDrop(dev);
    };
    const delay = this.opts.connectDelayMs ?? 0;
    if (delay > 0) this.later(delay, up);
    else up();
  }

  private get linkOptions(): Required<SimulatorLinkOptions> {
    const o = this.opts.link ?? {};
    return { qrRefreshMs: o.qrRefreshMs ?? 20_000, qrCodes: o.qrCodes ?? 5, pairingDelayMs: o.pairingDelayMs ?? 5_000, pairingCodeTtlMs: o.pairingCodeTtlMs ?? 180_000 };
  }

  private hex(bytes: number): string {
    let out = '';
    for (let i = 0; i < bytes; i++) out += Math.floor(this.random() * 256).toString(16).padStart(2, '0');
    return out;
  }

  /** Starts linking: the device drops whatever account it had and shows a QR code or a pairing code. */
  async link(ref: DeviceRef, request: LinkRequest): Promise<void> {
    const dev = this.device(ref);
    dev.wanted = true;
    const gen = ++dev.linkGen;
    dev.linking = { gen, method: request.method };
    dev.linked = false;
    if (dev.connected) {
      dev.connected = false;
      dev.generation++;
      this.emit({ type: 'status', deviceId: ref.id, status: 'offline', at: this.clock.now(), reason: 'linking' });
    }
    const o = this.linkOptions;
    if (request.method === 'qr') {
      const show = (n: number) => {
        if (dev.linking?.gen !== gen) return;
        const qr = `fleetcast-sim:${ref.id}:${this.hex(8)}`;
        this.emitLink(ref.id, { state: 'waiting_for_scan', qr, expiresAt: this.clock.now() + o.qrRefreshMs });
        this.later(o.qrRefreshMs, () => {
          if (dev.linking?.gen !== gen) return;
          if (n < o.qrCodes) return show(n + 1);
          dev.linking = null;
          this.emitLink(ref.id, { state: 'expired' });
        });
      };
      show(1);
      return;
    }
    let code = '';
    for (let i = 0; i < 8; i++) code += PAIRING_ALPHABET[Math.floor(this.random() * PAIRING_ALPHABET.length)];
    this.emitLink(ref.id, { state: 'waiting_for_code', pairingCode: `${code.slice(0, 4)}-${code.slice(4)}`, expiresAt: this.clock.now() + o.pairingCodeTtlMs });
    this.later(o.pairingDelayMs, () => {
      if (dev.linking?.gen === gen) this.completeLink(dev, request.phone);
    });
  }

  private emitLink(deviceId: number, progress: Extract<TransportEvent, { type: 'link' }>['progress']): void {
    this.emit({ type: 'link', deviceId, at: this.clock.now(), progress });
  }

  private completeLink(dev: SimDevice, phone: string): void {
    dev.linking = null;
    dev.linked = true;
    dev.ref = { ...dev.ref, phone };
    this.emitLink(dev.ref.id, { state: 'linked', phone });
    this.goOnline(dev);
  }

  /** The simulated phone scans the QR code on show: false when none is. */
  simulateScan(deviceId: number, phone: string): boolean {
    const dev = this.devices.get(deviceId);
    if (!dev || dev.linking?.method !== 'qr') return false;
    this.completeLink(dev, phone);
    return true;
  }

  /** The QR code or pairing code on show, if a link is in progress (for tests and the demo). */
  linking(deviceId: number): LinkRequest['method'] | null {
    return this.devices.get(deviceId)?.linking?.method ?? null;
  }

  async cancelLink(deviceId: number): Promise<void> {
    const dev = this.devices.get(deviceId);
    if (!dev) return;
    dev.linking = null;
    dev.linkGen++;
  }

  /** The account unlinks the device: it goes down as `logged_out` and stays down until linked again. */
  async logout(deviceId: number): Promise<void> {
    const dev = this.devices.get(deviceId);
    if (!dev) return;
    dev.linking = null;
    dev.linkGen++;
    dev.linked = false;
    dev.generation++;
    dev.connected = false;
    if (dev.wanted) this.emit({ type: 'status', deviceId, status: 'logged_out', at: this.clock.now() });
  }

  private scheduleDrop(dev: SimDevice): void {
    const d = this.opts.disconnects;
    if (!d || d.perHour <= 0) return;
    if (d.share !== undefined && !flaps(dev.ref.id, d.share)) return;
    // Exponential time to the next drop: a Poisson process of `perHour` drops per connected hour.
    const wait = Math.max(1, Math.round((-Math.log(1 - this.random()) / d.perHour) * 3_600_000));
    const gen = dev.generation;
    this.later(wait, () => {
      if (dev.generation !== gen || !dev.connected) return;
      this.dropFor(dev.ref.id, this.draw(d.downtime), 'simulated network drop');
    }, false);
  }

  /** Takes a device offline now and brings it back after `downMs` (if still wanted). */
  dropFor(deviceId: number, downMs: number, reason = 'dropped'): void {
    const dev = this.devices.get(deviceId);
    if (!dev) return;
    const gen = ++dev.generation;
    dev.connected = false;
    this.emit({ type: 'status', deviceId, status: 'offline', at: this.clock.now(), reason });
    this.later(downMs, () => {
      if (dev.generation !== gen || !dev.wanted || !dev.linked) return;
      this.offline.delete(deviceId);
      dev.connected = true;
      this.emit({ type: 'status', deviceId, status: 'online', at: this.clock.now() });
      this.scheduleDrop(dev);
    });
  }

  /** Brings a device that was configured offline online (if the engine wants it connected). */
  bringOnline(deviceId: number): void {
    this.offline.delete(deviceId);
    const dev = this.devices.get(deviceId);
    if (dev && dev.wanted && !dev.connected) void this.connect(dev.ref);
  }

  /**
   * WhatsApp restricts the device: sends fail with RESTRICTED until `until`. Announced, the engine
   * hears it at once (as from a capping notice); unannounced, only from the next send's error.
   */
  restrict(deviceId: number, until: number, reason = 'reachout time lock', announce = true): void {
    const dev = this.devices.get(deviceId);
    if (dev) dev.restrictedUntil = until;
    if (announce) this.emit({ type: 'restricted', deviceId, until, reason, at: this.clock.now() });
  }

  /** A recipient writes to a device. */
  receive(deviceId: number, from: string, text: string): void {
    this.emit({ type: 'incoming', deviceId, from, text, at: this.clock.now() });
  }

  async send(msg: OutboundMessage): Promise<SendResult> {
    const at = this.clock.now();
    const dev = this.devices.get(msg.deviceId);
    const latency = this.opts.latency ? this.draw(this.opts.latency) : 0;
    if (latency > 0) await this.clock.sleepUntil(at + latency);
    let outcome: SendOutcome;
    let result: SendResult;
    if (!dev || !dev.connected) {
      outcome = 'offline';
      result = { ok: false, code: 'DEVICE_OFFLINE', message: 'device is not connected', transient: true };
    } else if (dev.restrictedUntil > this.clock.now()) {
      outcome = 'restricted';
      result = {
        ok: false,
        code: 'RESTRICTED',
        message: 'WhatsApp restricted this device',
        transient: false,
        restrictedUntil: dev.restrictedUntil,
      };
    } else {
      const r = this.random();
      const permanent = this.opts.permanentFailureRate ?? 0;
      const transient = this.opts.transientFailureRate ?? 0;
      if (r < permanent) {
        outcome = 'permanent_error';
        result = { ok: false, code: 'REJECTED', message: 'simulated permanent failure', transient: false };
      } else if (r < permanent + transient) {
        outcome = 'transient_error';
        result = { ok: false, code: 'NETWORK', message: 'simulated transient failure', transient: true };
      } else {
        outcome = 'sent';
        result = { ok: true, transportId: `sim-${msg.id}-${msg.attempt}` };
      }
    }
    const attempt: SendAttempt = {
      at,
      device: msg.deviceId,
      to: msg.to,
      message: msg.id,
      origin: msg.origin,
      attempt: msg.attempt,
      outcome,
      ...(this.tag ? { by: this.tag } : {}),
    };
    // Written before the answer: once the engine hears "sent", the record of it is on disk.
    if (this.opts.logFile) appendFileSync(this.opts.logFile, JSON.stringify(attempt) + '\n');
    this.counts[outcome]++;
    if (this.opts.record !== false) {
      this.remember(attempt);
      this.attempts.push(attempt);
    }
    if (result.ok) this.followUp(msg);
    return result;
  }

  private remember(a: SendAttempt): void {
    if (a.outcome === 'sent') this.proven.set(a.message, a.at);
  }

  private followUp(msg: OutboundMessage): void {
    const rc = this.opts.receipts;
    if (rc) {
      const delivered = this.draw(rc.deliveredAfter);
      this.later(delivered, () => {
        this.emit({ type: 'receipt', deviceId: msg.deviceId, messageId: msg.id, status: 'delivered', at: this.clock.now() });
      });
      if (this.random() < rc.readRate) {
        this.later(delivered + this.draw(rc.readAfter), () => {
          this.emit({ type: 'receipt', deviceId: msg.deviceId, messageId: msg.id, status: 'read', at: this.clock.now() });
        });
      }
    }
    const rp = this.opts.replies;
    if (rp && this.random() < rp.rate) {
      this.later(this.draw(rp.after), () => this.receive(msg.deviceId, msg.to, rp.text ?? 'thanks!'));
    }
  }

  /** The simulator saw every attempt, so it can speak for any message: sent, or never sent. */
  async proveSends(ids: readonly number[]): Promise<Map<number, SendProof>> {
    this.catchUpLog();
    const out = new Map<number, SendProof>();
    for (const id of ids) {
      const at = this.proven.get(id);
      out.set(id, at === undefined ? { status: 'not_sent' } : { status: 'sent', at });
    }
    return out;
  }

  /** Stops every scheduled receipt, reply and reconnect. */
  close(): void {
    this.abort.abort();
  }
}

export type { DeviceStatus };

/** Whether a device is among the `share` of devices that flap: a fixed spread of its id, the same in every process. */
export function flaps(deviceId: number, share: number): boolean {
  // Knuth's multiplicative hash spreads consecutive ids evenly over [0, 1).
  return ((Math.imul(deviceId, 2654435761) >>> 0) / 2 ** 32) < share;
}
