/** Process configuration from the environment, validated once here. */
import { z } from 'zod';
import { parseSecretKey } from './services/secrets/secret-box.js';

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
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const res = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')));
  if (!res.success) {
    const lines = res.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return res.data;
}
