/**
 * The link runner: one per process, beside the engine. It drives the links of the devices this
 * process serves (holds the lease of) and records what their transports report.
 *
 * Requests come from the database: a command on LINKS_CHANNEL names the device, and the runner
 * acts only if its dispatcher serves that device; a process that takes a device over later (at
 * start, after the previous holder died) finds the link still in progress in device_links and
 * starts it again, with fresh codes. The runner remembers which attempt it started per device and
 * records a transport's report only for that attempt and only while it is in progress, so a stale
 * QR code never overwrites a newer request, a cancel, or a finished link.
 *
 * It also records what a device's account did behind our back (the phone logged the device out:
 * devices.linked = false) and raises a `device.restricted` live event when WhatsApp restricts a
 * device. Reports are handled one at a time, in order.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../engine/clock.js';
import type { EngineEvents } from '../../engine/events.js';
import type { Db } from '../../store/db.js';
import {
  applyLinkChange,
  getLink,
  linksInProgress,
  loadLinkDevice,
  markLinked,
  markUnlinked,
  LINK_IN_PROGRESS,
  type LinkChange,
  type LinkRow,
} from '../../store/sql/device-links.js';
import { SimulatorTransport } from '../../transports/simulator.js';
import type { LinkProgress, Transport, TransportEvent } from '../../transports/transport.js';
import { publishLive } from '../live/channel.js';
import { decodeLinkCommand, LINKS_CHANNEL, type LinkCommand } from './link-channel.js';
import { publishLinkState } from './link-view.js';

/** What the runner needs of the engine: its events, and which devices this process serves. */
export interface ServedDevices {
  readonly events: EngineEvents;
  readonly dispatcher: { readonly deviceIds: number[] };
}

export class DeviceLinkRunner {
  /** The attempt this process runs per device. */
  private readonly attempts = new Map<number, number>();
  private queue: Promise<void> = Promise.resolve();
  private readonly off: (() => void | Promise<void>)[] = [];

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly transports: ReadonlyMap<string, Transport>,
    private readonly engine: ServedDevices,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    for (const t of new Set(this.transports.values())) this.off.push(t.onEvent((e) => this.onTransportEvent(e)));
    this.off.push(this.engine.events.on('device.acquired', ({ deviceIds }) => this.enqueue(() => this.resume(deviceIds))));
    this.off.push(
      this.engine.events.on('device.released', ({ deviceIds }) => {
        for (const id of deviceIds) this.attempts.delete(id);
      }),
    );
    this.off.push(
      await this.db.listen(LINKS_CHANNEL, (payload) => {
        const c = decodeLinkCommand(payload);
        if (c) this.enqueue(() => this.onCommand(c));
      }),
    );
  }

  async stop(): Promise<void> {
    for (const off of this.off.splice(0)) await off();
    await this.queue;
  }

  /** Resolves when every report and command received so far is handled (tests). */
  settled(): Promise<void> {
    return this.queue;
  }

  private enqueue(work: () => Promise<void>): void {
    this.queue = this.clock.track(
      this.queue.then(work).catch((error: unknown) => {
        this.engine.events.emit('error', { where: 'deviceLink', error });
        this.log.error({ err: error }, 'device link step failed');
      }),
    );
  }

  private serves(deviceId: number): boolean {
    return this.engine.dispatcher.deviceIds.includes(deviceId);
  }

  private async onCommand(c: LinkCommand): Promise<void> {
    if (!this.serves(c.device)) return;
    const device = await loadLinkDevice(this.db, c.device);
    const t = device ? this.transports.get(device.transport) : undefined;
    switch (c.action) {
      case 'link': {
        const row = await getLink(this.db, c.device);
        if (row && LINK_IN_PROGRESS.includes(row.state)) await this.run(row);
        return;
      }
      case 'cancel':
        this.attempts.delete(c.device);
        await t?.cancelLink?.(c.device);
        return;
      case 'logout':
        this.attempts.delete(c.device);
        await t?.logout?.(c.device);
        return;
      case 'refresh':
        if (device && t) await t.connect({ id: device.id, userId: device.user_id, phone: device.phone });
        return;
      case 'scan':
        this.attempts.delete(c.device);
        if (t instanceof SimulatorTransport) t.simulateScan(c.device, c.phone);
        return;
    }
  }

  /** Devices just taken over: links left in progress by their previous holder start again here. */
  private async resume(deviceIds: number[]): Promise<void> {
    for (const row of await linksInProgress(this.db, deviceIds)) await this.run(row);
  }

  private async run(row: LinkRow): Promise<void> {
    const device = await loadLinkDevice(this.db, row.device_id);
    if (!device) return;
    const t = this.transports.get(device.transport);
    if (!t?.link) {
      await this.record(row.device_id, row.attempt, { state: 'failed', code: 'LINK_NOT_SUPPORTED', message: `the ${device.transport} transport cannot link devices` });
      return;
    }
    this.attempts.set(row.device_id, row.attempt);
    const request = row.method === 'pairing_code' && row.phone ? { method: 'pairing_code' as const, phone: row.phone } : { method: 'qr' as const };
    try {
      await t.link({ id: device.id, userId: device.user_id, phone: device.phone }, request);
    } catch (err) {
      await this.record(row.device_id, row.attempt, { state: 'failed', code: 'LINK_FAILED', message: err instanceof Error ? err.message : String(err) });
    }
  }

  private onTransportEvent(e: TransportEvent): void {
    if (e.type === 'link') {
      const attempt = this.attempts.get(e.deviceId);
      if (attempt === undefined) return;
      if (e.progress.state !== 'waiting_for_scan' && e.progress.state !== 'waiting_for_code') this.attempts.delete(e.deviceId);
      this.enqueue(() => this.record(e.deviceId, attempt, e.progress));
    } else if (e.type === 'status' && e.status === 'logged_out') {
      this.enqueue(() => markUnlinked(this.db, e.deviceId, null));
    } else if (e.type === 'restricted') {
      this.enqueue(async () => {
        const d = await loadLinkDevice(this.db, e.deviceId);
        if (d) await publishLive(this.db, { tenantId: d.user_id, deviceId: e.deviceId, type: 'device.restricted', at: e.at, data: { device_id: e.deviceId, until: new Date(e.until).toISOString(), reason: e.reason } });
      });
    }
  }

  private async record(deviceId: number, attempt: number, p: LinkProgress): Promise<void> {
    const now = new Date(this.clock.now());
    const change: LinkChange =
      p.state === 'waiting_for_scan'
        ? { state: p.state, qr: p.qr, expiresAt: new Date(p.expiresAt) }
        : p.state === 'waiting_for_code'
          ? { state: p.state, pairingCode: p.pairingCode, expiresAt: new Date(p.expiresAt) }
          : p.state === 'failed'
            ? { state: p.state, errorCode: p.code, errorMessage: p.message }
            : { state: p.state };
    const row = await this.db.transaction(async (tx) => {
      const r = await applyLinkChange(tx, deviceId, attempt, change, now);
      if (r && p.state === 'linked') await markLinked(tx, deviceId, p.phone);
      return r;
    });
    if (row) await publishLinkState(this.db, row, now.getTime());
  }
}
