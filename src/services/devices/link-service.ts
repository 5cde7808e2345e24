/**
 * Linking devices through the API: start a link (QR code or pairing code), read it, cancel it, log
 * a device out, and (simulator devices) scan the QR code on show.
 *
 * The API may run in another process than the one holding the device's lease, and only that one
 * has the device's transport. So every request is written to the database first (device_links,
 * devices.linked, transport_auth) and then announced on LINKS_CHANNEL; the lease holder's link
 * runner does the rest and records what its transport reports. What this service changes itself
 * (a new attempt, a cancel, a logout, a simulated scan) it also publishes as a `device.link` live
 * event, so the owner's screens follow without asking.
 */
import type { Clock } from '../../engine/clock.js';
import type { Db } from '../../store/db.js';
import { deleteAuthState } from '../../store/sql/auth-state.js';
import { deleteCloudNumber } from '../../store/sql/cloud-api.js';
import { completeScan, getLink, markLinked, markUnlinked, requestLink, resetLink, type LinkRow } from '../../store/sql/device-links.js';
import { getDevice, type DeviceRow } from '../../store/sql/devices.js';
import type { Actor } from '../actor.js';
import { deviceView, type DeviceView } from '../devices.js';
import { AppError, conflict, notFound } from '../errors.js';
import { normalisePhone } from '../leads/phone.js';
import { encodeLinkCommand, LINKS_CHANNEL, type LinkCommand } from './link-channel.js';
import type { DeviceLifecycle } from './lifecycle.js';
import { linkStateView, publishLinkState, type LinkStateView } from './link-view.js';

export type LinkInput = { method: 'qr' } | { method: 'pairing_code'; phone: string };

/** Transports whose devices are linked by their credentials, not by a phone. */
const CREDENTIAL_TRANSPORTS = new Set(['cloud_api']);

export class DeviceLinkService implements DeviceLifecycle {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  private command(c: LinkCommand): Promise<void> {
    return this.db.notify(LINKS_CHANNEL, encodeLinkCommand(c));
  }

  /** The device, if the actor may operate it (a team member: its assigned devices only). */
  private async own(actor: Actor, id: number): Promise<DeviceRow> {
    const d = await getDevice(this.db, actor.tenantId, id);
    if (!d || (actor.deviceScope !== null && !actor.deviceScope.includes(id))) throw notFound('device');
    return d;
  }

  private async publish(row: LinkRow): Promise<LinkStateView> {
    return publishLinkState(this.db, row, this.clock.now());
  }

  async link(actor: Actor, id: number, input: LinkInput): Promise<LinkStateView> {
    const d = await this.own(actor, id);
    if (CREDENTIAL_TRANSPORTS.has(d.transport)) {
      throw conflict('LINK_NOT_SUPPORTED', `a ${d.transport} device is linked by its credentials, not by a phone`);
    }
    if (d.linked) throw conflict('DEVICE_ALREADY_LINKED', 'the device is linked; log it out first to link another account');
    let phone: string | null = null;
    if (input.method === 'pairing_code') {
      // WhatsApp wants the full international number (country code and digits) for a pairing code.
      const r = normalisePhone(input.phone, actor.defaultCountry);
      if (!r.ok) throw new AppError('INVALID_PHONE', 422, `invalid phone number: ${r.message}`, [{ path: 'phone', code: r.code, message: r.message }]);
      phone = r.e164;
    }
    const row = await requestLink(this.db, actor.tenantId, id, input.method, phone, this.now());
    const view = await this.publish(row);
    await this.command({ device: id, action: 'link' });
    return view;
  }

  async get(actor: Actor, id: number): Promise<LinkStateView> {
    const d = await this.own(actor, id);
    return linkStateView(await getLink(this.db, id), id, d.created_at);
  }

  /** Abandons a link in progress (or forgets a finished one's outcome): the device is idle again. */
  async cancel(actor: Actor, id: number): Promise<void> {
    await this.own(actor, id);
    const row = await resetLink(this.db, id, this.now());
    if (row) await this.publish(row);
    await this.command({ device: id, action: 'cancel' });
  }

  /** Unlinks the device from its account and wipes its auth state; it stays `logged_out` until linked again. */
  async logout(actor: Actor, id: number): Promise<DeviceView> {
    await this.own(actor, id);
    await this.forget(id);
    return deviceView((await getDevice(this.db, actor.tenantId, id))!);
  }

  private async forget(id: number): Promise<void> {
    const row = await this.db.transaction(async (tx) => {
      await deleteAuthState(tx, id);
      await deleteCloudNumber(tx, id);
      await markUnlinked(tx, id, 'logged_out');
      return resetLink(tx, id, this.now());
    });
    if (row) await this.publish(row);
    // The lease holder tells WhatsApp (when it has a connection) and forgets what it held in memory.
    await this.command({ device: id, action: 'logout' });
  }

  /**
   * The simulated phone scans the QR code on show. The scan is recorded here, at once, so the answer
   * is the linked state; the lease holder's simulator hears of it and brings the device online.
   */
  async simulateScan(actor: Actor, id: number, phone: string | undefined): Promise<LinkStateView> {
    const d = await this.own(actor, id);
    if (d.transport !== 'simulator') throw conflict('NOT_SIMULATED', 'only a simulator device can be scanned by the API');
    let linkedPhone = fictionalPhone(id);
    if (phone !== undefined) {
      const r = normalisePhone(phone, actor.defaultCountry);
      if (!r.ok) throw new AppError('INVALID_PHONE', 422, `invalid phone number: ${r.message}`, [{ path: 'phone', code: r.code, message: r.message }]);
      linkedPhone = r.e164;
    }
    const row = await this.db.transaction(async (tx) => {
      const done = await completeScan(tx, id, this.now());
      if (done) await markLinked(tx, id, linkedPhone);
      return done;
    });
    if (!row) throw conflict('NOT_WAITING_FOR_SCAN', 'no QR code is showing for this device; start a link with method "qr"');
    const view = await this.publish(row);
    await this.command({ device: id, action: 'scan', phone: linkedPhone });
    return view;
  }

  // ---- lifecycle ----

  async deleting(deviceId: number): Promise<void> {
    await this.forget(deviceId);
  }

  async transportChanged(deviceId: number, transport: string): Promise<void> {
    await this.forget(deviceId);
    if (transport === 'simulator') await markLinked(this.db, deviceId, null);
  }
}

/**
 * The number a simulated phone links with when the scan names none: in the range Ofcom keeps for
 * drama (+44 7700 900000-900999), so it can never be a real person's.
 */
export function fictionalPhone(deviceId: number): string {
  return `+447700900${String(deviceId % 1000).padStart(3, '0')}`;
}
