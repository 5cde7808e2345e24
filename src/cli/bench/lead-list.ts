/**
 * `fleetcast bench lead-list`: filtered lead listings on a 1,000,000-lead tenant, through the real
 * HTTP server, under a local load generator (autocannon) on 127.0.0.1.
 *
 * Two processes: this one builds the tenant (not timed) and then drives the load; a fresh process
 * opens that database and serves the API, as `fleetcast serve` would. Keeping the generator out of
 * the server's process keeps its CPU out of the server's latency (the machine has 2 cores: the
 * figures are of both sharing them, which is the honest setting for a single box).
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { pino } from 'pino';
import { buildServer } from '../../api/server.js';
import { SystemClock } from '../../engine/clock.js';
import { createServices } from '../../services/index.js';
import { migrate } from '../../store/migrate.js';
import { disposeScratch, newScratchLocation, openScratch, type ScratchLocation } from '../../store/scratch.js';
import { insertDevices } from '../../store/sql/devices.js';
import { generateLeadPopulation } from '../../store/sql/leads.js';
import { insertUser } from '../../store/sql/users.js';
import { machine, printTable, rssSampler } from './report.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const USAGE = `usage: fleetcast bench lead-list [--leads N] [--seconds S] [--connections C] [--db pglite|postgres] [--json]
  --leads N        leads of the one tenant (default 1000000)
  --seconds S      measured load duration (default 20), after a 3 s warm-up
  --connections C  concurrent HTTP connections (default 8)
`;

const NICHES = ['fitness', 'yoga', 'diet', 'running', 'boxing', 'cycling', 'swimming', 'pilates'];
const DEVICES = 15;

export async function benchLeadList(args: string[]): Promise<number> {
  if (args[0] === '--serve') return serveWorker(args[1] ?? '{}');
  let v;
  try {
    v = parseArgs({
      args,
      options: {
        leads: { type: 'string', default: '1000000' },
        seconds: { type: 'string', default: '20' },
        connections: { type: 'string', default: '8' },
        db: { type: 'string', default: 'pglite' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`fleetcast bench lead-list: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const leads = Number(v.leads);
  const seconds = Number(v.seconds);
  const connections = Number(v.connections);
  if (!Number.isInteger(leads) || leads < 1000 || !(seconds > 0) || !Number.isInteger(connections) || connections < 1 || (v.db !== 'pglite' && v.db !== 'postgres')) {
    process.stderr.write(`fleetcast bench lead-list: bad arguments\n\n${USAGE}`);
    return 2;
  }
  const say = (s: string) => !v.json && process.stderr.write(s + '\n');
  const loc = newScratchLocation(v.db as 'pglite' | 'postgres', 'leadlist');
  try {
    const t0 = Date.now();
    const { token, deviceIds, middleId } = await buildTenant(loc, leads);
    say(`setup: ${leads} leads in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    const server = await startServer(loc);
    try {
      const paths = [
        '/api/v1/leads?limit=50',
        '/api/v1/leads?status=customer&niche=fitness&limit=50',
        '/api/v1/leads?niche=yoga,pilates&limit=50',
        `/api/v1/leads?device_id=${deviceIds[3]}&limit=50`,
        `/api/v1/leads?status=prospect&cursor=${middleId}&limit=50`,
        '/api/v1/leads?pool=true&niche=boxing&limit=50',
      ];
      const run = (duration: number) =>
        autocannon({
          url: `http://127.0.0.1:${server.port}`,
          connections,
          duration,
          headers: { authorization: `Bearer ${token}` },
          requests: paths.map((path) => ({ method: 'GET' as const, path })),
        });
      await run(3);
      say(`measuring ${seconds}s with ${connections} connections over ${paths.length} filters`);
      const r = await run(seconds);
      const serverFigures = await server.stop();
      const out = {
        benchmark: 'lead-list',
        db: v.db,
        leads,
        connections,
        seconds,
        requests: r.requests.total,
        requestsPerSecond: Math.round(r.requests.average),
        non2xx: r.non2xx,
        errors: r.errors,
        latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
        p99TargetMs: 50,
        met: r.latency.p99 <= 50 && r.non2xx === 0 && r.errors === 0,
        serverPeakRssMB: serverFigures.peakRssMB,
        filters: paths,
        ...machine(),
      };
      if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
      else printTable(out);
      return out.met ? 0 : 1;
    } finally {
      await server.stop().catch(() => undefined);
    }
  } finally {
    await disposeScratch(loc);
  }
}

async function buildTenant(loc: ScratchLocation, leads: number): Promise<{ token: string; deviceIds: number[]; middleId: number }> {
  const clock = new SystemClock();
  const db = await openScratch(loc);
  try {
    const now = new Date(clock.now());
    await migrate(db, now);
    const userId = await insertUser(db, { email: 'bench@example.test', timeZone: 'Asia/Kuala_Lumpur', defaultCountry: 'MY' }, now);
    const deviceIds = await insertDevices(db, userId, Array.from({ length: DEVICES }, (_, i) => ({ name: `d${i}`, minDelayMs: 5000, maxDelayMs: 15000 })), now);
    const chunk = 200_000;
    for (let start = 0; start < leads; start += chunk) {
      await generateLeadPopulation(db, userId, deviceIds, Math.min(chunk, leads - start), `+6012${String(start / chunk)}`, NICHES, now);
    }
    await db.exec('vacuum analyze');
    const dir = mkdtempSync(join(tmpdir(), 'fleetcast-bench-imports-'));
    const services = createServices(db, clock, { log: pino({ level: 'silent' }), importDir: dir, owner: 'bench', transports: ['simulator'] });
    const token = (await services.tokens.create({ userId }, { name: 'bench' })).token;
    await services.imports.close();
    rmSync(dir, { recursive: true, force: true });
    const mid = await db.query<{ id: number }>(`select id from leads where user_id = $1 order by id offset $2 limit 1`, [userId, Math.floor(leads / 2)]);
    return { token, deviceIds, middleId: mid.rows[0]!.id };
  } finally {
    await db.close();
  }
}

function startServer(loc: ScratchLocation): Promise<{ port: number; stop(): Promise<{ peakRssMB: number }> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [process.argv[1]!, 'bench', 'lead-list', '--serve', JSON.stringify({ loc })], { stdio: ['pipe', 'pipe', 'inherit'] });
    let buf = '';
    let figures: Promise<{ peakRssMB: number }> | undefined;
    child.on('error', reject);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /^port (\d+)$/m.exec(buf);
      if (m && !figures) {
        figures = new Promise((done) => child.on('exit', () => done(JSON.parse(/^figures (.*)$/m.exec(buf)?.[1] ?? '{"peakRssMB":0}') as { peakRssMB: number })));
        const f = figures;
        resolve({
          port: Number(m[1]),
          stop: () => {
            child.stdin.end();
            return f;
          },
        });
      }
    });
    child.on('exit', (code) => !figures && reject(new Error(`lead-list server exited with ${code}`)));
  });
}

/** The server half: serve the prepared database until the parent closes stdin. */
async function serveWorker(spec: string): Promise<number> {
  const { loc } = JSON.parse(spec) as { loc: ScratchLocation };
  const clock = new SystemClock();
  const db = await openScratch(loc);
  const dir = mkdtempSync(join(tmpdir(), 'fleetcast-bench-imports-'));
  const services = createServices(db, clock, { log: pino({ level: 'silent' }), importDir: dir, owner: 'bench', transports: ['simulator'] });
  const app = await buildServer(services);
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const rss = rssSampler();
  process.stdout.write(`port ${new URL(address).port}\n`);
  await new Promise<void>((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.on('close', resolve);
    process.stdin.resume();
  });
  const peak = rss.stop();
  await app.close();
  await services.imports.close();
  await db.close();
  rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`figures ${JSON.stringify({ peakRssMB: peak.rss })}\n`);
  return 0;
}
