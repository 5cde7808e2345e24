/**
 * `fleetcast backup FILE` and `fleetcast restore FILE [--force]` (docs/operations.md).
 *
 * A backup is one gzipped tar: `fleetcast-backup.json` (what it holds: store, schema, migrations,
 * time), the database, and the uploaded media files (`media/`, which messages refer to).
 * - PostgreSQL: the schema Fleetcast uses (FLEETCAST_DB_SCHEMA, else the connection's current
 *   schema) as a pg_dump custom-format archive, taken while servers run (pg_dump reads one
 *   consistent snapshot); restored with pg_restore in one transaction.
 * - PGlite: a copy of the data directory (PGlite's dumpDataDir). PGlite is one process's
 *   database and the data directory is locked by a running server, so a backup is taken of a
 *   stopped instance: stop `fleetcast serve`, back up, start it again (about a second).
 *
 * Restoring over a database or media directory that is not empty is refused unless --force, which
 * replaces what is there. Stop every Fleetcast process using the database before a restore.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import * as tar from 'tar';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { lockDataDir } from '../store/data-dir-lock.js';
import { migrations } from '../store/migrations/index.js';
import { openPglite } from '../store/pglite.js';

const MANIFEST = 'fleetcast-backup.json';
const PG_ARCHIVE = 'database.pgdump';
const PGLITE_ARCHIVE = 'pglite.tar';

export interface Manifest {
  format: 1;
  store: 'pglite' | 'postgres';
  /** PostgreSQL: the schema the archive holds. */
  schema: string | null;
  migrations: number[];
  media: boolean;
  created_at: string;
}

export class BackupError extends Error {
  readonly code = 'BACKUP_FAILED';
}

function usage(command: string): string {
  return `usage: fleetcast ${command} FILE${command === 'restore' ? ' [--force]' : ''}`;
}

export async function backupCommand(args: string[]): Promise<number> {
  const { positionals } = parse(args, 'backup');
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new ConfigError(usage('backup'));
  const m = await backup(loadConfig(), file);
  process.stdout.write(`backed up the ${m.store} database${m.schema ? ` (schema ${m.schema})` : ''}${m.media ? ' and media files' : ''} to ${file}\n`);
  return 0;
}

export async function restoreCommand(args: string[]): Promise<number> {
  const { positionals, values } = parse(args, 'restore');
  const file = positionals[0];
  if (!file || positionals.length > 1) throw new ConfigError(usage('restore'));
  const m = await restore(loadConfig(), file, { force: values.force === true });
  process.stdout.write(`restored the ${m.store} database from ${file} (taken ${m.created_at}); start fleetcast serve to apply any newer migrations\n`);
  return 0;
}

function parse(args: string[], command: string) {
  try {
    return parseArgs({ args, options: { force: { type: 'boolean' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n${usage(command)}`);
  }
}

function mediaDir(cfg: Config): string {
  return resolve(cfg.FLEETCAST_DATA_DIR, 'media');
}

function nonEmptyDir(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).length > 0;
}

/** Writes FILE (through a temporary name beside it, so a failed backup leaves no half file). */
export async function backup(cfg: Config, file: string, now: Date = new Date()): Promise<Manifest> {
  const out = resolve(file);
  mkdirSync(dirname(out), { recursive: true });
  const staging = mkdtempSync(join(dirname(out), `.${basename(out)}.`));
  try {
    const manifest: Manifest = cfg.DATABASE_URL ? await dumpPostgres(cfg, staging, now) : await dumpPglite(cfg, staging, now);
    const media = mediaDir(cfg);
    const entries = [MANIFEST, cfg.DATABASE_URL ? PG_ARCHIVE : PGLITE_ARCHIVE];
    if (nonEmptyDir(media)) {
      manifest.media = true;
      entries.push('media');
    }
    writeFileSync(join(staging, MANIFEST), JSON.stringify(manifest, null, 2));
    // The media directory joins the archive through a link the archiver follows.
    if (manifest.media) symlinkSync(media, join(staging, 'media'), 'dir');
    const tmp = `${out}.partial`;
    await tar.c({ gzip: true, file: tmp, cwd: staging, portable: true, follow: true }, entries);
    renameSync(tmp, out);
    return manifest;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

async function dumpPglite(cfg: Config, staging: string, now: Date): Promise<Manifest> {
  const root = resolve(cfg.FLEETCAST_DATA_DIR);
  if (!existsSync(join(root, 'pglite', 'PG_VERSION'))) throw new BackupError(`there is no database in ${root} to back up`);
  // Throws DATA_DIR_IN_USE while a server has it open: PGlite cannot be read by two processes.
  const unlock = lockDataDir(root);
  try {
    const db = await openPglite({ dataDir: join(root, 'pglite') });
    try {
      const versions = await appliedVersions(db);
      const dump = await db.dumpDataDir();
      writeFileSync(join(staging, PGLITE_ARCHIVE), Buffer.from(await dump.arrayBuffer()));
      return { format: 1, store: 'pglite', schema: null, migrations: versions, media: false, created_at: now.toISOString() };
    } finally {
      await db.close();
    }
  } finally {
    unlock();
  }
}

async function appliedVersions(db: { query<R>(sql: string, p?: unknown[]): Promise<{ rows: R[] }> }): Promise<number[]> {
  const exists = await db.query<{ t: string | null }>(`select to_regclass('schema_migrations')::text as t`);
  if (!exists.rows[0]?.t) return [];
  return (await db.query<{ version: number }>('select version from schema_migrations order by version')).rows.map((r) => Number(r.version));
}

/** pg_dump or pg_restore: FLEETCAST_PG_BIN, else PATH, else the newest /usr/lib/postgresql/N/bin. */
export function pgTool(cfg: Config, name: 'pg_dump' | 'pg_restore'): string {
  const candidates: string[] = [];
  if (cfg.FLEETCAST_PG_BIN) candidates.push(join(cfg.FLEETCAST_PG_BIN, name));
  else {
    candidates.push(name);
    const base = '/usr/lib/postgresql';
    if (existsSync(base)) {
      for (const v of readdirSync(base).sort((a, b) => Number(b) - Number(a))) candidates.push(join(base, v, 'bin', name));
    }
  }
  for (const c of candidates) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return c;
  }
  throw new BackupError(
    `${name} was not found${cfg.FLEETCAST_PG_BIN ? ` in FLEETCAST_PG_BIN (${cfg.FLEETCAST_PG_BIN})` : ' on PATH'}: install the PostgreSQL client tools (Debian: postgresql-client) or set FLEETCAST_PG_BIN to their directory`,
  );
}

/** The connection as pg tools take it: the password in PGPASSWORD, never on a command line. */
function connection(url: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  u.password = '';
  return { dbname: u.toString(), env };
}

function run(tool: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(tool, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => reject(new BackupError(`${basename(tool)}: ${err.message}`)));
    child.on('exit', (code) => {
      if (code === 0) resolvePromise(stdout);
      else reject(new BackupError(`${basename(tool)} failed (exit ${code}): ${stderr.trim().slice(0, 2000)}`));
    });
  });
}

async function withClient<T>(cfg: Config, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: cfg.DATABASE_URL, ...(cfg.FLEETCAST_DB_SCHEMA ? { options: `-c search_path=${cfg.FLEETCAST_DB_SCHEMA}` } : {}) });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function targetSchema(cfg: Config, c: pg.Client): Promise<string> {
  return cfg.FLEETCAST_DB_SCHEMA ?? (await c.query<{ s: string }>('select current_schema() as s')).rows[0]!.s;
}

async function dumpPostgres(cfg: Config, staging: string, now: Date): Promise<Manifest> {
  const tool = pgTool(cfg, 'pg_dump');
  const { schema, versions } = await withClient(cfg, async (c) => {
    const s = await targetSchema(cfg, c);
    return { schema: s, versions: await appliedVersions(c) };
  });
  if (versions.length === 0) throw new BackupError(`schema ${schema} holds no Fleetcast database (no schema_migrations)`);
  const { dbname, env } = connection(cfg.DATABASE_URL!);
  await run(tool, ['--format=custom', '--no-owner', '--no-privileges', `--schema=${schema}`, `--file=${join(staging, PG_ARCHIVE)}`, `--dbname=${dbname}`], env);
  return { format: 1, store: 'postgres', schema, migrations: versions, media: false, created_at: now.toISOString() };
}

// ---- Restore ------------------------------------------------------------------------------

export async function restore(cfg: Config, file: string, opts: { force: boolean }): Promise<Manifest> {
  const src = resolve(file);
  if (!existsSync(src)) throw new BackupError(`${file} does not exist`);
  const staging = mkdtempSync(join(dirname(src), `.restore-${basename(src)}.`));
  try {
    try {
      await tar.x({ file: src, cwd: staging, strict: true });
    } catch (err) {
      throw new BackupError(`${file} is not a Fleetcast backup (${(err as Error).message})`);
    }
    if (!existsSync(join(staging, MANIFEST))) throw new BackupError(`${file} is not a Fleetcast backup (no ${MANIFEST})`);
    const m = JSON.parse(readFileSync(join(staging, MANIFEST), 'utf8')) as Manifest;
    const known = new Set(migrations.map((x) => x.version));
    const newer = m.migrations.filter((v) => !known.has(v));
    if (newer.length > 0) throw new BackupError(`this backup was made by a newer Fleetcast (migrations ${newer.join(', ')}): restore it with that version`);
    const want = cfg.DATABASE_URL ? 'postgres' : 'pglite';
    if (m.store !== want) {
      throw new BackupError(
        m.store === 'postgres'
          ? 'this backup holds a PostgreSQL database: set DATABASE_URL (and FLEETCAST_DB_SCHEMA) to restore it'
          : 'this backup holds an embedded (PGlite) database: unset DATABASE_URL and set FLEETCAST_DATA_DIR to restore it',
      );
    }
    const media = mediaDir(cfg);
    if (m.media && nonEmptyDir(media) && !opts.force) throw new BackupError(`${media} is not empty: restore with --force to replace it`);
    if (m.store === 'postgres') await restorePostgres(cfg, staging, m, opts.force);
    else await restorePglite(cfg, staging, opts.force);
    if (m.media) {
      rmSync(media, { recursive: true, force: true });
      mkdirSync(dirname(media), { recursive: true });
      renameSync(join(staging, 'media'), media);
    }
    return m;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

async function restorePglite(cfg: Config, staging: string, force: boolean): Promise<void> {
  const root = resolve(cfg.FLEETCAST_DATA_DIR);
  mkdirSync(root, { recursive: true });
  const unlock = lockDataDir(root);
  try {
    const dir = join(root, 'pglite');
    if (existsSync(join(dir, 'PG_VERSION')) && !force) throw new BackupError(`${root} already holds a database: restore with --force to replace it`);
    rmSync(dir, { recursive: true, force: true });
    const archive = new Blob([readFileSync(join(staging, PGLITE_ARCHIVE))]);
    const pgl = await PGlite.create({ dataDir: dir, loadDataDir: archive });
    await pgl.close();
  } finally {
    unlock();
  }
}

async function restorePostgres(cfg: Config, staging: string, m: Manifest, force: boolean): Promise<void> {
  const tool = pgTool(cfg, 'pg_restore');
  const archive = join(staging, PG_ARCHIVE);
  await withClient(cfg, async (c) => {
    const schema = await targetSchema(cfg, c);
    if (m.schema !== schema) {
      throw new BackupError(`this backup holds schema ${m.schema}, not ${schema}: set FLEETCAST_DB_SCHEMA=${m.schema} to restore it`);
    }
    const tables = await c.query<{ n: number }>('select count(*)::int as n from pg_tables where schemaname = $1', [schema]);
    if (tables.rows[0]!.n > 0 && !force) throw new BackupError(`schema ${schema} already holds ${tables.rows[0]!.n} tables: restore with --force to replace them`);
    // The schema is made here, empty; the archive's own CREATE SCHEMA is left out of the list.
    await c.query(`drop schema if exists "${schema}" cascade`);
    await c.query(`create schema "${schema}"`);
  });
  const { dbname, env } = connection(cfg.DATABASE_URL!);
  const toc = await run(tool, ['--list', archive], env);
  const list = join(staging, 'restore.list');
  writeFileSync(list, toc.split('\n').filter((l) => !/^\d+;\s+\d+\s+\d+\s+SCHEMA\s/.test(l)).join('\n'));
  await run(tool, ['--no-owner', '--no-privileges', '--exit-on-error', '--single-transaction', `--use-list=${list}`, `--dbname=${dbname}`, archive], env);
}
