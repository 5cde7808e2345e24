/**
 * Configuration: every variable is validated at start, a bad value stops the server with a message
 * naming the variable (never a stack trace, never a half-started server), ./.env is read, and the
 * README and .env.example document every variable there is.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { CONFIG_VARIABLES, ConfigError, loadConfig, loadEnvFile, unknownVariables } from '../../src/config.js';
import { CLI, runFleetcast, tempDir } from '../helpers/process.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** `fleetcast ARGS` in `cwd` with exactly `env` (plus PATH). */
function runIn(cwd: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('configuration', () => {
  it('a bad value stops fleetcast serve at start, naming the variable and what it must be', async () => {
    const dir = tempDir('config');
    try {
      const r = await runFleetcast(['serve'], { PORT: 'eighty', FLEETCAST_DATA_DIR: dir.path, FLEETCAST_WEBHOOK_MAX_ATTEMPTS: '0', FLEETCAST_SECRET_KEY: 'too-short-and-secret' }, 30_000);
      assert.equal(r.code, 1);
      assert.equal(r.signal, null);
      assert.doesNotMatch(r.stdout, /listening on/, 'the server did not start');
      assert.match(r.stderr, /invalid configuration/);
      assert.match(r.stderr, /PORT: .*number.*\(got "eighty"\)/);
      assert.match(r.stderr, /FLEETCAST_WEBHOOK_MAX_ATTEMPTS: .*>=\s*1/);
      assert.match(r.stderr, /FLEETCAST_SECRET_KEY: a 32-byte key/);
      assert.ok(!r.stderr.includes('too-short-and-secret'), 'a secret value is never repeated');
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'a message, not a stack trace');
    } finally {
      dir.remove();
    }
  });

  it('reads ./.env, with the environment winning over it', async () => {
    const dir = tempDir('dotenv');
    try {
      writeFileSync(join(dir.path, '.env'), '# settings\nFLEETCAST_RETENTION_DAYS=zero\nFLEETCAST_LOG_LEVEL=loud\n');
      const r = await runIn(dir.path, ['migrate'], { FLEETCAST_DATA_DIR: join(dir.path, 'data'), FLEETCAST_LOG_LEVEL: 'warn' });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /FLEETCAST_RETENTION_DAYS: .*\(got "zero"\)/);
      assert.doesNotMatch(r.stderr, /FLEETCAST_LOG_LEVEL/, 'the environment’s value won over the file’s');
      writeFileSync(join(dir.path, '.env'), 'FLEETCAST_RETENTION_DAYS=7\n');
      const ok = await runIn(dir.path, ['migrate'], { FLEETCAST_DATA_DIR: join(dir.path, 'data') });
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      dir.remove();
    }
  });

  it('validates in process too: defaults, errors as ConfigError, unknown FLEETCAST_ variables reported', () => {
    const c = loadConfig({});
    assert.equal(c.PORT, 3000);
    assert.equal(c.FLEETCAST_WEBHOOK_MAX_ATTEMPTS, 10);
    assert.equal(c.FLEETCAST_WEBHOOK_ALLOW_PRIVATE, false);
    assert.equal(c.FLEETCAST_METRICS_TOKEN, undefined);
    assert.throws(() => loadConfig({ FLEETCAST_WEBHOOK_RETRY_BASE_MS: '60000', FLEETCAST_WEBHOOK_RETRY_MAX_MS: '1000' }), (e: Error) =>
      e instanceof ConfigError && /FLEETCAST_WEBHOOK_RETRY_MAX_MS: must not be below FLEETCAST_WEBHOOK_RETRY_BASE_MS/.test(e.message),
    );
    assert.throws(() => loadConfig({ FLEETCAST_METRICS_TOKEN: 'short' }), /FLEETCAST_METRICS_TOKEN: at least 16 characters$/m);
    assert.deepEqual(loadConfig({ FLEETCAST_SECRET_KEY: 'ab'.repeat(32) }).FLEETCAST_SECRET_KEY, Buffer.alloc(32, 0xab));
    assert.deepEqual(unknownVariables({ FLEETCAST_RETENTON_DAYS: '3', FLEETCAST_PORT: '1', PORT: '1' }), ['FLEETCAST_PORT', 'FLEETCAST_RETENTON_DAYS']);
    const env: NodeJS.ProcessEnv = { HOST: 'kept' };
    const dir = tempDir('envfile');
    try {
      writeFileSync(join(dir.path, 'x.env'), 'HOST=ignored\nPORT=4000\n');
      assert.equal(loadEnvFile(join(dir.path, 'x.env'), env), true);
      assert.deepEqual(env, { HOST: 'kept', PORT: '4000' });
      assert.equal(loadEnvFile(join(dir.path, 'missing.env'), env), false);
    } finally {
      dir.remove();
    }
  });

  it('the README table and .env.example list every variable, with .env.example’s defaults valid', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = readFileSync(join(ROOT, '.env.example'), 'utf8');
    for (const v of CONFIG_VARIABLES) {
      assert.ok(readme.includes(`| \`${v}\` |`), `README's configuration table lacks ${v}`);
      assert.match(example, new RegExp(`^#? ?${v}=`, 'm'), `.env.example lacks ${v}`);
    }
    // The file as shipped (its uncommented lines) is itself a valid configuration.
    const env: NodeJS.ProcessEnv = {};
    for (const line of example.split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!;
    }
    loadConfig(env);
  });
});
