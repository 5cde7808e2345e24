/**
 * The one database interface the rest of Fleetcast talks to. Two implementations: PGlite (embedded,
 * the default) and a PostgreSQL server through `pg`. Same schema, same SQL; what differs between
 * them is declared once, in a DbProfile, never discovered by scattered checks.
 */

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface DbProfile {
  kind: 'pglite' | 'postgres';
  /** Connections the store may use at once; PGlite is one connection. */
  poolSize: number;
  /** Whether NOTIFY reaches other processes (PostgreSQL) or only this one (PGlite). */
  crossProcessNotify: boolean;
  /** PGlite runs no autovacuum worker: the engine vacuums the outbox itself. */
  manualVacuum: boolean;
  /**
   * How many independent statements are worth keeping in flight at once. On one connection a
   * second statement only queues behind the first, so the dispatcher stops pipelining claims.
   */
  statementParallelism: number;
}

export type NotifyHandler = (payload: string) => void;

export interface Db extends Queryable {
  readonly profile: DbProfile;
  /** Runs `fn` in one transaction; rolls back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Sends a notification to every listener of `channel`, in this process and (PostgreSQL) others. */
  notify(channel: string, payload: string): Promise<void>;
  listen(channel: string, handler: NotifyHandler): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export type Tracker = <T>(promise: Promise<T>) => Promise<T>;

export const untracked: Tracker = (p) => p;

/** Postgres identifiers we build names from (schemas in tests) must be plain. */
export function assertIdentifier(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid SQL identifier: ${name}`);
  return name;
}
