/**
 * What a run leaves behind: `sends.jsonl`, the simulator's record of every send attempt in the
 * order it saw them, and `report.json`, the totals. Everything in the report is a function of the
 * scenario and its seed except the wall-clock figures, so two runs can be compared with a diff.
 */
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Queryable } from '../../store/db.js';
import { countByStatus, type MessageStatus } from '../../store/sql/messages.js';
import type { SendAttempt, SendOutcome } from '../../transports/simulator.js';
import type { RunObserver } from './observer.js';
import type { WorldRun } from './run.js';
import type { StoreKind } from './store.js';
import type { World } from './world.js';

export interface SendLine {
  at: string;
  device: number;
  deviceKey: string;
  to: string;
  message: number;
  origin: string;
  attempt: number;
  outcome: SendOutcome;
  /** The text as sent, templates rendered. */
  body: string;
  /** The media kind sent with it (image, video, document), or null. */
  media: string | null;
}

type Counts = Record<string, number>;

export interface CampaignReport {
  id: number;
  name: string;
  user: number;
  mode: 'owned' | 'pool';
  status: string;
  startedAt: string | null;
  completedAt: string | null;
  /** Leads the campaign's frozen audience holds (null before it starts). */
  audience: number | null;
  /** sent, delivered and read messages. */
  sent: number;
  /** failed, skipped (not on WhatsApp) and unknown (cut short) messages: they will not go out. */
  failed: number;
  cancelled: number;
  /** Still to go: pending, held (paused), sending, and pool leads not yet handed to a device. */
  pending: number;
  firstSend: string | null;
  lastSend: string | null;
  messages: { total: number; byStatus: Counts };
  /** The scenario's pause, resume and cancel events for this campaign, as they went. */
  events: CampaignEventReport[];
  /** Pool campaigns only (null for owned ones): how the sends were spread over the devices. */
  pool: PoolReport | null;
}

export interface CampaignEventReport {
  type: string;
  at: string;
  outcome: 'applied' | 'refused';
  /** The campaign's status after the event (applied), or the status that refused it. */
  status: string;
}

export interface PoolReport {
  /** The campaign's sent messages per device key, for every device of its user (0 included). */
  sentByDevice: Record<string, number>;
  /** The most sends of this campaign by one device in any rolling 60 minutes. */
  maxSentInRollingHour: number;
  /** Devices online and unrestricted from the campaign's first send to its last. */
  steadyDevices: string[];
  /** Most minus fewest sends among steadyDevices (null when there are none). */
  spread: number | null;
}

export interface SequenceReport {
  id: number;
  name: string;
  user: number;
  trigger: string;
  /** The name of the sequence its finishers move on to, or null. */
  next: string | null;
  /** Its status at the end: `active` or `paused`. */
  status: string;
  /** Every enrollment made: leads that carried or gained the trigger, and leads chained in. */
  enrolled: number;
  /** Enrollments made by the previous sequence of a chain handing on its finishers. */
  chainedIn: number;
  /** Enrollments still in the sequence at the end (waiting for or on a step). */
  active: number;
  completed: number;
  /** Enrollments that left early, by reason: replied, opted_out, step_failed, not_on_whatsapp, ... */
  exited: { total: number; byReason: Counts };
  /** The outbox rows of its steps by status. */
  messages: { total: number; byStatus: Counts };
  /** One entry per step of the scenario, in order. */
  steps: SequenceStepReport[];
  /** The scenario's pauseSequence and resumeSequence events for it, as they went. */
  events: CampaignEventReport[];
}

export interface SequenceStepReport {
  step: number;
  /** Messages of the step that went out (`sent`, `delivered` or `read`). */
  sent: number;
  /** Of those, delivered (`delivered` or `read`). */
  delivered: number;
  read: number;
  /** `failed`, `skipped` and `unknown`: they will not go out. */
  failed: number;
  cancelled: number;
  /** Written and still to go: `pending`, `held` (paused), `sending`. */
  pending: number;
  /** The first and last successful send of the step (the start of the attempt that sent it). */
  firstSend: string | null;
  lastSend: string | null;
}

export interface TagEventReport {
  /** The event's index in the scenario's `events`. */
  event: number;
  at: string;
  user: number;
  tag: string;
  /** Leads that gained the tag (those already carrying it did not). */
  gained: number;
  /** Enrollments it made, over every sequence the tag triggers. */
  enrolled: number;
}

export interface DeviceReport {
  id: number;
  attempts: number;
  sent: number;
  outcomes: Counts;
}

export interface SimulationReport {
  scenario: string;
  seed: number;
  store: StoreKind;
  virtual: { start: string; until: string; end: string; stoppedBy: 'idle' | 'horizon' };
  wallSeconds: { setup: number; run: number; total: number };
  messages: { total: number; byStatus: Counts };
  attempts: { total: number; byOutcome: Counts };
  campaigns: CampaignReport[];
  sequences: SequenceReport[];
  tagEvents: TagEventReport[];
  devices: Record<string, DeviceReport>;
  /** Leads that replied (to a campaign message or in a scenario event). */
  repliedLeads: number;
  firstSend: string | null;
  lastSend: string | null;
  throughput: {
    /** Sent messages per virtual hour between the first and the last send (null with fewer than two instants). */
    sentPerVirtualHour: number | null;
    /** Send attempts per second of wall-clock time spent running the engine. */
    attemptsPerWallSecond: number | null;
  };
  /** Errors the engine reported; a healthy run has none. */
  engineErrors: number;
}

/** The database's side of the report, read once the engine has stopped. */
export interface StoreFacts {
  byStatus: Counts;
  campaigns: CampaignFacts[];
  sequences: SequenceFacts[];
  repliedLeads: number;
}

export interface SequenceFacts {
  id: number;
  user_id: number;
  name: string;
  trigger: string;
  status: string;
  next: string | null;
  /** Enrollments by status, by source and (exited ones) by reason. */
  enrollments: { byStatus: Counts; bySource: Counts; exitReasons: Counts };
  /** Per step position: its messages by status and its first and last successful send. */
  steps: Map<number, { byStatus: Counts; firstSend: Date | null; lastSend: Date | null }>;
}

export interface CampaignFacts {
  id: number;
  name: string;
  user_id: number;
  mode: 'owned' | 'pool';
  status: string;
  started_at: Date | null;
  completed_at: Date | null;
  audience_size: number | null;
  /** Pool leads still queued without a message (never handed to a device). */
  queued: number;
  byStatus: Counts;
}

const STATUS_ORDER: readonly MessageStatus[] = ['pending', 'held', 'sending', 'sent', 'delivered', 'read', 'failed', 'cancelled', 'skipped', 'unknown'];
const OUTCOME_ORDER: readonly SendOutcome[] = ['sent', 'transient_error', 'permanent_error', 'restricted', 'offline'];

/** Counts in a fixed key order, so reports of equal runs are byte-equal. */
function ordered(counts: Counts, order: readonly string[]): Counts {
  const keys = Object.keys(counts).sort((a, b) => rank(order, a) - rank(order, b) || a.localeCompare(b));
  return Object.fromEntries(keys.map((k) => [k, counts[k]!]));
}

const rank = (order: readonly string[], key: string) => (order.includes(key) ? order.indexOf(key) : order.length);

const sum = (counts: Counts) => Object.values(counts).reduce((a, b) => a + b, 0);

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

async function campaignRows(db: Queryable): Promise<Omit<CampaignFacts, 'byStatus'>[]> {
  // A queued pool lead counts until a message exists for it, however the allocator keeps its queue.
  const res = await db.query<Omit<CampaignFacts, 'byStatus'>>(
    `select c.id, c.name, c.user_id, c.mode, c.status, c.started_at, c.completed_at, c.audience_size,
            (select count(*)::int from pool_queue q
              where q.campaign_id = c.id
                and not exists (select 1 from messages m where m.campaign_id = c.id and m.lead_id = q.lead_id)) as queued
       from campaigns c order by c.id`,
  );
  return res.rows;
}

async function campaignStatusCounts(db: Queryable): Promise<Map<number, Counts>> {
  const res = await db.query<{ campaign_id: number; status: string; n: number }>(
    `select campaign_id, status, count(*)::int as n from messages where campaign_id is not null group by campaign_id, status`,
  );
  const out = new Map<number, Counts>();
  for (const r of res.rows) out.set(r.campaign_id, { ...out.get(r.campaign_id), [r.status]: r.n });
  return out;
}

async function repliedLeads(db: Queryable): Promise<number> {
  const res = await db.query<{ n: number }>('select count(*)::int as n from leads where last_reply_at is not null');
  return res.rows[0]!.n;
}

/**
 * Each sequence with its enrollments and its steps' messages counted, in three grouped statements
 * whatever the number of leads: a run of a hundred thousand leads over weeks of steps reads a few
 * hundred rows here, never its messages.
 */
async function sequenceFacts(db: Queryable): Promise<SequenceFacts[]> {
  const seqs = await db.query<Omit<SequenceFacts, 'enrollments' | 'steps'>>(
    `select s.id, s.user_id, s.name, s.trigger, s.status, n.name as next
       from sequences s left join sequences n on n.id = s.next_sequence_id
      order by s.id`,
  );
  if (seqs.rows.length === 0) return [];
  const enrollments = await db.query<{ sequence_id: number; status: string; source: string; exit_reason: string | null; n: number }>(
    `select sequence_id, status, source, exit_reason, count(*)::int as n
       from enrollments group by sequence_id, status, source, exit_reason`,
  );
  const steps = await db.query<{ sequence_id: number; step: number; status: string; n: number; first_send: Date | null; last_send: Date | null }>(
    `select e.sequence_id, m.step, m.status, count(*)::int as n,
            min(m.last_attempt_at) filter (where m.status in ('sent', 'delivered', 'read')) as first_send,
            max(m.last_attempt_at) filter (where m.status in ('sent', 'delivered', 'read')) as last_send
       from messages m join enrollments e on e.id = m.enrollment_id
      where m.enrollment_id is not null
      group by e.sequence_id, m.step, m.status`,
  );
  const out = new Map<number, SequenceFacts>(
    seqs.rows.map((q) => [q.id, { ...q, enrollments: { byStatus: {}, bySource: {}, exitReasons: {} }, steps: new Map() }]),
  );
  const add = (counts: Counts, key: string, n: number) => (counts[key] = (counts[key] ?? 0) + n);
  for (const r of enrollments.rows) {
    const e = out.get(r.sequence_id)?.enrollments;
    if (!e) continue;
    add(e.byStatus, r.status, r.n);
    add(e.bySource, r.source, r.n);
    if (r.status === 'exited') add(e.exitReasons, r.exit_reason ?? 'unknown', r.n);
  }
  for (const r of steps.rows) {
    const q = out.get(r.sequence_id);
    if (!q) continue;
    const st = q.steps.get(r.step) ?? { byStatus: {}, firstSend: null, lastSend: null };
    add(st.byStatus, r.status, r.n);
    if (r.first_send !== null && (st.firstSend === null || r.first_send < st.firstSend)) st.firstSend = r.first_send;
    if (r.last_send !== null && (st.lastSend === null || r.last_send > st.lastSend)) st.lastSend = r.last_send;
    q.steps.set(r.step, st);
  }
  return [...out.values()];
}

export async function readStoreFacts(db: Queryable): Promise<StoreFacts> {
  const byStatus = ordered(await countByStatus(db), STATUS_ORDER);
  const counts = await campaignStatusCounts(db);
  const campaigns = (await campaignRows(db)).map((c) => ({ ...c, byStatus: ordered(counts.get(c.id) ?? {}, STATUS_ORDER) }));
  return { byStatus, campaigns, sequences: await sequenceFacts(db), repliedLeads: await repliedLeads(db) };
}

/** The lines of sends.jsonl, made one at a time as they are written (a long drip run has millions). */
export function* sendLines(attempts: readonly SendAttempt[], world: World, observer: RunObserver): Generator<SendLine> {
  const keys = new Map(world.devices.devices.map((d) => [d.id, d.key]));
  for (const a of attempts) {
    const content = observer.contents.get(a.message);
    yield {
      at: new Date(a.at).toISOString(),
      device: a.device,
      deviceKey: keys.get(a.device) ?? String(a.device),
      to: a.to,
      message: a.message,
      origin: a.origin,
      attempt: a.attempt,
      outcome: a.outcome,
      body: content?.body ?? '',
      media: content?.media ?? null,
    };
  }
}

export interface ReportInput {
  scenario: string;
  seed: number;
  store: StoreKind;
  start: number;
  until: number;
  end: number;
  stoppedBy: 'idle' | 'horizon';
  wallSeconds: { setup: number; run: number; total: number };
  run: WorldRun;
  world: World;
  facts: StoreFacts;
}

export function buildReport(r: ReportInput): SimulationReport {
  const attempts = r.run.attempts;
  const byOutcome: Counts = {};
  const devices: Record<string, DeviceReport> = {};
  for (const d of r.world.devices.devices) devices[d.key] = { id: d.id, attempts: 0, sent: 0, outcomes: {} };
  const byId = new Map(r.world.devices.devices.map((d) => [d.id, devices[d.key]!]));
  let first: number | null = null;
  let last: number | null = null;
  for (const a of attempts) {
    byOutcome[a.outcome] = (byOutcome[a.outcome] ?? 0) + 1;
    const dev = byId.get(a.device);
    if (dev) {
      dev.attempts++;
      dev.outcomes[a.outcome] = (dev.outcomes[a.outcome] ?? 0) + 1;
      if (a.outcome === 'sent') dev.sent++;
    }
    // Attempts are recorded as they finish, so with latency their start times are not in order.
    if (a.outcome === 'sent') {
      first = first === null ? a.at : Math.min(first, a.at);
      last = last === null ? a.at : Math.max(last, a.at);
    }
  }
  for (const dev of Object.values(devices)) dev.outcomes = ordered(dev.outcomes, OUTCOME_ORDER);
  const sent = byOutcome.sent ?? 0;
  const activeHours = first !== null && last !== null ? (last - first) / 3_600_000 : 0;
  return {
    scenario: r.scenario,
    seed: r.seed,
    store: r.store,
    virtual: {
      start: new Date(r.start).toISOString(),
      until: new Date(r.until).toISOString(),
      end: new Date(r.end).toISOString(),
      stoppedBy: r.stoppedBy,
    },
    wallSeconds: r.wallSeconds,
    messages: { total: sum(r.facts.byStatus), byStatus: r.facts.byStatus },
    attempts: { total: attempts.length, byOutcome: ordered(byOutcome, OUTCOME_ORDER) },
    campaigns: campaignReports(r),
    sequences: sequenceReports(r),
    tagEvents: r.run.tagEvents
      .slice()
      .sort((a, b) => a.event - b.event)
      .map((t) => ({ event: t.event, at: t.at, user: t.user, tag: t.tag, gained: t.gained, enrolled: t.enrolled })),
    devices,
    repliedLeads: r.facts.repliedLeads,
    firstSend: first === null ? null : new Date(first).toISOString(),
    lastSend: last === null ? null : new Date(last).toISOString(),
    throughput: {
      sentPerVirtualHour: activeHours > 0 ? round(sent / activeHours, 2) : null,
      attemptsPerWallSecond: r.wallSeconds.run > 0 ? round(attempts.length / r.wallSeconds.run, 2) : null,
    },
    engineErrors: r.run.engineErrors,
  };
}

const SENT: readonly string[] = ['sent', 'delivered', 'read'];
const FAILED: readonly string[] = ['failed', 'skipped', 'unknown'];
const WAITING: readonly string[] = ['pending', 'held', 'sending'];

function campaignReports(r: ReportInput): CampaignReport[] {
  // Successful sends per campaign and device, in time order.
  const sends = new Map<string, Map<number, number[]>>();
  for (const a of r.run.attempts) {
    // Sequence messages have an origin per enrollment and step: they are counted in SQL instead.
    if (a.outcome !== 'sent' || !a.origin.startsWith('campaign:')) continue;
    let perDevice = sends.get(a.origin);
    if (!perDevice) sends.set(a.origin, (perDevice = new Map()));
    const times = perDevice.get(a.device);
    if (times) times.push(a.at);
    else perDevice.set(a.device, [a.at]);
  }
  return r.facts.campaigns.map((c): CampaignReport => {
    const count = (statuses: readonly string[]) => statuses.reduce((n, s) => n + (c.byStatus[s] ?? 0), 0);
    const perDevice = sends.get(`campaign:${c.id}`) ?? new Map<number, number[]>();
    for (const times of perDevice.values()) times.sort((a, b) => a - b);
    let first: number | null = null;
    let last: number | null = null;
    for (const times of perDevice.values()) {
      first = first === null ? times[0]! : Math.min(first, times[0]!);
      last = last === null ? times.at(-1)! : Math.max(last, times.at(-1)!);
    }
    const userIndex = r.world.userIds.indexOf(c.user_id);
    return {
      id: c.id,
      name: c.name,
      user: userIndex,
      mode: c.mode,
      status: c.status,
      startedAt: iso(c.started_at),
      completedAt: iso(c.completed_at),
      audience: c.audience_size,
      sent: count(SENT),
      failed: count(FAILED),
      cancelled: count(['cancelled']),
      pending: count(WAITING) + c.queued,
      firstSend: first === null ? null : new Date(first).toISOString(),
      lastSend: last === null ? null : new Date(last).toISOString(),
      messages: { total: sum(c.byStatus), byStatus: c.byStatus },
      events: r.run.campaignEvents
        .filter((e) => e.campaign === c.id)
        .sort((a, b) => a.event - b.event)
        .map((e) => ({ type: e.type, at: e.at, outcome: e.outcome, status: e.status })),
      pool: c.mode === 'pool' ? poolReport(r, userIndex, perDevice, first, last) : null,
    };
  });
}

const EXIT_ORDER: readonly string[] = ['replied', 'opted_out', 'step_failed', 'not_on_whatsapp', 'removed', 'lead_deleted'];

function sequenceReports(r: ReportInput): SequenceReport[] {
  return r.facts.sequences.map((q): SequenceReport => {
    const e = q.enrollments;
    const status = (k: string) => e.byStatus[k] ?? 0;
    const spec = r.world.sequences.find((w) => w.id === q.id)?.spec;
    const positions = Math.max(spec?.steps.length ?? 0, ...q.steps.keys());
    const byStatus: Counts = {};
    const steps: SequenceStepReport[] = [];
    for (let step = 1; step <= positions; step++) {
      const st = q.steps.get(step) ?? { byStatus: {}, firstSend: null, lastSend: null };
      const count = (statuses: readonly string[]) => statuses.reduce((n, k) => n + (st.byStatus[k] ?? 0), 0);
      for (const [k, n] of Object.entries(st.byStatus)) byStatus[k] = (byStatus[k] ?? 0) + n;
      steps.push({
        step,
        sent: count(SENT),
        delivered: count(['delivered', 'read']),
        read: count(['read']),
        failed: count(FAILED),
        cancelled: count(['cancelled']),
        pending: count(WAITING),
        firstSend: iso(st.firstSend),
        lastSend: iso(st.lastSend),
      });
    }
    const messages = ordered(byStatus, STATUS_ORDER);
    const exitReasons = ordered(e.exitReasons, EXIT_ORDER);
    return {
      id: q.id,
      name: q.name,
      user: r.world.userIds.indexOf(q.user_id),
      trigger: q.trigger,
      next: q.next,
      status: q.status,
      enrolled: sum(e.byStatus),
      chainedIn: e.bySource.chain ?? 0,
      active: status('active') + status('paused'),
      completed: status('completed'),
      exited: { total: sum(exitReasons), byReason: exitReasons },
      messages: { total: sum(messages), byStatus: messages },
      steps,
      events: r.run.sequenceEvents
        .filter((x) => x.sequence === q.id)
        .sort((a, b) => a.event - b.event)
        .map((x) => ({ type: x.type, at: x.at, outcome: x.outcome, status: x.status })),
    };
  });
}

function poolReport(r: ReportInput, userIndex: number, perDevice: Map<number, number[]>, first: number | null, last: number | null): PoolReport {
  const mine = r.world.devices.devices.filter((d) => d.userIndex === userIndex);
  const sentByDevice: Record<string, number> = {};
  for (const d of mine) sentByDevice[d.key] = perDevice.get(d.id)?.length ?? 0;
  let maxSentInRollingHour = 0;
  for (const times of perDevice.values()) maxSentInRollingHour = Math.max(maxSentInRollingHour, maxInWindow(times, 3_600_000));
  const steady = first === null || last === null ? [] : mine.filter((d) => r.run.observer.availableThroughout(d.id, first, last));
  const counts = steady.map((d) => sentByDevice[d.key]!);
  return {
    sentByDevice,
    maxSentInRollingHour,
    steadyDevices: steady.map((d) => d.key),
    spread: counts.length > 0 ? Math.max(...counts) - Math.min(...counts) : null,
  };
}

/** The most of the ascending `times` inside any half-open window [t, t + width). */
function maxInWindow(times: readonly number[], width: number): number {
  let best = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[j]! <= times[i]! - width) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export interface OutputFiles {
  sends: string;
  report: string;
}

export async function writeOutputs(outDir: string, lines: Iterable<SendLine>, report: SimulationReport): Promise<OutputFiles> {
  await mkdir(outDir, { recursive: true });
  const files = { sends: join(outDir, 'sends.jsonl'), report: join(outDir, 'report.json') };
  // In chunks: a run of hundreds of thousands of sends would otherwise be one string of that size.
  const out = await open(files.sends, 'w');
  try {
    let chunk = '';
    let n = 0;
    for (const l of lines) {
      chunk += JSON.stringify(l) + '\n';
      if (++n % 10_000 === 0) {
        await out.write(chunk);
        chunk = '';
      }
    }
    await out.write(chunk);
  } finally {
    await out.close();
  }
  await writeFile(files.report, JSON.stringify(report, null, 2) + '\n');
  return files;
}
