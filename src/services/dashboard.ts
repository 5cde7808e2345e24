/**
 * The figures of the dashboard's home page, of its monitoring page and of the live stream's
 * `figures` event, always of the viewer's tenant and, for a team member, of its devices only.
 *
 * Definitions (what the numbers mean, so that they can be checked against the rows):
 * - "today" is the viewer's local day (its IANA zone), from local midnight to now;
 * - a message counts on the day of its last attempt: `sent` = attempted today and now sent,
 *   delivered or read; `delivered` and `read` are those of today's sends that got that far;
 *   `failed` = attempted today and failed; `replies` = leads whose last reply came today;
 * - a device is in one state, the first that applies: logged_out, unlinked, restricted (WhatsApp's
 *   restriction runs), paused (its owner's pause runs), online, else offline.
 */
import { DateTime } from 'luxon';
import type { Clock } from '../engine/clock.js';
import type { Db } from '../store/db.js';
import {
  activeSequenceProgress,
  countedDeviceIds,
  dashboardDevices,
  dayCountsByDevice,
  liveCampaignProgress,
  outboxDepthOf,
  recentFailures,
  repliesSince,
  sentPerMinute,
  type CampaignProgressRow,
  type DashboardDeviceRow,
  type DeviceDayCounts,
  type FailureRow,
  type OutboxDepth,
} from '../store/sql/dashboard.js';
import type { Actor } from './actor.js';

export const DEVICE_STATES = ['online', 'offline', 'restricted', 'paused', 'logged_out', 'unlinked'] as const;
export type DeviceState = (typeof DEVICE_STATES)[number];

export interface TodayFigures {
  sent: number;
  delivered: number;
  read: number;
  replies: number;
  failed: number;
}

export interface MinuteFigure {
  minute: string;
  sent: number;
}

export interface CampaignProgressView {
  id: number;
  name: string;
  status: string;
  mode: string;
  audience_size: number | null;
  started_at: string | null;
  total: number;
  waiting: number;
  sending: number;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  other: number;
}

export interface SequenceProgressView {
  id: number;
  name: string;
  trigger: string;
  active: number;
  paused: number;
  completed: number;
  exited: number;
}

export interface DashboardView {
  time_zone: string;
  day_start: string;
  generated_at: string;
  today: TodayFigures;
  devices: Record<DeviceState, number>;
  outbox: OutboxDepth;
  campaigns: CampaignProgressView[];
  sequences: SequenceProgressView[];
  throughput: MinuteFigure[];
}

export interface MonitoredDevice {
  id: number;
  name: string;
  phone: string | null;
  status: string;
  state: DeviceState;
  paused_until: string | null;
  restricted_until: string | null;
  last_seen_at: string | null;
  sent_today: number;
  failed_today: number;
  last_error: { code: string | null; message: string | null; at: string } | null;
}

export interface FailureView {
  message_id: number;
  device_id: number;
  device_name: string | null;
  lead_id: number;
  lead_name: string | null;
  phone: string;
  campaign_id: number | null;
  enrollment_id: number | null;
  code: string | null;
  reason: string | null;
  at: string;
}

export interface MonitoringView {
  generated_at: string;
  outbox: OutboxDepth;
  throughput: MinuteFigure[];
  devices: MonitoredDevice[];
  recent_errors: FailureView[];
}

/** What the live stream sends every few seconds: small enough for a phone on a slow link. */
export interface LiveFigures {
  at: string;
  today: TodayFigures;
  devices: Record<DeviceState, number>;
  outbox: OutboxDepth;
  /** Messages sent in the last full minute and in the current one so far. */
  sent_last_minute: number;
  sent_this_minute: number;
}

const THROUGHPUT_MINUTES = 60;
const RECENT_ERRORS = 50;

export function deviceState(d: Pick<DashboardDeviceRow, 'status' | 'linked' | 'paused_until' | 'restricted_until'>, now: Date): DeviceState {
  if (d.status === 'logged_out') return 'logged_out';
  if (!d.linked) return 'unlinked';
  if (d.restricted_until !== null && d.restricted_until > now) return 'restricted';
  if (d.paused_until !== null && d.paused_until > now) return 'paused';
  return d.status === 'online' ? 'online' : 'offline';
}

function countStates(devices: readonly DashboardDeviceRow[], now: Date): Record<DeviceState, number> {
  const out = Object.fromEntries(DEVICE_STATES.map((s) => [s, 0])) as Record<DeviceState, number>;
  for (const d of devices) out[deviceState(d, now)]++;
  return out;
}

function sumDay(rows: readonly DeviceDayCounts[], replies: number): TodayFigures {
  const t = { sent: 0, delivered: 0, read: 0, replies, failed: 0 };
  for (const r of rows) {
    t.sent += r.sent;
    t.delivered += r.delivered;
    t.read += r.read;
    t.failed += r.failed;
  }
  return t;
}

function iso(d: Date | null): string | null {
  return d === null ? null : d.toISOString();
}

function campaignView(c: CampaignProgressRow): CampaignProgressView {
  return { ...c, started_at: iso(c.started_at) };
}

function failureView(f: FailureRow): FailureView {
  return {
    message_id: f.id,
    device_id: f.device_id,
    device_name: f.device_name,
    lead_id: f.lead_id,
    lead_name: f.lead_name,
    phone: f.phone,
    campaign_id: f.campaign_id,
    enrollment_id: f.enrollment_id,
    code: f.error_code,
    reason: f.error,
    at: f.failed_at.toISOString(),
  };
}

export class DashboardService {
  private readonly shared = new Map<string, { at: number; figures: Promise<LiveFigures> }>();

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly figuresShareMs = 1000,
  ) {}

  /** Local midnight of the viewer's today, as an instant. */
  dayStart(actor: Pick<Actor, 'timeZone'>, now: Date): Date {
    return DateTime.fromJSDate(now, { zone: actor.timeZone }).startOf('day').toJSDate();
  }

  async home(actor: Actor): Promise<DashboardView> {
    const now = new Date(this.clock.now());
    const since = this.dayStart(actor, now);
    const counted = await countedDeviceIds(this.db, actor.tenantId, actor.deviceScope);
    const [devices, day, replies, outbox, perMinute] = await Promise.all([
      dashboardDevices(this.db, actor.tenantId, actor.deviceScope),
      dayCountsByDevice(this.db, actor.tenantId, counted, since),
      repliesSince(this.db, actor.tenantId, actor.deviceScope, since),
      outboxDepthOf(this.db, counted),
      this.perMinute(actor.tenantId, counted, now),
    ]);
    // Campaigns and sequences are the tenant's, which a team member does not manage or see.
    const [campaigns, sequences] = actor.teamMember
      ? [[], []]
      : await Promise.all([liveCampaignProgress(this.db, actor.tenantId), activeSequenceProgress(this.db, actor.tenantId)]);
    return {
      time_zone: actor.timeZone,
      day_start: since.toISOString(),
      generated_at: now.toISOString(),
      today: sumDay(day, replies),
      devices: countStates(devices, now),
      outbox,
      campaigns: campaigns.map(campaignView),
      sequences: sequences.map(({ status: _status, ...s }) => s),
      throughput: perMinute,
    };
  }

  async monitoring(actor: Actor): Promise<MonitoringView> {
    const now = new Date(this.clock.now());
    const since = this.dayStart(actor, now);
    const counted = await countedDeviceIds(this.db, actor.tenantId, actor.deviceScope);
    const [devices, day, outbox, perMinute, recent] = await Promise.all([
      dashboardDevices(this.db, actor.tenantId, actor.deviceScope),
      dayCountsByDevice(this.db, actor.tenantId, counted, since),
      outboxDepthOf(this.db, counted),
      this.perMinute(actor.tenantId, counted, now),
      recentFailures(this.db, actor.tenantId, counted, RECENT_ERRORS, RECENT_ERRORS),
    ]);
    const live = devices.map((d) => d.id);
    const lastErrors = new Map((await recentFailures(this.db, actor.tenantId, live, 1, Math.max(1, live.length))).map((f) => [f.device_id, f]));
    const dayOf = new Map(day.map((r) => [r.device_id, r]));
    return {
      generated_at: now.toISOString(),
      outbox,
      throughput: perMinute,
      devices: devices.map((d) => {
        const e = lastErrors.get(d.id);
        return {
          id: d.id,
          name: d.name,
          phone: d.phone,
          status: d.status,
          state: deviceState(d, now),
          paused_until: iso(d.paused_until),
          restricted_until: iso(d.restricted_until),
          last_seen_at: iso(d.last_seen_at),
          sent_today: dayOf.get(d.id)?.sent ?? 0,
          failed_today: dayOf.get(d.id)?.failed ?? 0,
          last_error: e ? { code: e.error_code, message: e.error, at: e.failed_at.toISOString() } : null,
        };
      }),
      recent_errors: recent.map(failureView),
    };
  }

  /**
   * The live stream's figures. Every viewer of a tenant (and device scope, and zone) asks for the
   * same numbers every few seconds: one read serves all the asks within `figuresShareMs`, so the
   * cost follows the tenants watching, not the browser tabs open.
   */
  async figures(actor: Actor): Promise<LiveFigures> {
    const key = `${actor.tenantId}|${actor.timeZone}|${actor.deviceScope === null ? '*' : actor.deviceScope.join(',')}`;
    // What is shared is the cost of a read, which passes in real time whatever the clock says.
    const now = performance.now();
    const hit = this.shared.get(key);
    if (hit && now - hit.at < this.figuresShareMs) return hit.figures;
    const figures = this.readFigures(actor);
    if (this.shared.size >= 10_000) this.shared.clear();
    this.shared.set(key, { at: now, figures });
    figures.catch(() => this.shared.delete(key));
    return figures;
  }

  private async readFigures(actor: Actor): Promise<LiveFigures> {
    const now = new Date(this.clock.now());
    const since = this.dayStart(actor, now);
    const counted = await countedDeviceIds(this.db, actor.tenantId, actor.deviceScope);
    const minute = Math.floor(now.getTime() / 60_000);
    const [devices, day, replies, outbox, perMinute] = await Promise.all([
      dashboardDevices(this.db, actor.tenantId, actor.deviceScope),
      dayCountsByDevice(this.db, actor.tenantId, counted, since),
      repliesSince(this.db, actor.tenantId, actor.deviceScope, since),
      outboxDepthOf(this.db, counted),
      sentPerMinute(this.db, actor.tenantId, counted, new Date((minute - 1) * 60_000)),
    ]);
    return {
      at: now.toISOString(),
      today: sumDay(day, replies),
      devices: countStates(devices, now),
      outbox,
      sent_last_minute: perMinute.get(minute - 1) ?? 0,
      sent_this_minute: perMinute.get(minute) ?? 0,
    };
  }

  /** The last 60 minutes, oldest first, the current minute last; minutes without sends are 0. */
  private async perMinute(tenantId: number, deviceIds: readonly number[], now: Date): Promise<MinuteFigure[]> {
    const current = Math.floor(now.getTime() / 60_000);
    const first = current - THROUGHPUT_MINUTES + 1;
    const counts = await sentPerMinute(this.db, tenantId, deviceIds, new Date(first * 60_000));
    const out: MinuteFigure[] = [];
    for (let m = first; m <= current; m++) out.push({ minute: new Date(m * 60_000).toISOString(), sent: counts.get(m) ?? 0 });
    return out;
  }
}
