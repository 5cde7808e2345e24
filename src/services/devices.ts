/**
 * Devices (WhatsApp numbers) as their owner manages them: create, edit pacing and limits, pause
 * and resume, delete. Every change the dispatcher must see is announced on DEVICES_CHANNEL, so the
 * process that holds the device's lease reloads it at once.
 */
import type { Clock } from '../engine/clock.js';
import { DEVICES_CHANNEL, SEQUENCES_CHANNEL } from '../engine/events.js';
import { progressEnrollments } from '../engine/sequence-progress.js';
import type { Db } from '../store/db.js';
import {
  deleteDevice,
  deviceStats,
  getDevice,
  insertDevices,
  listDevices,
  updateDevice,
  type DeviceRow,
  type DeviceStats,
} from '../store/sql/devices.js';
import type { Actor } from './actor.js';
import { iso } from './accounts/views.js';
import { AppError, forbidden, notFound } from './errors.js';
import { normalisePhone } from './leads/phone.js';
import { publishLive } from './live/channel.js';
import type { DeviceLifecycle } from './devices/lifecycle.js';

export interface DeviceView {
  id: number;
  name: string;
  phone: string | null;
  transport: string;
  status: string;
  min_delay_ms: number;
  max_delay_ms: number;
  hourly_limit: number | null;
  daily_limit: number | null;
  paused_until: string | null;
  pause_reason: string | null;
  last_seen_at: string | null;
  created_at: string;
  linked: boolean;
}

export function deviceView(d: DeviceRow): DeviceView {
  return {
    id: d.id,
    name: d.name,
    phone: d.phone,
    transport: d.transport,
    status: d.status,
    min_delay_ms: d.min_delay_ms,
    max_delay_ms: d.max_delay_ms,
    hourly_limit: d.hourly_limit,
    daily_limit: d.daily_limit,
    paused_until: iso(d.paused_until),
    pause_reason: d.pause_reason,
    last_seen_at: iso(d.last_seen_at),
    created_at: d.created_at.toISOString(),
    linked: d.linked,
  };
}

export interface DeviceInput {
  name: string;
  phone?: string | null | undefined;
  transport?: string | undefined;
  min_delay_ms?: number | undefined;
  max_delay_ms?: number | undefined;
  hourly_limit?: number | null | undefined;
  daily_limit?: number | null | undefined;
  /** Simulator devices only: false creates it unlinked (it goes online once linked through the API). */
  linked?: boolean | undefined;
}

export type DevicePatch = Partial<Omit<DeviceInput, 'linked'>>;

export const DEFAULT_MIN_DELAY_MS = 5_000;
export const DEFAULT_MAX_DELAY_MS = 15_000;

export class DeviceService {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    /** Transports this deployment can drive; a device must name one of them. */
    private readonly transports: readonly string[],
    /** A deleted device leaves team members' scopes: their cached credentials must go. */
    private readonly authChanged: () => Promise<void> = async () => {},
    /** Unlinking on delete and on a change of transport (see services/devices/lifecycle.ts). */
    private readonly lifecycle: DeviceLifecycle | undefined = undefined,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  private announce(ids: number[]): Promise<void> {
    return this.db.notify(DEVICES_CHANNEL, JSON.stringify({ devices: ids }));
  }

  /** A pause or resume, told to the dashboards watching (`device.status`, as the engine's changes). */
  private async paused(actor: Actor, row: DeviceRow): Promise<void> {
    await publishLive(this.db, {
      tenantId: actor.tenantId,
      deviceId: row.id,
      type: 'device.status',
      at: this.clock.now(),
      data: { device_id: row.id, status: row.status, paused_until: iso(row.paused_until), reason: row.pause_reason, at: this.now().toISOString() },
    });
  }

  private phone(actor: Actor, raw: string | null | undefined): string | null | undefined {
    if (raw === undefined || raw === null) return raw;
    const r = normalisePhone(raw, actor.defaultCountry);
    if (!r.ok) throw new AppError('INVALID_PHONE', 422, `invalid phone number: ${r.message}`, [{ path: 'phone', code: r.code, message: r.message }]);
    return r.e164;
  }

  private checkTransport(t: string | undefined): void {
    if (t !== undefined && !this.transports.includes(t)) {
      throw new AppError('UNKNOWN_TRANSPORT', 422, `unknown transport "${t}"`, [{ path: 'transport', message: `one of: ${this.transports.join(', ')}` }]);
    }
  }

  private checkDelays(min: number, max: number): void {
    if (max < min) throw new AppError('VALIDATION_FAILED', 400, 'max_delay_ms must not be below min_delay_ms', [{ path: 'max_delay_ms', message: 'below min_delay_ms' }]);
  }

  private async own(actor: Actor, id: number): Promise<DeviceRow> {
    const d = await getDevice(this.db, actor.tenantId, id);
    if (!d || (actor.deviceScope !== null && !actor.deviceScope.includes(id))) throw notFound('device');
    return d;
  }

  async create(actor: Actor, input: DeviceInput): Promise<DeviceView> {
    if (actor.teamMember) throw forbidden('TEAM_MEMBER_FORBIDDEN', 'team members cannot add devices');
    this.checkTransport(input.transport);
    const min = input.min_delay_ms ?? DEFAULT_MIN_DELAY_MS;
    const max = input.max_delay_ms ?? Math.max(min, DEFAULT_MAX_DELAY_MS);
    this.checkDelays(min, max);
    const transport = input.transport ?? this.transports[0]!;
    // A real account is linked by scanning or by credentials, never by saying so.
    if (transport !== 'simulator' && input.linked === true) {
      throw new AppError('VALIDATION_FAILED', 422, 'only a simulator device can be created linked', [{ path: 'linked', message: 'link it through /devices/{id}/link' }]);
    }
    const [id] = await insertDevices(
      this.db,
      actor.tenantId,
      [
        {
          name: input.name,
          phone: this.phone(actor, input.phone) ?? null,
          transport,
          linked: transport === 'simulator' ? (input.linked ?? true) : false,
          minDelayMs: min,
          maxDelayMs: max,
          hourlyLimit: input.hourly_limit ?? null,
          dailyLimit: input.daily_limit ?? null,
        },
      ],
      this.now(),
    );
    await this.announce([id!]);
    return deviceView((await getDevice(this.db, actor.tenantId, id!))!);
  }

  async list(actor: Actor, page: { after?: number | undefined; limit: number; status?: string | undefined }): Promise<DeviceView[]> {
    return (await listDevices(this.db, actor.tenantId, actor.deviceScope, page)).map(deviceView);
  }

  async get(actor: Actor, id: number): Promise<DeviceView> {
    return deviceView(await this.own(actor, id));
  }

  async update(actor: Actor, id: number, patch: DevicePatch): Promise<DeviceView> {
    const d = await this.own(actor, id);
    this.checkTransport(patch.transport);
    this.checkDelays(patch.min_delay_ms ?? d.min_delay_ms, patch.max_delay_ms ?? d.max_delay_ms);
    const row = await updateDevice(this.db, actor.tenantId, id, {
      name: patch.name,
      phone: this.phone(actor, patch.phone),
      transport: patch.transport,
      minDelayMs: patch.min_delay_ms,
      maxDelayMs: patch.max_delay_ms,
      hourlyLimit: patch.hourly_limit,
      dailyLimit: patch.daily_limit,
    });
    if (!row) throw notFound('device');
    if (patch.transport !== undefined && patch.transport !== d.transport && this.lifecycle) {
      await this.lifecycle.transportChanged(id, patch.transport);
      await this.announce([id]);
      return deviceView((await getDevice(this.db, actor.tenantId, id)) ?? row);
    }
    await this.announce([id]);
    return deviceView(row);
  }

  /** Stops the device sending until `until` (or until resumed); nothing is lost, only held. */
  async pause(actor: Actor, id: number, until: Date | null, reason: string | undefined): Promise<DeviceView> {
    await this.own(actor, id);
    const now = this.now();
    if (until !== null && until.getTime() <= now.getTime()) throw new AppError('VALIDATION_FAILED', 400, 'until must be in the future', [{ path: 'until', message: 'in the past' }]);
    const row = await updateDevice(this.db, actor.tenantId, id, {
      pausedUntil: until ?? new Date('9999-12-31T00:00:00Z'),
      pauseReason: reason ?? 'paused by user',
    });
    await this.announce([id]);
    await this.paused(actor, row!);
    return deviceView(row!);
  }

  async resume(actor: Actor, id: number): Promise<DeviceView> {
    await this.own(actor, id);
    const row = await updateDevice(this.db, actor.tenantId, id, { pausedUntil: null, pauseReason: null });
    await this.announce([id]);
    await this.paused(actor, row!);
    return deviceView(row!);
  }

  /**
   * Deletes a device: its waiting messages are cancelled and its leads return to the shared pool.
   * The row stays (marked deleted) because the outbox history points at it.
   */
  async delete(actor: Actor, id: number): Promise<void> {
    if (actor.teamMember) throw forbidden('TEAM_MEMBER_FORBIDDEN', 'team members cannot delete devices');
    const now = this.now();
    if (this.lifecycle && (await getDevice(this.db, actor.tenantId, id))) await this.lifecycle.deleting(id);
    const moved = await this.db.transaction(async (tx) => {
      const enrollments = await deleteDevice(tx, actor.tenantId, id, now);
      // Sequence steps that were waiting on it are written again, through another device.
      return enrollments === null ? null : progressEnrollments(tx, enrollments, now);
    });
    if (moved === null) throw notFound('device');
    await this.announce([id]);
    if (moved.firstDue) await this.db.notify(SEQUENCES_CHANNEL, JSON.stringify({ due: moved.firstDue.getTime() }));
    await this.authChanged();
  }

  async stats(actor: Actor, id: number): Promise<DeviceStats> {
    await this.own(actor, id);
    return deviceStats(this.db, id, actor.timeZone, this.now());
  }
}
