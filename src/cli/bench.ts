/** `fleetcast bench <name> [options]`: measured figures with the machine they ran on. */
import { parseArgs } from 'node:util';
import { machine, printTable } from './bench/report.js';

/**
 * Benchmarks with options of their own; each parses its arguments and returns the exit code.
 * Loaded on demand: a timed child process must not carry modules its benchmark never uses (the
 * HTTP server, the image library), or their memory is charged to the figure.
 */
const others: Record<string, (args: string[]) => Promise<number>> = {
  campaign: async (a) => (await import('./bench/campaign.js')).benchCampaign(a),
  dashboard: async (a) => (await import('./bench/dashboard.js')).benchDashboard(a),
  'graphile-worker': async (a) => (await import('./bench/graphile.js')).benchGraphile(a),
  'graphile-worker-run': async (a) => (await import('./bench/graphile.js')).graphileRun(a[0] ?? '{}'),
  import: async (a) => (await import('./bench/import.js')).benchImport(a),
  'lead-list': async (a) => (await import('./bench/lead-list.js')).benchLeadList(a),
  pool: async (a) => (await import('./bench/pool.js')).benchPool(a),
  sequence: async (a) => (await import('./bench/sequence.js')).benchSequence(a),
};

const USAGE = `usage: fleetcast bench [dispatch|campaign|pool|sequence|import|lead-list|dashboard|graphile-worker] [options]
  (fleetcast bench <name> --help; with no name, every benchmark and one table: fleetcast bench --help)

fleetcast bench dispatch [--devices N] [--messages N] [--db pglite|postgres] [--json]
  --devices N     devices sending at once (default 3000)
  --messages N    messages in the outbox (default 1000000)
  --db            pglite (default, in a temporary data directory) or postgres (DATABASE_URL, or the
                  local server at postgresql://postgres@127.0.0.1:5432/postgres), in a scratch schema
  --json          print one JSON object instead of a table
  --profile       also time every SQL statement of the timed run
  --processes N   dispatching processes sharing the devices, as several workers would (postgres only)
  --webhook EVENTS  give every user a webhook subscription to these events (comma-separated, e.g.
                  message.sent): measures queuing deliveries with the sends (none is delivered)
`;

export async function benchCommand(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  // The timed half of `bench dispatch`, in a process of its own (see bench/dispatch.ts).
  if (name === 'dispatch-worker') return (await import('./bench/dispatch.js')).dispatchWorker(rest[0] ?? '{}');
  // No name (or only options): every benchmark and one table of their figures.
  if (name === undefined || name.startsWith('--')) return (await import('./bench/all.js')).benchAll(args);
  const other = others[name];
  if (other) return other(rest);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: {
        devices: { type: 'string', default: '3000' },
        messages: { type: 'string', default: '1000000' },
        db: { type: 'string', default: 'pglite' },
        json: { type: 'boolean', default: false },
        profile: { type: 'boolean', default: false },
        processes: { type: 'string', default: '1' },
        webhook: { type: 'string' },
      },
      strict: true,
    });
  } catch (err) {
    process.stderr.write(`fleetcast bench: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const v = parsed.values;
  const devices = Number(v.devices);
  const messages = Number(v.messages);
  const errors: string[] = [];
  if (name !== 'dispatch') errors.push(`unknown benchmark "${name ?? ''}" (known: dispatch, ${Object.keys(others).join(', ')})`);
  if (!Number.isInteger(devices) || devices < 1) errors.push('--devices must be a whole number >= 1');
  if (!Number.isInteger(messages) || messages < 1) errors.push('--messages must be a whole number >= 1');
  if (v.db !== 'pglite' && v.db !== 'postgres') errors.push('--db must be pglite or postgres');
  const processes = Number(v.processes);
  if (!Number.isInteger(processes) || processes < 1) errors.push('--processes must be a whole number >= 1');
  else if (processes > 1 && v.db !== 'postgres') errors.push('--processes above 1 needs --db postgres (PGlite is one process)');
  if (errors.length > 0) {
    process.stderr.write(`fleetcast bench: ${errors.join('; ')}\n\n${USAGE}`);
    return 2;
  }
  const { benchDispatch } = await import('./bench/dispatch.js');
  const webhookEvents = v.webhook ? v.webhook.split(',').map((e) => e.trim()).filter((e) => e !== '') : [];
  const result = await benchDispatch({ devices, messages, db: v.db as 'pglite' | 'postgres', progress: !v.json, profile: v.profile, processes, webhookEvents });
  const out = { benchmark: 'dispatch', ...result, ...machine() };
  if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
  else printTable(out);
  return result.verified ? 0 : 1;
}
