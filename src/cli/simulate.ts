/** `fleetcast simulate SCENARIO.json --out DIR [--db pglite|postgres]`: see docs/simulate.md. */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import type { SimulationReport } from '../services/simulation/report.js';
import { runSimulation } from '../services/simulation/run.js';
import { loadScenario } from '../services/simulation/validate.js';

const USAGE = `usage: fleetcast simulate SCENARIO.json --out DIR [--db pglite|postgres]

Runs SCENARIO.json on the virtual clock against the simulated WhatsApp and writes
DIR/sends.jsonl (every send attempt) and DIR/report.json (the totals).

options:
  -o, --out DIR     output directory (created if missing)
  --db KIND         pglite (default: a fresh embedded database in a temporary directory) or
                    postgres (a fresh schema on the server at DATABASE_URL, dropped afterwards)
  -h, --help        show this help
`;

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const processIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** Exit codes: 0 done, 2 bad usage or an invalid scenario (nothing written); failures throw. */
export async function simulateCommand(args: string[], io: Io = processIo): Promise<number> {
  let values: { out?: string | undefined; db?: string | undefined; help?: boolean | undefined };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { out: { type: 'string', short: 'o' }, db: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (err) {
    return usageError(io, (err as Error).message);
  }
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const [file, ...extra] = positionals;
  if (file === undefined) return usageError(io, 'a scenario file is required');
  if (extra.length > 0) return usageError(io, `unexpected argument "${extra[0]}"`);
  if (!values.out) return usageError(io, '--out DIR is required');
  const store = values.db ?? 'pglite';
  if (store !== 'pglite' && store !== 'postgres') return usageError(io, `--db must be pglite or postgres, not "${store}"`);
  const databaseUrl = store === 'postgres' ? loadConfig().DATABASE_URL : undefined;
  if (store === 'postgres' && !databaseUrl) return usageError(io, '--db postgres needs DATABASE_URL');

  const loaded = await loadScenario(file);
  if (!loaded.ok) {
    io.stderr(loaded.issues.map((i) => `${file}: ${i.path ? `${i.path}: ` : ''}${i.message}\n`).join(''));
    return 2;
  }
  const { report, files } = await runSimulation(loaded.scenario, {
    outDir: values.out,
    store,
    ...(databaseUrl ? { databaseUrl } : {}),
  });
  io.stdout(summary(report, [files.sends, files.report]));
  return 0;
}

function usageError(io: Io, message: string): number {
  io.stderr(`fleetcast simulate: ${message}\n\n${USAGE}`);
  return 2;
}

function summary(r: SimulationReport, files: string[]): string {
  const count = (k: string) => r.messages.byStatus[k] ?? 0;
  const delivered = count('sent') + count('delivered') + count('read');
  const outcomes = [
    `${delivered} sent`,
    ...Object.entries(r.messages.byStatus)
      .filter(([k]) => !['sent', 'delivered', 'read'].includes(k))
      .map(([k, n]) => `${n} ${k}`),
  ];
  const devices = Object.keys(r.devices).length;
  const perHour = r.throughput.sentPerVirtualHour === null ? 'n/a' : `${r.throughput.sentPerVirtualHour}`;
  const perSecond = r.throughput.attemptsPerWallSecond === null ? 'n/a' : `${r.throughput.attemptsPerWallSecond}`;
  return [
    `${r.scenario} (seed ${r.seed}, ${r.store})`,
    `  messages   ${r.messages.total}: ${outcomes.join(', ')}; ${r.attempts.total} attempts on ${devices} devices`,
    `  virtual    ${r.virtual.start} -> ${r.virtual.end} (${r.virtual.stoppedBy === 'idle' ? 'all done' : 'stopped at the horizon'})`,
    `  sends      first ${r.firstSend ?? 'none'}, last ${r.lastSend ?? 'none'}; ${perHour} sent per virtual hour`,
    ...campaignLines(r),
    ...sequenceLines(r),
    `  wall       ${r.wallSeconds.total}s (setup ${r.wallSeconds.setup}s, run ${r.wallSeconds.run}s); ${perSecond} attempts per second`,
    ...(r.engineErrors > 0 ? [`  errors     ${r.engineErrors} engine errors (see the log on stderr)`] : []),
    `  wrote      ${files.join(', ')}`,
    '',
  ].join('\n');
}

/** One line per sequence, then per step sends; a scenario with many lists the first few. */
function sequenceLines(r: SimulationReport): string[] {
  const shown = 10;
  const lines = r.sequences.slice(0, shown).map((q) => {
    const exits = Object.entries(q.exited.byReason).map(([k, n]) => `${n} ${k}`);
    const sent = q.steps.map((st) => st.sent).join('/');
    return (
      `  sequence   ${JSON.stringify(q.name)} ${q.status}: ${q.enrolled} enrolled (${q.chainedIn} chained in), ${q.active} active, ` +
      `${q.completed} completed, ${q.exited.total} exited${exits.length > 0 ? ` (${exits.join(', ')})` : ''}; sent per step ${sent}`
    );
  });
  if (r.sequences.length > shown) lines.push(`  sequence   ... and ${r.sequences.length - shown} more in report.json`);
  return lines;
}

/** One line per campaign; a scenario with many lists the first few (report.json has them all). */
function campaignLines(r: SimulationReport): string[] {
  const shown = 10;
  const lines = r.campaigns.slice(0, shown).map((c) => {
    const spread = c.pool ? `; pool spread ${c.pool.spread ?? 'n/a'}, at most ${c.pool.maxSentInRollingHour} per device-hour` : '';
    return `  campaign   ${JSON.stringify(c.name)} (${c.mode}) ${c.status}: ${c.sent} sent, ${c.failed} failed, ${c.cancelled} cancelled, ${c.pending} pending${spread}`;
  });
  if (r.campaigns.length > shown) lines.push(`  campaign   ... and ${r.campaigns.length - shown} more in report.json`);
  return lines;
}
