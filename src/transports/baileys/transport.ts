/**
 * Linked devices over WhatsApp Web (Baileys 7): one socket per device this process serves.
 *
 * Connection state machine, per device:
 *
 *   idle --connect()--> queued --(stagger slot)--> connecting --open--> open
 *   open|connecting --close--> by the close's DisconnectReason:
 *     515 restartRequired  -> connecting at once (WhatsApp asks for it right after pairing)
 *     401 loggedOut        -> logged_out: auth wiped, never reconnected (link again)
 *     440 connectionReplaced -> replaced: another client took the session; stopped and flagged,
 *                             never reconnected by itself (reconnecting would fight it in a loop)
 *     anything else        -> waiting (backoff) -> queued -> connecting ...
 *   disconnect() from any state -> stopped (the lease went elsewhere, or the process stops)
 *
 * Always a new socket after a close: a closed Baileys socket is never reused. Backoff per device is
 * exponential (base, 2x, 4x ... up to the cap) with jitter (each wait drawn in [half, all] of it),
 * so a fleet that lost its network comes back spread out; every connect, the first at start and
 * every reconnect, also takes a slot from one limiter of `connectsPerSecond`, so restoring 3,000
 * devices is a steady ramp, not a burst WhatsApp would notice.
 *
 * Linking runs the same socket with fresh credentials: its `qr` updates are the QR codes (the first
 * lives 60 s, the next 20 s each, until the socket gives up with 408 and the link expires); for a
 * pairing code the first `qr` says the socket is ready and `requestPairingCode` is asked once.
 * `isNewLogin` is the pairing; then WhatsApp closes with 515 and the device reconnects at once.
 *
 * Sending: before the first message to a number, `onWhatsApp` (cached in wa_numbers); a number not
 * on WhatsApp is NOT_ON_WHATSAPP (the engine marks it skipped). The WhatsApp message id carries the
 * outbox id (`FC1D` + 16 digits), so receipts and retry requests map back to the outbox without a
 * lookup table, and a retried attempt keeps its id (WhatsApp drops a duplicate). A send waits up to
 * `ackWaitMs` for WhatsApp to refuse it: error 463 means the account is restricted, and the send
 * comes back RESTRICTED with the end of the restriction (never retried; the engine pauses the
 * device). The trade-off: a refusal later than that is still a restriction (the device is paused)
 * but its message stays recorded as sent.
 */
import { NodeCache } from '@cacheable/node-cache';
import type { AnyMessageContent, BaileysEventMap, CacheStore, NewChatMessageCapInfo, WAMessage, WAMessageKey, WAVersion, proto } from 'baileys';
import type { Logger } from 'pino';
import type { Clock } from '../../engine/clock.js';
import type { Db } from '../../store/db.js';
import { messageBody } from '../../store/sql/transport-messages.js';
import { cachedWaNumber, rememberWaNumber } from '../../store/sql/wa-numbers.js';
import type { SecretBox } from '../../services/secrets/secret-box.js';
import type { DeviceRef, LinkProgress, LinkRequest, OutboundMessage, SendResult, Transport, TransportEvent } from '../transport.js';
import { DbAuthStore, type DeviceAuth } from './auth-state.js';
import { DEFAULT_WA_VERSION, type SocketFactory, type WaSocket } from './socket.js';

/** Baileys' DisconnectReason values the state machine tells apart. */
export const CLOSE = { loggedOut: 401, timedOut: 408, connectionReplaced: 440, restartRequired: 515 } as const;

const MESSAGE_ID = /^FC1D(\d{16})$/;

/** The WhatsApp message id of an outbox message. */
export function waMessageId(outboxId: number): string {
  return `FC1D${String(outboxId).padStart(16, '0')}`;
}

export function outboxIdOf(waId: string | null | undefined): number | null {
  const m = waId ? MESSAGE_ID.exec(waId) : null;
  return m ? Number(m[1]) : null;
}

/** `60123456789@s.whatsapp.net` or `60123456789:12@s.whatsapp.net` -> `+60123456789`. */
export function phoneOfJid(jid: string | null | undefined): string | null {
  const m = jid ? /^(\d+)(?::\d+)?@s\.whatsapp\.net$/.exec(jid) : null;
  return m ? `+${m[1]}` : null;
}

export interface BaileysOptions {
  db: Db;
  clock: Clock;
  box: SecretBox;
  socketFactory: SocketFactory;
  log: Logger;
  version?: WAVersion;
  /** Connects (restores and reconnects) started per second across all devices. */
  connectsPerSecond?: number;
  backoff?: { baseMs: number; maxMs: number };
  random?: () => number;
  /** How long a send waits for WhatsApp to refuse it (error 463). */
  ackWaitMs?: number;
  /** How long a restriction lasts when WhatsApp does not say. */
  restrictionFallbackMs?: number;
  /** How long an onWhatsApp answer is kept. */
  numberCheckTtlMs?: number;
  /** How long a pairing code is said to be valid. */
  pairingCodeTtlMs?: number;
  /** Where stored media files are (the media store's path of a storage key). */
  mediaPath?: (storageKey: string) => string;
}

type ConnState = 'idle' | 'queued' | 'connecting' | 'open' | 'waiting' | 'logged_out' | 'replaced' | 'stopped';

interface Conn {
  ref: DeviceRef;
  state: ConnState;
  sock: WaSocket | null;
  auth: DeviceAuth | null;
  /** Bumped for every new socket and every stop: events of an older socket are ignored. */
  gen: number;
  failures: number;
  linking: { request: LinkRequest; codeRequested: boolean; qrShown: number } | null;
  retries: CacheStore;
  restrictedUntil: number;
  /** Sends waiting for WhatsApp's verdict, by WhatsApp message id. */
  acks: Map<string, (refusal: string | null) => void>;
  wake: AbortController;
}

interface Restriction {
  until: number;
  reason: string;
}

export class BaileysTransport implements Transport {
  readonly kind = 'baileys';
  private readonly conns = new Map<number, Conn>();
  private readonly listeners = new Set<(e: TransportEvent) => void>();
  private readonly auth: DbAuthStore;
  private readonly random: () => number;
  private nextSlot = 0;

  constructor(private readonly o: BaileysOptions) {
    this.auth = new DbAuthStore(o.db, o.box, o.clock);
    this.random = o.random ?? Math.random;
  }

  private get clock(): Clock {
    return this.o.clock;
  }

  onEvent(listener: (event: TransportEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: TransportEvent): void {
    for (const l of this.listeners) l(e);
  }

  private status(c: Conn, status: 'connecting' | 'online' | 'offline' | 'logged_out' | 'replaced', reason?: string): void {
    this.emit({ type: 'status', deviceId: c.ref.id, status, at: this.clock.now(), ...(reason ? { reason } : {}) });
  }

  private linkEvent(c: Conn, progress: LinkProgress): void {
    this.emit({ type: 'link', deviceId: c.ref.id, at: this.clock.now(), progress });
  }

  /** The state of a device's connection (tests, health). */
  stateOf(deviceId: number): ConnState | undefined {
    return this.conns.get(deviceId)?.state;
  }

  private conn(ref: DeviceRef): Conn {
    let c = this.conns.get(ref.id);
    if (!c) {
      c = {
        ref,
        state: 'idle',
        sock: null,
        auth: null,
        gen: 0,
        failures: 0,
        linking: null,
        retries: new NodeCache({ stdTTL: 3600, checkperiod: 0, useClones: false }) as unknown as CacheStore,
        restrictedUntil: 0,
        acks: new Map(),
        wake: new AbortController(),
      };
      this.conns.set(ref.id, c);
    }
    c.ref = ref;
    return c;
  }

  async connect(ref: DeviceRef): Promise<void> {
    const c = this.conn(ref);
    if (c.state === 'open') return this.status(c, 'online');
    if (c.state === 'queued' || c.state === 'connecting' || c.state === 'waiting' || c.linking) return;
    // A device never paired has nothing to restore: it waits for a link.
    if (!(await this.auth.hasAccount(ref.id))) {
      c.state = 'idle';
      return;
    }
    this.queue(c);
  }

  /** Takes a connect slot from the limiter, then opens a socket (unless stopped meanwhile). */
  private queue(c: Conn): void {
    c.state = 'queued';
    const gen = ++c.gen;
    const now = this.clock.now();
    const slot = Math.max(now, this.nextSlot);
    this.nextSlot = slot + 1000 / (this.o.connectsPerSecond ?? 5);
    void this.clock.sleepUntil(slot, c.wake.signal).then(() => {
      if (c.gen === gen && c.state === 'queued') void this.track(this.open(c));
    });
  }

  private track(p: Promise<void>): Promise<void> {
    return this.clock.track(p).catch((err: unknown) => this.o.log.error({ err }, 'baileys device step failed'));
  }

  private async open(c: Conn): Promise<void> {
    const gen = ++c.gen;
    c.state = 'connecting';
    this.status(c, 'connecting');
    c.auth = await this.auth.open(c.ref.id);
    if (c.gen !== gen) return;
    const sock = this.o.socketFactory({
      deviceId: c.ref.id,
      auth: c.auth.state,
      getMessage: (key) => this.getMessage(c.ref.id, key),
      msgRetryCounterCache: c.retries,
      version: this.o.version ?? DEFAULT_WA_VERSION,
      logger: this.o.log.child({ device: c.ref.id }),
    });
    c.sock = sock;
    const mine = () => c.gen === gen && c.sock === sock;
    sock.ev.on('connection.update', (u) => {
      if (mine()) void this.track(this.onConnection(c, sock, u));
    });
    sock.ev.on('creds.update', (u) => {
      if (!mine() || !c.auth) return;
      Object.assign(c.auth.state.creds, u);
      void this.track(c.auth.saveCreds());
    });
    sock.ev.on('messages.update', (updates) => {
      if (mine()) void this.track(this.onMessagesUpdate(c, updates));
    });
    sock.ev.on('messages.upsert', (up) => {
      if (mine()) void this.track(this.onUpsert(c, sock, up));
    });
    sock.ev.on('message-capping.update', (info) => {
      if (mine()) this.onCapping(c, info);
    });
  }

  private async onConnection(c: Conn, sock: WaSocket, u: BaileysEventMap['connection.update']): Promise<void> {
    if (u.qr && c.linking) {
      const l = c.linking;
      if (l.request.method === 'qr') {
        l.qrShown++;
        this.linkEvent(c, { state: 'waiting_for_scan', qr: u.qr, expiresAt: this.clock.now() + (l.qrShown === 1 ? 60_000 : 20_000) });
      } else if (!l.codeRequested) {
        l.codeRequested = true;
        let code: string;
        try {
          code = await sock.requestPairingCode(l.request.phone.replace(/^\+/, ''));
        } catch (err) {
          c.linking = null;
          this.stopSocket(c);
          c.state = 'idle';
          return this.linkEvent(c, { state: 'failed', code: 'PAIRING_CODE_FAILED', message: errorText(err) });
        }
        const shown = code.length === 8 ? `${code.slice(0, 4)}-${code.slice(4)}` : code;
        this.linkEvent(c, { state: 'waiting_for_code', pairingCode: shown, expiresAt: this.clock.now() + (this.o.pairingCodeTtlMs ?? 180_000) });
      }
    }
    if (u.isNewLogin && c.linking) {
      c.linking = null;
      await c.auth?.flushed();
      this.linkEvent(c, { state: 'linked', phone: phoneOfJid(c.auth?.state.creds.me?.id) });
    }
    if (u.reachoutTimeLock?.isActive) {
      const ends = u.reachoutTimeLock.timeEnforcementEnds;
      this.restricted(c, {
        until: ends ? new Date(ends).getTime() : this.clock.now() + this.fallbackMs,
        reason: `reachout time lock (${u.reachoutTimeLock.enforcementType ?? 'unspecified'})`,
      });
    }
    if (u.connection === 'open') {
      c.state = 'open';
      c.failures = 0;
      this.status(c, 'online');
    }
    if (u.connection === 'close') await this.onClose(c, statusCodeOf(u.lastDisconnect?.error), u.lastDisconnect?.error?.message ?? 'connection closed');
  }

  private async onClose(c: Conn, code: number | undefined, message: string): Promise<void> {
    const wasLinking = c.linking;
    c.sock = null;
    c.gen++;
    for (const resolve of c.acks.values()) resolve(null);
    c.acks.clear();
    if (c.state === 'stopped' || c.state === 'logged_out') return;
    if (wasLinking) {
      // A link that ends before pairing leaves nothing worth keeping: the next one starts afresh.
      c.linking = null;
      c.state = 'idle';
      await this.auth.wipe(c.ref.id);
      if (code === CLOSE.timedOut) this.linkEvent(c, { state: 'expired' });
      else this.linkEvent(c, { state: 'failed', code: `WHATSAPP_${code ?? 'CLOSED'}`, message });
      return;
    }
    switch (code) {
      case CLOSE.restartRequired:
        return this.open(c);
      case CLOSE.loggedOut:
        c.state = 'logged_out';
        await this.auth.wipe(c.ref.id);
        return this.status(c, 'logged_out', 'logged out from the phone');
      case CLOSE.connectionReplaced:
        c.state = 'replaced';
        return this.status(c, 'replaced', 'another client opened this session');
      default: {
        c.state = 'waiting';
        c.failures++;
        const b = this.o.backoff ?? { baseMs: 2_000, maxMs: 300_000 };
        const full = Math.min(b.maxMs, b.baseMs * 2 ** (c.failures - 1));
        const wait = Math.round(full / 2 + (this.random() * full) / 2);
        this.status(c, 'offline', `closed (${code ?? 'no code'}): ${message}`);
        const gen = c.gen;
        // Not awaited: this step is tracked work, and tracked work must not wait on the clock.
        void this.clock.sleepUntil(this.clock.now() + wait, c.wake.signal).then(() => {
          if (c.gen === gen && c.state === 'waiting') this.queue(c);
        });
      }
    }
  }

  private get fallbackMs(): number {
    return this.o.restrictionFallbackMs ?? 24 * 3_600_000;
  }

  private restricted(c: Conn, r: Restriction): void {
    if (r.until <= this.clock.now()) return;
    if (r.until > c.restrictedUntil) c.restrictedUntil = r.until;
    this.emit({ type: 'restricted', deviceId: c.ref.id, until: r.until, reason: r.reason, at: this.clock.now() });
  }

  private onCapping(c: Conn, info: NewChatMessageCapInfo): void {
    if (info.capping_status !== 'CAPPED') return;
    const end = Number(info.cycle_end_timestamp);
    this.restricted(c, { until: Number.isFinite(end) && end > 0 ? end * 1000 : this.clock.now() + this.fallbackMs, reason: 'new chat message cap reached' });
  }

  private async onMessagesUpdate(c: Conn, updates: BaileysEventMap['messages.update']): Promise<void> {
    for (const u of updates) {
      if (!u.key.fromMe) continue;
      const waId = u.key.id ?? '';
      const id = outboxIdOf(waId);
      if (id === null) continue;
      const status = u.update.status;
      if (status === 0) {
        const reason = String((u.update.messageStubParameters as unknown[] | undefined)?.[0] ?? '');
        const waiter = c.acks.get(waId);
        if (waiter) waiter(reason);
        else if (reason === '463') this.restricted(c, await this.restrictionOf(c));
      } else if (status === 3) {
        c.acks.get(waId)?.(null);
        this.emit({ type: 'receipt', deviceId: c.ref.id, messageId: id, status: 'delivered', at: this.clock.now() });
      } else if (status === 4 || status === 5) {
        this.emit({ type: 'receipt', deviceId: c.ref.id, messageId: id, status: 'read', at: this.clock.now() });
      }
    }
  }

  /** When the restriction WhatsApp just applied ends: as it says, or the fallback. */
  private async restrictionOf(c: Conn): Promise<Restriction> {
    const fallback = { until: this.clock.now() + this.fallbackMs, reason: 'account restricted (463)' };
    const sock = c.sock;
    if (!sock) return fallback;
    try {
      const lock = await sock.fetchAccountReachoutTimelock();
      if (lock.isActive && lock.timeEnforcementEnds) return { until: new Date(lock.timeEnforcementEnds).getTime(), reason: `account restricted (463, ${lock.enforcementType ?? 'reachout time lock'})` };
    } catch (err) {
      this.o.log.warn({ err, device: c.ref.id }, 'could not read the restriction end; using the fallback');
    }
    return fallback;
  }

  private async onUpsert(c: Conn, sock: WaSocket, up: BaileysEventMap['messages.upsert']): Promise<void> {
    if (up.type !== 'notify') return;
    for (const m of up.messages) {
      if (m.key.fromMe) continue;
      const text = textOf(m);
      if (text === null) continue;
      const from = await this.senderPhone(sock, m.key);
      if (from) this.emit({ type: 'incoming', deviceId: c.ref.id, from, text, at: this.clock.now() });
    }
  }

  /** A one-to-one sender's phone number; LID senders are resolved through the lid mapping. */
  private async senderPhone(sock: WaSocket, key: WAMessageKey): Promise<string | null> {
    const jid = key.remoteJid ?? '';
    if (jid.endsWith('@s.whatsapp.net')) return phoneOfJid(jid);
    if (!jid.endsWith('@lid')) return null;
    const alt = phoneOfJid(key.remoteJidAlt);
    if (alt) return alt;
    return phoneOfJid(await sock.signalRepository.lidMapping.getPNForLID(jid));
  }

  private async getMessage(deviceId: number, key: WAMessageKey): Promise<proto.IMessage | undefined> {
    const id = outboxIdOf(key.id);
    if (id === null) return undefined;
    const body = await messageBody(this.o.db, deviceId, id);
    return body === null ? undefined : { conversation: body };
  }

  /** Whether the number is on WhatsApp, from the cache or (once) from WhatsApp. */
  private async checkNumber(c: Conn, sock: WaSocket, phone: string): Promise<{ jid: string } | null> {
    const now = new Date(this.clock.now());
    const cached = await cachedWaNumber(this.o.db, c.ref.userId, phone, now);
    if (cached) return cached.on_whatsapp ? { jid: cached.jid ?? `${phone.slice(1)}@s.whatsapp.net` } : null;
    const [found] = (await sock.onWhatsApp(phone.slice(1))) ?? [];
    const exists = found?.exists === true;
    const ttl = this.o.numberCheckTtlMs ?? 7 * 86_400_000;
    await rememberWaNumber(this.o.db, c.ref.userId, phone, { on_whatsapp: exists, jid: exists ? found!.jid : null }, now, new Date(now.getTime() + ttl));
    return exists ? { jid: found!.jid } : null;
  }

  private content(msg: OutboundMessage): AnyMessageContent {
    const m = msg.media;
    if (!m) return { text: msg.body };
    const url = m.storageKey && this.o.mediaPath ? this.o.mediaPath(m.storageKey) : m.url;
    if (!url) return { text: msg.body };
    const caption = msg.body || m.caption || undefined;
    if (m.kind === 'image') return { image: { url }, ...(caption ? { caption } : {}) };
    if (m.kind === 'video') return { video: { url }, ...(caption ? { caption } : {}) };
    return { document: { url }, mimetype: m.mimeType ?? 'application/octet-stream', fileName: m.fileName ?? 'document', ...(caption ? { caption } : {}) };
  }

  async send(msg: OutboundMessage): Promise<SendResult> {
    const c = this.conns.get(msg.deviceId);
    const sock = c?.sock;
    if (!c || !sock || c.state !== 'open') return { ok: false, code: 'DEVICE_OFFLINE', message: 'device is not connected', transient: true };
    if (c.restrictedUntil > this.clock.now()) {
      return { ok: false, code: 'RESTRICTED', message: 'WhatsApp restricted this device', transient: false, restrictedUntil: c.restrictedUntil };
    }
    let target: { jid: string } | null;
    try {
      target = await this.checkNumber(c, sock, msg.to);
    } catch (err) {
      return { ok: false, code: 'NETWORK', message: `could not check the number: ${errorText(err)}`, transient: true };
    }
    if (!target) return { ok: false, code: 'NOT_ON_WHATSAPP', message: `${msg.to} is not on WhatsApp`, transient: false };
    const waId = waMessageId(msg.id);
    const verdict = new Promise<string | null>((resolve) => c.acks.set(waId, resolve));
    try {
      await sock.sendMessage(target.jid, this.content(msg), { messageId: waId });
    } catch (err) {
      c.acks.delete(waId);
      return { ok: false, code: 'SEND_FAILED', message: errorText(err), transient: true };
    }
    const stop = new AbortController();
    const refusal = await Promise.race([verdict, this.clock.sleepUntil(this.clock.now() + (this.o.ackWaitMs ?? 3_000), stop.signal).then(() => null)]);
    stop.abort();
    c.acks.delete(waId);
    if (refusal === '463') {
      const r = await this.restrictionOf(c);
      this.restricted(c, r);
      return { ok: false, code: 'RESTRICTED', message: r.reason, transient: false, restrictedUntil: r.until };
    }
    if (refusal) return { ok: false, code: `WHATSAPP_${refusal}`, message: `WhatsApp refused the message (${refusal})`, transient: false };
    return { ok: true, transportId: waId };
  }

  private stopSocket(c: Conn): void {
    c.gen++;
    const sock = c.sock;
    c.sock = null;
    c.wake.abort();
    c.wake = new AbortController();
    try {
      sock?.end(undefined);
    } catch {
      // A socket that fails to close is dropped all the same.
    }
  }

  async disconnect(deviceId: number): Promise<void> {
    const c = this.conns.get(deviceId);
    if (!c) return;
    const wasOpen = c.state === 'open';
    c.linking = null;
    c.state = 'stopped';
    this.stopSocket(c);
    if (wasOpen) this.status(c, 'offline');
  }

  async link(ref: DeviceRef, request: LinkRequest): Promise<void> {
    const c = this.conn(ref);
    this.stopSocket(c);
    await this.auth.wipe(ref.id);
    c.linking = { request, codeRequested: false, qrShown: 0 };
    c.failures = 0;
    await this.open(c);
  }

  async cancelLink(deviceId: number): Promise<void> {
    const c = this.conns.get(deviceId);
    if (!c?.linking) return;
    c.linking = null;
    c.state = 'idle';
    this.stopSocket(c);
    await this.auth.wipe(deviceId);
  }

  async logout(deviceId: number): Promise<void> {
    const c = this.conns.get(deviceId);
    if (!c) {
      await this.auth.wipe(deviceId);
      return;
    }
    const sock = c.sock;
    const wasOpen = c.state === 'open';
    c.state = 'logged_out';
    c.linking = null;
    if (sock && wasOpen) {
      // Tells WhatsApp to drop this linked device, so it leaves the phone's list at once.
      await sock.logout().catch((err: unknown) => this.o.log.warn({ err, device: deviceId }, 'logout was not confirmed by WhatsApp'));
    }
    this.stopSocket(c);
    await this.auth.wipe(deviceId);
    this.status(c, 'logged_out');
  }

  /** Closes every socket (the process stops). */
  async close(): Promise<void> {
    for (const id of [...this.conns.keys()]) await this.disconnect(id);
  }
}

function statusCodeOf(err: unknown): number | undefined {
  const code = (err as { output?: { statusCode?: unknown } } | undefined)?.output?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The text of an incoming message: plain, extended, or a media caption; null for anything else. */
export function textOf(m: WAMessage): string | null {
  const msg = m.message;
  if (!msg) return null;
  const inner = msg.ephemeralMessage?.message ?? msg.viewOnceMessage?.message ?? msg;
  const text =
    inner.conversation ??
    inner.extendedTextMessage?.text ??
    inner.imageMessage?.caption ??
    inner.videoMessage?.caption ??
    inner.documentMessage?.caption ??
    inner.buttonsResponseMessage?.selectedDisplayText ??
    inner.listResponseMessage?.title ??
    null;
  return text === null || text === undefined || text === '' ? null : text;
}
