/**
 * `fleetcast serve`: the HTTP server with the engine inside it, or one of the two (`--role`).
 * Several processes may share one PostgreSQL database in any mix of roles: API processes behind a
 * load balancer, workers that share the devices between them (see the dispatcher).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildServer } from '../api/server.js';
import { ensureFirstAdmin } from '../services/accounts/bootstrap.js';
import { accountHousekeeping } from '../services/accounts/housekeeping.js';
import { createServices } from '../services/index.js';
import { ConfigError, loadConfig, unknownVariables, type Config } from '../config.js';
import { SystemClock } from '../engine/clock.js';
import { Engine } from '../engine/engine.js';
import { WebhookDeliverer } from '../engine/webhook-deliverer.js';
import { startAdminListener } from '../api/metrics.js';
import { FleetcastMetrics } from '../services/metrics/registry.js';
import { WebhookSecrets } from '../services/webhooks/secrets.js';
import { createLogger } from '../logger.js';
import { migrate } from '../store/migrate.js';
import { openStore } from '../store/open.js';
import { SimulatorTransport } from '../transports/simulator.js';
import { DeviceLinkRunner } from '../services/devices/link-runner.js';
import { LiveRelay } from '../services/live/engine-relay.js';
import { isDeviceLinked } from '../store/sql/device-links.js';
import { loadSecretKey, SecretBox } from '../services/secrets/secret-box.js';
import { mediaPath } from '../services/media/store.js';
import { lazyTransport } from '../transports/lazy.js';
import { CloudApiTransport } from '../transports/cloud-api/transport.js';
import type { Transport } from '../transports/transport.js';

export type Role = Config['FLEETCAST_ROLE'];

export interface ServeArgs {
  role?: Role | undefined;
}

const ROLES: readonly Role[] = ['all', 'api', 'worker'];

export function parseServeArgs(args: string[]): ServeArgs {
  let values: { role?: string | undefined };
  try {
    ({ values } = parseArgs({ args, options: { role: { type: 'string' } } }));
  } catch (err) {
    throw new ConfigError(`serve: ${(err as Error).message}`);
  }
  if (values.role === undefined) return {};
  if (!ROLES.includes(values.role as Role)) throw new ConfigError(`serve: --role must be one of ${ROLES.join(', ')} (got "${values.role}")`);
  return { role: values.role as Role };
}

export async function serve(args: ServeArgs = {}): Promise<{ address: string }> {
  const cfg = loadConfig();
  const role = args.role ?? cfg.FLEETCAST_ROLE;
  const runsApi = role !== 'worker';
  const runsEngine = role !== 'api';
  const log = createLogger(cfg.FLEETCAST_LOG_LEVEL).child({ role });
  const unknown = unknownVariables();
  if (unknown.length > 0) log.warn({ variables: unknown }, 'these FLEETCAST_ variables are not settings of this version (typos?); they are ignored');
  const clock = new SystemClock();
  const db = await openStore({
    databaseUrl: cfg.DATABASE_URL,
    listenUrl: cfg.FLEETCAST_DB_LISTEN_URL,
    poolSize: cfg.FLEETCAST_DB_POOL_SIZE,
    dataDir: cfg.FLEETCAST_DATA_DIR,
    schema: cfg.FLEETCAST_DB_SCHEMA,
    pgliteCacheMb: cfg.FLEETCAST_PGLITE_CACHE_MB,
  });
  const applied = await migrate(db, new Date(clock.now()));
  if (applied.length > 0) log.info({ applied }, 'migrations applied');
  const latency = cfg.FLEETCAST_SIMULATOR_LATENCY_MS;
  const simulator = new SimulatorTransport({
    clock,
    seed: process.pid,
    ...(latency > 0 ? { latency: { minMs: Math.floor(latency / 2), maxMs: latency } } : {}),
    ...(cfg.FLEETCAST_SIMULATOR_DROPS_PER_HOUR > 0
      ? {
          disconnects: {
            perHour: cfg.FLEETCAST_SIMULATOR_DROPS_PER_HOUR,
            downtime: { minMs: Math.ceil(cfg.FLEETCAST_SIMULATOR_DROP_MS / 10), maxMs: cfg.FLEETCAST_SIMULATOR_DROP_MS },
            share: cfg.FLEETCAST_SIMULATOR_DROP_SHARE,
          },
        }
      : {}),
    ...(cfg.FLEETCAST_SIMULATOR_LOG ? { logFile: cfg.FLEETCAST_SIMULATOR_LOG } : {}),
    tag: `pid-${process.pid}`,
    isLinked: (id) => isDeviceLinked(db, id),
  });
  const secret = loadSecretKey(cfg.FLEETCAST_SECRET_KEY, cfg.FLEETCAST_DATA_DIR);
  if (secret.source !== 'environment') {
    log.info({ file: secret.file }, secret.source === 'generated' ? 'secret key generated' : 'secret key read from the data directory');
    if (cfg.DATABASE_URL) log.warn('FLEETCAST_SECRET_KEY is not set: with PostgreSQL and several machines, give every process the same key, or none can read what another stored');
  }
  const box = new SecretBox(secret.key);
  // Baileys loads when the first linked device needs it (see lazy.ts).
  const baileys = lazyTransport('baileys', ['link', 'cancelLink', 'logout'], async () => {
    const { BaileysTransport } = await import('../transports/baileys/transport.js');
    const { baileysSocketFactory } = await import('../transports/baileys/socket.js');
    return new BaileysTransport({
      db,
      clock,
      box,
      socketFactory: baileysSocketFactory,
      log: log.child({ component: 'baileys' }, { level: 'warn' }),
      connectsPerSecond: cfg.FLEETCAST_WA_CONNECTS_PER_SECOND,
      ...(cfg.FLEETCAST_WA_VERSION ? { version: cfg.FLEETCAST_WA_VERSION } : {}),
      mediaPath: (key) => mediaPath(join(cfg.FLEETCAST_DATA_DIR, 'media'), key),
    });
  });
  const cloudApi = new CloudApiTransport({
    db,
    clock,
    box,
    baseUrl: cfg.FLEETCAST_CLOUD_API_URL,
    mediaPath: (key) => mediaPath(join(cfg.FLEETCAST_DATA_DIR, 'media'), key),
  });
  const transports = new Map<string, Transport>([
    ['simulator', simulator],
    ['baileys', baileys],
    ['cloud_api', cloudApi],
  ]);
  const engine = runsEngine
    ? new Engine(db, clock, transports, log, {
        dispatcher: { leaseTtlMs: cfg.FLEETCAST_LEASE_TTL_MS, maxDevices: cfg.FLEETCAST_MAX_DEVICES, role },
        maintenance: {
          retentionDays: cfg.FLEETCAST_RETENTION_DAYS,
          webhookRetentionDays: cfg.FLEETCAST_WEBHOOK_RETENTION_DAYS,
          auditRetentionDays: cfg.FLEETCAST_AUDIT_RETENTION_DAYS,
        },
        ...(cfg.FLEETCAST_OPT_OUT_WORDS.length > 0 ? { optOutWords: cfg.FLEETCAST_OPT_OUT_WORDS } : {}),
      })
    : undefined;
  engine?.events.on('error', ({ where, error }) => log.error({ err: error, where }, 'engine error'));
  // Links run where the devices are served. Before the engine: the devices it takes over at start
  // may have links to resume.
  const links = engine ? new DeviceLinkRunner(db, clock, transports, engine, log.child({ component: 'links' })) : undefined;
  await links?.start();
  // The dashboards hear what this engine sees (device status, campaign state and progress).
  const relay = engine ? new LiveRelay(db, clock, engine.events) : undefined;
  relay?.start();
  await engine?.start();
  // Webhooks go out wherever the engine runs; every such process shares the deliveries.
  const deliverer = engine
    ? new WebhookDeliverer(db, clock, log.child({ component: 'webhooks' }), {
        secrets: new WebhookSecrets(box),
        concurrency: cfg.FLEETCAST_WEBHOOK_CONCURRENCY,
        timeoutMs: cfg.FLEETCAST_WEBHOOK_TIMEOUT_MS,
        maxAttempts: cfg.FLEETCAST_WEBHOOK_MAX_ATTEMPTS,
        retryBaseMs: cfg.FLEETCAST_WEBHOOK_RETRY_BASE_MS,
        retryMaxMs: cfg.FLEETCAST_WEBHOOK_RETRY_MAX_MS,
        allowPrivateAddresses: cfg.FLEETCAST_WEBHOOK_ALLOW_PRIVATE,
      })
    : undefined;
  await deliverer?.start();
  const metrics =
    cfg.FLEETCAST_METRICS_TOKEN !== undefined || cfg.FLEETCAST_METRICS_PORT !== undefined ? new FleetcastMetrics(db, clock, { engine, deliverer }) : undefined;
  const services = createServices(db, clock, {
    log,
    importDir: join(cfg.FLEETCAST_DATA_DIR, 'imports'),
    importMaxBytes: cfg.FLEETCAST_IMPORT_MAX_MB * 1024 * 1024,
    mediaDir: join(cfg.FLEETCAST_DATA_DIR, 'media'),
    mediaAllowPrivateAddresses: cfg.FLEETCAST_MEDIA_ALLOW_PRIVATE,
    owner: `${process.pid}@${process.env.HOSTNAME ?? 'localhost'}`,
    transports: [...transports.keys()],
    auth: { sessionTtlMs: cfg.FLEETCAST_SESSION_TTL_HOURS * 3600_000 },
    engine,
    secretBox: box,
    ...(cfg.FLEETCAST_OPT_OUT_WORDS.length > 0 ? { optOutWords: cfg.FLEETCAST_OPT_OUT_WORDS } : {}),
    webhookAllowPrivateAddresses: cfg.FLEETCAST_WEBHOOK_ALLOW_PRIVATE,
  });
  // Accounts and imports are the API's business: a worker leaves them to the API processes.
  const admin = !runsApi ? null : await ensureFirstAdmin(db, clock, services.passwords, cfg.FLEETCAST_ADMIN_EMAIL, cfg.FLEETCAST_ADMIN_PASSWORD);
  if (admin) {
    log.info({ email: admin.email }, 'first admin account created');
    // The generated password goes to the terminal once and never into the log.
    if (admin.generatedPassword) {
      process.stdout.write(`\nAdmin account created: ${admin.email}\nPassword (shown once, change it after signing in): ${admin.generatedPassword}\n\n`);
    }
  }
  if (runsApi) {
    const interrupted = await services.imports.recoverInterrupted();
    if (interrupted > 0) log.warn({ imports: interrupted }, 'lead imports interrupted by a stop were marked failed');
  }
  const housekeeping = setInterval(() => {
    if (!runsApi) return;
    accountHousekeeping(db, clock, services.auth.settings.windowMs).catch((err: unknown) => log.error({ err }, 'account housekeeping failed'));
  }, 10 * 60_000);
  housekeeping.unref();
  const app = await buildServer(services, {
    logger: log,
    trustProxy: cfg.FLEETCAST_TRUST_PROXY,
    api: runsApi,
    logRequests: cfg.FLEETCAST_LOG_REQUESTS,
    metrics: metrics && cfg.FLEETCAST_METRICS_TOKEN !== undefined ? { registry: metrics, token: cfg.FLEETCAST_METRICS_TOKEN } : undefined,
    live: { figuresMs: cfg.FLEETCAST_LIVE_FIGURES_MS },
  });
  let address: string;
  let adminListener: Awaited<ReturnType<typeof startAdminListener>> | undefined;
  try {
    address = await app.listen({ port: cfg.PORT, host: cfg.HOST });
    if (metrics && cfg.FLEETCAST_METRICS_PORT !== undefined) {
      adminListener = await startAdminListener({ db, engine, metrics, token: cfg.FLEETCAST_METRICS_TOKEN, host: cfg.HOST, port: cfg.FLEETCAST_METRICS_PORT, logger: log });
      log.info({ address: adminListener.address }, 'metrics listener');
      process.stdout.write(`metrics on ${adminListener.address}\n`);
    }
  } catch (err) {
    // Nothing may keep running without its server: hand the devices back and let the error out.
    await app.close();
    await deliverer?.stop();
    await engine?.stop();
    await relay?.stop();
    await links?.stop();
    await baileys.close();
    simulator.close();
    await db.close();
    throw err;
  }
  log.info({ address, store: db.profile.kind, role }, 'fleetcast is listening');
  // One line on stdout that scripts (and tests) can wait for.
  process.stdout.write(`listening on ${address}\n`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    clearInterval(housekeeping);
    await app.close();
    await adminListener?.close();
    await services.imports.close();
    await deliverer?.stop();
    // Finishes the sends in flight, records them and hands the devices to the other workers.
    await engine?.stop();
    await relay?.stop();
    await links?.stop();
    await baileys.close();
    simulator.close();
    await db.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  return { address };
}
