/** `fleetcast serve`: the HTTP server with the engine inside it. */
import { buildServer } from '../api/server.js';
import { loadConfig } from '../config.js';
import { SystemClock } from '../engine/clock.js';
import { Engine } from '../engine/engine.js';
import { createLogger } from '../logger.js';
import { migrate } from '../store/migrate.js';
import { openStore } from '../store/open.js';
import { SimulatorTransport } from '../transports/simulator.js';
import type { Transport } from '../transports/transport.js';

export async function serve(): Promise<void> {
  const cfg = loadConfig();
  const log = createLogger(cfg.FLEETCAST_LOG_LEVEL);
  const clock = new SystemClock();
  const db = await openStore({ databaseUrl: cfg.DATABASE_URL, dataDir: cfg.FLEETCAST_DATA_DIR, schema: cfg.FLEETCAST_DB_SCHEMA });
  const applied = await migrate(db, new Date(clock.now()));
  if (applied.length > 0) log.info({ applied }, 'migrations applied');
  const latency = cfg.FLEETCAST_SIMULATOR_LATENCY_MS;
  const simulator = new SimulatorTransport({
    clock,
    seed: process.pid,
    ...(latency > 0 ? { latency: { minMs: Math.floor(latency / 2), maxMs: latency } } : {}),
    ...(cfg.FLEETCAST_SIMULATOR_LOG ? { logFile: cfg.FLEETCAST_SIMULATOR_LOG } : {}),
    tag: `pid-${process.pid}`,
  });
  const transports = new Map<string, Transport>([['simulator', simulator]]);
  const engine = new Engine(db, clock, transports, log, {
    dispatcher: { leaseTtlMs: cfg.FLEETCAST_LEASE_TTL_MS, maxDevices: cfg.FLEETCAST_MAX_DEVICES },
    maintenance: { retentionDays: cfg.FLEETCAST_RETENTION_DAYS },
  });
  engine.events.on('error', ({ where, error }) => log.error({ err: error, where }, 'engine error'));
  await engine.start();
  const app = buildServer(engine);
  let address: string;
  try {
    address = await app.listen({ port: cfg.PORT, host: cfg.HOST });
  } catch (err) {
    // Nothing may keep running without its server: hand the devices back and let the error out.
    await engine.stop();
    simulator.close();
    await db.close();
    throw err;
  }
  log.info({ address, store: db.profile.kind }, 'fleetcast is listening');
  // One line on stdout that scripts (and tests) can wait for.
  process.stdout.write(`listening on ${address}\n`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    await app.close();
    await engine.stop();
    simulator.close();
    await db.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}
