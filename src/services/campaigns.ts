/**
 * Campaigns as their owner manages them: drafts, scheduling, pause and resume, cancel, clone,
 * delete. The engine only ever looks at `scheduled` campaigns (to start them) and `running` ones
 * (to complete them); every change it must notice is announced on CAMPAIGNS_CHANNEL.
 *
 * States (each move is a guarded UPDATE, so concurrent requests cannot skip one):
 *   draft -> scheduled -> running -> completed        (the engine starts and completes)
 *   scheduled | running -> paused -> scheduled | running  (back to where it was)
 *   draft | scheduled | running | paused -> cancelled
 * Content and settings change only in draft or scheduled: a running campaign's outbox is already
 * frozen, so an edit there would silently not apply.
 */
import { IANAZone } from 'luxon';
import type { Clock } from '../engine/clock.js';
import { CAMPAIGNS_CHANNEL, WORK_CHANNEL } from '../engine/events.js';
import type { SendWindow } from '../engine/pacing.js';
import type { Db, Queryable } from '../store/db.js';
import {
  campaignMessageCounts,
  cancelCampaignMessages,
  cloneCampaignRow,
  deleteCampaignRow,
  getCampaignRow,
  insertCampaignRow,
  listCampaignRows,
  transitionCampaign,
  updateCampaignRow,
  type CampaignFields,
  type CampaignMode,
  type CampaignRow,
  type CampaignStatus,
  type Delivery,
  type MessageCounts,
} from '../store/sql/campaign-admin.js';
import { completeFinishedCampaigns, type Audience } from '../store/sql/campaigns.js';
import { liveDeviceIds } from '../store/sql/members.js';
import { ensureWindow } from '../store/sql/windows.js';
import type { Actor } from './actor.js';
import { iso } from './accounts/views.js';
import { AppError, conflict, forbidden, notFound, type ErrorDetail } from './errors.js';

// ---- Shapes shared with sequences: send windows and media ----------------------------------

export const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type DayName = (typeof DAY_NAMES)[number];

export interface WindowInput {
  start: string;
  end: string;
  days?: DayName[] | undefined;
  time_zone?: string | undefined;
}

export interface WindowView {
  start: string;
  end: string;
  days: DayName[];
  time_zone: string;
}

/** "HH:MM" to minutes after midnight ("24:00" is 1440, the end of the day). */
export function minuteOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h! * 60 + m!;
}

export function hhmmOf(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;
}

function invalid(details: ErrorDetail[], message: string): AppError {
  return new AppError('VALIDATION_FAILED', 400, message, details);
}

/**
 * The window a request describes, checked where the schema cannot: the zone must be one the
 * engine's calendar knows, and an empty window (start equal to end) would never open. An end
 * before the start is an overnight window (22:00-06:00).
 */
export function parseWindow(actor: Actor, w: WindowInput, path = 'window'): SendWindow {
  const timeZone = w.time_zone ?? actor.timeZone;
  const details: ErrorDetail[] = [];
  if (!IANAZone.isValidZone(timeZone)) details.push({ path: `${path}.time_zone`, message: `unknown IANA time zone "${timeZone}"` });
  const startMinute = minuteOf(w.start);
  // Midnight as an end is the end of the day: the table counts end minutes from 1 to 1440.
  const endMinute = minuteOf(w.end) === 0 ? 1440 : minuteOf(w.end);
  if (startMinute === endMinute % 1440) details.push({ path: `${path}.end`, message: 'end must differ from start (use null to send at any time)' });
  if (details.length > 0) throw invalid(details, 'invalid send window');
  const days = w.days === undefined ? 127 : w.days.reduce((mask, d) => mask | (1 << DAY_NAMES.indexOf(d)), 0);
  return { timeZone, startMinute, endMinute, days };
}

export function windowView(w: { time_zone: string | null; start_minute: number | null; end_minute: number | null; days: number | null }): WindowView | null {
  if (w.time_zone === null || w.start_minute === null || w.end_minute === null || w.days === null) return null;
  const days = w.days;
  return {
    start: hhmmOf(w.start_minute),
    end: hhmmOf(w.end_minute),
    days: DAY_NAMES.filter((_, i) => (days & (1 << i)) !== 0),
    time_zone: w.time_zone,
  };
}

/** The id of the send_windows row for this input; null (send at any time) stays null. */
export async function windowIdFor(db: Queryable, actor: Actor, w: WindowInput | null | undefined, path = 'window'): Promise<number | null | undefined> {
  if (w === undefined || w === null) return w;
  return ensureWindow(db, parseWindow(actor, w, path));
}

export interface MediaInput {
  type: 'image' | 'video' | 'document';
  url: string;
  filename?: string | undefined;
  caption?: string | undefined;
}

/** How the outbox carries media: the transport's MediaRef, copied verbatim into each message. */
interface StoredMedia {
  kind: MediaInput['type'];
  url: string;
  fileName?: string;
  caption?: string;
}

export function storedMedia(m: MediaInput | null | undefined): StoredMedia | null | undefined {
  if (m === undefined || m === null) return m;
  return {
    kind: m.type,
    url: m.url,
    ...(m.filename !== undefined ? { fileName: m.filename } : {}),
    ...(m.caption !== undefined ? { caption: m.caption } : {}),
  };
}

export function mediaView(raw: unknown): MediaInput | null {
  if (raw === null || typeof raw !== 'object') return null;
  const m = raw as Partial<StoredMedia>;
  if (m.kind === undefined || m.url === undefined) return null;
  return { type: m.kind, url: m.url, ...(m.fileName !== undefined ? { filename: m.fileName } : {}), ...(m.caption !== undefined ? { caption: m.caption } : {}) };
}

// ---- Campaigns ------------------------------------------------------------------------------

export interface AudienceInput {
  niches?: string[] | undefined;
  statuses?: string[] | undefined;
  device_ids?: number[] | undefined;
  triggers?: string[] | undefined;
}

export interface AudienceView {
  niches: string[] | null;
  statuses: string[] | null;
  device_ids: number[] | null;
  triggers: string[] | null;
}

export interface CampaignInput {
  name: string;
  body: string;
  media?: MediaInput | null | undefined;
  audience?: AudienceInput | undefined;
  starts_at?: string | undefined;
  window?: WindowInput | null | undefined;
  delivery?: Delivery | undefined;
  mode?: CampaignMode | undefined;
  device_hourly_quota?: number | null | undefined;
  device_daily_quota?: number | null | undefined;
  daily_limit?: number | null | undefined;
}

export type CampaignPatch = Partial<CampaignInput>;

export interface CampaignView {
  id: number;
  name: string;
  body: string;
  media: MediaInput | null;
  audience: AudienceView;
  starts_at: string;
  window: WindowView | null;
  delivery: Delivery;
  mode: CampaignMode;
  device_hourly_quota: number | null;
  device_daily_quota: number | null;
  daily_limit: number | null;
  status: CampaignStatus;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  completed_at: string | null;
  /** Outbox rows by status; present on single-campaign answers, not in lists. */
  counts?: MessageCounts;
}

export function campaignView(c: CampaignRow, counts?: MessageCounts): CampaignView {
  const a = c.audience ?? {};
  return {
    id: c.id,
    name: c.name,
    body: c.body,
    media: mediaView(c.media),
    audience: { niches: a.niches ?? null, statuses: a.statuses ?? null, device_ids: a.deviceIds ?? null, triggers: a.triggers ?? null },
    starts_at: c.starts_at.toISOString(),
    window: windowView({ time_zone: c.window_time_zone, start_minute: c.window_start_minute, end_minute: c.window_end_minute, days: c.window_days }),
    delivery: c.delivery,
    mode: c.mode,
    device_hourly_quota: c.device_hourly_quota,
    device_daily_quota: c.device_daily_quota,
    daily_limit: c.daily_limit,
    status: c.status,
    created_at: c.created_at.toISOString(),
    updated_at: c.updated_at.toISOString(),
    started_at: iso(c.started_at),
    completed_at: iso(c.completed_at),
    ...(counts ? { counts } : {}),
  };
}

/**
 * The audience as the engine reads it (camelCase, see materialiseCampaign). A missing or empty
 * list filters nothing, so it is left out rather than stored as "matches no lead".
 */
function storedAudience(a: AudienceInput | undefined): Audience {
  const out: Audience = {};
  const uniq = <T>(xs: T[] | undefined): T[] | undefined => (xs && xs.length > 0 ? [...new Set(xs)] : undefined);
  const niches = uniq(a?.niches);
  const statuses = uniq(a?.statuses);
  const deviceIds = uniq(a?.device_ids);
  const triggers = uniq(a?.triggers);
  if (niches) out.niches = niches;
  if (statuses) out.statuses = statuses;
  if (deviceIds) out.deviceIds = deviceIds.sort((x, y) => x - y);
  if (triggers) out.triggers = triggers;
  return out;
}

const EDITABLE: readonly CampaignStatus[] = ['draft', 'scheduled'];
const PAUSABLE: readonly CampaignStatus[] = ['scheduled', 'running'];
const CANCELLABLE: readonly CampaignStatus[] = ['draft', 'scheduled', 'running', 'paused'];
const DELETABLE: readonly CampaignStatus[] = ['draft', 'completed', 'cancelled'];

function stateError(status: CampaignStatus, message: string): AppError {
  return conflict('CAMPAIGN_STATE', message, [{ path: 'status', message: `the campaign is ${status}`, status }]);
}

export class CampaignService {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  /** Campaigns reach every lead of the tenant, beyond any one member's devices: owners only. */
  private guard(actor: Actor): void {
    if (actor.teamMember) throw forbidden('TEAM_MEMBER_FORBIDDEN', 'team members cannot manage campaigns');
  }

  private async own(db: Queryable, actor: Actor, id: number): Promise<CampaignRow> {
    const c = await getCampaignRow(db, actor.tenantId, id);
    if (!c) throw notFound('campaign');
    return c;
  }

  private async view(db: Queryable, actor: Actor, id: number): Promise<CampaignView> {
    const c = await this.own(db, actor, id);
    return campaignView(c, await campaignMessageCounts(db, actor.tenantId, id));
  }

  /** Another tenant's device and a missing one are answered alike: naming it must reveal nothing. */
  private async checkDevices(db: Queryable, actor: Actor, ids: readonly number[] | undefined): Promise<void> {
    if (!ids || ids.length === 0) return;
    const live = new Set(await liveDeviceIds(db, actor.tenantId, ids));
    const missing = [...new Set(ids)].filter((id) => !live.has(id));
    if (missing.length > 0) {
      throw new AppError(
        'DEVICE_NOT_FOUND',
        404,
        missing.length === 1 ? 'device not found' : 'devices not found',
        missing.map((id) => ({ path: 'audience.device_ids', message: `no device ${id}`, device_id: id })),
      );
    }
  }

  /** Per-device quotas pace a pool campaign across borrowed devices; an owned one has none. */
  private checkQuotas(mode: CampaignMode, hourly: number | null, daily: number | null): void {
    if (mode === 'pool') return;
    const details: ErrorDetail[] = [];
    if (hourly !== null) details.push({ path: 'device_hourly_quota', message: 'only a pool campaign has per-device quotas' });
    if (daily !== null) details.push({ path: 'device_daily_quota', message: 'only a pool campaign has per-device quotas' });
    if (details.length > 0) throw invalid(details, 'per-device quotas need mode "pool"');
  }

  /** Tells why a guarded change matched no row: gone (404) or in another state (409). */
  private async refused(db: Queryable, actor: Actor, id: number, message: string): Promise<never> {
    const c = await this.own(db, actor, id);
    throw stateError(c.status, message);
  }

  private announce(id: number): Promise<void> {
    return this.db.notify(CAMPAIGNS_CHANNEL, JSON.stringify({ campaign: id }));
  }

  async list(actor: Actor, page: { after?: number | undefined; limit: number; statuses?: string[] | undefined }): Promise<CampaignView[]> {
    this.guard(actor);
    return (await listCampaignRows(this.db, actor.tenantId, page)).map((c) => campaignView(c));
  }

  async get(actor: Actor, id: number): Promise<CampaignView> {
    this.guard(actor);
    return this.view(this.db, actor, id);
  }

  async create(actor: Actor, input: CampaignInput & { schedule?: boolean | undefined }): Promise<CampaignView> {
    this.guard(actor);
    const mode = input.mode ?? 'owned';
    this.checkQuotas(mode, input.device_hourly_quota ?? null, input.device_daily_quota ?? null);
    const now = this.now();
    const status = input.schedule ? 'scheduled' : 'draft';
    const id = await this.db.transaction(async (tx) => {
      await this.checkDevices(tx, actor, input.audience?.device_ids);
      const fields: CampaignFields = {
        name: input.name,
        body: input.body,
        media: storedMedia(input.media) ?? null,
        audience: storedAudience(input.audience),
        mode,
        // Without a start time the campaign goes out as soon as it is scheduled.
        startsAt: input.starts_at !== undefined ? new Date(input.starts_at) : now,
        windowId: (await windowIdFor(tx, actor, input.window)) ?? null,
        delivery: input.delivery ?? 'at_most_once',
        deviceHourlyQuota: input.device_hourly_quota ?? null,
        deviceDailyQuota: input.device_daily_quota ?? null,
        dailyLimit: input.daily_limit ?? null,
        minDelayMs: null,
        maxDelayMs: null,
      };
      return insertCampaignRow(tx, actor.tenantId, fields, status, now);
    });
    if (status === 'scheduled') await this.announce(id);
    return this.view(this.db, actor, id);
  }

  async update(actor: Actor, id: number, patch: CampaignPatch): Promise<CampaignView> {
    this.guard(actor);
    const now = this.now();
    const status = await this.db.transaction(async (tx) => {
      const cur = await this.own(tx, actor, id);
      if (!EDITABLE.includes(cur.status)) throw stateError(cur.status, `a ${cur.status} campaign cannot be edited`);
      this.checkQuotas(
        patch.mode ?? cur.mode,
        patch.device_hourly_quota !== undefined ? patch.device_hourly_quota : cur.device_hourly_quota,
        patch.device_daily_quota !== undefined ? patch.device_daily_quota : cur.device_daily_quota,
      );
      if (patch.audience !== undefined) await this.checkDevices(tx, actor, patch.audience.device_ids);
      const ok = await updateCampaignRow(
        tx,
        actor.tenantId,
        id,
        {
          name: patch.name,
          body: patch.body,
          media: storedMedia(patch.media),
          audience: patch.audience === undefined ? undefined : storedAudience(patch.audience),
          mode: patch.mode,
          startsAt: patch.starts_at === undefined ? undefined : new Date(patch.starts_at),
          windowId: await windowIdFor(tx, actor, patch.window),
          delivery: patch.delivery,
          deviceHourlyQuota: patch.device_hourly_quota,
          deviceDailyQuota: patch.device_daily_quota,
          dailyLimit: patch.daily_limit,
        },
        EDITABLE,
        now,
      );
      if (!ok) return this.refused(tx, actor, id, 'the campaign can no longer be edited');
      return cur.status;
    });
    // A new start time or window of a scheduled campaign changes when the starter must wake.
    if (status === 'scheduled') await this.announce(id);
    return this.view(this.db, actor, id);
  }

  async schedule(actor: Actor, id: number): Promise<CampaignView> {
    this.guard(actor);
    const now = this.now();
    await this.db.transaction(async (tx) => {
      const cur = await this.own(tx, actor, id);
      if (cur.status !== 'draft') throw stateError(cur.status, `only a draft can be scheduled; this campaign is ${cur.status}`);
      // A device deleted since the draft was written would silently drop its leads at start.
      await this.checkDevices(tx, actor, cur.audience?.deviceIds);
      if (!(await transitionCampaign(tx, actor.tenantId, id, ['draft'], 'scheduled', now))) {
        await this.refused(tx, actor, id, 'only a draft can be scheduled');
      }
    });
    await this.announce(id);
    return this.view(this.db, actor, id);
  }

  /**
   * Holds the campaign. A scheduled one will not start while paused. For a running one only the
   * status changes here: holding its materialised outbox rows is the dispatcher's part.
   */
  async pause(actor: Actor, id: number): Promise<CampaignView> {
    this.guard(actor);
    const now = this.now();
    await this.db.transaction(async (tx) => {
      if (!(await transitionCampaign(tx, actor.tenantId, id, PAUSABLE, 'paused', now))) {
        await this.refused(tx, actor, id, 'only a scheduled or running campaign can be paused');
      }
    });
    await this.announce(id);
    return this.view(this.db, actor, id);
  }

  /**
   * Back to running if it had started (its outbox exists), else to scheduled: a start time that
   * passed during the pause makes the starter start it at once. A running campaign whose last
   * message settled while it was paused is completed here, since no later send would close it.
   */
  async resume(actor: Actor, id: number): Promise<CampaignView> {
    this.guard(actor);
    const now = this.now();
    const status = await this.db.transaction(async (tx) => {
      const to = await transitionCampaign(tx, actor.tenantId, id, ['paused'], 'resumed', now);
      if (!to) return this.refused(tx, actor, id, 'only a paused campaign can be resumed');
      if (to === 'running') await completeFinishedCampaigns(tx, [id], now);
      return to;
    });
    await this.announce(id);
    if (status === 'running') await this.db.notify(WORK_CHANNEL, JSON.stringify({ campaign: id }));
    return this.view(this.db, actor, id);
  }

  /**
   * Cancels the campaign and, in the same transaction, its waiting messages: once this answers,
   * nothing more of it is claimed. Messages already being sent finish as they are.
   */
  async cancel(actor: Actor, id: number): Promise<CampaignView> {
    this.guard(actor);
    const now = this.now();
    await this.db.transaction(async (tx) => {
      if (!(await transitionCampaign(tx, actor.tenantId, id, CANCELLABLE, 'cancelled', now))) {
        await this.refused(tx, actor, id, 'the campaign has already finished');
      }
      await cancelCampaignMessages(tx, id, now);
    });
    await this.announce(id);
    return this.view(this.db, actor, id);
  }

  async clone(actor: Actor, id: number): Promise<CampaignView> {
    this.guard(actor);
    const copy = await cloneCampaignRow(this.db, actor.tenantId, id, this.now());
    if (copy === null) throw notFound('campaign');
    return this.view(this.db, actor, copy);
  }

  /** Only a campaign with nothing left to send goes: a live one must be cancelled first. */
  async delete(actor: Actor, id: number): Promise<void> {
    this.guard(actor);
    await this.db.transaction(async (tx) => {
      if (!(await deleteCampaignRow(tx, actor.tenantId, id, DELETABLE))) {
        await this.refused(tx, actor, id, 'only a draft, completed or cancelled campaign can be deleted; cancel it first');
      }
    });
  }
}
