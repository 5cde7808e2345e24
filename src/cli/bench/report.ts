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

/** Samples resident memory every 50 ms; `stop` returns the peak in MB. */
export function rssSampler(): { stop(): number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return Math.round(peak / 2 ** 20);
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
