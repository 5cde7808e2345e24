/**
 * What a run leaves behind: `sends.jsonl`, the simulator's record of every send attempt in the
 * order it saw them, and `report.json`, the totals. Everything in the report is a function of the
 * scenario and its seed except the wall-clock figures, so two runs can be compared with a diff.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Queryable } from '../../store/db.js';
import { countByStatus, type MessageStatus } from '../../store/sql/messages.js';
import type { SendAttempt, SendOutcome } from '../../transports/simulator.js';
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
}

type Counts = Record<string, number>;

export interface CampaignReport {
  id: number;
  name: string;
  user: number;
  status: string;
  startedAt: string | null;
  completedAt: string | null;
  messages: { total: number; byStatus: Counts };
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
  campaigns: CampaignReport[];
  repliedLeads: number;
}

const STATUS_ORDER: readonly MessageStatus[] = ['pending', 'sending', 'sent', 'delivered', 'read', 'failed', 'cancelled', 'skipped', 'unknown'];
const OUTCOME_ORDER: readonly SendOutcome[] = ['sent', 'transient_error', 'permanent_error', 'restricted', 'offline'];

/** Counts in a fixed key order, so reports of equal runs are byte-equal. */
function ordered(counts: Counts, order: readonly string[]): Counts {
  const keys = Object.keys(counts).sort((a, b) => rank(order, a) - rank(order, b) || a.localeCompare(b));
  return Object.fromEntries(keys.map((k) => [k, counts[k]!]));
}

const rank = (order: readonly string[], key: string) => (order.includes(key) ? order.indexOf(key) : order.length);

const sum = (counts: Counts) => Object.values(counts).reduce((a, b) => a + b, 0);

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

export async function readStoreFacts(db: Queryable, world: World): Promise<StoreFacts> {
  const byStatus = ordered(await countByStatus(db), STATUS_ORDER);
  const rows = await db.query<{ id: number; name: string; user_id: number; status: string; started_at: Date | null; completed_at: Date | null }>(
    'select id, name, user_id, status, started_at, completed_at from campaigns order by id',
  );
  const counts = await db.query<{ campaign_id: number; status: string; n: number }>(
    `select campaign_id, status, count(*)::int as n from messages where campaign_id is not null group by campaign_id, status`,
  );
  const perCampaign = new Map<number, Counts>();
  for (const r of counts.rows) perCampaign.set(r.campaign_id, { ...perCampaign.get(r.campaign_id), [r.status]: r.n });
  const campaigns = rows.rows.map((c): CampaignReport => {
    const statuses = ordered(perCampaign.get(c.id) ?? {}, STATUS_ORDER);
    return {
      id: c.id,
      name: c.name,
      user: world.userIds.indexOf(c.user_id),
      status: c.status,
      startedAt: iso(c.started_at),
      completedAt: iso(c.completed_at),
      messages: { total: sum(statuses), byStatus: statuses },
    };
  });
  const replied = await db.query<{ n: number }>('select count(*)::int as n from leads where last_reply_at is not null');
  return { byStatus, campaigns, repliedLeads: replied.rows[0]!.n };
}

export function sendLines(attempts: readonly SendAttempt[], world: World): SendLine[] {
  const keys = new Map(world.devices.devices.map((d) => [d.id, d.key]));
  return attempts.map((a) => ({
    at: new Date(a.at).toISOString(),
    device: a.device,
    deviceKey: keys.get(a.device) ?? String(a.device),
    to: a.to,
    message: a.message,
    origin: a.origin,
    attempt: a.attempt,
    outcome: a.outcome,
  }));
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
  attempts: readonly SendAttempt[];
  world: World;
  facts: StoreFacts;
  engineErrors: number;
}

export function buildReport(r: ReportInput): SimulationReport {
  const byOutcome: Counts = {};
  const devices: Record<string, DeviceReport> = {};
  for (const d of r.world.devices.devices) devices[d.key] = { id: d.id, attempts: 0, sent: 0, outcomes: {} };
  const byId = new Map(r.world.devices.devices.map((d) => [d.id, devices[d.key]!]));
  let first: number | null = null;
  let last: number | null = null;
  for (const a of r.attempts) {
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
    attempts: { total: r.attempts.length, byOutcome: ordered(byOutcome, OUTCOME_ORDER) },
    campaigns: r.facts.campaigns,
    devices,
    repliedLeads: r.facts.repliedLeads,
    firstSend: first === null ? null : new Date(first).toISOString(),
    lastSend: last === null ? null : new Date(last).toISOString(),
    throughput: {
      sentPerVirtualHour: activeHours > 0 ? round(sent / activeHours, 2) : null,
      attemptsPerWallSecond: r.wallSeconds.run > 0 ? round(r.attempts.length / r.wallSeconds.run, 2) : null,
    },
    engineErrors: r.engineErrors,
  };
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export interface OutputFiles {
  sends: string;
  report: string;
}

export async function writeOutputs(outDir: string, lines: readonly SendLine[], report: SimulationReport): Promise<OutputFiles> {
  await mkdir(outDir, { recursive: true });
  const files = { sends: join(outDir, 'sends.jsonl'), report: join(outDir, 'report.json') };
  await writeFile(files.sends, lines.map((l) => JSON.stringify(l) + '\n').join(''));
  await writeFile(files.report, JSON.stringify(report, null, 2) + '\n');
  return files;
}
