/**
 * A PostgreSQL server of the chaos run's own: initdb into a temporary directory, listening on
 * 127.0.0.1 on a free port, so the run can restart it (and the machine's own server, other
 * databases and other work on it are never touched). As root, the server runs as the `postgres`
 * account, which PostgreSQL requires.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Cluster {
  url: string;
  port: number;
  dataDir: string;
  /** A fast restart (open connections are cut, as a failover or a crash-restart would). */
  restart(): Promise<number>;
  stop(): void;
}

function binDir(): string {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(join(dir, 'initdb'))) return dir;
  } catch {
    // No pg_config on PATH: look where Debian puts the server.
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'initdb'))) return join(root, v, 'bin');
  throw new Error('PostgreSQL server binaries (initdb, pg_ctl) were not found: install the postgresql package');
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no free port');
  return addr.port;
}

export async function startCluster(opts: { maxConnections?: number } = {}): Promise<Cluster> {
  const bin = binDir();
  const root = mkdtempSync(join(tmpdir(), 'fleetcast-chaos-pg-'));
  const dataDir = join(root, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const pw = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gw = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (pw.status !== 0) throw new Error('running as root needs a postgres account to run the server as');
    chownSync(root, Number(pw.stdout.trim()), Number(gw.stdout.trim()));
  }
  const run = (cmd: string, args: string[]) => {
    const full = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const res = spawnSync(full[0] as string, full[1] as string[], { encoding: 'utf8' });
    if (res.status !== 0) throw new Error(`${cmd} failed (${res.status}): ${res.stderr || res.stdout}`);
  };
  run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const options = [
    `-p ${port}`,
    `-c listen_addresses=127.0.0.1`,
    `-c unix_socket_directories=${root}`,
    `-c max_connections=${opts.maxConnections ?? 200}`,
    // Throwaway data: durability across a power cut is not what this server is for.
    `-c fsync=off`,
    `-c synchronous_commit=off`,
    `-c full_page_writes=off`,
    `-c shared_buffers=256MB`,
  ].join(' ');
  const log = join(root, 'server.log');
  const pgCtl = (args: string[]) => run('pg_ctl', ['-D', dataDir, '-l', log, '-w', '-t', '60', ...args]);
  pgCtl(['-o', options, 'start']);
  let stopped = false;
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    async restart() {
      const t0 = Date.now();
      pgCtl(['-m', 'fast', '-o', options, 'restart']);
      return Date.now() - t0;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        if (existsSync(join(dataDir, 'postmaster.pid'))) pgCtl(['-m', 'immediate', 'stop']);
      } finally {
        if (statSync(root, { throwIfNoEntry: false })) rmSync(root, { recursive: true, force: true });
      }
    },
  };
}
