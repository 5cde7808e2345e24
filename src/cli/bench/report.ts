import { spawn } from 'node:child_process';
import os from 'node:os';

export interface MachineInfo {
  cores: number;
  memoryGB: number;
  cpu: string;
  node: string;
  platform: string;
}

export function machine(): MachineInfo {
  return {
    cores: os.availableParallelism(),
    memoryGB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
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
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [process.argv[1]!, 'bench', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      try {
        resolve(JSON.parse(out) as Record<string, unknown>);
      } catch {
        reject(new Error(`${label} exited with ${code} and no result`));
      }
    });
  });
}
