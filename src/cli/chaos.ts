/** `fleetcast chaos [options]` (and `npm run chaos`): see chaos/run.ts and docs/deploy.md. */
import { parseArgs } from 'node:util';
import { machine, printTable } from './bench/report.js';
import { runChaos, type ChaosOptions } from './chaos/run.js';

const USAGE = `usage: fleetcast chaos [options]

Starts a private PostgreSQL server and several worker processes on 127.0.0.1, sends a paced
campaign per tenant through the simulator while killing workers, restarting PostgreSQL and
flapping devices, then checks the send log and the database. Exit code 0 when every check passed.

options:
  --workers N           worker processes (default 3)
  --devices N           simulated devices, 15 per tenant (default 3000)
  --messages N          messages in all (default 100000)
  --kills N             SIGKILLs of a random worker, each restarted (default 10)
  --kill-every-ms N     time between kills (default 5000)
  --restart-after-ms N  how long a killed worker stays down (default 1000)
  --lease-ttl-ms N      FLEETCAST_LEASE_TTL_MS of the workers (default 5000)
  --gap-ms MIN-MAX      each device's random gap between sends (default 1000-3000)
  --flap-share X        share of devices that keep dropping their connection (default 0.1)
  --capped-share X      share of tenants whose devices have an hourly cap below their load (default 0.1)
  --hourly-cap N        that cap (default 20)
  --no-db-restart       do not restart PostgreSQL
  --timeout-s N         give up after this long (default 900)
  --seed N              which workers are killed (default 1)
  --json                print one JSON object instead of a table
`;

export async function chaosCommand(args: string[]): Promise<number> {
  let v;
  try {
    ({ values: v } = parseArgs({
      args,
      options: {
        workers: { type: 'string', default: '3' },
        devices: { type: 'string', default: '3000' },
        messages: { type: 'string', default: '100000' },
        kills: { type: 'string', default: '10' },
        'kill-every-ms': { type: 'string', default: '5000' },
        'restart-after-ms': { type: 'string', default: '1000' },
        'lease-ttl-ms': { type: 'string', default: '5000' },
        'gap-ms': { type: 'string', default: '1000-3000' },
        'flap-share': { type: 'string', default: '0.1' },
        'capped-share': { type: 'string', default: '0.1' },
        'hourly-cap': { type: 'string', default: '20' },
        'no-db-restart': { type: 'boolean', default: false },
        'timeout-s': { type: 'string', default: '900' },
        seed: { type: 'string', default: '1' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`fleetcast chaos: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const errors: string[] = [];
  const whole = (name: string, min: number): number => {
    const raw = (v as Record<string, unknown>)[name] as string;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) errors.push(`--${name} must be a whole number >= ${min}`);
    return n;
  };
  const share = (name: string): number => {
    const n = Number((v as Record<string, unknown>)[name]);
    if (!(n >= 0 && n <= 1)) errors.push(`--${name} must be between 0 and 1`);
    return n;
  };
  const gap = /^(\d+)-(\d+)$/.exec(v['gap-ms']);
  if (!gap || Number(gap[1]) > Number(gap[2])) errors.push('--gap-ms must be MIN-MAX in milliseconds, MIN <= MAX');
  const o: ChaosOptions = {
    workers: whole('workers', 1),
    devices: whole('devices', 1),
    messages: whole('messages', 1),
    kills: whole('kills', 0),
    killEveryMs: whole('kill-every-ms', 100),
    restartAfterMs: whole('restart-after-ms', 0),
    leaseTtlMs: whole('lease-ttl-ms', 1000),
    minGapMs: gap ? Number(gap[1]) : 0,
    maxGapMs: gap ? Number(gap[2]) : 0,
    flapShare: share('flap-share'),
    cappedShare: share('capped-share'),
    hourlyCap: whole('hourly-cap', 1),
    restartDatabase: !v['no-db-restart'],
    timeoutMs: whole('timeout-s', 10) * 1000,
    seed: whole('seed', 0),
    progress: !v.json,
  };
  if (errors.length > 0) {
    process.stderr.write(`fleetcast chaos: ${errors.join('; ')}\n\n${USAGE}`);
    return 2;
  }
  const result = await runChaos(o);
  const out = { ...result, ...machine() };
  if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
  else printTable(out);
  return result.passed ? 0 : 1;
}
