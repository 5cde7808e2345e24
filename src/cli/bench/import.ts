/**
 * `fleetcast bench import`: how long a CSV lead import of N rows takes, and how much memory the
 * process holds while it runs.
 *
 * Untimed setup in this process: a realistic CSV (mixed national and international formats for
 * Malaysia, a few % bad and duplicate phones, extra columns) in a temporary directory, and a
 * database with the schema. Timed in a fresh process, as a server would run it: open the store the
 * way `fleetcast serve` does, create a user and the job row, import the file through the same
 * function the import job uses, then check the rows.
 *
 * Why the data directory is created here and not in the timed process: on PGlite, the process
 * that runs initdb keeps ~780 MB resident afterwards (see store/pglite.ts), which would be the
 * peak RSS whatever the import did. A server runs initdb once, at its first start; every import
 * after that runs in a process that opened an existing directory, which is what is measured.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { SystemClock } from '../../engine/clock.js';
import { BATCH_ROWS, importLeadsFile } from '../../services/leads/import/run.js';
import { migrate } from '../../store/migrate.js';
import { openStore } from '../../store/open.js';
import { DEFAULT_PGLITE_CACHE_MB } from '../../store/pglite.js';
import { disposeScratch, newScratchLocation, type ScratchLocation } from '../../store/scratch.js';
import { insertImport, saveImportProgress } from '../../store/sql/lead-imports.js';
import { insertUser } from '../../store/sql/users.js';
import { machine, printTable, runBenchChild } from './report.js';

const USAGE = `usage: fleetcast bench import [--rows N] [--db pglite|postgres] [--json]

Generates a CSV of N leads (untimed), then times its import in a fresh process.
  --rows N        rows in the file (default 1000000)
  --db            pglite (default, a temporary data directory opened as \`fleetcast serve\` opens
                  one) or postgres (DATABASE_URL, or postgresql://postgres@127.0.0.1:5432/postgres),
                  in a scratch schema
  --batch N       rows per INSERT (default ${BATCH_ROWS})
  --pglite-cache-mb N
                  PGlite's buffer cache in MB (default ${DEFAULT_PGLITE_CACHE_MB}, as FLEETCAST_PGLITE_CACHE_MB)
  --json          print one JSON object instead of a table
  --help          this text

Targets: 1,000,000 rows on PGlite in <= 60 s with a peak RSS <= 300 MB.
`;

const TARGET_SECONDS = 60;
const TARGET_RSS_MB = 300;

interface WorkerSpec {
  loc: ScratchLocation;
  cacheMb: number;
  file: string;
  rows: number;
  batch: number;
}

export async function benchImport(args: string[]): Promise<number> {
  // The timed half, in the fresh process runWorker starts (`bench import --worker <spec>`).
  if (args[0] === '--worker') return importWorker(args[1] ?? '{}');
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        rows: { type: 'string', default: '1000000' },
        db: { type: 'string', default: 'pglite' },
        batch: { type: 'string', default: String(BATCH_ROWS) },
        'pglite-cache-mb': { type: 'string', default: String(DEFAULT_PGLITE_CACHE_MB) },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`fleetcast bench import: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const rows = Number(v.rows);
  const batch = Number(v.batch);
  const cacheMb = Number(v['pglite-cache-mb']);
  const errors: string[] = [];
  if (!Number.isInteger(cacheMb) || cacheMb < 8) errors.push('--pglite-cache-mb must be a whole number >= 8');
  if (!Number.isInteger(rows) || rows < 1) errors.push('--rows must be a whole number >= 1');
  if (!Number.isInteger(batch) || batch < 1) errors.push('--batch must be a whole number >= 1');
  if (v.db !== 'pglite' && v.db !== 'postgres') errors.push('--db must be pglite or postgres');
  if (errors.length > 0) {
    process.stderr.write(`fleetcast bench import: ${errors.join('; ')}\n\n${USAGE}`);
    return 2;
  }
  const say = (s: string) => !v.json && process.stderr.write(`${s}\n`);
  const work = mkdtempSync(join(tmpdir(), 'fleetcast-bench-import-'));
  const loc = newScratchLocation(v.db as 'pglite' | 'postgres', 'bench_import');
  try {
    const file = join(work, 'leads.csv');
    const t0 = Date.now();
    const expected = await writeCsv(file, rows);
    say(`setup: ${rows.toLocaleString('en')} rows, ${(statSync(file).size / 2 ** 20).toFixed(1)} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const db = await openStore(storeConfig(loc));
    try {
      await migrate(db, new Date());
    } finally {
      await db.close();
    }
    const result = await runWorker({ loc, cacheMb, file, rows, batch });
    const verified = result.verified === true && result.inserted === expected.unique && result.failed === expected.bad;
    const out = {
      benchmark: 'import',
      db: v.db,
      rows,
      fileMB: Math.round((statSync(file).size / 2 ** 20) * 10) / 10,
      batch,
      ...(v.db === 'pglite' ? { pgliteCacheMB: cacheMb } : {}),
      ...result,
      expected: { inserted: expected.unique, failed: expected.bad },
      verified,
      targets: {
        seconds: TARGET_SECONDS,
        rssMB: TARGET_RSS_MB,
        secondsMet: typeof result.seconds === 'number' && result.seconds <= TARGET_SECONDS,
        rssMet: typeof result.peakRssMB === 'number' && result.peakRssMB <= TARGET_RSS_MB,
      },
      ...machine(),
    };
    if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
    else printTable(out);
    return verified ? 0 : 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
    await disposeScratch(loc);
  }
}

function storeConfig(loc: ScratchLocation, cacheMb?: number) {
  return loc.kind === 'pglite' ? { dataDir: loc.dir, pgliteCacheMb: cacheMb } : { databaseUrl: loc.url, schema: loc.schema, dataDir: tmpdir() };
}

/** A deterministic generator (mulberry32), so every run imports the same file. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST = ['Ahmad', 'Siti', 'Tan', 'Lee', 'Raj', 'Mei Ling', 'Nurul', 'John', 'Aisyah', 'Kumar', 'Farah', 'Wei Jie'];
const LAST = ['Abdullah', 'Lim', 'Wong', 'Rahman', 'Pillai', 'Ng', 'Ismail', 'Chong', 'Tan', 'Hassan'];
const NICHES = ['fitness', 'beauty', 'property', 'insurance', 'education', 'food', 'travel', 'automotive'];
const STATUSES = ['prospect', 'prospect', 'prospect', 'warm', 'customer'];
const CITIES = ['Kuala Lumpur', 'Penang', 'Johor Bahru', 'Ipoh', 'Kuching', 'Kota Kinabalu', 'Melaka'];
const PREFIXES = ['12', '13', '16', '17', '19'];

/** The i-th distinct Malaysian mobile number, written the way row `style` writes numbers. */
function phoneOf(i: number, style: number): string {
  const p = PREFIXES[i % PREFIXES.length]!;
  // 7919 is prime to 8,000,000: i -> digits is one-to-one below 8M rows per prefix.
  const d = String(2_000_000 + ((i * 7919) % 8_000_000));
  switch (style % 6) {
    case 0:
      return `0${p}-${d.slice(0, 3)} ${d.slice(3)}`;
    case 1:
      return `+60 ${p}-${d.slice(0, 3)} ${d.slice(3)}`;
    case 2:
      return `+60${p}${d}`;
    case 3:
      return `0${p}${d}`;
    case 4:
      return `0060${p}${d}`;
    default:
      return `(0${p}) ${d}`;
  }
}

/**
 * Writes the file; returns how many rows should be imported and refused. About 5 % are bad:
 * 1.5 % "n/a", 1 % too short, 0.5 % no phone, 2 % a phone an earlier row has (in another format).
 */
async function writeCsv(path: string, rows: number): Promise<{ unique: number; bad: number }> {
  const rnd = random(20260306);
  const out = createWriteStream(path);
  let buf = 'Full Name,WhatsApp,Category,Lead Status,City,Company\r\n';
  let unique = 0;
  let bad = 0;
  for (let r = 0; r < rows; r++) {
    const x = rnd();
    let phone: string;
    if (x < 0.015) {
      phone = 'n/a';
      bad++;
    } else if (x < 0.025) {
      phone = '12345';
      bad++;
    } else if (x < 0.03) {
      phone = '';
      bad++;
    } else if (x < 0.05 && unique > 0) {
      phone = phoneOf(Math.floor(rnd() * unique), r + 1);
      bad++;
    } else {
      phone = phoneOf(unique++, r);
    }
    const name = `${FIRST[Math.floor(rnd() * FIRST.length)]} ${LAST[Math.floor(rnd() * LAST.length)]}`;
    const niche = rnd() < 0.15 ? `"${NICHES[r % NICHES.length]};vip"` : NICHES[r % NICHES.length]!;
    buf += `${name},${phone},${niche},${STATUSES[r % STATUSES.length]},${CITIES[r % CITIES.length]},"Syarikat ${r % 997}, Sdn Bhd"\r\n`;
    if (buf.length > 1 << 16) {
      if (!out.write(buf)) await once(out, 'drain');
      buf = '';
    }
  }
  out.end(buf);
  await once(out, 'close');
  return { unique, bad };
}

function runWorker(spec: WorkerSpec): Promise<Record<string, unknown>> {
  return runBenchChild(['import', '--worker', JSON.stringify(spec)], 'import worker');
}

const mb = (bytes: number) => Math.round(bytes / 2 ** 20);

function vmHwmMB(): number | null {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

/** The timed part, in a process of its own. */
async function importWorker(specText: string): Promise<number> {
  const spec = JSON.parse(specText) as WorkerSpec;
  const clock = new SystemClock();
  const db = await openStore(storeConfig(spec.loc, spec.cacheMb));
  const now = new Date(clock.now());
  await migrate(db, now);
  const userId = await insertUser(db, { email: 'bench-import@example.test', timeZone: 'Asia/Kuala_Lumpur', defaultCountry: 'MY' }, now);
  const job = await insertImport(
    db,
    { tenantId: userId, createdBy: userId, fileName: 'leads.csv', fileBytes: statSync(spec.file).size, onDuplicate: 'skip', options: {}, owner: 'bench' },
    now,
  );
  await db.query(`update lead_imports set status = 'running' where id = $1`, [job.id]);
  const rssAtStartMB = mb(process.memoryUsage().rss);
  // The kernel's high-water mark already reached by opening the store, before the import.
  const vmHwmAtStartMB = vmHwmMB();
  const peak = { rss: 0, heap: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heap = Math.max(peak.heap, m.heapTotal);
  };
  sample();
  const sampler = setInterval(sample, 100);
  const start = performance.now();
  // CPU time alongside wall time: on a machine shared with other work the wall time stretches, the
  // CPU time of this single-threaded import much less.
  const cpuStart = process.cpuUsage();
  let result: Record<string, unknown>;
  try {
    const counts = await importLeadsFile({
      db,
      clock,
      actor: { tenantId: userId, deviceScope: null, defaultCountry: 'MY' },
      importId: job.id,
      file: spec.file,
      batchRows: spec.batch,
      pipeline: db.profile.statementParallelism,
      options: { onDuplicate: 'skip', deviceId: null, status: 'prospect', niches: [], triggers: [], source: 'import', encoding: 'utf8' },
      // The job's own progress writes, so the figure includes them.
      onProgress: (c) => saveImportProgress(db, job.id, c, new Date(clock.now())),
    });
    const seconds = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    clearInterval(sampler);
    sample();
    const hwm = vmHwmMB();
    const leads = await db.query<{ n: number }>(`select count(*)::int as n from leads where user_id = $1`, [userId]);
    const refused = await db.query<{ n: number }>(`select count(*)::int as n from lead_import_errors where import_id = $1`, [job.id]);
    result = {
      seconds: Math.round(seconds * 10) / 10,
      cpuSeconds: Math.round((cpu.user + cpu.system) / 1e5) / 10,
      rowsPerSecond: Math.round(counts.rowsTotal / seconds),
      rowsTotal: counts.rowsTotal,
      inserted: counts.inserted,
      skipped: counts.skipped,
      failed: counts.failed,
      rssAtStartMB,
      vmHwmAtStartMB,
      peakRssMB: Math.max(mb(peak.rss), hwm ?? 0),
      sampledPeakRssMB: mb(peak.rss),
      vmHwmMB: hwm,
      peakHeapMB: mb(peak.heap),
      verified: leads.rows[0]!.n === counts.inserted && refused.rows[0]!.n === counts.failed,
    };
  } catch (err) {
    clearInterval(sampler);
    result = { verified: false, error: String((err as Error).stack ?? err) };
  }
  await db.close();
  process.stdout.write(JSON.stringify(result));
  return result.verified ? 0 : 1;
}
