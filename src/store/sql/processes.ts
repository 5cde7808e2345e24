/** Engine processes: who runs a dispatcher against this database, alive until its heartbeat lapses. */
import type { Queryable } from '../db.js';

export interface ProcessInfo {
  owner: string;
  host: string;
  pid: number;
  role: string;
  startedAt: Date;
}

/** What a process needs to know to take its fair share: live processes (itself included) and devices to serve. */
export interface Fleet {
  live: number;
  devices: number;
}

/**
 * Writes this process's heartbeat and reads, in the same round trip, how many processes are alive
 * and how many devices there are to share. The counting SELECTs run on the statement's snapshot,
 * which does not hold this process's own row when it is new: it is counted apart. Rows of
 * processes dead for a day are pruned on the way (a handful of rows: no index needed).
 */
export async function heartbeatProcess(db: Queryable, p: ProcessInfo, now: Date, expiresAt: Date, devices: number): Promise<Fleet> {
  const res = await db.query<{ live: number; devices: number }>(
    `with beat as (
       insert into engine_processes as e (owner, host, pid, role, started_at, heartbeat_at, expires_at, devices)
       values ($1, $2, $3, $4, $5, $6, $7, $8)
       on conflict (owner) do update
          set heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at, devices = excluded.devices
       returning owner
     ), pruned as (
       delete from engine_processes where expires_at < $6::timestamptz - interval '1 day' and owner <> $1
     )
     select (select count(*) from engine_processes where expires_at > $6 and owner <> $1)::int + 1 as live,
            (select count(*) from devices where deleted_at is null)::int as devices`,
    [p.owner, p.host, p.pid, p.role, p.startedAt, now, expiresAt, devices],
  );
  const row = res.rows[0]!;
  return { live: row.live, devices: row.devices };
}

export async function removeProcess(db: Queryable, owner: string): Promise<void> {
  await db.query('delete from engine_processes where owner = $1', [owner]);
}

export interface ProcessRow {
  owner: string;
  host: string;
  pid: number;
  role: string;
  started_at: Date;
  heartbeat_at: Date;
  expires_at: Date;
  devices: number;
}

/** Processes whose heartbeat has not lapsed at `now`, oldest first. */
export async function liveProcesses(db: Queryable, now: Date): Promise<ProcessRow[]> {
  const res = await db.query<ProcessRow>(
    `select owner, host, pid, role, started_at, heartbeat_at, expires_at, devices
       from engine_processes where expires_at > $1 order by started_at, owner`,
    [now],
  );
  return res.rows;
}

/** The most devices one process should serve: with every process at most this, every device has one. */
export function fairShare(fleet: Fleet): number {
  return Math.ceil(fleet.devices / Math.max(1, fleet.live));
}
