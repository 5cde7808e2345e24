/**
 * `fleetcast demo [--data-dir DIR] [--password PW] [--port N]`: Fleetcast with everything to look
 * at and no phone needed. It runs `serve` on the embedded database in its own data directory
 * (default ./data-demo, never the real ./data), with the simulator as every device's transport,
 * after seeding, once, a demo account:
 * - 5 simulated devices, linked (they come online as soon as the engine takes them) with gaps of
 *   2-6 s between two sends, so campaigns move while you watch;
 * - 500 leads over those devices with niches, statuses and triggers;
 * - a campaign to the `vip` niche that starts at once and is finished a minute later, and one
 *   scheduled for tomorrow 10:00 (the account's zone);
 * - a chain of two sequences (cold -> warm), the leads tagged `cold` enrolled in the first.
 * Seeding again finds the account's devices and adds nothing; the password is set on every start
 * (the given one, or a new one printed), so the printed credentials always work.
 *
 * A new device links through the normal QR flow: POST /api/v1/devices with `linked: false`, POST
 * /devices/{id}/link, then POST /devices/{id}/link/simulate-scan plays the phone.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DateTime } from 'luxon';
import { ConfigError } from '../config.js';
import type { Clock } from '../engine/clock.js';
import type { Actor } from '../services/actor.js';
import type { PasswordHasher } from '../services/accounts/passwords.js';
import type { Services } from '../api/types.js';
import type { Db } from '../store/db.js';
import { findLoginUser, insertUser, setPasswordHash } from '../store/sql/users.js';

export const DEMO_EMAIL = 'demo@fleetcast.local';
const DEMO_ZONE = 'Asia/Kuala_Lumpur';
const DEVICES = 5;
const LEADS = 500;
const NICHES = ['property', 'insurance', 'education', 'fitness', 'travel'];
const STATUSES = ['prospect', 'prospect', 'prospect', 'customer', 'lost'];
const FIRST = ['Aisyah', 'Ben', 'Chen Wei', 'Devi', 'Farid', 'Grace', 'Hafiz', 'Ivy', 'Jun', 'Kumar', 'Lina', 'Mei Ling', 'Nabil', 'Priya', 'Ravi', 'Siti'];
const LAST = ['Tan', 'Lim', 'Abdullah', 'Raj', 'Wong', 'Ismail', 'Lee', 'Nair', 'Ong', 'Yusof'];

export interface DemoArgs {
  dataDir: string;
  password?: string | undefined;
  port?: number | undefined;
}

export function parseDemoArgs(args: string[]): DemoArgs {
  let values: { 'data-dir'?: string | undefined; password?: string | undefined; port?: string | undefined };
  try {
    ({ values } = parseArgs({ args, options: { 'data-dir': { type: 'string' }, password: { type: 'string' }, port: { type: 'string' } }, strict: true }));
  } catch (err) {
    throw new ConfigError(`demo: ${(err as Error).message}`);
  }
  if (values.password !== undefined && values.password.length < 10) throw new ConfigError('demo: --password must be at least 10 characters');
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new ConfigError('demo: --port must be a port number');
  return { dataDir: resolve(values['data-dir'] ?? './data-demo'), password: values.password, port };
}

export interface SeedResult {
  userId: number;
  password: string;
  /** False when the account already had its devices: nothing else was added. */
  seeded: boolean;
}

/** The demo lead number `i` (0-based); the simulator sends to no one. */
function demoPhone(i: number): string {
  return `+6012${4_000_000 + i}`;
}

/** Creates the demo account and its data once; sets its password on every call. */
export async function seedDemo(db: Db, clock: Clock, services: Services & { passwords: PasswordHasher }, password?: string): Promise<SeedResult> {
  const pw = password ?? randomBytes(9).toString('base64url');
  const now = new Date(clock.now());
  const hash = await services.passwords.hash(pw);
  const existing = await findLoginUser(db, DEMO_EMAIL);
  let userId: number;
  if (existing) {
    userId = existing.id;
    await setPasswordHash(db, userId, hash, now);
    await services.auth.changed();
  } else {
    userId = await insertUser(db, { email: DEMO_EMAIL, name: 'Demo', role: 'admin', timeZone: DEMO_ZONE, defaultCountry: 'MY', passwordHash: hash, parentId: null }, now);
  }
  const actor: Actor = { userId, tenantId: userId, email: DEMO_EMAIL, role: 'admin', teamMember: false, deviceScope: null, timeZone: DEMO_ZONE, defaultCountry: 'MY' };
  if ((await services.devices.list(actor, { limit: 1 })).length > 0) return { userId, password: pw, seeded: false };

  const devices: number[] = [];
  for (let i = 1; i <= DEVICES; i++) {
    const d = await services.devices.create(actor, { name: `Demo phone ${i}`, phone: `+6012300010${i}`, transport: 'simulator', min_delay_ms: 2000, max_delay_ms: 6000, hourly_limit: 600, daily_limit: 5000 });
    devices.push(d.id);
  }
  // The sequences first: leads created with their trigger are enrolled as they arrive.
  const warm = await services.sequences.create(actor, { name: 'Warm follow-up', trigger: 'warm' });
  await services.sequences.addStep(actor, warm.id, { delay: { hours: 4 }, body: 'Hi {name}, still interested? Here is what our customers say.' });
  await services.sequences.addStep(actor, warm.id, { delay: { days: 2 }, send_time: '10:00', body: 'A last note from us, {name}: reply any time.' });
  const cold = await services.sequences.create(actor, { name: 'Cold intro', trigger: 'cold', next_sequence_id: warm.id });
  await services.sequences.addStep(actor, cold.id, { delay: { minutes: 2 }, body: 'Hello {first_name}! Thanks for your interest in {interest:our offers}.' });
  await services.sequences.addStep(actor, cold.id, { delay: { days: 1 }, send_time: '09:30', body: '{Hi|Hello} {name}, a quick follow-up with the details.' });

  for (let i = 0; i < LEADS; i++) {
    const niche = NICHES[i % NICHES.length]!;
    const niches = i % 20 === 0 ? [niche, 'vip'] : [niche];
    const triggers = i % 10 === 3 ? ['cold'] : i % 25 === 7 ? ['webinar'] : [];
    await services.leads.upsert(actor, {
      name: `${FIRST[i % FIRST.length]} ${LAST[Math.floor(i / FIRST.length) % LAST.length]}`,
      phone: demoPhone(i),
      device_id: devices[i % devices.length]!,
      niches,
      status: STATUSES[i % STATUSES.length],
      triggers,
      source: i % 3 === 0 ? 'website' : i % 3 === 1 ? 'facebook' : 'referral',
      attributes: { interest: niche, city: ['Kuala Lumpur', 'Penang', 'Johor Bahru', 'Ipoh'][i % 4] },
    });
  }

  await services.campaigns.create(actor, {
    name: 'VIP welcome',
    body: '{Hi|Hello} {name}! As one of our VIPs you get early access this week.',
    audience: { niches: ['vip'] },
    schedule: true,
  });
  const tomorrow = DateTime.fromJSDate(now, { zone: DEMO_ZONE }).plus({ days: 1 }).set({ hour: 10, minute: 0, second: 0, millisecond: 0 });
  await services.campaigns.create(actor, {
    name: 'Property open day',
    body: 'Hi {name}, join our property open day this Saturday. Reply YES to book a slot.',
    audience: { niches: ['property'], statuses: ['prospect'] },
    starts_at: tomorrow.toUTC().toISO()!,
    window: { start: '09:00', end: '18:00' },
    schedule: true,
  });
  return { userId, password: pw, seeded: true };
}

export async function demoCommand(rawArgs: string[]): Promise<number> {
  const args = parseDemoArgs(rawArgs);
  // The demo is its own installation: the embedded database in its own directory, whatever the
  // environment or ./.env point the real server at.
  process.env.FLEETCAST_DATA_DIR = args.dataDir;
  delete process.env.DATABASE_URL;
  delete process.env.FLEETCAST_DB_SCHEMA;
  process.env.FLEETCAST_ROLE = 'all';
  if (args.port !== undefined) process.env.PORT = String(args.port);
  const { openStore } = await import('../store/open.js');
  const { migrate } = await import('../store/migrate.js');
  const { createServices } = await import('../services/index.js');
  const { SystemClock } = await import('../engine/clock.js');
  const { createLogger } = await import('../logger.js');
  const { loadConfig } = await import('../config.js');
  const { join } = await import('node:path');
  const cfg = loadConfig();
  const clock = new SystemClock();
  const db = await openStore({ dataDir: args.dataDir, pgliteCacheMb: cfg.FLEETCAST_PGLITE_CACHE_MB });
  let seed: SeedResult;
  try {
    await migrate(db, new Date(clock.now()));
    const services = createServices(db, clock, {
      log: createLogger('warn'),
      importDir: join(args.dataDir, 'imports'),
      mediaDir: join(args.dataDir, 'media'),
      owner: `demo-${process.pid}`,
      transports: ['simulator', 'baileys', 'cloud_api'],
    });
    seed = await seedDemo(db, clock, services, args.password);
    await services.imports.close();
  } finally {
    await db.close();
  }
  const { serve } = await import('./serve.js');
  const { address } = await serve();
  process.stdout.write(
    `\nFleetcast demo${seed.seeded ? ' (sample data created)' : ''}: ${address.replace('0.0.0.0', '127.0.0.1')}/\n` +
      `  e-mail:   ${DEMO_EMAIL}\n  password: ${seed.password}\n  data:     ${args.dataDir}\n\n`,
  );
  return -1;
}
