/**
 * The chaos run: several `fleetcast serve --role worker` processes share one PostgreSQL server
 * (a private one, so it can be restarted) and a simulated WhatsApp whose send log they all append
 * to. While they send a paced campaign per tenant, the run SIGKILLs a random worker and starts it
 * again, restarts PostgreSQL once, and a share of the devices keep dropping their connection.
 * Then it checks, from the send log and the database: no message sent twice, every message in a
 * terminal state, no gap below a device's minimum, no rolling hour above a device's cap, and how
 * long each killed worker's devices waited for another worker.
 *
 * Phases: setup (tenants, devices, leads, campaigns; not timed) -> start the workers and wait until
 * every device is leased and has sent -> chaos (kills, restarts, one database restart) -> drain
 * (the capped devices' campaigns are cancelled once those devices have sent their cap; the rest
 * must all finish) -> stop the workers with SIGTERM -> checks.
 *
 * Everything runs on 127.0.0.1 and is bounded: a run that has not drained by its deadline fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { SystemClock } from '../../engine/clock.js';
import { seededRandom } from '../../engine/pacing.js';
import { CampaignService } from '../../services/campaigns.js';
import type { Actor } from '../../services/actor.js';
import type { Db } from '../../store/db.js';
import { migrate } from '../../store/migrate.js';
import { openPostgres } from '../../store/postgres.js';
import { insertCampaign } from '../../store/sql/campaigns.js';
import { insertDevices } from '../../store/sql/devices.js';
import { generateLeads } from '../../store/sql/leads.js';
import { TERMINAL_STATUSES } from '../../store/sql/messages.js';
import { insertUser } from '../../store/sql/users.js';
import { flaps, type SendAttempt } from '../../transports/simulator.js';
import { startCluster, type Cluster } from './cluster.js';
import { capViolations, duplicateSends, gapViolations, reachedWhatsApp, resumeTimes, type Kill } from './checks.js';

export interface ChaosOptions {
  workers: number;
  devices: number;
  messages: number;
  kills: number;
  killEveryMs: number;
  restartAfterMs: number;
  leaseTtlMs: number;
  minGapMs: number;
  maxGapMs: number;
  /** Share of devices that keep dropping their connection. */
  flapShare: number;
  /** Share of tenants whose devices have an hourly cap below their load. */
  cappedShare: number;
  hourlyCap: number;
  restartDatabase: boolean;
  timeoutMs: number;
  seed: number;
  progress: boolean;
}

const DEVICES_PER_USER = 15;
const CLI = fileURLToPath(new URL('../main.js', import.meta.url));

interface Worker {
  index: number;
  child: ChildProcess;
  pid: number;
  stdout: string;
  stderr: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  peakRssMB: number;
}

/** The send log, read as it grows: only whole lines, so a line being appended is read next time. */
class LogTail {
  readonly attempts: SendAttempt[] = [];
  unparsable = 0;
  private read = 0;
  constructor(private readonly file: string) {}
  poll(): void {
    if (!existsSync(this.file)) return;
    const size = statSync(this.file).size;
    if (size <= this.read) return;
    const fd = openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(size - this.read);
      const n = readSync(fd, buf, 0, buf.length, this.read);
      const end = buf.lastIndexOf(0x0a, n - 1);
      if (end < 0) return;
      for (const line of buf.subarray(0, end).toString('utf8').split('\n')) {
        if (!line) continue;
        try {
          this.attempts.push(JSON.parse(line) as SendAttempt);
        } catch {
          this.unparsable++;
        }
      }
      this.read += end + 1;
    } finally {
      closeSync(fd);
    }
  }
}

/** Lease holders as seen every poll: when each device was first seen with an owner other than a given one. */
class LeaseWatch {
  private readonly seen = new Map<number, { at: number; owner: string }[]>();
  record(at: number, rows: readonly { device_id: number; owner: string }[]): void {
    for (const r of rows) {
      let list = this.seen.get(r.device_id);
      if (!list) this.seen.set(r.device_id, (list = []));
      if (list.at(-1)?.owner !== r.owner) list.push({ at, owner: r.owner });
    }
  }
  /** Who held the device from shortly before `from` to `to`. */
  around(device: number, from: number, to: number): { at: number; owner: string }[] {
    const list = this.seen.get(device) ?? [];
    const i = Math.max(0, list.findIndex((s) => s.at > from) - 1);
    return list.slice(i).filter((s) => s.at <= to);
  }
  firstOtherOwner(device: number, after: number, owner: string): number | null {
    for (const s of this.seen.get(device) ?? []) if (s.at > after && s.owner !== owner) return s.at;
    return null;
  }
}

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}

export async function runChaos(o: ChaosOptions): Promise<Record<string, unknown> & { passed: boolean }> {
  const clock = new SystemClock();
  const say = (s: string) => o.progress && process.stderr.write(`[chaos ${((Date.now() - runStart) / 1000).toFixed(1)}s] ${s}\n`);
  const runStart = Date.now();
  const random = seededRandom(o.seed);
  const tmp = mkdtempSync(join(tmpdir(), 'fleetcast-chaos-'));
  const logFile = join(tmp, 'sends.jsonl');
  let cluster: Cluster | undefined;
  let db: Db | undefined;
  const workers: (Worker | undefined)[] = [];
  const retired: Worker[] = [];
  try {
    cluster = await startCluster({ maxConnections: 100 + o.workers * 20 });
    say(`PostgreSQL on 127.0.0.1:${cluster.port}`);
    db = await openPostgres({ connectionString: cluster.url, poolSize: 4 });
    const setup = await buildFleet(db, o, new Date(clock.now()));
    say(`setup: ${setup.deviceIds.length} devices (${setup.capped.size} capped at ${o.hourlyCap}/h), ${setup.messages} messages`);

    const env = {
      ...baseEnv(),
      DATABASE_URL: cluster.url,
      HOST: '127.0.0.1',
      PORT: '0',
      FLEETCAST_LOG_LEVEL: 'error',
      FLEETCAST_LEASE_TTL_MS: String(o.leaseTtlMs),
      FLEETCAST_SIMULATOR_LOG: logFile,
      FLEETCAST_SIMULATOR_LATENCY_MS: '20',
      ...(o.flapShare > 0
        ? { FLEETCAST_SIMULATOR_DROPS_PER_HOUR: '120', FLEETCAST_SIMULATOR_DROP_MS: '3000', FLEETCAST_SIMULATOR_DROP_SHARE: String(o.flapShare) }
        : {}),
    };
    const start = (index: number): Worker => {
      const child = spawn(process.execPath, [CLI, 'serve', '--role', 'worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const w: Worker = {
        index,
        child,
        pid: child.pid!,
        stdout: '',
        stderr: '',
        exited: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal }))),
        peakRssMB: 0,
      };
      child.stdout!.setEncoding('utf8').on('data', (s: string) => (w.stdout += s));
      child.stderr!.setEncoding('utf8').on('data', (s: string) => (w.stderr = (w.stderr + s).slice(-20_000)));
      workers[index] = w;
      return w;
    };

    const tail = new LogTail(logFile);
    const leases = new LeaseWatch();
    let dbDown = false;
    /** Lease owner names by worker tag, to tell who held what. */
    const owners = new Map<string, string>();
    const poll = async () => {
      tail.poll();
      for (const w of workers) if (w) w.peakRssMB = Math.max(w.peakRssMB, rssOf(w.pid));
      if (dbDown) return;
      try {
        const now = Date.now();
        const res = await db!.query<{ device_id: number; owner: string }>('select device_id, owner from device_leases where expires_at > $1', [new Date(now)]);
        const procs = await db!.query<{ owner: string; pid: number }>('select owner, pid from engine_processes');
        for (const p of procs.rows) owners.set(p.owner, `pid-${p.pid}`);
        leases.record(now, res.rows);
        return res.rows.length;
      } catch {
        return undefined;
      }
    };
    let polling = true;
    let leasedNow = 0;
    const poller = (async () => {
      while (polling) {
        leasedNow = (await poll()) ?? leasedNow;
        await delay(100);
      }
    })();

    const t0 = Date.now();
    for (let i = 0; i < o.workers; i++) start(i);
    await Promise.all(workers.map((w) => ready(w!, 60_000)));
    say(`${o.workers} workers listening`);
    const deadline = t0 + o.timeoutMs;
    let allLeasedMs: number | null = null;
    let allServingMs: number | null = null;
    while (allLeasedMs === null || allServingMs === null) {
      if (Date.now() > deadline) throw new Error('the devices were not all leased and sending before the deadline');
      if (allLeasedMs === null && leasedNow >= setup.deviceIds.length) allLeasedMs = Date.now() - t0;
      if (allServingMs === null) {
        const sent = new Set(tail.attempts.filter(reachedWhatsApp).map((a) => a.device));
        if (sent.size >= setup.deviceIds.length) allServingMs = tail.attempts.filter(reachedWhatsApp).reduce((m, a) => Math.max(m, a.at), 0) - t0;
      }
      await delay(100);
    }
    say(`all ${setup.deviceIds.length} devices leased after ${(allLeasedMs / 1000).toFixed(1)} s, all sending after ${(allServingMs / 1000).toFixed(1)} s`);

    const kills: (Kill & { owner: string })[] = [];
    let databaseRestart: { at: number; downMs: number } | null = null;
    for (let k = 0; k < o.kills; k++) {
      // A random worker among those serving devices right now (one just restarted may hold none yet).
      let victim: Worker | undefined;
      let ownerName = '';
      let held: { device_id: number }[] = [];
      for (const i of [...workers.keys()].sort(() => random() - 0.5)) {
        const w = workers[i]!;
        const owner = await db.query<{ owner: string }>('select owner from engine_processes where pid = $1 order by started_at desc limit 1', [w.pid]);
        const name = owner.rows[0]?.owner ?? '';
        const rows = await db.query<{ device_id: number }>('select device_id from device_leases where owner = $1 and expires_at > $2', [name, new Date()]);
        if (rows.rows.length > 0) {
          [victim, ownerName, held] = [w, name, rows.rows];
          break;
        }
      }
      if (!victim) throw new Error('no worker serves any device');
      const at = Date.now();
      victim.child.kill('SIGKILL');
      await victim.exited;
      retired.push(victim);
      kills.push({ at, pid: victim.pid, tag: `pid-${victim.pid}`, devices: held.map((r) => r.device_id), owner: ownerName });
      say(`kill ${k + 1}/${o.kills}: worker ${victim.index} (pid ${victim.pid}, ${held.length} devices)`);
      await delay(o.restartAfterMs);
      await ready(start(victim.index), 60_000);
      if (o.restartDatabase && databaseRestart === null && k + 1 >= Math.ceil(o.kills / 2)) {
        await delay(o.killEveryMs / 2);
        dbDown = true;
        const restartAt = Date.now();
        const downMs = await cluster.restart();
        dbDown = false;
        databaseRestart = { at: restartAt, downMs };
        say(`PostgreSQL restarted (${downMs} ms)`);
        await delay(o.killEveryMs / 2);
      } else {
        await delay(Math.max(0, o.killEveryMs - o.restartAfterMs));
      }
    }
    for (const w of workers) if (w && w.child.exitCode !== null) throw new Error(`worker ${w.index} exited: ${w.stderr}`);
    const pendingAtLastKill = await openCount(db);
    say(`chaos over; ${pendingAtLastKill} messages still open`);

    // Drain: the capped devices stop at their cap; once they have reached it, their campaigns are
    // cancelled (what waits behind a cap is not lost: it would go out next hour). Everything else
    // must finish by itself.
    let cappedCancelled = 0;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`the outbox did not drain before the deadline (${await openCount(db)} open)`);
      const uncappedOpen = await db.query<{ n: number }>(
        `select count(*)::int as n from messages m join devices d on d.id = m.device_id
          where m.status in ('pending', 'sending') and d.hourly_limit is null`,
      );
      const cappedShort = await db.query<{ n: number }>(
        `select count(*)::int as n from (
           select d.id from devices d join messages m on m.device_id = d.id
            where d.hourly_limit is not null
            group by d.id, d.hourly_limit
           having count(*) filter (where m.status not in ('pending', 'sending', 'held')) < least(count(*), d.hourly_limit)) x`,
      );
      if (uncappedOpen.rows[0]!.n === 0 && cappedShort.rows[0]!.n === 0) break;
      await delay(500);
    }
    const service = new CampaignService(db, clock);
    for (const c of setup.cappedCampaigns) {
      await service.cancel(c.actor, c.campaignId);
      cappedCancelled++;
    }
    while ((await openCount(db)) > 0) {
      if (Date.now() > deadline) throw new Error('cancelled messages did not settle before the deadline');
      await delay(200);
    }
    const drainedMs = Date.now() - t0;
    say(`drained after ${(drainedMs / 1000).toFixed(1)} s`);

    const exits = await Promise.all(
      workers.map(async (w) => {
        w!.child.kill('SIGTERM');
        const timer = setTimeout(() => w!.child.kill('SIGKILL'), 30_000);
        const e = await w!.exited;
        clearTimeout(timer);
        return e;
      }),
    );
    polling = false;
    await poller;
    tail.poll();

    // The checks.
    const attempts = tail.attempts;
    const duplicates = duplicateSends(attempts);
    const gaps = gapViolations(attempts, new Map(setup.deviceIds.map((id) => [id, o.minGapMs])));
    const caps = capViolations(attempts, new Map([...setup.capped].map((id) => [id, o.hourlyCap])));
    const resumes = resumeTimes(kills, attempts, (device, after) => {
      const k = kills.find((x) => x.at === after)!;
      return leases.firstOtherOwner(device, after, k.owner);
    });
    const ownerTag = (owner: string) => owners.get(owner) ?? owner;
    const statuses = await db.query<{ status: string; n: number }>('select status, count(*)::int as n from messages group by status order by status');
    const byStatus = Object.fromEntries(statuses.rows.map((r) => [r.status, r.n]));
    const open = Object.entries(byStatus).filter(([s]) => !(TERMINAL_STATUSES as readonly string[]).includes(s));
    const sentRows = await db.query<{ id: number }>(`select id from messages where status in ('sent', 'delivered', 'read')`);
    const loggedSent = new Set(attempts.filter((a) => a.outcome === 'sent').map((a) => a.message));
    const rowsWithoutSend = sentRows.rows.filter((r) => !loggedSent.has(r.id)).length;
    const rowIds = new Set(sentRows.rows.map((r) => r.id));
    const sendsNotRecorded = [...loggedSent].filter((id) => !rowIds.has(id)).length;
    const maxLeased = Math.max(0, ...resumes.map((r) => r.leasedAgainMs ?? Infinity));
    const maxSending = Math.max(0, ...resumes.map((r) => r.sendingAgainMs ?? 0));
    const targetMs = 2 * o.leaseTtlMs;
    const cleanExits = exits.every((e) => e.code === 0);
    const failures: string[] = [];
    if (duplicates.length > 0) failures.push(`${duplicates.length} messages sent more than once`);
    if (open.length > 0) failures.push(`messages left open: ${JSON.stringify(Object.fromEntries(open))}`);
    if (gaps.length > 0) failures.push(`${gaps.length} gaps below the minimum`);
    if (caps.length > 0) failures.push(`${caps.length} devices over their hourly cap`);
    if (rowsWithoutSend > 0) failures.push(`${rowsWithoutSend} rows marked sent with no send in the log`);
    if (sendsNotRecorded > 0) failures.push(`${sendsNotRecorded} sends in the log whose row is not marked sent`);
    if (!(maxLeased <= targetMs)) failures.push(`a killed worker's devices waited ${maxLeased} ms for another worker (target ${targetMs} ms)`);
    if (allLeasedMs > 10_000) failures.push(`leasing every device took ${allLeasedMs} ms (target 10,000 ms)`);
    if (!cleanExits) failures.push(`workers did not stop cleanly on SIGTERM: ${JSON.stringify(exits)}`);
    const rss = [...workers, ...retired].map((w) => w!.peakRssMB);
    const peakRssMB = Math.max(...rss);
    if (peakRssMB > 300) failures.push(`a worker reached ${peakRssMB} MB RSS (target 300 MB)`);
    return {
      benchmark: 'chaos',
      passed: failures.length === 0,
      failures,
      workers: o.workers,
      devices: setup.deviceIds.length,
      messages: setup.messages,
      cappedDevices: setup.capped.size,
      flappingDevices: setup.deviceIds.filter((id) => flaps(id, o.flapShare)).length,
      leaseTtlMs: o.leaseTtlMs,
      gapMs: [o.minGapMs, o.maxGapMs],
      seconds: Math.round(drainedMs / 100) / 10,
      allLeasedSeconds: Math.round(allLeasedMs / 100) / 10,
      allSendingSeconds: Math.round(allServingMs / 100) / 10,
      kills: kills.length,
      maxResumeLeasedMs: maxLeased,
      maxResumeSendingMs: maxSending,
      resumeTargetMs: targetMs,
      resumes: resumes.map((r) => ({ worker: r.pid, devices: r.devices, leasedAgainMs: r.leasedAgainMs, sendingAgainMs: r.sendingAgainMs })),
      databaseRestart,
      attempts: attempts.length,
      droppedAttempts: attempts.filter((a) => a.outcome === 'offline').length,
      unparsableLogLines: tail.unparsable,
      duplicates: duplicates.length,
      gapViolations: gaps.length,
      worstGap: gaps.slice(0, 3).map((g) => ({ ...g, leases: leases.around(g.device, g.at - g.gapMs - 10_000, g.at + 1_000).map((l) => ({ at: l.at - g.at, owner: ownerTag(l.owner) })) })),
      capViolations: caps.length,
      cappedCampaignsCancelled: cappedCancelled,
      statuses: byStatus,
      peakRssMBPerWorker: Math.max(...rss),
    };
  } finally {
    for (const w of [...workers, ...retired]) if (w && w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await db?.close().catch(() => undefined);
    cluster?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function openCount(db: Db): Promise<number> {
  const res = await db.query<{ n: number }>(`select count(*)::int as n from messages where status in ('pending', 'sending', 'held')`);
  return res.rows[0]!.n;
}

async function ready(w: Worker, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!/^listening on /m.test(w.stdout)) {
    if (w.child.exitCode !== null || w.child.signalCode !== null) throw new Error(`worker ${w.index} exited before listening: ${w.stderr}`);
    if (Date.now() > end) throw new Error(`worker ${w.index} did not listen within ${timeoutMs} ms: ${w.stderr}`);
    await delay(20);
  }
}

/** The environment without anything that configures Fleetcast: the run sets what it needs. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'DATABASE_URL' || k === 'PORT' || k === 'HOST' || k.startsWith('FLEETCAST_')) continue;
    env[k] = v;
  }
  return env;
}

interface Fleet {
  deviceIds: number[];
  capped: Set<number>;
  messages: number;
  cappedCampaigns: { actor: Actor; campaignId: number }[];
}

/** Tenants of 15 devices, each with one campaign over its leads; every `1 / cappedShare`-th tenant is capped. */
async function buildFleet(db: Db, o: ChaosOptions, now: Date): Promise<Fleet> {
  await migrate(db, now);
  const users = Math.ceil(o.devices / DEVICES_PER_USER);
  const cappedEvery = o.cappedShare > 0 ? Math.max(1, Math.round(1 / o.cappedShare)) : 0;
  const out: Fleet = { deviceIds: [], capped: new Set(), messages: 0, cappedCampaigns: [] };
  let made = 0;
  for (let u = 0; u < users; u++) {
    const n = Math.min(DEVICES_PER_USER, o.devices - u * DEVICES_PER_USER);
    const capped = cappedEvery > 0 && u % cappedEvery === 0;
    const email = `chaos-${u}@example.test`;
    const userId = await insertUser(db, { email, timeZone: 'UTC' }, now);
    const ids = await insertDevices(
      db,
      userId,
      Array.from({ length: n }, (_, i) => ({
        name: `chaos ${u}-${i}`,
        minDelayMs: o.minGapMs,
        maxDelayMs: o.maxGapMs,
        hourlyLimit: capped ? o.hourlyCap : null,
      })),
      now,
    );
    out.deviceIds.push(...ids);
    if (capped) for (const id of ids) out.capped.add(id);
    const share = u === users - 1 ? o.messages - made : Math.floor(o.messages / users);
    await generateLeads(db, userId, ids, share, `+1${String(200 + (u % 700)).padStart(3, '0')}`, made, now);
    made += share;
    const campaignId = await insertCampaign(db, userId, { name: `chaos ${u}`, body: 'Hello from the chaos run', startsAt: now }, now);
    if (capped) {
      out.cappedCampaigns.push({
        campaignId,
        actor: { userId, tenantId: userId, email, role: 'member', teamMember: false, deviceScope: null, timeZone: 'UTC', defaultCountry: null },
      });
    }
  }
  out.messages = made;
  return out;
}
