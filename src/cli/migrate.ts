import { loadConfig } from '../config.js';
import { SystemClock } from '../engine/clock.js';
import { migrate } from '../store/migrate.js';
import { openStore } from '../store/open.js';

export async function migrateCommand(): Promise<number> {
  const cfg = loadConfig();
  const db = await openStore({ databaseUrl: cfg.DATABASE_URL, dataDir: cfg.FLEETCAST_DATA_DIR, schema: cfg.FLEETCAST_DB_SCHEMA });
  try {
    const applied = await migrate(db, new Date(new SystemClock().now()));
    process.stdout.write(applied.length ? `applied migrations ${applied.join(', ')}\n` : 'database is up to date\n');
    return 0;
  } finally {
    await db.close();
  }
}
