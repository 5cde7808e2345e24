/**
 * Campaign forecast: when would this campaign finish, given its devices' pacing, caps and windows
 * and what they already have to send? Answered by running the real engine (starter, pool
 * allocator, dispatcher) on a virtual clock against the simulator, in a throwaway in-memory
 * database holding an equivalent world: the tenant's devices as they are now, synthetic leads
 * standing for the campaign's audience device by device (or in the pool), the messages already
 * waiting on those devices, and their recent sends (for the gap and the caps). The world is built
 * and run by the `fleetcast simulate` machinery (services/simulation).
 *
 * Assumptions, listed in `notes` where they matter: devices keep their status (one offline now
 * stays offline, and its messages never go out), sends do not fail, and nothing new is added
 * meanwhile. The work is bounded: up to `maxMessages` messages (the campaign's and the waiting
 * ones) are simulated exactly; above that each device simulates its first share only, and the rest
 * of its timeline is continued from the pace it showed, with the same pacing rules (caps, window)
 * applied message by message (simulation/extrapolate.ts), so nights and capped days count in full.
 */
import { pino } from 'pino';
import { VirtualClock } from '../engine/clock.js';
import { localDayStart, type PacingSettings, type SendWindow } from '../engine/pacing.js';
import type { Queryable } from '../store/db.js';
import { getCampaignRow, type CampaignRow } from '../store/sql/campaign-admin.js';
import type { Audience } from '../store/sql/campaigns.js';
import { listDevices, pauseDevice, type DeviceRow } from '../store/sql/devices.js';
import { leadWhere } from '../store/sql/lead-filter.js';
import { loadPacingHistory } from '../store/sql/messages.js';
import { getUser } from '../store/sql/users.js';
import { ensureWindow, loadWindows } from '../store/sql/windows.js';
import { DAY_NAMES, hhmmOf } from './campaigns.js';
import { notFound } from './errors.js';
import { insertBacklog, insertSendHistory, type BacklogGroup, type PastSend } from './simulation/backlog.js';
import { continueTimeline, pacedGap } from './simulation/extrapolate.js';
import { driveWorld } from './simulation/run.js';
import { generateScenarioLeads } from './simulation/leads.js';
import type { CampaignSpec, Scenario, WindowSpec } from './simulation/scenario.js';
import { openMemoryStore } from './simulation/store.js';
import { buildWorld, type World } from './simulation/world.js';

export interface ForecastDevice {
  device_id: number;
  name: string;
  /** The campaign's messages this device sends (for a pool campaign: is expected to send). */
  messages: number;
  /** When its last one goes out; null: not within the horizon (offline, paused past it). */
  finishes_at: string | null;
}

export interface Forecast {
  campaign_id: number;
  computed_at: string;
  /** The campaign's messages still to send. */
  messages: number;
  /** Devices that send them. */
  devices: number;
  /** When the campaign starts (or, already running, the time of the forecast). */
  starts_at: string;
  /** When its last message goes out; null: never within the horizon (e.g. no online device). */
  finishes_at: string | null;
  per_device: ForecastDevice[];
  /** True when every message was simulated; false when part of the timeline was extrapolated. */
  exact: boolean;
  /** Messages the simulation sent through the engine: the campaign's and those waiting before them. */
  simulated_messages: number;
  horizon_days: number;
  notes: string[];
}

export interface ForecastOptions {
  /** The most messages (campaign and waiting load) simulated exactly; default 20,000. */
  maxMessages?: number;
}

export const FORECAST_HORIZON_DAYS = 60;
export const DEFAULT_FORECAST_MESSAGES = 20_000;

const DAY_MS = 86_400_000;
/** Each device simulates at least this many of its messages, so its pace can be measured. */
const MIN_SAMPLE = 5;
/** Enrollment and lead ids of the synthetic rows: apart from each other and from real leads' ids. */
const BACKLOG_IDS = 1;
const CAMPAIGN_ROW_IDS = 1_000_000_000_000;
const HISTORY_IDS = 2_000_000_000_000;
const quiet = pino({ level: 'silent' });

const iso = (t: number) => new Date(t).toISOString();

// ---- what the real database says ------------------------------------------------------------

/** Owned audience leads per device, matched as the engine's materialisation matches them. */
async function audienceByDevice(db: Queryable, tenantId: number, a: Audience): Promise<Map<number, number>> {
  const params: unknown[] = [];
  const where = leadWhere(
    { tenantId, deviceIds: null },
    { niches: a.niches, statuses: a.statuses, triggers: a.triggers, deviceIds: a.deviceIds, optedOut: false, pool: false },
    params,
  );
  const res = await db.query<{ device_id: number; n: number }>(
    `select l.device_id, count(*)::int as n
       from leads l join devices d on d.id = l.device_id and d.user_id = l.user_id and d.deleted_at is null
      where ${where}
      group by l.device_id`,
    params,
  );
  return new Map(res.rows.map((r) => [r.device_id, r.n]));
}

/** Pool leads (no device) a pool campaign would queue; its device list narrows devices, not leads. */
async function poolAudience(db: Queryable, tenantId: number, a: Audience): Promise<number> {
  const params: unknown[] = [];
  const where = leadWhere(
    { tenantId, deviceIds: null },
    { niches: a.niches, statuses: a.statuses, triggers: a.triggers, optedOut: false, pool: true },
    params,
  );
  const res = await db.query<{ n: number }>(`select count(*)::int as n from leads l where ${where}`, params);
  return res.rows[0]!.n;
}

interface WaitingGroup {
  device_id: number;
  window_id: number | null;
  not_before: Date;
  n: number;
}

/** A started campaign's messages not yet sent, by device, window and due time. */
async function campaignWaiting(db: Queryable, tenantId: number, campaignId: number): Promise<WaitingGroup[]> {
  const res = await db.query<WaitingGroup>(
    `select device_id, window_id, not_before, count(*)::int as n
       from messages
      where campaign_id = $1 and user_id = $2 and status in ('pending', 'held', 'sending')
      group by device_id, window_id, not_before
      order by device_id, not_before`,
    [campaignId, tenantId],
  );
  return res.rows;
}

/** A started pool campaign's leads still queued (not handed to a device yet). */
async function queuedPoolLeads(db: Queryable, campaignId: number): Promise<number> {
  const res = await db.query<{ n: number }>(
    `select count(*)::int as n from pool_queue q
      where q.campaign_id = $1
        and not exists (select 1 from messages m where m.campaign_id = q.campaign_id and m.lead_id = q.lead_id)`,
    [campaignId],
  );
  return res.rows[0]!.n;
}

/**
 * What the devices must send besides this campaign: pending rows (and rows in flight, which will
 * settle within seconds), grouped by device, window and due time. Held rows belong to paused
 * campaigns and wait for a resume nobody has asked for yet.
 */
async function otherWaiting(db: Queryable, deviceIds: readonly number[], campaignId: number): Promise<WaitingGroup[]> {
  if (deviceIds.length === 0) return [];
  const res = await db.query<WaitingGroup>(
    `select device_id, window_id, not_before, count(*)::int as n
       from messages
      where device_id = any($1::bigint[]) and status in ('pending', 'sending') and campaign_id is distinct from $2
      group by device_id, window_id, not_before
      order by device_id, not_before`,
    [deviceIds, campaignId],
  );
  return res.rows;
}

// ---- the forecast -----------------------------------------------------------------------------

interface Plan {
  campaign: CampaignRow;
  timeZone: string;
  now: number;
  startsAt: number;
  horizon: number;
  devices: DeviceRow[];
  /** Campaign messages per device already bound to it (owned audience, or a started campaign's rows). */
  bound: Map<number, number>;
  /** Started campaigns: their waiting rows, to write as they are. */
  boundRows: WaitingGroup[] | null;
  /** Pool leads not yet handed to a device. */
  pool: number;
  load: WaitingGroup[];
  notes: string[];
}

export async function forecastCampaign(db: Queryable, tenantId: number, campaignId: number, now: number, opts: ForecastOptions = {}): Promise<Forecast> {
  const c = await getCampaignRow(db, tenantId, campaignId);
  if (!c) throw notFound('campaign');
  const maxMessages = opts.maxMessages ?? DEFAULT_FORECAST_MESSAGES;
  // A draft without a start time would go out as soon as it is scheduled: now, for a forecast.
  const startsAt = Math.max(now, c.starts_at?.getTime() ?? now);
  const base = { campaign_id: c.id, computed_at: iso(now), starts_at: iso(startsAt), horizon_days: FORECAST_HORIZON_DAYS };
  const nothing = { messages: 0, devices: 0, per_device: [], exact: true, simulated_messages: 0 };
  if (c.status === 'completed') {
    return { ...base, ...nothing, finishes_at: iso((c.completed_at ?? c.updated_at).getTime()), notes: ['the campaign has completed'] };
  }
  if (c.status === 'cancelled') return { ...base, ...nothing, finishes_at: null, notes: ['the campaign is cancelled: it sends nothing more'] };

  const notes: string[] = [];
  if (c.status === 'draft') notes.push('the campaign is a draft: forecast as if it were scheduled');
  if (c.status === 'paused') notes.push('the campaign is paused: forecast as if it were resumed now');
  const started = c.started_at !== null;
  if (started) notes.push('the campaign has started: forecasting the messages it has not sent yet');

  const user = await getUser(db, tenantId);
  const devices = await listDevices(db, tenantId, null, { limit: 1_000_000 });
  let bound = new Map<number, number>();
  let boundRows: WaitingGroup[] | null = null;
  let pool = 0;
  if (started) {
    boundRows = await campaignWaiting(db, tenantId, c.id);
    for (const g of boundRows) bound.set(g.device_id, (bound.get(g.device_id) ?? 0) + g.n);
    if (c.mode === 'pool') pool = await queuedPoolLeads(db, c.id);
  } else if (c.mode === 'owned') {
    bound = await audienceByDevice(db, tenantId, c.audience ?? {});
  } else {
    pool = await poolAudience(db, tenantId, c.audience ?? {});
  }
  const plan: Plan = {
    campaign: c,
    timeZone: user?.time_zone ?? 'UTC',
    now,
    startsAt,
    horizon: now + FORECAST_HORIZON_DAYS * DAY_MS,
    devices,
    bound,
    boundRows,
    pool,
    load: await otherWaiting(db, devices.map((d) => d.id), c.id),
    notes,
  };
  const messages = sum(bound.values()) + pool;
  if (messages === 0) {
    notes.push(started ? 'nothing is left to send: the campaign completes once its last sends are recorded' : 'the audience is empty: the campaign completes as soon as it starts');
    return { ...base, ...nothing, finishes_at: base.starts_at, notes };
  }
  describeDevices(plan);
  if (plan.pool > 0 && plan.bound.size === 0 && !relevantDevices(plan).some(online)) {
    // Nothing would ever take a lead: no simulation needed to know it.
    return { ...base, messages, devices: 0, finishes_at: null, per_device: [], exact: true, simulated_messages: 0, notes: [...notes, `not every message goes out within the ${FORECAST_HORIZON_DAYS}-day horizon`] };
  }
  const loadTotal = sum(plan.load.map((g) => g.n));
  if (loadTotal > 0) notes.push(`${loadTotal} messages of other campaigns and sequences already wait on these devices; they go first when due`);

  const exact = messages + loadTotal <= maxMessages;
  const sample = exact ? fullSample(plan) : partialSample(plan, maxMessages / (messages + loadTotal));
  const run = await simulate(db, plan, sample);
  const result = exact ? exactResult(plan, run) : extrapolated(plan, sample, run);
  if (!exact) {
    notes.push(
      `${messages + loadTotal} messages are more than the ${maxMessages} simulated exactly: each device simulated its first share and the rest of its timeline is extrapolated from its simulated pace, with its caps and the window applied`,
    );
  }
  if (result.finishes_at === null) notes.push(`not every message goes out within the ${FORECAST_HORIZON_DAYS}-day horizon`);
  return { ...base, messages, ...result, exact, simulated_messages: run.simulated, notes };
}

const sum = (xs: Iterable<number>) => {
  let n = 0;
  for (const x of xs) n += x;
  return n;
};

const online = (d: DeviceRow) => d.status === 'online';

/** The devices that may send the campaign: a pool campaign's (all, or its audience's list), or those holding its leads. */
function relevantDevices(plan: Plan): DeviceRow[] {
  const c = plan.campaign;
  if (c.mode === 'owned') return plan.devices.filter((d) => plan.bound.has(d.id));
  const allowed = c.audience?.deviceIds?.length ? new Set(c.audience.deviceIds) : null;
  return plan.devices.filter((d) => allowed === null || allowed.has(d.id));
}

/** The device facts a reader needs to make sense of a null or a late finish. */
function describeDevices(plan: Plan): void {
  const { notes, campaign: c } = plan;
  const relevant = relevantDevices(plan);
  const offline = relevant.filter((d) => !online(d));
  if (c.mode === 'pool' && !relevant.some(online)) notes.push('no online device can take the pool campaign\'s leads: nothing is sent until one comes online');
  else if (c.mode === 'owned' && offline.length === relevant.length) notes.push('no online device: every device holding audience leads is offline, so nothing is sent until one comes online');
  if (offline.length > 0) {
    const held = c.mode === 'owned' ? sum(offline.map((d) => plan.bound.get(d.id) ?? 0)) : null;
    notes.push(
      `devices offline now are assumed to stay offline: ${offline.map((d) => d.name || `#${d.id}`).slice(0, 10).join(', ')}${offline.length > 10 ? ', ...' : ''}` +
        (held !== null ? ` (${held} messages wait on them)` : ''),
    );
  }
  for (const d of relevant) {
    if (d.paused_until && d.paused_until.getTime() > plan.now) notes.push(`${d.name || `device #${d.id}`} is paused until ${d.paused_until.toISOString()}`);
  }
}

// ---- what is simulated ----------------------------------------------------------------------------

interface Sample {
  /** Campaign messages simulated per device (bound ones). */
  bound: Map<number, number>;
  pool: number;
  /** Waiting load groups simulated (a prefix of each device's, earliest first). */
  load: WaitingGroup[];
  /** Load left out per device. */
  loadLeft: Map<number, number>;
}

function fullSample(plan: Plan): Sample {
  return { bound: plan.bound, pool: plan.pool, load: plan.load, loadLeft: new Map() };
}

/** Each device's first share `f` of its campaign messages and of its load (at least a few, to measure a pace). */
function partialSample(plan: Plan, f: number): Sample {
  const share = (n: number) => Math.min(n, Math.max(MIN_SAMPLE, Math.floor(n * f)));
  const bound = new Map([...plan.bound].map(([id, n]) => [id, share(n)]));
  const usable = plan.devices.filter(online).length;
  const pool = Math.min(plan.pool, Math.max(MIN_SAMPLE * Math.max(1, usable), Math.floor(plan.pool * f)));
  const load: WaitingGroup[] = [];
  const loadLeft = new Map<number, number>();
  const byDevice = new Map<number, WaitingGroup[]>();
  for (const g of plan.load) byDevice.set(g.device_id, [...(byDevice.get(g.device_id) ?? []), g]);
  for (const [id, groups] of byDevice) {
    let room = Math.floor(sum(groups.map((g) => g.n)) * f);
    for (const g of groups) {
      const take = Math.min(room, g.n);
      if (take > 0) load.push({ ...g, n: take });
      room -= take;
      if (g.n > take) loadLeft.set(id, (loadLeft.get(id) ?? 0) + g.n - take);
    }
  }
  return { bound, pool, load, loadLeft };
}

/** A window row as the scenario format writes it. */
function windowSpecOf(c: CampaignRow): WindowSpec | undefined {
  if (c.window_time_zone === null || c.window_start_minute === null || c.window_end_minute === null || c.window_days === null) return undefined;
  const days = c.window_days;
  return {
    start: hhmmOf(c.window_start_minute),
    end: c.window_end_minute === 1440 ? '24:00' : hhmmOf(c.window_end_minute),
    timeZone: c.window_time_zone,
    days: DAY_NAMES.filter((_, i) => (days & (1 << i)) !== 0),
  };
}

function windowOf(c: CampaignRow): SendWindow | null {
  if (c.window_time_zone === null || c.window_start_minute === null || c.window_end_minute === null || c.window_days === null) return null;
  return { timeZone: c.window_time_zone, startMinute: c.window_start_minute, endMinute: c.window_end_minute, days: c.window_days };
}

const deviceKey = (id: number) => `device-${id}`;

function scenarioOf(plan: Plan): Scenario {
  const c = plan.campaign;
  const live = new Set(plan.devices.map((d) => d.id));
  const allowed = (c.audience?.deviceIds ?? []).filter((id) => live.has(id));
  const seconds = (ms: number | null) => (ms === null ? undefined : ms / 1000);
  const window = windowSpecOf(c);
  const campaign: CampaignSpec = {
    name: 'forecast',
    // Rendering does not change when a message goes out; a plain body keeps leads' data out of it.
    message: 'forecast',
    mode: c.mode,
    startAt: iso(plan.startsAt),
    ...(window ? { window } : {}),
    audience: c.mode === 'pool' && allowed.length > 0 ? { devices: allowed.map(deviceKey) } : {},
    delivery: c.delivery,
    minDelaySeconds: seconds(c.min_delay_ms),
    maxDelaySeconds: seconds(c.max_delay_ms),
    deviceHourlyQuota: c.device_hourly_quota ?? undefined,
    deviceDailyQuota: c.device_daily_quota ?? undefined,
    dailyLimit: c.daily_limit ?? undefined,
  };
  return {
    name: `forecast-campaign-${c.id}`,
    seed: 1,
    start: iso(plan.now),
    until: iso(plan.horizon),
    simulator: { transientFailureRate: 0, permanentFailureRate: 0, connectDelayMs: 0 },
    users: [
      {
        name: '',
        email: 'forecast@forecast.fleetcast.invalid',
        timeZone: plan.timeZone,
        devices: plan.devices.map((d) => ({
          key: deviceKey(d.id),
          minDelaySeconds: d.min_delay_ms / 1000,
          maxDelaySeconds: d.max_delay_ms / 1000,
          hourlyLimit: d.hourly_limit ?? undefined,
          dailyLimit: d.daily_limit ?? undefined,
          online: online(d),
        })),
        // Written by prepare(), a block per device: a generated block costs one statement.
        leads: [],
        campaigns: [campaign],
      },
    ],
    events: [],
  };
}

interface SimRun {
  /** Scratch device id of each real device. */
  scratch: Map<number, number>;
  /** Per scratch device: its campaign messages, how many were sent, the last send's end. */
  outcome: Map<number, { messages: number; sent: number; last: number | null }>;
  /** Pool leads never handed to a device. */
  queued: number;
  /** Successful send start times per scratch device: every send, and the campaign's. */
  sends: Map<number, number[]>;
  campaignSends: Map<number, number[]>;
  simulated: number;
}

async function simulate(real: Queryable, plan: Plan, sample: Sample): Promise<SimRun> {
  const scenario = scenarioOf(plan);
  const clock = new VirtualClock(plan.now);
  const store = await openMemoryStore((p) => clock.track(p));
  try {
    const world = await buildWorld(store.db, scenario, new Date(plan.now));
    const campaignId = world.campaigns[0]!.id;
    const scratch = new Map(plan.devices.map((d) => [d.id, world.devices.resolve(deviceKey(d.id))![0]!.id]));
    await prepare(real, store.db, plan, sample, world, scratch, campaignId);
    const run = await driveWorld(store.db, clock, world, scenario, {
      log: quiet,
      // Recording outcomes in batches of a virtual minute instead of a second halves the queries
      // per message and changes no send time: an owned campaign's pacing is the dispatcher's
      // memory, not the recorded rows. The pool allocator hands out leads as sends are recorded,
      // so a pool campaign keeps the real interval.
      ...(plan.campaign.mode === 'owned' ? { dispatcher: { flushIntervalMs: 60_000 } } : {}),
      // The allocator's poll covers what no in-process signal reaches (another process's device
      // changes); here there is one process and the only such change is a pause running out, so
      // each pause end wakes it instead, and a day of waiting costs no 8,640 polls.
      pool: { pollMs: DAY_MS },
      onStart: (engine) => {
        let waiting = 0;
        for (const d of plan.devices) {
          const until = d.paused_until?.getTime() ?? 0;
          if (until <= plan.now || until > plan.horizon) continue;
          waiting++;
          void clock.sleepUntil(until).then(() => {
            waiting--;
            engine.pool.poke();
          });
        }
        return () => waiting > 0;
      },
      stopWhen: (engine) => {
        let done = false;
        engine.events.on('campaign.completed', (e) => {
          if (e.campaignId === campaignId) done = true;
        });
        return () => done;
      },
    });
    const origin = `campaign:${campaignId}`;
    const sends = new Map<number, number[]>();
    const campaignSends = new Map<number, number[]>();
    const push = (m: Map<number, number[]>, k: number, t: number) => {
      const list = m.get(k);
      if (list) list.push(t);
      else m.set(k, [t]);
    };
    for (const a of run.attempts) {
      if (a.outcome !== 'sent') continue;
      push(sends, a.device, a.at);
      if (a.origin === origin) push(campaignSends, a.device, a.at);
    }
    for (const list of [...sends.values(), ...campaignSends.values()]) list.sort((a, b) => a - b);
    return {
      scratch,
      outcome: await campaignOutcome(store.db, campaignId),
      queued: await queuedPoolLeads(store.db, campaignId),
      sends,
      campaignSends,
      simulated: sum(sample.bound.values()) + sample.pool + sum(sample.load.map((g) => g.n)),
    };
  } finally {
    await store.dispose();
  }
}

/** The scratch campaign's messages per device: how many, how many went out, and when the last did. */
async function campaignOutcome(db: Queryable, campaignId: number): Promise<SimRun['outcome']> {
  const res = await db.query<{ device_id: number; messages: number; sent: number; last: Date | null }>(
    `select device_id, count(*)::int as messages,
            count(*) filter (where status in ('sent', 'delivered', 'read'))::int as sent,
            max(sent_at) as last
       from messages where campaign_id = $1 group by device_id`,
    [campaignId],
  );
  return new Map(res.rows.map((r) => [r.device_id, { messages: r.messages, sent: r.sent, last: r.last?.getTime() ?? null }]));
}

/** What the scenario format cannot say: pauses, the waiting load, a started campaign's rows, recent sends. */
async function prepare(real: Queryable, db: Queryable, plan: Plan, sample: Sample, world: World, scratch: Map<number, number>, campaignId: number): Promise<void> {
  const userId = world.userIds[0]!;
  for (const d of plan.devices) {
    if (d.paused_until && d.paused_until.getTime() > plan.now) await pauseDevice(db, scratch.get(d.id)!, d.paused_until, d.pause_reason ?? 'paused', new Date(plan.now));
  }
  const realWindows = [...new Set([...sample.load, ...(plan.boundRows ?? [])].map((g) => g.window_id).filter((w): w is number => w !== null))];
  const windows = new Map<number, number>();
  for (const [id, w] of await loadWindows(real, realWindows)) windows.set(id, await ensureWindow(db, w));
  const groups = (rows: WaitingGroup[]): BacklogGroup[] =>
    rows.map((g) => ({
      deviceId: scratch.get(g.device_id)!,
      windowId: g.window_id === null ? null : (windows.get(g.window_id) ?? null),
      notBefore: g.not_before,
      count: g.n,
    }));
  const known = (rows: WaitingGroup[]) => rows.filter((g) => scratch.has(g.device_id));
  // Stand-in leads: one per message of a new audience, on the device that would send it (or in the
  // pool). Written before the engine starts, so the campaign's audience, frozen at its start,
  // holds exactly them. A started campaign's own rows are written as they are, below.
  let block = 0;
  const standIns = async (deviceIds: number[], count: number) => {
    if (count === 0) return;
    block++;
    await generateScenarioLeads(
      db,
      userId,
      // Synthetic and never dialled: the simulator only needs them distinct.
      { count, phonePrefix: `+1${String(block).padStart(5, '0')}`, deviceIds, names: null, niches: [], status: 'prospect', attributes: {} },
      new Date(plan.now),
    );
  };
  if (plan.boundRows === null) for (const [id, n] of sample.bound) if (scratch.has(id)) await standIns([scratch.get(id)!], n);
  await standIns([], sample.pool);
  await insertBacklog(db, userId, groups(known(sample.load)), BACKLOG_IDS, new Date(plan.now));
  if (plan.boundRows !== null) {
    // The first share of each device's rows, earliest first, when sampling.
    const left = new Map(sample.bound);
    const rows: WaitingGroup[] = [];
    for (const g of known(plan.boundRows)) {
      const take = Math.min(g.n, left.get(g.device_id) ?? 0);
      if (take > 0) rows.push({ ...g, n: take });
      left.set(g.device_id, (left.get(g.device_id) ?? 0) - take);
    }
    await insertBacklog(db, userId, groups(rows), CAMPAIGN_ROW_IDS, new Date(plan.now), campaignId);
  }
  await insertSendHistory(db, userId, await recentSends(real, plan, scratch), HISTORY_IDS);
}

/**
 * Each device's sends as its pacing sees them (the last one, the last hour's under an hourly cap,
 * today's count), read with the statement the dispatcher uses when it takes a device over and
 * written back as that many sends: the ones it needs the time of at their time, the rest at the
 * start of the owner's day.
 */
async function recentSends(real: Queryable, plan: Plan, scratch: Map<number, number>): Promise<PastSend[]> {
  const dayStart = localDayStart(plan.now, plan.timeZone);
  const rows = await loadPacingHistory(
    real,
    plan.devices.map((d) => ({ id: d.id, dayStart, hourlyLimit: d.hourly_limit })),
    new Date(plan.now),
  );
  const out: PastSend[] = [];
  for (const r of rows) {
    const deviceId = scratch.get(r.device_id);
    if (deviceId === undefined) continue;
    const times = new Set(r.recent.map((t) => t.getTime()));
    if (r.last_at) times.add(r.last_at.getTime());
    const today = [...times].filter((t) => t >= dayStart).length;
    for (const t of times) out.push({ deviceId, at: new Date(t) });
    for (let i = today; i < Number(r.day_count); i++) out.push({ deviceId, at: new Date(dayStart) });
  }
  return out;
}

// ---- reading the outcome --------------------------------------------------------------------------

interface Result {
  devices: number;
  finishes_at: string | null;
  per_device: ForecastDevice[];
}

function exactResult(plan: Plan, run: SimRun): Result {
  const per_device: ForecastDevice[] = [];
  for (const d of plan.devices) {
    const o = run.outcome.get(run.scratch.get(d.id)!);
    if (!o || o.messages === 0) continue;
    per_device.push({ device_id: d.id, name: d.name, messages: o.messages, finishes_at: o.sent === o.messages && o.last !== null ? iso(o.last) : null });
  }
  return summarise(per_device, run.queued);
}

function summarise(per_device: ForecastDevice[], unallocated: number): Result {
  const done = unallocated === 0 && per_device.length > 0 && per_device.every((d) => d.finishes_at !== null);
  const last = done ? Math.max(...per_device.map((d) => Date.parse(d.finishes_at!))) : null;
  return { devices: per_device.length, finishes_at: last === null ? null : iso(last), per_device };
}

/** The pacing a device keeps for this campaign's messages: its own caps, a pool campaign's quotas on top. */
function settingsFor(plan: Plan, d: DeviceRow, poolDevices: number): PacingSettings {
  const c = plan.campaign;
  const min = (...xs: (number | null)[]) => {
    const set = xs.filter((x): x is number => x !== null);
    return set.length === 0 ? null : Math.min(...set);
  };
  const pool = c.mode === 'pool';
  return {
    minDelayMs: c.min_delay_ms ?? d.min_delay_ms,
    maxDelayMs: c.max_delay_ms ?? d.max_delay_ms,
    hourlyLimit: min(d.hourly_limit, pool ? c.device_hourly_quota : null),
    // A pool campaign's daily limit is shared; the even spread gives each device its part.
    dailyLimit: min(d.daily_limit, pool ? c.device_daily_quota : null, pool && c.daily_limit !== null ? Math.ceil(c.daily_limit / poolDevices) : null),
    timeZone: plan.timeZone,
    pausedUntil: d.paused_until ? d.paused_until.getTime() : null,
  };
}

/**
 * Each device's finish: its simulated share, then the rest of its messages (and of its load)
 * stepped through the pacing rules at the gap it kept. A pool campaign's unsimulated leads are
 * spread evenly over the devices that sent in the simulation, as the allocator spreads them.
 */
function extrapolated(plan: Plan, sample: Sample, run: SimRun): Result {
  const c = plan.campaign;
  const window = windowOf(c);
  const remaining = new Map<number, number>();
  for (const [id, n] of plan.bound) remaining.set(id, n - (sample.bound.get(id) ?? 0));
  const senders = plan.devices.filter((d) => (run.campaignSends.get(run.scratch.get(d.id)!)?.length ?? 0) > 0);
  if (c.mode === 'pool' && senders.length > 0) {
    const rest = plan.pool - sample.pool + run.queued;
    // Extra leads go to the devices that finished their share first.
    const order = [...senders].sort((a, b) => lastOf(run, a) - lastOf(run, b) || a.id - b.id);
    order.forEach((d, i) => remaining.set(d.id, (remaining.get(d.id) ?? 0) + Math.floor(rest / order.length) + (i < rest % order.length ? 1 : 0)));
  }
  const per_device: ForecastDevice[] = [];
  for (const d of plan.devices) {
    const sid = run.scratch.get(d.id)!;
    const o = run.outcome.get(sid) ?? { messages: 0, sent: 0, last: null };
    const more = remaining.get(d.id) ?? 0;
    const messages = o.messages + more;
    if (messages === 0) continue;
    let finish: number | null = null;
    if (o.sent === o.messages) {
      const own = run.campaignSends.get(sid) ?? [];
      const fallback = Math.round(((c.min_delay_ms ?? d.min_delay_ms) + (c.max_delay_ms ?? d.max_delay_ms)) / 2);
      finish =
        more === 0
          ? o.last
          : continueTimeline({
              settings: settingsFor(plan, d, Math.max(1, senders.length)),
              window,
              sends: run.sends.get(sid) ?? [],
              gapMs: pacedGap(own, fallback),
              count: more + (sample.loadLeft.get(d.id) ?? 0),
              from: plan.startsAt,
              horizon: plan.horizon,
            });
    }
    per_device.push({ device_id: d.id, name: d.name, messages, finishes_at: finish === null ? null : iso(finish) });
  }
  const unallocated = c.mode === 'pool' && senders.length === 0 ? plan.pool : 0;
  return summarise(per_device, unallocated);
}

const lastOf = (run: SimRun, d: DeviceRow) => run.campaignSends.get(run.scratch.get(d.id)!)?.at(-1) ?? 0;
