/**
 * The API and an engine with its link runner over one test database on the virtual clock: what a
 * `fleetcast serve` process is, with the transports a test gives it. Accounts are made through the
 * store and the token service, as in helpers/api.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { buildServer } from '../../src/api/server.js';
import type { Api, Services } from '../../src/api/types.js';
import { VirtualClock } from '../../src/engine/clock.js';
import { Engine } from '../../src/engine/engine.js';
import { seededRandom } from '../../src/engine/pacing.js';
import { DeviceLinkRunner } from '../../src/services/devices/link-runner.js';
import { createServices } from '../../src/services/index.js';
import { listenLive, type LiveEvent } from '../../src/services/live/channel.js';
import { insertUser } from '../../src/store/sql/users.js';
import type { Transport } from '../../src/transports/transport.js';
import type { Db } from '../../src/store/db.js';
import { cheapPasswords } from './api.js';
import { openTestDb, type Backend, type TestDb } from './db.js';
import { quietLog } from './world.js';

export interface LinkWorld {
  app: Api;
  services: Services;
  t: TestDb;
  clock: VirtualClock;
  engine: Engine;
  runner: DeviceLinkRunner;
  /** Every live event published, in order. */
  live: LiveEvent[];
  /** Runs the virtual world for `ms` (every timer due in that span fires). */
  run(ms: number): Promise<void>;
  dispose(): Promise<void>;
}

export interface LinkWorldOptions {
  /** Extra transport names the API accepts for new devices (without a transport behind them). */
  names?: string[];
  /** Start the engine (default true); `w.engine.start()` later. */
  start?: boolean;
}

export async function openLinkWorld(
  backend: Backend,
  start: number,
  makeTransports: (clock: VirtualClock, db: Db) => Map<string, Transport>,
  o: LinkWorldOptions = {},
): Promise<LinkWorld> {
  const clock = new VirtualClock(start);
  const t = await openTestDb(backend, (p) => clock.track(p));
  const transports = makeTransports(clock, t.db);
  const importDir = mkdtempSync(join(tmpdir(), 'fleetcast-links-'));
  const engine = new Engine(t.db, clock, transports, quietLog, {
    dispatcher: { random: seededRandom(5), leaseTtlMs: 3_600_000 },
    maintenance: { intervalMs: 86_400_000 },
    sequences: { pollMs: 3_600_000 },
  });
  const services = createServices(t.db, clock, {
    log: quietLog,
    importDir,
    owner: 'test',
    transports: [...transports.keys(), ...(o.names ?? [])],
    passwords: cheapPasswords,
    engine,
  });
  const app = await buildServer(services, { logger: quietLog });
  const runner = new DeviceLinkRunner(t.db, clock, transports, engine, quietLog);
  const live: LiveEvent[] = [];
  const offLive = await listenLive(t.db, (e) => live.push(e));
  await runner.start();
  if (o.start !== false) await engine.start();
  const w: LinkWorld = {
    app,
    services,
    t,
    clock,
    engine,
    runner,
    live,
    run: async (ms) => {
      await clock.advanceTo(clock.now() + ms);
      await clock.settle();
    },
    dispose: async () => {
      let stopped = false;
      const p = engine.stop().then(() => (stopped = true));
      await clock.runUntil(Number.MAX_SAFE_INTEGER, () => stopped);
      await p;
      await runner.stop();
      await offLive();
      await app.close();
      await services.imports.close();
      await t.dispose();
      rmSync(importDir, { recursive: true, force: true });
    },
  };
  return w;
}

export interface Owner {
  userId: number;
  token: string;
  call(method: InjectOptions['method'], url: string, body?: unknown): Promise<LightMyRequestResponse>;
}

let seq = 0;

export async function owner(w: LinkWorld, o: { parentId?: number } = {}): Promise<Owner> {
  const userId = await insertUser(
    w.t.db,
    {
      email: `link-owner${++seq}-${process.pid}@example.test`,
      timeZone: 'Asia/Kuala_Lumpur',
      defaultCountry: 'MY',
      parentId: o.parentId ?? null,
      passwordHash: await cheapPasswords.hash('irrelevant password'),
    },
    new Date(w.clock.now()),
  );
  const token = (await w.services.tokens.create({ userId }, { name: 'test' })).token;
  return {
    userId,
    token,
    call: (method, url, body) =>
      w.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as InjectOptions['payload'] }) }),
  };
}
