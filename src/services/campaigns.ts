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
  campaignDeviceCounts,
  campaignFailureReasons,
  campaignFailures,
  type CampaignFailureRow,
  campaignMessageCounts,
  cancelCampaignMessages,
  clearPoolQueue,
  holdCampaignMessages,
  poolQueueLength,
  releaseCampaignMessages,
  reopenCampaign,
  retryFailedMessages,
  scheduleCampaignRow,
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
import { completeFinishedCampaigns, renderForLeads, type Audience, type RenderedPreview } from '../store/sql/campaigns.js';
import { campaignBodySql } from '../engine/materialise.js';
import { forecastCampaign, type Forecast } from './forecast.js';
import { liveDeviceIds } from '../store/sql/members.js';
import { ensureWindow } from '../store/sql/windows.js';
import { publishLive } from './live/channel.js';
import type { Actor } from './actor.js';
import { iso } from './accounts/views.js';
import { AppError, conflict, forbidden, notFound, type ErrorDetail } from './errors.js';
import { parseTemplate, TemplateError } from '../engine/content/template.js';

// ---- Shapes shared with sequences: send windows and media ----------------------------------

export const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type DayName = (typeof DAY_NAMES)[number];

export interface WindowInput {
  start: string;
  end: string;
  days?: DayName[] | undefined;
  time_zone?: string | undefined;
  /** Required for an end before the start (22:00-06:00): such an end is otherwise a mistake. */
  overnight?: boolean | undefined;
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
 * before the start is refused unless the window says it is overnight (22:00-06:00): typed by
 * mistake, "18:00-09:00" would otherwise send all night.
 */
export function parseWindow(actor: Actor, w: WindowInput, path = 'window'): SendWindow {
  const timeZone = w.time_zone ?? actor.timeZone;
  const details: ErrorDetail[] = [];
  if (!IANAZone.isValidZone(timeZone)) details.push({ path: `${path}.time_zone`, message: `unknown IANA time zone "${timeZone}"` });
  const startMinute = minuteOf(w.start);
  // Midnight as an end is the end of the day: the table counts end minutes from 1 to 1440.
  const endMinute = minuteOf(w.end) === 0 ? 1440 : minuteOf(w.end);
  if (startMinute === endMinute % 1440) details.push({ path: `${path}.end`, message: 'end must differ from start (use null to send at any time)' });
  else if (endMinute < startMinute && w.overnight !== true) {
    details.push({ path: `${path}.end`, message: `end ${w.end} is before start ${w.start}; set "overnight": true for a window that crosses midnight` });
  } else if (endMinute > startMinute && w.overnight === true) {
    details.push({ path: `${path}.overnight`, message: `${w.start}-${w.end} does not cross midnight` });
  }
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
  /** Fetched (and checked) when the campaign is scheduled. */
  url?: string | undefined;
  /** A file uploaded to /api/v1/media. */
  media_id?: number | undefined;
  filename?: string | undefined;
  caption?: string | undefined;
}

/**
 * How campaigns and the outbox carry media. A draft may hold only what was asked for (a URL or an
 * uploaded file's id); scheduling resolves it into a stored, re-encoded file (mediaId, mimeType,
 * bytes), which is what every message then carries to its transport.
 */
export interface StoredMedia {
  kind: MediaInput['type'];
  url?: string;
  mediaId?: number;
  storageKey?: string;
  mimeType?: string;
  bytes?: number;
  fileName?: string;
  caption?: string;
}

export function storedMedia(m: MediaInput | null | undefined): StoredMedia | null | undefined {
  if (m === undefined || m === null) return m;
  return {
    kind: m.type,
    ...(m.url !== undefined ? { url: m.url } : {}),
    ...(m.media_id !== undefined ? { mediaId: m.media_id } : {}),
    ...(m.filename !== undefined ? { fileName: m.filename } : {}),
    ...(m.caption !== undefined ? { caption: m.caption } : {}),
  };
}

export interface MediaView {
  type: MediaInput['type'];
  url?: string;
  media_id?: number;
  filename?: string;
  caption?: string;
  mime_type?: string;
  bytes?: number;
}

export function mediaView(raw: unknown): MediaView | null {
  if (raw === null || typeof raw !== 'object') return null;
  const m = raw as Partial<StoredMedia>;
  if (m.kind === undefined) return null;
  return {
    type: m.kind,
    ...(m.url !== undefined ? { url: m.url } : {}),
    ...(m.mediaId !== undefined ? { media_id: m.mediaId } : {}),
    ...(m.fileName !== undefined ? { filename: m.fileName } : {}),
    ...(m.caption !== undefined ? { caption: m.caption } : {}),
    ...(m.mimeType !== undefined ? { mime_type: m.mimeType } : {}),
    ...(m.bytes !== undefined ? { bytes: m.bytes } : {}),
  };
}

/** What resolves a campaign's media when it is scheduled (the media service). */
export interface MediaPreparer {
  prepareForCampaign(
    actor: Actor,
    input: { type: MediaInput['type']; url?: string; media_id?: number; filename?: string; caption?: string },
  ): Promise<StoredMedia>;
}

/** The body is a template: an invalid one is refused where it is written, with its position. */
export function checkTemplate(body: string, path = 'body'): void {
  try {
    parseTemplate(body);
  } catch (err) {
    if (err instanceof TemplateError) {
      throw invalid([{ path, message: err.message, index: err.index }], `invalid message template: ${err.message}`);
    }
    throw err;
  }
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
  /** null or absent: as soon as it is scheduled. */
  starts_at?: string | null | undefined;
  window?: WindowInput | null | undefined;
  delivery?: Delivery | undefined;
  mode?: CampaignMode | undefined;
  device_hourly_quota?: number | null | undefined;
  device_daily_quota?: number | null | undefined;
  daily_limit?: number | null | undefined;
  /** The campaign's own gap between two sends of a device, replacing the device's. */
  delay?: { min_seconds: number; max_seconds: number } | null | undefined;
}

export type CampaignPatch = Partial<CampaignInput>;

export interface CampaignView {
  id: number;
  name: string;
  body: string;
  media: MediaView | null;
  audience: AudienceView;
  starts_at: string | null;
  window: WindowView | null;
  delivery: Delivery;
  mode: CampaignMode;
  device_hourly_quota: number | null;
  device_daily_quota: number | null;
  daily_limit: number | null;
  delay: { min_seconds: number; max_seconds: number } | null;
  status: CampaignStatus;
  /** Leads materialised once started (null before). */
  audience_size: number | null;
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
    starts_at: iso(c.starts_at),
    window: windowView({ time_zone: c.window_time_zone, start_minute: c.window_start_minute, end_minute: c.window_end_minute, days: c.window_days }),
    delivery: c.delivery,
    mode: c.mode,
    device_hourly_quota: c.device_hourly_quota,
    device_daily_quota: c.device_daily_quota,
    daily_limit: c.daily_limit,
    delay: c.min_delay_ms === null || c.max_delay_ms === null ? null : { min_seconds: c.min_delay_ms / 1000, max_seconds: c.max_delay_ms / 1000 },
    status: c.status,
    audience_size: c.audience_size,
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

export interface StatusSummary {
  total: number;
  pending: number;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  cancelled: number;
  /** skipped (not on WhatsApp, lead given a device of its own) and unknown (a crash with no proof). */
  other: number;
}

export interface CampaignFailuresView {
  data: (Omit<CampaignFailureRow, 'failed_at'> & { failed_at: string | null })[];
  /** On the first page only: every failure of the campaign by reason. */
  reasons: { code: string | null; count: number; example: string | null }[] | null;
}

export interface CampaignStats {
  campaign_id: number;
  status: CampaignStatus;
  mode: CampaignMode;
  audience_size: number | null;
  totals: StatusSummary;
  /** Pool leads not yet handed to a device. */
  queued: number;
  devices: (StatusSummary & { device_id: number })[];
}

/**
 * Message counts as a user reads them: "sent" includes what was later delivered or read (each
 * row counts once, at its furthest state), and "pending" everything not yet finished.
 */
function summarise(c: MessageCounts): StatusSummary {
  const total = Object.values(c).reduce((a, b) => a + b, 0);
  return {
    total,
    pending: c.pending + c.held + c.sending,
    sent: c.sent + c.delivered + c.read,
    delivered: c.delivered + c.read,
    read: c.read,
    failed: c.failed,
    cancelled: c.cancelled,
    other: c.skipped + c.unknown,
  };
}

const EDITABLE: readonly CampaignStatus[] = ['draft', 'scheduled'];
const PAUSABLE: readonly CampaignStatus[] = ['scheduled', 'running'];
const CANCELLABLE: readonly CampaignStatus[] = ['draft', 'scheduled', 'running', 'paused'];
const DELETABLE: readonly CampaignStatus[] = ['draft', 'completed', 'cancelled'];

function stateError(status: CampaignStatus, message: string): AppError {
  return conflict('CAMPAIGN_STATE', message, [{ path: 'status', message: `the campaign is ${status}`, status }]);
}

/** How far in the past a start time may be (clock skew between a browser and the server). */
const START_GRACE_MS = 60_000;

export class CampaignService {
  private forecasting: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly media?: MediaPreparer,
  ) {}

  /** A scheduled campaign must start now or later: a past start would be a silent "now". */
  private checkStart(startsAt: Date | null, now: Date, path = 'starts_at'): void {
    if (startsAt !== null && startsAt.getTime() < now.getTime() - START_GRACE_MS) {
      throw invalid(
        [{ path, message: `${startsAt.toISOString()} is in the past; give a future time, or leave it out to start at once` }],
        'a scheduled campaign cannot start in the past',
      );
    }
  }

  private checkDelay(d: CampaignInput['delay']): void {
    if (d && d.max_seconds < d.min_seconds) throw invalid([{ path: 'delay.max_seconds', message: 'must be >= delay.min_seconds' }], 'invalid delay');
  }

  /**
   * Resolves media given by URL or upload into a stored file, once, when the campaign is
   * scheduled: a URL that cannot be fetched or a file that cannot be decoded fails here, with its
   * reason, instead of failing every message later.
   */
  private async prepareMedia(actor: Actor, raw: unknown): Promise<StoredMedia | null> {
    if (raw === null || raw === undefined) return null;
    const m = raw as StoredMedia;
    if (m.mediaId !== undefined && m.mimeType !== undefined) return m;
    if (!this.media) throw new AppError('MEDIA_UNAVAILABLE', 422, 'this server cannot prepare media', [{ path: 'media', message: 'no media service' }]);
    return this.media.prepareForCampaign(actor, {
      type: m.kind,
      ...(m.url !== undefined ? { url: m.url } : {}),
      ...(m.mediaId !== undefined ? { media_id: m.mediaId } : {}),
      ...(m.fileName !== undefined ? { filename: m.fileName } : {}),
      ...(m.caption !== undefined ? { caption: m.caption } : {}),
    });
  }

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
  private async checkDevices(db: Queryable, actor: Actor, ids: readonly number[] | undefined, path = 'audience.device_ids'): Promise<void> {
    if (!ids || ids.length === 0) return;
    const live = new Set(await liveDeviceIds(db, actor.tenantId, ids));
    const missing = [...new Set(ids)].filter((id) => !live.has(id));
    if (missing.length > 0) {
      throw new AppError(
        'DEVICE_NOT_FOUND',
        404,
        missing.length === 1 ? 'device not found' : 'devices not found',
        missing.map((id) => ({ path, message: `no device ${id}`, device_id: id })),
      );
    }
  }

  /** Per-device quotas pace a pool campaign across borrowed devices; an owned one has none. */
  /**
   * Quotas pace a pool campaign as its allocator hands leads out; an owned campaign's messages are
   * all queued at start and paced by their devices' own caps, so it has none.
   */
  private checkQuotas(mode: CampaignMode, hourly: number | null, daily: number | null, limit: number | null): void {
    if (mode === 'pool') return;
    const details: ErrorDetail[] = [];
    if (hourly !== null) details.push({ path: 'device_hourly_quota', message: 'only a pool campaign has per-device quotas' });
    if (daily !== null) details.push({ path: 'device_daily_quota', message: 'only a pool campaign has per-device quotas' });
    if (limit !== null) details.push({ path: 'daily_limit', message: "only a pool campaign has a daily limit (an owned campaign follows its devices' daily limits)" });
    if (details.length > 0) throw invalid(details, 'quotas and a daily limit need mode "pool"');
  }

  /** Tells why a guarded change matched no row: gone (404) or in another state (409). */
  private async refused(db: Queryable, actor: Actor, id: number, message: string): Promise<never> {
    const c = await this.own(db, actor, id);
    throw stateError(c.status, message);
  }

  private announce(id: number): Promise<void> {
    return this.db.notify(CAMPAIGNS_CHANNEL, JSON.stringify({ campaign: id }));
  }

  /** The dashboards watching the tenant hear of a change made here (the engine's own are relayed). */
  private async stateChanged(actor: Actor, view: CampaignView): Promise<CampaignView> {
    await publishLive(this.db, { tenantId: actor.tenantId, type: 'campaign.state', at: this.clock.now(), data: { campaign_id: view.id, status: view.status } });
    return view;
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
    this.checkQuotas(mode, input.device_hourly_quota ?? null, input.device_daily_quota ?? null, input.daily_limit ?? null);
    checkTemplate(input.body);
    this.checkDelay(input.delay);
    const now = this.now();
    const status = input.schedule ? 'scheduled' : 'draft';
    const startsAt = input.starts_at !== undefined && input.starts_at !== null ? new Date(input.starts_at) : status === 'scheduled' ? now : null;
    if (status === 'scheduled') this.checkStart(startsAt, now);
    // Media is fetched before the transaction: a slow download must not hold the store.
    const media = status === 'scheduled' ? await this.prepareMedia(actor, storedMedia(input.media)) : (storedMedia(input.media) ?? null);
    const id = await this.db.transaction(async (tx) => {
      await this.checkDevices(tx, actor, input.audience?.device_ids);
      const fields: CampaignFields = {
        name: input.name,
        body: input.body,
        media,
        audience: storedAudience(input.audience),
        mode,
        startsAt,
        windowId: (await windowIdFor(tx, actor, input.window)) ?? null,
        delivery: input.delivery ?? 'at_most_once',
        deviceHourlyQuota: input.device_hourly_quota ?? null,
        deviceDailyQuota: input.device_daily_quota ?? null,
        dailyLimit: input.daily_limit ?? null,
        minDelayMs: input.delay ? Math.round(input.delay.min_seconds * 1000) : null,
        maxDelayMs: input.delay ? Math.round(input.delay.max_seconds * 1000) : null,
      };
      return insertCampaignRow(tx, actor.tenantId, fields, status, now);
    });
    if (status === 'scheduled') await this.announce(id);
    return this.view(this.db, actor, id);
  }

  async update(actor: Actor, id: number, patch: CampaignPatch): Promise<CampaignView> {
    this.guard(actor);
    const now = this.now();
    // A scheduled campaign's new media is fetched and stored first, outside the transaction: a
    // download must not hold it (on PGlite the media rows are written on the same connection).
    const before = await this.own(this.db, actor, id);
    const preparedMedia =
      before.status === 'scheduled' && patch.media !== undefined ? await this.prepareMedia(actor, storedMedia(patch.media)) : undefined;
    const status = await this.db.transaction(async (tx) => {
      const cur = await this.own(tx, actor, id);
      if (!EDITABLE.includes(cur.status)) throw stateError(cur.status, `a ${cur.status} campaign cannot be edited`);
      if (patch.media !== undefined && cur.status !== before.status) {
        throw stateError(cur.status, 'the campaign changed while its media was prepared; send the change again');
      }
      this.checkQuotas(
        patch.mode ?? cur.mode,
        patch.device_hourly_quota !== undefined ? patch.device_hourly_quota : cur.device_hourly_quota,
        patch.device_daily_quota !== undefined ? patch.device_daily_quota : cur.device_daily_quota,
        patch.daily_limit !== undefined ? patch.daily_limit : cur.daily_limit,
      );
      if (patch.body !== undefined) checkTemplate(patch.body);
      this.checkDelay(patch.delay);
      if (cur.status === 'scheduled' && patch.starts_at !== undefined && patch.starts_at !== null) this.checkStart(new Date(patch.starts_at), now);
      if (patch.audience !== undefined) await this.checkDevices(tx, actor, patch.audience.device_ids);
      const ok = await updateCampaignRow(
        tx,
        actor.tenantId,
        id,
        {
          name: patch.name,
          body: patch.body,
          media: preparedMedia !== undefined ? preparedMedia : storedMedia(patch.media),
          audience: patch.audience === undefined ? undefined : storedAudience(patch.audience),
          mode: patch.mode,
          // Cleared on a scheduled campaign: it starts now, as it would have if scheduled without one.
          startsAt: patch.starts_at === undefined ? undefined : patch.starts_at === null ? (cur.status === 'scheduled' ? now : null) : new Date(patch.starts_at),
          windowId: await windowIdFor(tx, actor, patch.window),
          delivery: patch.delivery,
          deviceHourlyQuota: patch.device_hourly_quota,
          deviceDailyQuota: patch.device_daily_quota,
          dailyLimit: patch.daily_limit,
          minDelayMs: patch.delay === undefined ? undefined : patch.delay === null ? null : Math.round(patch.delay.min_seconds * 1000),
          maxDelayMs: patch.delay === undefined ? undefined : patch.delay === null ? null : Math.round(patch.delay.max_seconds * 1000),
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

  /**
   * draft -> scheduled. Checks what a start needs before the engine meets it: its devices still
   * exist, its start is not in the past, and its media can be fetched and decoded.
   */
  async schedule(actor: Actor, id: number): Promise<CampaignView> {
    this.guard(actor);
    const now = this.now();
    const draft = await this.own(this.db, actor, id);
    if (draft.status !== 'draft') throw stateError(draft.status, `only a draft can be scheduled; this campaign is ${draft.status}`);
    this.checkStart(draft.starts_at, now);
    const media = await this.prepareMedia(actor, draft.media);
    await this.db.transaction(async (tx) => {
      // A device deleted since the draft was written would silently drop its leads at start.
      await this.checkDevices(tx, actor, draft.audience?.deviceIds);
      if (media !== null && JSON.stringify(media) !== JSON.stringify(draft.media)) {
        if (!(await updateCampaignRow(tx, actor.tenantId, id, { media }, ['draft'], now))) await this.refused(tx, actor, id, 'only a draft can be scheduled');
      }
      if (!(await scheduleCampaignRow(tx, actor.tenantId, id, now))) await this.refused(tx, actor, id, 'only a draft can be scheduled');
    });
    await this.announce(id);
    return this.stateChanged(actor, await this.view(this.db, actor, id));
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
      await holdCampaignMessages(tx, id);
    });
    await this.announce(id);
    return this.stateChanged(actor, await this.view(this.db, actor, id));
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
      if (to === 'running') {
        await releaseCampaignMessages(tx, id, now);
        await completeFinishedCampaigns(tx, [id], now);
      }
      return to;
    });
    await this.announce(id);
    if (status === 'running') await this.db.notify(WORK_CHANNEL, JSON.stringify({ campaign: id }));
    return this.stateChanged(actor, await this.view(this.db, actor, id));
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
      await clearPoolQueue(tx, id);
    });
    await this.announce(id);
    return this.stateChanged(actor, await this.view(this.db, actor, id));
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
      await clearPoolQueue(tx, id);
    });
  }

  /**
   * Failed messages (of one device, or all) are sent again, each through its own device and paced
   * as any other; a completed campaign runs again until they settle.
   */
  async retryFailed(actor: Actor, id: number, deviceId: number | null): Promise<{ retried: number; campaign: CampaignView }> {
    this.guard(actor);
    const now = this.now();
    const retried = await this.db.transaction(async (tx) => {
      const cur = await this.own(tx, actor, id);
      if (cur.status !== 'running' && cur.status !== 'completed') {
        throw stateError(cur.status, `only a running or completed campaign's failed messages can be retried; this one is ${cur.status}`);
      }
      if (deviceId !== null) await this.checkDevices(tx, actor, [deviceId], 'device_id');
      const n = await retryFailedMessages(tx, actor.tenantId, id, deviceId, now);
      if (n > 0 && cur.status === 'completed') await reopenCampaign(tx, actor.tenantId, id, now);
      return n;
    });
    if (retried > 0) await this.db.notify(WORK_CHANNEL, JSON.stringify({ campaign: id }));
    return { retried, campaign: await this.view(this.db, actor, id) };
  }

  /** Counts from the outbox rows: the whole campaign, each device, and (pool) leads still queued. */
  async stats(actor: Actor, id: number): Promise<CampaignStats> {
    this.guard(actor);
    const c = await this.own(this.db, actor, id);
    const [counts, devices, queued] = await Promise.all([
      campaignMessageCounts(this.db, actor.tenantId, id),
      campaignDeviceCounts(this.db, actor.tenantId, id),
      c.mode === 'pool' ? poolQueueLength(this.db, id) : Promise.resolve(0),
    ]);
    return {
      campaign_id: id,
      status: c.status,
      mode: c.mode,
      audience_size: c.audience_size,
      totals: summarise(counts),
      queued,
      devices: devices.map((d) => ({ device_id: d.device_id, ...summarise(d.counts) })),
    };
  }

  /**
   * The campaign's failed messages, newest first (keyset pages), with the reasons they failed for
   * and how many failed for each: what the retry would send again.
   */
  async failures(actor: Actor, id: number, page: { before?: number | undefined; limit: number }): Promise<CampaignFailuresView> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    const [rows, reasons] = await Promise.all([
      campaignFailures(this.db, actor.tenantId, id, page.before, page.limit),
      page.before === undefined ? campaignFailureReasons(this.db, actor.tenantId, id) : Promise.resolve(null),
    ]);
    return {
      data: rows.map((r) => ({ ...r, failed_at: r.failed_at ? r.failed_at.toISOString() : null })),
      reasons,
    };
  }

  /**
   * The body as given leads (or the first few) will read it. For a saved campaign the spintax
   * choices are the ones its messages will get; a draft text gets the choices it would get as
   * campaign 0.
   */
  async preview(actor: Actor, input: { campaignId?: number; body?: string; leadIds?: number[] | undefined }): Promise<RenderedPreview[]> {
    this.guard(actor);
    let body = input.body;
    let seed = 0;
    if (input.campaignId !== undefined) {
      const c = await this.own(this.db, actor, input.campaignId);
      body = c.body;
      seed = c.id;
    }
    checkTemplate(body ?? '');
    return renderForLeads(this.db, actor.tenantId, campaignBodySql(body!, seed), input.leadIds?.length ? input.leadIds : null, input.leadIds?.length ? input.leadIds.length : 5);
  }

  /**
   * When the campaign would finish, from a run of the real engine on a virtual clock over a copy of
   * its devices, their load and its audience (services/forecast.ts). One at a time per process: a
   * run holds a second, in-memory database and a core for seconds.
   */
  async forecast(actor: Actor, id: number): Promise<Forecast> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    const run = this.forecasting.then(() => forecastCampaign(this.db, actor.tenantId, id, this.clock.now()));
    this.forecasting = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}
