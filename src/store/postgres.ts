import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { assertIdentifier, untracked, type Db, type DbProfile, type Queryable, type QueryResult, type Tracker } from './db.js';
import { LocalNotifier } from './local-notify.js';

export const postgresProfile: DbProfile = {
  kind: 'postgres',
  poolSize: 8,
  crossProcessNotify: true,
  manualVacuum: false,
  statementParallelism: 2,
};

export interface PostgresOptions {
  connectionString: string;
  /**
   * Where the LISTEN connection goes when it must not share the pool's route: behind PgBouncer in
   * transaction mode a LISTEN is lost with its server connection, so it goes to PostgreSQL itself.
   */
  listenConnectionString?: string;
  schema?: string;
  poolSize?: number;
  track?: Tracker;
}

// ids and counts are int8; every value we keep there fits a double, and both stores must agree.
const typeParsers = {
  getTypeParser(oid: number, format?: string) {
    if (oid === 20) return (v: string) => Number(v);
    if (oid === 1016) {
      const arr = pg.types.getTypeParser(1016 as never) as unknown as (v: string) => (string | null)[];
      return (v: string) => arr(v).map((x) => (x === null ? null : Number(x)));
    }
    return pg.types.getTypeParser(oid, format as 'text');
  },
} as pg.CustomTypesConfig;

interface Envelope {
  from: string;
  payload: string;
}

class PostgresDb implements Db {
  readonly profile: DbProfile;
  private readonly local = new LocalNotifier();
  /** Notifications this process sent reach it locally at once; the server's echo is dropped. */
  private readonly processId = randomUUID();
  private listener: pg.Client | undefined;
  private readonly channels = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly opts: PostgresOptions,
    private readonly track: Tracker,
  ) {
    this.profile = { ...postgresProfile, poolSize: opts.poolSize ?? postgresProfile.poolSize };
  }

  query<R>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<R>> {
    return this.track(this.pool.query(sql, params as unknown[]).then(toResult<R>));
  }

  async exec(sql: string): Promise<void> {
    await this.track(this.pool.query(sql));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.track(
      (async () => {
        const client = await this.pool.connect();
        try {
          await client.query('begin');
          const q: Queryable = {
            query: <R>(sql: string, params: readonly unknown[] = []) =>
              this.track(client.query(sql, params as unknown[]).then(toResult<R>)),
            exec: async (sql: string) => {
              await this.track(client.query(sql));
            },
          };
          const out = await fn(q);
          await client.query('commit');
          return out;
        } catch (err) {
          await client.query('rollback').catch(() => undefined);
          throw err;
        } finally {
          client.release();
        }
      })(),
    );
  }

  async notify(channel: string, payload: string): Promise<void> {
    this.local.emit(channel, payload);
    const envelope: Envelope = { from: this.processId, payload };
    await this.query('select pg_notify($1, $2)', [channel, JSON.stringify(envelope)]);
  }

  async listen(channel: string, handler: (payload: string) => void): Promise<() => Promise<void>> {
    assertIdentifier(channel);
    const off = this.local.on(channel, handler);
    const client = await this.listenerClient();
    const count = this.channels.get(channel) ?? 0;
    if (count === 0) await client.query(`listen ${channel}`);
    this.channels.set(channel, count + 1);
    return async () => {
      off();
      const left = (this.channels.get(channel) ?? 1) - 1;
      this.channels.set(channel, left);
      if (left === 0 && this.listener) await this.listener.query(`unlisten ${channel}`).catch(() => undefined);
    };
  }

  private async listenerClient(): Promise<pg.Client> {
    if (this.listener) return this.listener;
    const client = new pg.Client({ connectionString: this.opts.listenConnectionString ?? this.opts.connectionString, types: typeParsers });
    await client.connect();
    client.on('notification', (msg) => {
      if (!msg.payload) return;
      let env: Envelope;
      try {
        env = JSON.parse(msg.payload) as Envelope;
      } catch {
        return;
      }
      if (env.from !== this.processId) this.local.emit(msg.channel, env.payload);
    });
    // A dropped listener connection costs prompt wake-ups until it is back (the dispatcher also
    // looks again at idle devices on every lease refresh); reconnect and LISTEN again.
    const lost = () => {
      if (this.listener !== client) return;
      this.listener = undefined;
      if (!this.closed) setTimeout(() => void this.relisten(), 1000).unref();
    };
    client.on('error', lost);
    client.on('end', lost);
    this.listener = client;
    return client;
  }

  private async relisten(): Promise<void> {
    if (this.closed || this.listener) return;
    try {
      const client = await this.listenerClient();
      for (const [channel, count] of this.channels) if (count > 0) await client.query(`listen ${channel}`);
    } catch {
      if (!this.closed) setTimeout(() => void this.relisten(), 5000).unref();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
    await this.pool.end();
  }
}

function toResult<R>(res: pg.QueryResult): QueryResult<R> {
  return { rows: res.rows as R[], rowCount: res.rowCount ?? res.rows.length };
}

export async function openPostgres(opts: PostgresOptions): Promise<Db> {
  const schema = opts.schema ? assertIdentifier(opts.schema) : undefined;
  if (schema) {
    const admin = new pg.Client({ connectionString: opts.connectionString });
    await admin.connect();
    try {
      await admin.query(`create schema if not exists ${schema}`);
    } catch (err) {
      // Two processes creating the same schema at once: the loser sees a unique violation.
      if ((err as { code?: string }).code !== '23505') throw err;
    } finally {
      await admin.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.poolSize ?? postgresProfile.poolSize,
    types: typeParsers,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  pool.on('error', () => undefined);
  const db = new PostgresDb(pool, { ...opts, ...(schema ? { schema } : {}) }, opts.track ?? untracked);
  return db;
}
