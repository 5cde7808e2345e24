/**
 * `fleetcast bench campaign`: how long starting a campaign of N leads takes, materialising its
 * outbox (personalised, with spintax) chunk by chunk as the engine does, and the longest any one
 * chunk held the store.
 *
 * Untimed setup in this process: a database with the schema, one tenant with `--devices` devices
 * and N leads spread over them (names, niches, an attribute), and a scheduled campaign. Timed in a
 * fresh process, as `fleetcast serve` would run it: open the store, start the campaign, write
 * every chunk, then check the rows.
 */
import { SystemClock } from '../../engine/clock.js';
import { DEFAULT_CHUNK_LEADS, materialiseNextChunk } from '../../engine/materialise.js';
import { migrate } from '../../store/migrate.js';
import { openStore } from '../../store/open.js';
import { disposeScratch, newScratchLocation, type ScratchLocation } from '../../store/scratch.js';
import { insertCampaign, startCampaignNow } from '../../store/sql/campaigns.js';
import { insertDevices } from '../../store/sql/devices.js';
import { generateLeads } from '../../store/sql/leads.js';
import { insertUser } from '../../store/sql/users.js';
import { tmpdir } from 'node:os';
import { machine, parseBenchArgs, printTable, rssSampler, runBenchChild } from './report.js';

const USAGE = `usage: fleetcast bench campaign [--leads N] [--devices N] [--db pglite|postgres] [--chunk N] [--json]

Starts a campaign of N leads (untimed setup), then times its materialisation in a fresh process.
  --leads N       leads in the audience (default 1000000)
  --devices N     devices the leads belong to (default 3000)
  --db            pglite (default, a temporary data directory) or postgres (DATABASE_URL, or
                  postgresql://postgres@127.0.0.1:5432/postgres), in a scratch schema
  --chunk N       leads per chunk (default ${DEFAULT_CHUNK_LEADS})
  --json          print one JSON object instead of a table

Targets: 1,000,000 leads in <= 10 s on PostgreSQL and <= 30 s on PGlite.
`;

const TARGETS = { postgres: 10, pglite: 30 } as const;
const BODY = 'Hi {first_name:there}, {Hello|Hey|Good day}! Our {city:local} studio has a {spring|new} offer for you. Reply STOP to opt out.';

interface WorkerSpec {
  loc: ScratchLocation;
  campaignId: number;
  leads: number;
  chunk: number;
}

function storeConfig(loc: ScratchLocation) {
  return loc.kind === 'pglite' ? { dataDir: loc.dir } : { databaseUrl: loc.url, schema: loc.schema, dataDir: tmpdir() };
}

export async function benchCampaign(args: string[]): Promise<number> {
  if (args[0] === '--worker') return campaignWorker(args[1] ?? '{}');
  const parsed = parseBenchArgs('campaign', USAGE, args, { leads: 1_000_000, devices: 3000, chunk: DEFAULT_CHUNK_LEADS });
  if (!parsed.ok) return parsed.exitCode;
  const { leads, devices, chunk } = parsed.numbers as { leads: number; devices: number; chunk: number };
  const kind = parsed.db;
  const v = { json: parsed.json };
  const say = (s: string) => !v.json && process.stderr.write(`${s}\n`);
  const loc = newScratchLocation(kind, 'bench_campaign');
  try {
    const t0 = Date.now();
    const now = new Date();
    const db = await openStore(storeConfig(loc));
    let campaignId: number;
    try {
      await migrate(db, now);
      const userId = await insertUser(db, { email: 'bench-campaign@example.test', timeZone: 'Asia/Kuala_Lumpur' }, now);
      const deviceIds = await insertDevices(db, userId, Array.from({ length: devices }, (_, i) => ({ name: `bench ${i + 1}`, minDelayMs: 5000, maxDelayMs: 15000 })), now);
      for (let made = 0; made < leads; made += 200_000) {
        await generateLeads(db, userId, deviceIds, Math.min(200_000, leads - made), '+6011', made, now, ['fitness'], 'prospect');
      }
      // Every third lead has a city, so the fallback is exercised too.
      await db.query(`update leads set attributes = jsonb_build_object('city', 'Penang') where user_id = $1 and id % 3 = 0`, [userId]);
      campaignId = await insertCampaign(db, userId, { name: 'bench', body: BODY, startsAt: now, audience: { niches: ['fitness'] } }, now);
      if (kind === 'pglite') await db.exec('checkpoint');
      await db.exec('vacuum analyze');
    } finally {
      await db.close();
    }
    say(`setup: ${leads.toLocaleString('en')} leads over ${devices} devices in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const result = await runBenchChild(['campaign', '--worker', JSON.stringify({ loc, campaignId, leads, chunk } satisfies WorkerSpec)], 'campaign worker');
    const seconds = result.seconds as number;
    const out = {
      benchmark: 'campaign',
      db: kind,
      leads,
      devices,
      chunk,
      ...result,
      target: { seconds: TARGETS[kind], met: seconds <= TARGETS[kind] },
      ...machine(),
    };
    if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
    else printTable(out);
    return result.verified === true ? 0 : 1;
  } finally {
    await disposeScratch(loc);
  }
}

async function campaignWorker(specText: string): Promise<number> {
  const spec = JSON.parse(specText) as WorkerSpec;
  const clock = new SystemClock();
  const db = await openStore(storeConfig(spec.loc));
  try {
    const memory = rssSampler();
    const started = clock.now();
    await startCampaignNow(db, spec.campaignId, new Date(started), ['draft', 'scheduled'], spec.chunk);
    let chunks = 0;
    let longest = 0;
    let total = 0;
    // As many writers as the engine's starter runs on this store (PostgreSQL: 2, PGlite: 1).
    const writers = Math.max(1, db.profile.statementParallelism);
    await Promise.all(
      Array.from({ length: writers }, async () => {
        for (;;) {
          const c0 = clock.now();
          const r = await materialiseNextChunk(db, spec.campaignId, clock.now());
          if (r === null) return;
          if (r.kind === 'busy') {
            await new Promise((res) => setTimeout(res, 10));
            continue;
          }
          if (r.kind === 'finished') {
            total = r.total;
            if (r.added > 0) chunks++;
            longest = Math.max(longest, clock.now() - c0);
            return;
          }
          chunks++;
          longest = Math.max(longest, clock.now() - c0);
        }
      }),
    );
    const seconds = (clock.now() - started) / 1000;
    const peak = memory.stop();
    const check = await db.query<{ n: number; personalised: number; variants: number; leftover: number }>(
      `select count(*)::int as n,
              count(*) filter (where body like 'Hi Lead, %' and body not like '%{%')::int as personalised,
              count(distinct split_part(body, '!', 1) like '%Hello' )::int as variants,
              count(*) filter (where body like '%{%')::int as leftover
         from messages where campaign_id = $1`,
      [spec.campaignId],
    );
    const row = check.rows[0]!;
    const verified = row.n === spec.leads && total === spec.leads && row.personalised === spec.leads && row.leftover === 0 && row.variants === 2;
    process.stdout.write(
      JSON.stringify({
        seconds: Math.round(seconds * 100) / 100,
        rowsPerSecond: Math.round(spec.leads / seconds),
        chunks,
        longestChunkSeconds: Math.round(longest) / 1000,
        peakRssMB: peak.rss,
        peakHeapMB: peak.heap,
        messages: row.n,
        verified,
      }) + '\n',
    );
    return 0;
  } finally {
    await db.close();
  }
}
