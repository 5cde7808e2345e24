/** Process configuration from the environment, validated once here. */
import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { z } from 'zod';
import { parseSecretKey } from './services/secrets/secret-box.js';

const booleanVariable = z.enum(['true', 'false'], { message: 'true or false' });

const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().default('127.0.0.1'),
  FLEETCAST_DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z.string().url().optional(),
  /** Where LISTEN goes when DATABASE_URL points at PgBouncer in transaction mode: PostgreSQL itself. */
  FLEETCAST_DB_LISTEN_URL: z.string().url().optional(),
  /** Connections this process keeps to PostgreSQL (plus one for LISTEN). */
  FLEETCAST_DB_POOL_SIZE: z.coerce.number().int().min(2).max(200).default(8),
  /** A PostgreSQL schema to keep Fleetcast's tables in (created if missing); default: search_path. */
  FLEETCAST_DB_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'lower-case letters, digits and _')
    .optional(),
  FLEETCAST_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * What this process runs: `all` (HTTP API and engine), `api` (HTTP API only) or `worker` (the
   * engine, with only the health routes on its port). `fleetcast serve --role` overrides it.
   */
  FLEETCAST_ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  FLEETCAST_LEASE_TTL_MS: z.coerce.number().int().min(1000).default(30_000),
  FLEETCAST_MAX_DEVICES: z.coerce.number().int().min(1).default(100_000),
  FLEETCAST_RETENTION_DAYS: z.coerce.number().int().min(1).default(90),
  /** Simulator: append every send attempt to this file (and prove sends from it after a crash). */
  FLEETCAST_SIMULATOR_LOG: z.string().optional(),
  FLEETCAST_SIMULATOR_LATENCY_MS: z.coerce.number().int().min(0).default(0),
  /** Simulator: random drops per connected device-hour (0: none), how long each lasts at most, and the share of devices that flap. */
  FLEETCAST_SIMULATOR_DROPS_PER_HOUR: z.coerce.number().min(0).default(0),
  FLEETCAST_SIMULATOR_DROP_MS: z.coerce.number().int().min(1).default(5_000),
  FLEETCAST_SIMULATOR_DROP_SHARE: z.coerce.number().min(0).max(1).default(1),
  /** The first admin, created on a database without accounts (password generated and printed if unset). */
  FLEETCAST_ADMIN_EMAIL: z.email().default('admin@fleetcast.local'),
  FLEETCAST_ADMIN_PASSWORD: z.string().min(10, 'at least 10 characters').optional(),
  /** Behind a reverse proxy: trust its X-Forwarded-For/-Proto (true, or a list of proxy addresses). */
  FLEETCAST_TRUST_PROXY: z
    .string()
    .transform((v) => (v === 'true' ? true : v === 'false' ? false : v))
    .optional(),
  FLEETCAST_SESSION_TTL_HOURS: z.coerce.number().min(1).max(24 * 365).default(168),
  FLEETCAST_IMPORT_MAX_MB: z.coerce.number().int().min(1).default(1024),
  /** PGlite's buffer cache (its shared_buffers), which counts in the process's memory: see docs/benchmarks.md. */
  FLEETCAST_PGLITE_CACHE_MB: z.coerce.number().int().min(8).max(4096).default(32),
  /** Replies that opt a lead out, comma-separated (compared ignoring case and punctuation); empty: the defaults. */
  FLEETCAST_OPT_OUT_WORDS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((w) => w.trim())
        .filter((w) => w !== ''),
    ),
  /** Let campaign media URLs reach private and loopback addresses (off: a tenant must not probe the server's network). */
  FLEETCAST_MEDIA_ALLOW_PRIVATE: z
    .enum(['true', 'false'], { message: 'true or false' })
    .default('false')
    .transform((v) => v === 'true'),

  // ---- real transports (docs/devices.md) ----
  /** 32 bytes, base64 or hex: encrypts linked devices' auth state and Cloud API secrets. Unset: a key file in the data directory. */
  FLEETCAST_SECRET_KEY: z
    .string()
    .transform((v, ctx) => {
      const key = parseSecretKey(v);
      if (!key) {
        ctx.addIssue({ code: 'custom', message: 'a 32-byte key as 64 hex digits or base64 (e.g. `openssl rand -base64 32`)' });
        return z.NEVER;
      }
      return key;
    })
    .optional(),
  /** The WhatsApp Web version linked devices connect as, e.g. 2.3000.1023223821; default: the one Baileys ships with. */
  FLEETCAST_WA_VERSION: z
    .string()
    .regex(/^\d+\.\d+\.\d+$/, 'three numbers, e.g. 2.3000.1023223821')
    .transform((v) => v.split('.').map(Number) as [number, number, number])
    .optional(),
  /** Linked devices connected (restored at start, or reconnected) per second, across the process. */
  FLEETCAST_WA_CONNECTS_PER_SECOND: z.coerce.number().min(0.1).max(1000).default(5),
  /** The Graph API the Cloud API transport calls (a test server, a proxy). */
  FLEETCAST_CLOUD_API_URL: z.string().url().default('https://graph.facebook.com/v21.0'),
  // ---- Operations: webhooks, metrics, audit, logs, backups (docs/operations.md) ----
  /** Let webhook URLs reach private, loopback and link-local addresses (only where every user is trusted). */
  FLEETCAST_WEBHOOK_ALLOW_PRIVATE: booleanVariable.default('false').transform((v) => v === 'true'),
  FLEETCAST_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  FLEETCAST_WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(10),
  FLEETCAST_WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(10).default(30_000),
  FLEETCAST_WEBHOOK_RETRY_MAX_MS: z.coerce.number().int().min(10).default(4 * 3600_000),
  FLEETCAST_WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  FLEETCAST_WEBHOOK_RETENTION_DAYS: z.coerce.number().int().min(1).default(30),
  /** `/metrics` on the main listener behind this bearer token (at least 16 characters). */
  FLEETCAST_METRICS_TOKEN: z.string().min(16, 'at least 16 characters').optional(),
  /** `/metrics`, `/healthz` and `/readyz` on their own port (bound to HOST), for the scraper only. */
  FLEETCAST_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  FLEETCAST_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).default(365),
  /** One log line per request (with its request id; secrets redacted). */
  FLEETCAST_LOG_REQUESTS: booleanVariable.default('false').transform((v) => v === 'true'),
  /** How often the dashboard's live stream (GET /api/v1/live) sends its figures. */
  FLEETCAST_LIVE_FIGURES_MS: z.coerce.number().int().min(200).max(600_000).default(2000),
  /** Where pg_dump and pg_restore are, for backups of a PostgreSQL database; default: PATH. */
  FLEETCAST_PG_BIN: z.string().min(1).optional(),
}).refine((c) => c.FLEETCAST_WEBHOOK_RETRY_MAX_MS >= c.FLEETCAST_WEBHOOK_RETRY_BASE_MS, {
  path: ['FLEETCAST_WEBHOOK_RETRY_MAX_MS'],
  message: 'must not be below FLEETCAST_WEBHOOK_RETRY_BASE_MS',
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

/** Every variable this version reads (the README table and .env.example list each one). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);

/** Values never repeated in an error message. */
const SECRET_VARIABLES = /PASSWORD|TOKEN|SECRET|KEY|DATABASE_URL/;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const res = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!res.success) {
    const lines = res.error.issues.map((i) => {
      const name = i.path.join('.');
      const value = env[name];
      const shown = value === undefined || SECRET_VARIABLES.test(name) ? '' : ` (got ${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value)})`;
      return `${name}: ${i.message}${shown}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return res.data;
}

/** FLEETCAST_* variables set in `env` that no setting reads (a typo, or one from another version). */
export function unknownVariables(env: NodeJS.ProcessEnv = process.env): string[] {
  const known = new Set(CONFIG_VARIABLES);
  return Object.keys(env).filter((k) => k.startsWith('FLEETCAST_') && !known.has(k) && !EXTRA_VARIABLES.has(k)).sort();
}

/** Read outside this schema: by the test runner. */
const EXTRA_VARIABLES = new Set(['FLEETCAST_TEST_CONCURRENCY']);

/**
 * Loads `path` (default `.env` in the working directory) into `env` if the file exists; variables
 * already set win. Returns whether a file was read.
 */
export function loadEnvFile(path = '.env', env: NodeJS.ProcessEnv = process.env): boolean {
  if (!existsSync(path)) return false;
  let parsed: Record<string, string>;
  try {
    parsed = parseEnv(readFileSync(path, 'utf8')) as Record<string, string>;
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  for (const [k, v] of Object.entries(parsed)) if (env[k] === undefined) env[k] = v;
  return true;
}
