/**
 * The real `fleetcast` command as a child process: start it, wait for it, read the simulator's
 * send log it writes, and make sure no child outlives its test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { Db } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { openStore } from '../../src/store/open.js';
import { openPostgres } from '../../src/store/postgres.js';
import type { SendAttempt } from '../../src/transports/simulator.js';
import { dropSchema, type Backend } from './db.js';

/** The compiled command (this file runs from dist/test/helpers/). */
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Children still running, with the promise of their exit. */
const live = new Map<ChildProcess, Promise<Exit>>();

/**
 * The parent's environment without anything that configures Fleetcast: the test running on PGlite
 * must not inherit the DATABASE_URL the PostgreSQL run is given.
 */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'DATABASE_URL' || k === 'PORT' || k === 'HOST' || k.startsWith('FLEETCAST_')) continue;
    env[k] = v;
  }
  return env;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Fleetcast {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves when the process has exited (never rejects). */
  exited: Promise<Exit>;
  /** The address from the `listening on ...` line; rejects if the process exits or times out first. */
  ready(timeoutMs?: number): Promise<string>;
  /** Throws, with the process's output, if it has exited: a wait on it need not run to its deadline. */
  assertRunning(): void;
  kill(signal: NodeJS.Signals): void;
  /** Signals the process and waits for it to exit, SIGKILLing it if it outstays `timeoutMs`. */
  stop(signal: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

export function startFleetcast(args: string[], env: Record<string, string>): Fleetcast {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  // 'close', not 'exit': by then all of the output has been read.
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.on('error', () => {
      live.delete(child);
      resolve({ code: null, signal: null });
    });
  });
  live.set(child, exited);
  let done: Exit | undefined;
  void exited.then((e) => (done = e));

  const output = () => `stdout:\n${stdout}\nstderr:\n${stderr}`;
  const h: Fleetcast = {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    async ready(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = /^listening on (\S+)$/m.exec(stdout);
        if (m) return m[1]!;
        if (done) throw new Error(`fleetcast exited before listening (${JSON.stringify(await exited)})\n${output()}`);
        if (Date.now() > deadline) throw new Error(`fleetcast did not listen within ${timeoutMs} ms\n${output()}`);
        await delay(20);
      }
    },
    assertRunning() {
      if (done) throw new Error(`fleetcast (pid ${child.pid}) exited unexpectedly (${JSON.stringify(done)})\n${output()}`);
    },
    kill(signal) {
      if (!done) child.kill(signal);
    },
    async stop(signal, timeoutMs = 20_000) {
      h.kill(signal);
      const timer = setTimeout(() => h.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  return h;
}

/** Kills every child still running (after a failed test): none may outlive the run. */
export async function killAll(): Promise<void> {
  const waits = [...live];
  for (const [child] of waits) child.kill('SIGKILL');
  await Promise.all(waits.map(([, exited]) => exited));
}

process.on('exit', () => {
  for (const child of live.keys()) child.kill('SIGKILL');
});

export interface CliResult extends Exit {
  stdout: string;
  stderr: string;
}

/** Runs a command that is expected to end by itself. */
export async function runFleetcast(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliResult> {
  const p = startFleetcast(args, env);
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  try {
    const exit = await p.exited;
    return { ...exit, stdout: p.stdout, stderr: p.stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns true; fails with `what` (and `detail()`) at the deadline. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  opts: { timeoutMs: number; what: string; everyMs?: number; detail?: () => string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting until ${opts.what}${opts.detail ? `\n${opts.detail()}` : ''}`);
    }
    await delay(opts.everyMs ?? 5);
  }
}

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `fleetcast-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface SimLog {
  lines: number;
  attempts: SendAttempt[];
  /** Lines that are not JSON: at most a line cut short by a kill mid-write. */
  unparsable: string[];
  /** `sent` lines per message id. */
  sent: Map<number, number>;
}

export function readSimLog(file: string): SimLog {
  const out: SimLog = { lines: 0, attempts: [], unparsable: [], sent: new Map() };
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    out.lines++;
    let a: SendAttempt;
    try {
      a = JSON.parse(line) as SendAttempt;
    } catch {
      out.unparsable.push(line);
      continue;
    }
    out.attempts.push(a);
    if (a.outcome === 'sent') out.sent.set(a.message, (out.sent.get(a.message) ?? 0) + 1);
  }
  return out;
}

/** Counts lines without parsing them: cheap enough to poll while a process writes. */
export function countLines(file: string): number {
  if (!existsSync(file)) return 0;
  const buf = readFileSync(file);
  let n = 0;
  for (const b of buf) if (b === 10) n++;
  return n;
}

/**
 * Where a spawned process keeps its data, and how the test opens the same store: a PGlite data
 * directory (which only one process may hold at a time) or a fresh schema on the PostgreSQL server.
 */
export interface Deployment {
  backend: Backend;
  /** Environment that points `fleetcast` at this store. */
  env: Record<string, string>;
  /** Opens the store from the test process; on PGlite only while no child holds the directory. */
  open(): Promise<Db>;
  /**
   * Reads the store as a dead process left it without touching it: on PGlite through a copy of
   * the directory, so the next process still finds it unrecovered, exactly as after the crash.
   */
  peek<T>(read: (db: Db) => Promise<T>): Promise<T>;
  dispose(): Promise<void>;
}

async function using<T>(open: Promise<Db>, read: (db: Db) => Promise<T>): Promise<T> {
  const db = await open;
  try {
    return await read(db);
  } finally {
    await db.close();
  }
}

let pristine: Promise<string> | undefined;

/**
 * A migrated PGlite data directory made once per test file, copied for each deployment: initdb
 * takes seconds, a copy milliseconds.
 */
function pristinePglite(): Promise<string> {
  pristine ??= (async () => {
    const dir = tempDir('pristine');
    process.on('exit', () => dir.remove());
    const db = await openStore({ dataDir: dir.path });
    await migrate(db, new Date());
    await db.close();
    return dir.path;
  })();
  return pristine;
}

export async function deployment(backend: Backend, opts: { fresh?: boolean } = {}): Promise<Deployment> {
  if (backend === 'pglite') {
    const dir = tempDir('data');
    if (!opts.fresh) cpSync(await pristinePglite(), dir.path, { recursive: true });
    return {
      backend,
      env: { FLEETCAST_DATA_DIR: dir.path },
      open: () => openStore({ dataDir: dir.path }),
      peek: async (read) => {
        const copy = tempDir('peek');
        try {
          cpSync(dir.path, copy.path, { recursive: true });
          return await using(openStore({ dataDir: copy.path }), read);
        } finally {
          copy.remove();
        }
      },
      dispose: async () => dir.remove(),
    };
  }
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('PostgreSQL deployments need DATABASE_URL');
  const schema = `t_proc_${randomBytes(6).toString('hex')}`;
  return {
    backend,
    env: { DATABASE_URL: url, FLEETCAST_DB_SCHEMA: schema },
    open: () => openPostgres({ connectionString: url, schema }),
    peek: (read) => using(openPostgres({ connectionString: url, schema }), read),
    dispose: () => dropSchema(schema),
  };
}
