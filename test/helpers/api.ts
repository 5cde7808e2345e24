/**
 * An HTTP API over a test database, driven with Fastify's inject (no socket). Accounts are made
 * through the services with a cheap scrypt cost; `tenant()` returns one ready to call the API with
 * a bearer token or with a cookie session.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildServer, type ServerOptions } from '../../src/api/server.js';
import type { Api, Services } from '../../src/api/types.js';
import type { Clock } from '../../src/engine/clock.js';
import { PasswordHasher } from '../../src/services/accounts/passwords.js';
import type { AuthSettings } from '../../src/services/accounts/auth.js';
import { createServices } from '../../src/services/index.js';
import { SecretBox } from '../../src/services/secrets/secret-box.js';
import { insertUser } from '../../src/store/sql/users.js';
import { openTestDb, type Backend, type TestDb } from './db.js';
import { quietLog } from './world.js';

/** A clock tests move by hand; the API never sleeps on it. */
export class ManualClock implements Clock {
  readonly virtual = false;
  constructor(public t = Date.parse('2026-03-02T09:00:00Z')) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  async sleepUntil(): Promise<void> {}
  track<T>(p: Promise<T>): Promise<T> {
    return p;
  }
}

export interface TestApi {
  app: Api;
  services: Services & { passwords: PasswordHasher };
  t: TestDb;
  clock: ManualClock;
  importDir: string;
  mediaDir: string;
  /** The key the services seal secrets with (a deliverer or transport of the test opens them with it). */
  secretBox: SecretBox;
  dispose(): Promise<void>;
}

export const cheapPasswords = new PasswordHasher(10);

export async function openApi(
  backend: Backend,
  opts: { auth?: Partial<AuthSettings>; importMaxBytes?: number; transports?: string[]; server?: ServerOptions } = {},
): Promise<TestApi> {
  const t = await openTestDb(backend);
  const clock = new ManualClock();
  const importDir = mkdtempSync(join(tmpdir(), 'fleetcast-imports-'));
  const mediaDir = mkdtempSync(join(tmpdir(), 'fleetcast-media-'));
  const secretBox = new SecretBox(randomBytes(32));
  const services = createServices(t.db, clock, {
    secretBox,
    log: quietLog,
    importDir,
    importMaxBytes: opts.importMaxBytes,
    // Tests serve media from 127.0.0.1.
    mediaDir,
    mediaAllowPrivateAddresses: true,
    webhookAllowPrivateAddresses: true,
    owner: `test-${process.pid}`,
    transports: opts.transports ?? ['simulator'],
    passwords: cheapPasswords,
    auth: opts.auth,
  });
  // No built dashboard unless a test gives one: the API's answers must not depend on dist/web.
  const app = await buildServer(services, { logger: quietLog, webRoot: null, ...opts.server });
  return {
    app,
    services,
    t,
    clock,
    importDir,
    mediaDir,
    secretBox,
    dispose: async () => {
      await app.close();
      await services.imports.close();
      await t.dispose();
      rmSync(importDir, { recursive: true, force: true });
      rmSync(mediaDir, { recursive: true, force: true });
    },
  };
}

export interface Caller {
  userId: number;
  email: string;
  password: string;
  token: string;
  /** Calls the API with this account's bearer token. */
  call(method: InjectOptions['method'], url: string, body?: unknown, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
}

let seq = 0;

export async function tenant(
  api: TestApi,
  o: { role?: 'admin' | 'member'; timeZone?: string; country?: string | null; parentId?: number; email?: string } = {},
): Promise<Caller> {
  const email = o.email ?? `user${++seq}-${process.pid}@example.test`;
  const password = `pw-${seq}-correct horse`;
  const userId = await insertUser(
    api.t.db,
    {
      email,
      role: o.role ?? 'member',
      timeZone: o.timeZone ?? 'Asia/Kuala_Lumpur',
      defaultCountry: o.country === undefined ? 'MY' : o.country,
      passwordHash: await cheapPasswords.hash(password),
      parentId: o.parentId ?? null,
    },
    new Date(api.clock.now()),
  );
  const token = (await api.services.tokens.create({ userId }, { name: 'test' })).token;
  return {
    userId,
    email,
    password,
    token,
    call: (method, url, body, headers = {}) =>
      api.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${token}`, ...headers },
        ...(body === undefined ? {} : { payload: body as InjectOptions['payload'] }),
      }),
  };
}

/** Logs in with e-mail and password; returns the cookie header and the CSRF token. */
export async function login(api: TestApi, email: string, password: string, ip = '10.0.0.1'): Promise<{ cookie: string; csrf: string; res: LightMyRequestResponse }> {
  const res = await api.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password }, remoteAddress: ip });
  const set = res.cookies.find((c) => c.name === 'fleetcast_session');
  return { cookie: set ? `fleetcast_session=${set.value}` : '', csrf: res.statusCode === 200 ? (res.json() as { csrf_token: string }).csrf_token : '', res };
}

export function json<T = any>(res: LightMyRequestResponse): T {
  return res.json() as T;
}

/** Asserts the status and the one error shape with this code; returns the error. */
export function expectError(res: LightMyRequestResponse, status: number, code: string): { code: string; message: string; details: Record<string, unknown>[] } {
  assert.equal(res.statusCode, status, `${res.statusCode} ${res.body}`);
  const body = json(res);
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, code, res.body);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(Array.isArray(body.error.details));
  return body.error;
}

/** Asserts the status and returns the parsed body (null for 204). */
export function ok(res: LightMyRequestResponse, status = 200): any {
  assert.equal(res.statusCode, status, `${res.statusCode} ${res.body}`);
  return status === 204 ? null : json(res);
}
