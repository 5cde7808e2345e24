/**
 * `fleetcast bench` with no name (`npm run bench`): every benchmark, one after the other, each in
 * processes of its own, and one table of their figures with the machine they ran on. With
 * `--write` the table replaces the one between the markers in docs/benchmarks.md.
 *
 * The baseline row is graphile-worker working off the dispatch benchmark's million messages on the
 * same PostgreSQL server in the same run, so the ratio compares like with like on this machine.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { machine, type MachineInfo } from './report.js';
import { settleMachine, type Settled } from './settle.js';
import { LOCAL_POSTGRES } from '../../store/scratch.js';

const USAGE = `usage: fleetcast bench [--scale X] [--only NAME,...] [--write FILE] [--json] [--no-settle]

Runs every benchmark and prints one table (each benchmark alone: fleetcast bench <name> --help).
  --scale X       a fraction of every size, to try the run out (default 1: the full sizes)
  --only NAMES    only these rows' benchmarks, comma-separated (dispatch-pglite, dispatch-postgres,
                  dispatch-postgres-3, graphile-worker, graphile-worker-3, campaign-postgres,
                  campaign-pglite, sequence-postgres, import-pglite, lead-list-pglite,
                  dashboard-pglite)
  --write FILE    also write the table into FILE between its bench-table markers
                  (docs/benchmarks.md)
  --json          print the rows as one JSON object instead of the table
  --no-settle     start each row at once, instead of after a PostgreSQL checkpoint and a wait (at
                  most 3 minutes) for no autovacuum and a 1-minute load below half the cores
PostgreSQL benchmarks use DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres.
`;

interface Spec {
  name: string;
  /** What the row measures, for the table. */
  what: string;
  args: (scale: number) => string[];
  figure: (r: Record<string, unknown>) => string;
  target?: string;
  met?: (r: Record<string, unknown>) => boolean;
}

const n = (x: number, scale: number) => String(Math.max(1, Math.round(x * scale)));
const fmt = (x: unknown) => (typeof x === 'number' ? x.toLocaleString('en') : String(x));

const SPECS: Spec[] = [
  {
    name: 'dispatch-pglite',
    what: 'dispatch 1M messages over 3,000 devices, PGlite',
    args: (s) => ['dispatch', '--db', 'pglite', '--messages', n(1e6, s)],
    figure: (r) => `${fmt(r.messagesPerSecond)} msg/s`,
    target: '>= 6,000 msg/s',
    met: (r) => (r.messagesPerSecond as number) >= 6000,
  },
  {
    name: 'dispatch-postgres',
    what: 'dispatch 1M messages, PostgreSQL, 1 process',
    args: (s) => ['dispatch', '--db', 'postgres', '--messages', n(1e6, s)],
    figure: (r) => `${fmt(r.messagesPerSecond)} msg/s`,
    target: '>= 15,000 msg/s',
    met: (r) => (r.messagesPerSecond as number) >= 15000,
  },
  {
    name: 'dispatch-postgres-3',
    what: 'dispatch 1M messages, PostgreSQL, 3 processes sharing the devices',
    args: (s) => ['dispatch', '--db', 'postgres', '--processes', '3', '--messages', n(1e6, s)],
    figure: (r) => `${fmt(r.messagesPerSecond)} msg/s`,
  },
  {
    name: 'graphile-worker',
    what: 'baseline: the same 1M messages through graphile-worker, 1 process',
    args: (s) => ['graphile-worker', '--messages', n(1e6, s)],
    figure: (r) => `${fmt(r.messagesPerSecond)} msg/s`,
  },
  {
    name: 'graphile-worker-3',
    what: 'baseline: the same through graphile-worker, 3 processes',
    args: (s) => ['graphile-worker', '--processes', '3', '--messages', n(1e6, s)],
    figure: (r) => `${fmt(r.messagesPerSecond)} msg/s`,
  },
  {
    name: 'campaign-postgres',
    what: 'campaign materialisation, 1M leads, PostgreSQL',
    args: (s) => ['campaign', '--db', 'postgres', '--leads', n(1e6, s)],
    figure: (r) => `${fmt(r.seconds)} s`,
    target: '<= 10 s',
    met: (r) => (r.seconds as number) <= 10,
  },
  {
    name: 'campaign-pglite',
    what: 'campaign materialisation, 1M leads, PGlite',
    args: (s) => ['campaign', '--db', 'pglite', '--leads', n(1e6, s)],
    figure: (r) => `${fmt(r.seconds)} s`,
    target: '<= 30 s',
    met: (r) => (r.seconds as number) <= 30,
  },
  {
    name: 'sequence-postgres',
    what: 'sequence enrollment, 1M leads into 7 steps, PostgreSQL',
    args: (s) => ['sequence', '--db', 'postgres', '--steps', '7', '--leads', n(1e6, s)],
    figure: (r) => `${fmt(r.seconds)} s`,
    target: '<= 20 s',
    met: (r) => (r.seconds as number) <= 20,
  },
  {
    name: 'import-pglite',
    what: 'CSV import, 1M rows, PGlite',
    args: (s) => ['import', '--db', 'pglite', '--rows', n(1e6, s)],
    figure: (r) => `${fmt(r.seconds)} s`,
    target: '<= 60 s, <= 300 MB',
    met: (r) => (r.seconds as number) <= 60 && (r.peakRssMB as number) <= 300,
  },
  {
    name: 'lead-list-pglite',
    what: 'API: filtered lead listing, 1M-lead tenant, p99 under load, PGlite',
    args: (s) => ['lead-list', '--db', 'pglite', '--leads', n(1e6, s)],
    figure: (r) => `p99 ${fmt((r.latencyMs as { p99: number }).p99)} ms (${fmt(r.requestsPerSecond)} req/s)`,
    target: 'p99 <= 50 ms',
    met: (r) => (r.latencyMs as { p99: number }).p99 <= 50,
  },
  {
    name: 'dashboard-pglite',
    what: "API: the dashboard's figures, 1M-lead tenant with 3M messages, PGlite",
    args: (s) => ['dashboard', '--db', 'pglite', '--leads', n(1e6, s)],
    figure: (r) => {
      const l = r.latencyMs as Record<string, { p50: number; p99: number }>;
      return `dashboard p99 ${fmt(l.dashboard?.p99)} ms, monitoring p99 ${fmt(l.monitoring?.p99)} ms`;
    },
  },
];

export interface Row {
  name: string;
  what: string;
  figure: string;
  rssMB: number | null;
  target: string;
  met: boolean | null;
  result: Record<string, unknown>;
  /** The wait for a quiet machine before the row (absent with --no-settle). */
  settled?: Settled;
}

function rssOf(r: Record<string, unknown>): number | null {
  const v = r.peakRssMB ?? r.serverPeakRssMB;
  return typeof v === 'number' ? v : null;
}

/** One benchmark in its own process; the JSON line it prints is its result. */
function runOne(args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [process.argv[1]!, 'bench', ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as Record<string, unknown>);
      } catch {
        resolve({ error: `exited with ${code} and no result` });
      }
    });
  });
}

/** The range of 1-minute load averages the rows were measured at (2 cores busy = load 2). */
function loadNote(rows: readonly Row[], m: MachineInfo): string {
  const loads = rows.map((r) => r.result.loadAverage).filter((x): x is number => typeof x === 'number');
  if (loads.length === 0) loads.push(m.loadAverage);
  const lo = Math.min(...loads);
  const hi = Math.max(...loads);
  return `; 1-minute load average ${lo === hi ? lo : `${lo}-${hi}`} when the figures were taken`;
}

/** How the rows were started: each on a quiet machine, or one straight after the other. */
function settleNote(rows: readonly Row[]): string {
  const waits = rows.map((r) => r.settled).filter((s): s is Settled => s !== undefined);
  if (waits.length === 0) return 'Each row started as soon as the one before it ended.';
  const most = Math.round(Math.max(...waits.map((w) => w.waitedMs)) / 1000);
  const gaveUp = waits.filter((w) => !w.quiet).length;
  return (
    `Each row started after a PostgreSQL checkpoint, once no autovacuum worker ran and the 1-minute load was below half the cores ` +
    `(the longest wait was ${most} s${gaveUp > 0 ? `; ${gaveUp} row${gaveUp === 1 ? '' : 's'} started without that after 3 minutes` : ''}).`
  );
}

export function renderTable(rows: readonly Row[], m: MachineInfo, date: string, scale: number): string {
  const lines = [
    `Measured ${date} on ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, Node ${m.node}, ${m.platform}` +
      (scale === 1 ? '' : ` (scale ${scale}: sizes are ${scale} of those named)`) +
      loadNote(rows, m) +
      '.',
    '',
    settleNote(rows),
    '',
    '| benchmark | result | peak RSS | target |',
    '| --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const target = r.target ? `${r.target}: ${r.met ? 'met' : '**not met**'}` : '';
    const rss = r.rssMB === null ? '' : `${r.rssMB} MB`;
    lines.push(`| ${r.what} | ${r.figure} | ${rss} | ${target} |`);
  }
  const gw = rows.find((r) => r.name === 'graphile-worker');
  const fc = rows.find((r) => r.name === 'dispatch-postgres');
  const gw3 = rows.find((r) => r.name === 'graphile-worker-3');
  const fc3 = rows.find((r) => r.name === 'dispatch-postgres-3');
  const ratio = (a?: Row, b?: Row) => {
    const x = a?.result.messagesPerSecond;
    const y = b?.result.messagesPerSecond;
    return typeof x === 'number' && typeof y === 'number' && y > 0 ? Math.round((x / y) * 100) / 100 : null;
  };
  const r1 = ratio(fc, gw);
  const r3 = ratio(fc3, gw3);
  if (r1 !== null || r3 !== null) {
    lines.push('');
    if (r1 !== null) lines.push(`Fleetcast / graphile-worker, 1 process each: **${r1}x** (target >= 2x: ${r1 >= 2 ? 'met' : '**not met**'}).`);
    if (r3 !== null) lines.push(`Fleetcast / graphile-worker, 3 processes each: **${r3}x**.`);
  }
  return lines.join('\n') + '\n';
}

const START = '<!-- bench-table:start -->';
const END = '<!-- bench-table:end -->';

export function writeTable(file: string, table: string): void {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const block = `${START}\n${table}${END}`;
  const i = text.indexOf(START);
  const j = text.indexOf(END);
  const next = i >= 0 && j > i ? text.slice(0, i) + block + text.slice(j + END.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, next);
}

export async function benchAll(args: string[]): Promise<number> {
  let v;
  try {
    ({ values: v } = parseArgs({
      args,
      options: {
        scale: { type: 'string', default: '1' },
        only: { type: 'string' },
        write: { type: 'string' },
        json: { type: 'boolean', default: false },
        'no-settle': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`fleetcast bench: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const scale = Number(v.scale);
  const only = v.only?.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = (only ?? []).filter((o) => !SPECS.some((s) => s.name === o));
  if (!(scale > 0 && scale <= 1) || unknown.length > 0) {
    process.stderr.write(`fleetcast bench: ${unknown.length > 0 ? `unknown benchmark ${unknown.join(', ')}` : '--scale must be in (0, 1]'}\n\n${USAGE}`);
    return 2;
  }
  const rows: Row[] = [];
  const postgresUrl = process.env.DATABASE_URL || LOCAL_POSTGRES;
  for (const spec of SPECS.filter((s) => !only || only.includes(s.name))) {
    let settled: Settled | undefined;
    if (!v['no-settle']) {
      settled = await settleMachine({ postgresUrl });
      process.stderr.write(
        `-- waited ${(settled.waitedMs / 1000).toFixed(0)} s for a quiet machine: load ${settled.loadAverage}` +
          (settled.autovacuumWorkers === null ? '' : `, ${settled.autovacuumWorkers} autovacuum workers`) +
          (settled.quiet ? '\n' : ' (gave up waiting)\n'),
      );
    }
    process.stderr.write(`== ${spec.name}: ${spec.what}\n`);
    const result = await runOne(spec.args(scale));
    const failed = 'error' in result || result.verified === false;
    rows.push({
      name: spec.name,
      what: spec.what,
      figure: failed ? `failed: ${String(result.error ?? 'not verified')}` : spec.figure(result),
      rssMB: rssOf(result),
      target: spec.target ?? '',
      met: failed ? false : spec.met ? spec.met(result) : null,
      result,
      ...(settled ? { settled } : {}),
    });
  }
  const m = machine();
  const table = renderTable(rows, m, new Date().toISOString().slice(0, 10), scale);
  if (v.write) writeTable(v.write, table);
  if (v.json) process.stdout.write(JSON.stringify({ benchmark: 'all', scale, rows, ...m }) + '\n');
  else process.stdout.write(table);
  return rows.every((r) => !r.figure.startsWith('failed')) ? 0 : 1;
}
