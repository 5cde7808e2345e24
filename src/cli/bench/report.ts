import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import os from 'node:os';

export interface MachineInfo {
  cores: number;
  memoryGB: number;
  cpu: string;
  node: string;
  platform: string;
  /**
   * The 1-minute load average when the figures were taken. Figures from a machine that was busy
   * with other work are not comparable with quiet ones; this says which they are.
   */
  loadAverage: number;
}

export function machine(): MachineInfo {
  return {
    cores: os.availableParallelism(),
    memoryGB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAverage: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  };
}

/** Samples memory every 50 ms; `stop` returns the peaks in MB (RSS, JS heap, external buffers). */
export function rssSampler(): { stop(): { rss: number; heap: number; external: number } } {
  const peak = { rss: 0, heap: 0, external: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heap = Math.max(peak.heap, m.heapUsed);
    peak.external = Math.max(peak.external, m.external);
  };
  sample();
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const mb = (b: number) => Math.round(b / 2 ** 20);
      return { rss: mb(peak.rss), heap: mb(peak.heap), external: mb(peak.external) };
    },
  };
}

export function printTable(row: Record<string, unknown>): void {
  const width = Math.max(...Object.keys(row).map((k) => k.length));
  for (const [k, v] of Object.entries(row)) {
    if (Array.isArray(v)) {
      process.stdout.write(`${k}:\n`);
      for (const item of v) process.stdout.write(`  ${JSON.stringify(item)}\n`);
    } else {
      process.stdout.write(`${k.padEnd(width)}  ${typeof v === 'object' ? JSON.stringify(v) : String(v)}\n`);
    }
  }
}

/**
 * Runs `fleetcast bench <args>` in a fresh process and returns the JSON object it prints: the timed
 * half of a benchmark, so the setup's memory and warm caches are not charged to it.
 */
export function runBenchChild(args: readonly string[], label: string): Promise<Record<string, unknown>> {
  return spawnBench(args, label, false).result;
}

interface BenchChild {
  result: Promise<Record<string, unknown>>;
  send(message: unknown): void;
}

/**
 * Runs `count` copies of `fleetcast bench <args>` at once, each in a fresh process with an IPC
 * channel, for timed work shared between processes. Each child reports its own running total with
 * `reportDone`; once the totals add up to `expected` (or a child fails), every child's
 * `onFinish` callback runs. They coordinate through this process rather than through the database
 * they are measuring. Returns the JSON objects the children printed, in order.
 */
export async function runSharingChildren(args: readonly string[], label: string, count: number, expected: number): Promise<Record<string, unknown>[]> {
  const done = new Array<number>(count).fill(0);
  const children: BenchChild[] = [];
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    for (const c of children) c.send({ finish: true });
  };
  for (let i = 0; i < count; i++) {
    const child = spawnBench(args, `${label} ${i + 1}`, true, (m) => {
      const n = (m as { done?: unknown }).done;
      if (typeof n !== 'number') return;
      done[i] = n;
      if (done.reduce((a, b) => a + b, 0) >= expected) finish();
    });
    // One that fails must not leave the others working on what nobody will finish.
    child.result.then((r) => r.error !== undefined && finish(), finish);
    children.push(child);
  }
  return Promise.all(children.map((c) => c.result));
}

/** In a child of runSharingChildren: this process's running total, for the parent. */
export function reportDone(total: number): void {
  process.send?.({ done: total });
}

/** In a child of runSharingChildren: `then` runs once the parent says all the work is done. */
export function onFinish(then: () => void): void {
  process.on('message', (m) => {
    if ((m as { finish?: unknown }).finish === true) then();
  });
}

/** In a child of runSharingChildren, at the end: the open channel would keep the process alive. */
export function leaveParent(): void {
  if (process.connected) process.disconnect();
}

function spawnBench(args: readonly string[], label: string, ipc: boolean, onMessage?: (message: unknown) => void): BenchChild {
  // Without a channel unless asked: an open one would keep a child that never disconnects alive.
  const stdio = ipc ? (['ignore', 'pipe', 'inherit', 'ipc'] as const) : (['ignore', 'pipe', 'inherit'] as const);
  const child = spawn(process.execPath, [process.argv[1]!, 'bench', ...args], { stdio: [...stdio] });
  let exited = false;
  if (onMessage) child.on('message', onMessage);
  const result = new Promise<Record<string, unknown>>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      exited = true;
      try {
        resolve(JSON.parse(out) as Record<string, unknown>);
      } catch {
        reject(new Error(`${label} exited with ${code} and no result`));
      }
    });
  });
  return {
    result,
    send(message) {
      if (!exited && child.connected) child.send(message as object);
    },
  };
}

export type BenchArgs = { ok: true; numbers: Record<string, number>; db: 'pglite' | 'postgres'; json: boolean } | { ok: false; exitCode: number };

/**
 * The options every store benchmark shares: whole-number settings (each >= 1, with a default),
 * `--db pglite|postgres`, `--json` and `--help`. Errors name every bad option, then the usage.
 */
export function parseBenchArgs(name: string, usage: string, args: string[], defaults: Record<string, number>): BenchArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args,
      options: {
        ...Object.fromEntries(Object.entries(defaults).map(([k, d]) => [k, { type: 'string' as const, default: String(d) }])),
        db: { type: 'string', default: 'pglite' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`fleetcast bench ${name}: ${(err as Error).message}\n\n${usage}`);
    return { ok: false, exitCode: 2 };
  }
  if (values.help) {
    process.stdout.write(usage);
    return { ok: false, exitCode: 0 };
  }
  const numbers: Record<string, number> = {};
  const errors: string[] = [];
  for (const [k, d] of Object.entries(defaults)) {
    const n = Number(values[k]);
    // An option that defaults to 0 is an opt-in count (e.g. --walk), so 0 stays allowed for it.
    const min = d === 0 ? 0 : 1;
    if (!Number.isInteger(n) || n < min) errors.push(`--${k} must be a whole number >= ${min}`);
    numbers[k] = n;
  }
  if (values.db !== 'pglite' && values.db !== 'postgres') errors.push('--db must be pglite or postgres');
  if (errors.length > 0) {
    process.stderr.write(`fleetcast bench ${name}: ${errors.join('; ')}\n\n${usage}`);
    return { ok: false, exitCode: 2 };
  }
  return { ok: true, numbers, db: values.db as 'pglite' | 'postgres', json: values.json === true };
}
