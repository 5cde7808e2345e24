/**
 * Device leases and the outbox statements the dispatcher runs under them: who may claim what, when,
 * and how each batch statement changes (or leaves alone) the rows it is given. Races that need two
 * connections run on two pools on PostgreSQL; on PGlite the same calls run one after the other.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Db, Queryable } from '../../src/store/db.js';
import { insertCampaign } from '../../src/store/sql/campaigns.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { acquireLeases, releaseLeases, renewLeases } from '../../src/store/sql/leases.js';
import { generateLeads } from '../../src/store/sql/leads.js';
import {
  claimDueHeads,
  deferMessages,
  deleteFinishedBefore,
  findInFlight,
  loadPacingHistory,
  pendingHeads,
  recordOutcomes,
  recordReceipts,
  settleInFlight,
  type ClaimedMessage,
  type MessageStatus,
  type Outcome,
} from '../../src/store/sql/messages.js';
import { insertUser } from '../../src/store/sql/users.js';
import { ensureWindow } from '../../src/store/sql/windows.js';
import { backends, openSecondPool, openTestDb, type Backend, type TestDb } from '../helpers/db.js';

const T = Date.parse('2026-03-06T12:00:00Z');
const S = 1_000;
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const at = (offsetMs: number): Date => new Date(T + offsetMs);

interface Fleet {
  userId: number;
  devices: number[];
  /** A running campaign (at-most-once) and a running at-least-once one. */
  campaign: number;
  atLeastOnce: number;
  /** The next lead not yet used by any message, so (campaign, lead) never collides. */
  nextLead(): { id: number; phone: string };
}

async function fleet(db: Db, devices: number, opts: { timeZone?: string; hourlyLimits?: (number | null)[] } = {}): Promise<Fleet> {
  const now = new Date(T);
  const userId = await insertUser(db, { email: 'fleet@example.test', timeZone: opts.timeZone ?? 'UTC' }, now);
  const ids = await insertDevices(
    db,
    userId,
    Array.from({ length: devices }, (_, i) => ({ name: `d${i + 1}`, minDelayMs: 0, maxDelayMs: 0, hourlyLimit: opts.hourlyLimits?.[i] ?? null })),
    now,
  );
  await generateLeads(db, userId, ids, 400, '+6011', 1, now);
  const leads = (await db.query<{ id: number; phone: string }>('select id, phone from leads order by id')).rows;
  const campaign = await insertCampaign(db, userId, { name: 'spring', body: 'Hello', startsAt: now }, now);
  const atLeastOnce = await insertCampaign(db, userId, { name: 'reminder', body: 'Hi', startsAt: now, delivery: 'at_least_once' }, now);
  await db.query(`update campaigns set status = 'running', started_at = $1`, [now]);
  let used = 0;
  return {
    userId,
    devices: ids,
    campaign,
    atLeastOnce,
    nextLead: () => {
      const l = leads[used++];
      if (!l) throw new Error('fixture ran out of leads');
      return l;
    },
  };
}

interface Msg {
  device: number;
  notBefore?: number;
  status?: MessageStatus;
  campaign?: number | null;
  enrollment?: number;
  windowId?: number | null;
  attempts?: number;
  lastAttemptAt?: number | null;
  sentAt?: number | null;
  finishedAt?: number | null;
  errorCode?: string | null;
}

async function addMessage(db: Queryable, f: Fleet, m: Msg): Promise<number> {
  const lead = f.nextLead();
  const enrollment = m.enrollment ?? null;
  const res = await db.query<{ id: number }>(
    `insert into messages (user_id, device_id, lead_id, phone, campaign_id, enrollment_id, step, body, window_id, status,
                           not_before, attempts, last_attempt_at, sent_at, finished_at, error_code, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, 'Hello', $8, $9, $10, $11, $12, $13, $14, $15, $16) returning id`,
    [
      f.userId,
      m.device,
      lead.id,
      lead.phone,
      enrollment === null ? (m.campaign === undefined ? f.campaign : m.campaign) : null,
      enrollment,
      enrollment === null ? null : 1,
      m.windowId ?? null,
      m.status ?? 'pending',
      new Date(m.notBefore ?? T),
      m.attempts ?? 0,
      m.lastAttemptAt == null ? null : new Date(m.lastAttemptAt),
      m.sentAt == null ? null : new Date(m.sentAt),
      m.finishedAt == null ? null : new Date(m.finishedAt),
      m.errorCode ?? null,
      new Date(T - DAY),
    ],
  );
  return res.rows[0]!.id;
}

/** `perDevice` pending messages on each device, due at T, in one statement. */
async function addMany(db: Queryable, f: Fleet, devices: readonly number[], perDevice: number): Promise<void> {
  const device: number[] = [];
  const lead: number[] = [];
  const phone: string[] = [];
  for (let i = 0; i < perDevice; i++) {
    for (const d of devices) {
      const l = f.nextLead();
      device.push(d);
      lead.push(l.id);
      phone.push(l.phone);
    }
  }
  await db.query(
    `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, not_before, created_at)
     select $1, u.device_id, u.lead_id, u.phone, $2, 'Hello', $3, $3
       from unnest($4::bigint[], $5::bigint[], $6::text[]) as u(device_id, lead_id, phone)`,
    [f.userId, f.campaign, new Date(T), device, lead, phone],
  );
}

interface Row {
  id: number;
  device_id: number;
  status: string;
  not_before: Date;
  attempts: number;
  last_attempt_at: Date | null;
  transport_id: string | null;
  sent_at: Date | null;
  delivered_at: Date | null;
  read_at: Date | null;
  finished_at: Date | null;
  error_code: string | null;
  error: string | null;
}

async function rows(db: Queryable, ids?: readonly number[]): Promise<Row[]> {
  const res = await db.query<Row>(
    `select id, device_id, status, not_before, attempts, last_attempt_at, transport_id, sent_at, delivered_at, read_at,
            finished_at, error_code, error
       from messages where $1::bigint[] is null or id = any($1::bigint[]) order by id`,
    [ids ?? null],
  );
  return res.rows;
}

async function row(db: Queryable, id: number): Promise<Row> {
  const [r] = await rows(db, [id]);
  assert.ok(r, `message ${id} exists`);
  return r;
}

async function leases(db: Queryable): Promise<{ device_id: number; owner: string; acquired_at: Date; expires_at: Date }[]> {
  const res = await db.query<{ device_id: number; owner: string; acquired_at: Date; expires_at: Date }>(
    'select device_id, owner, acquired_at, expires_at from device_leases order by device_id',
  );
  return res.rows;
}

const sorted = (ids: readonly number[]): number[] => [...ids].sort((a, b) => a - b);

/** Two handles on one database: two pools on PostgreSQL, the one connection twice on PGlite. */
async function twoPools(t: TestDb): Promise<[Db, Db, () => Promise<void>]> {
  if (t.backend === 'pglite') return [t.db, t.db, async () => undefined];
  const second = await openSecondPool(t);
  return [t.db, second, () => second.close()];
}

function suite(backend: Backend): void {
  async function withFleet(devices: number, fn: (db: Db, f: Fleet, t: TestDb) => Promise<void>, opts?: Parameters<typeof fleet>[2]) {
    const t = await openTestDb(backend);
    try {
      await fn(t.db, await fleet(t.db, devices, opts), t);
    } finally {
      await t.dispose();
    }
  }

  describe(`device leases on ${backend}`, () => {
    it('acquireLeases takes free live devices in id order, up to the limit, never one it already holds', () =>
      withFleet(6, async (db, f) => {
        const [d1, d2, d3, d4, d5, d6] = f.devices as [number, number, number, number, number, number];
        await db.query('update devices set deleted_at = $2 where id = $1', [d6, at(0)]);

        assert.deepEqual(await acquireLeases(db, 'a', at(0), at(30 * S), 2, false), [d1, d2]);
        assert.deepEqual(sorted(await acquireLeases(db, 'a', at(S), at(31 * S), 10, false)), [d3, d4, d5]);
        assert.deepEqual(await acquireLeases(db, 'a', at(2 * S), at(32 * S), 10, false), []);
        assert.deepEqual(await leases(db), [
          { device_id: d1, owner: 'a', acquired_at: at(0), expires_at: at(30 * S) },
          { device_id: d2, owner: 'a', acquired_at: at(0), expires_at: at(30 * S) },
          { device_id: d3, owner: 'a', acquired_at: at(S), expires_at: at(31 * S) },
          { device_id: d4, owner: 'a', acquired_at: at(S), expires_at: at(31 * S) },
          { device_id: d5, owner: 'a', acquired_at: at(S), expires_at: at(31 * S) },
        ]);
      }));

    it('two owners racing for the same devices get disjoint sets, each within its limit', () =>
      withFleet(6, async (db, f, t) => {
        const [p1, p2, close] = await twoPools(t);
        try {
          const rounds = backend === 'postgres' ? 25 : 3;
          for (let round = 0; round < rounds; round++) {
            await db.query('delete from device_leases');
            const forA = () => acquireLeases(p1, 'a', at(0), at(30 * S), 4, false);
            const forB = () => acquireLeases(p2, 'b', at(0), at(30 * S), 4, false);
            const [a, b] = backend === 'postgres' ? await Promise.all([forA(), forB()]) : [await forA(), await forB()];
            assert.ok(a.length <= 4 && b.length <= 4, `limits: a ${a.length}, b ${b.length}`);
            assert.deepEqual(a.filter((id) => b.includes(id)), [], `round ${round}: both got a device`);
            const held = await leases(db);
            assert.deepEqual(
              held.map((l) => [l.device_id, l.owner]),
              sorted([...a, ...b]).map((id) => [id, a.includes(id) ? 'a' : 'b']),
            );
            if (backend === 'pglite') {
              assert.deepEqual([a, b], [f.devices.slice(0, 4), f.devices.slice(4)]);
            }
            // Whatever the race left, a second pass each (as the next refresh) covers every device once.
            await acquireLeases(p1, 'a', at(S), at(30 * S), 4 - a.length, false);
            await acquireLeases(p2, 'b', at(S), at(30 * S), 4 - b.length, false);
            const after = await leases(db);
            assert.deepEqual(after.map((l) => l.device_id), f.devices);
            assert.ok(after.filter((l) => l.owner === 'a').length <= 4 && after.filter((l) => l.owner === 'b').length <= 4);
          }
        } finally {
          await close();
        }
      }));

    it('acquireLeases leaves another owner’s live lease alone and takes it the moment it expires', () =>
      withFleet(3, async (db, f) => {
        const [d1, d2, d3] = f.devices as [number, number, number];
        assert.deepEqual(await acquireLeases(db, 'a', at(0), at(30 * S), 2, false), [d1, d2]);
        assert.deepEqual(await acquireLeases(db, 'b', at(10 * S), at(40 * S), 10, false), [d3]);
        assert.deepEqual(await acquireLeases(db, 'b', at(30 * S - 1), at(60 * S), 10, false), []);
        assert.deepEqual(sorted(await acquireLeases(db, 'b', at(30 * S), at(60 * S), 10, false)), [d1, d2]);
        assert.deepEqual(await leases(db), [
          { device_id: d1, owner: 'b', acquired_at: at(30 * S), expires_at: at(60 * S) },
          { device_id: d2, owner: 'b', acquired_at: at(30 * S), expires_at: at(60 * S) },
          { device_id: d3, owner: 'b', acquired_at: at(10 * S), expires_at: at(40 * S) },
        ]);
        assert.deepEqual(await renewLeases(db, 'a', at(30 * S), at(60 * S)), [], 'a lost them');

        // A store only one process can open treats every other owner's lease as dead.
        assert.deepEqual(await acquireLeases(db, 'c', at(31 * S), at(61 * S), 1, true), [d1]);
        assert.deepEqual((await leases(db))[0], { device_id: d1, owner: 'c', acquired_at: at(31 * S), expires_at: at(61 * S) });
      }));

    it('an owner whose lease lapsed unclaimed can take its device back', () =>
      withFleet(2, async (db, f) => {
        const [d1, d2] = f.devices as [number, number];
        assert.deepEqual(await acquireLeases(db, 'a', at(0), at(30 * S), 10, false), [d1, d2]);
        // A stall longer than the TTL (a long GC pause, the database unreachable for a while):
        // the renewal comes too late and reports the leases lost.
        assert.deepEqual(await renewLeases(db, 'a', at(45 * S), at(75 * S)), []);
        // Nobody else took the devices: they are free, to this owner as much as to any other.
        assert.deepEqual(sorted(await acquireLeases(db, 'a', at(45 * S), at(75 * S), 10, false)), [d1, d2]);
        assert.deepEqual(await leases(db), [
          { device_id: d1, owner: 'a', acquired_at: at(45 * S), expires_at: at(75 * S) },
          { device_id: d2, owner: 'a', acquired_at: at(45 * S), expires_at: at(75 * S) },
        ]);
      }));

    it('renewLeases extends and returns only the leases still held; releaseLeases frees only its own', () =>
      withFleet(4, async (db, f) => {
        const [d1, d2, d3, d4] = f.devices as [number, number, number, number];
        await acquireLeases(db, 'a', at(0), at(30 * S), 2, false);
        await acquireLeases(db, 'a', at(S), at(10 * S), 1, false);
        await acquireLeases(db, 'b', at(2 * S), at(30 * S), 1, false);
        assert.deepEqual(await acquireLeases(db, 'b', at(15 * S), at(45 * S), 1, false), [d3]);

        assert.deepEqual(sorted(await renewLeases(db, 'a', at(15 * S), at(45 * S))), [d1, d2]);
        assert.deepEqual(await leases(db), [
          { device_id: d1, owner: 'a', acquired_at: at(0), expires_at: at(45 * S) },
          { device_id: d2, owner: 'a', acquired_at: at(0), expires_at: at(45 * S) },
          { device_id: d3, owner: 'b', acquired_at: at(15 * S), expires_at: at(45 * S) },
          { device_id: d4, owner: 'b', acquired_at: at(2 * S), expires_at: at(30 * S) },
        ]);

        // b's lease on d4 expired at 30 s: renewing at 31 s saves only d3.
        assert.deepEqual(await renewLeases(db, 'b', at(31 * S), at(61 * S)), [d3]);
        assert.deepEqual((await leases(db)).find((l) => l.device_id === d4)!.expires_at, at(30 * S));

        await releaseLeases(db, 'a', [d1, d3]);
        assert.deepEqual((await leases(db)).map((l) => [l.device_id, l.owner]), [
          [d2, 'a'],
          [d3, 'b'],
          [d4, 'b'],
        ]);
        await releaseLeases(db, 'b');
        assert.deepEqual((await leases(db)).map((l) => [l.device_id, l.owner]), [[d2, 'a']]);
      }));
  });

  describe(`claims on ${backend}`, () => {
    it('claims nothing for a device whose live lease the owner does not hold', () =>
      withFleet(3, async (db, f) => {
        const [d1, d2, d3] = f.devices as [number, number, number];
        const m1 = await addMessage(db, f, { device: d1 });
        const m2 = await addMessage(db, f, { device: d2 });
        const m3 = await addMessage(db, f, { device: d3 });
        await acquireLeases(db, 'a', at(0), at(30 * S), 1, false);
        await acquireLeases(db, 'b', at(0), at(30 * S), 1, false);

        assert.deepEqual(await claimDueHeads(db, 'b', [d1], at(S)), [], 'b does not hold d1');
        assert.deepEqual(await claimDueHeads(db, 'a', [d2, d3], at(S)), [], 'a holds neither d2 nor d3 (no lease at all)');
        assert.deepEqual(await claimDueHeads(db, 'a', [d1], at(30 * S)), [], 'a’s lease on d1 has expired');
        assert.deepEqual((await rows(db)).map((r) => r.status), ['pending', 'pending', 'pending']);

        assert.deepEqual((await claimDueHeads(db, 'a', [d1, d2, d3], at(S))).map((m) => m.id), [m1]);
        assert.deepEqual((await rows(db)).map((r) => [r.id, r.status]), [
          [m1, 'sending'],
          [m2, 'pending'],
          [m3, 'pending'],
        ]);
      }));

    it('claims the due head of each device: one per device, by (not_before, id), never early', () =>
      withFleet(2, async (db, f) => {
        const [d1, d2] = f.devices as [number, number];
        const windowId = await ensureWindow(db, { timeZone: 'UTC', startMinute: 540, endMinute: 1020, days: 127 });
        const late = await addMessage(db, f, { device: d1, notBefore: T + 10 * S });
        const first = await addMessage(db, f, { device: d1, notBefore: T, windowId });
        const second = await addMessage(db, f, { device: d1, notBefore: T });
        const future = await addMessage(db, f, { device: d1, notBefore: T + 60 * S });
        const failed = await addMessage(db, f, { device: d1, notBefore: T - HOUR, status: 'failed', attempts: 3, finishedAt: T - HOUR });
        const enrolled = await addMessage(db, f, { device: d2, notBefore: T + 5 * S, enrollment: 77, attempts: 1 });
        await acquireLeases(db, 'a', at(0), at(HOUR), 10, false);

        const heads = await pendingHeads(db, [d1, d2]);
        assert.deepEqual([...heads.entries()].sort(), [
          [d1, T],
          [d2, T + 5 * S],
        ]);

        const claim = async (now: number) => {
          const got = await claimDueHeads(db, 'a', [d1, d2], new Date(now));
          return got.sort((x, y) => x.device_id - y.device_id);
        };
        const round1 = await claim(T + 20 * S);
        const lead1 = (await db.query<{ lead_id: number; phone: string }>('select lead_id, phone from messages where id = $1', [first])).rows[0]!;
        const lead2 = (await db.query<{ lead_id: number; phone: string }>('select lead_id, phone from messages where id = $1', [enrolled])).rows[0]!;
        assert.deepEqual(round1, [
          {
            id: first,
            user_id: f.userId,
            device_id: d1,
            lead_id: lead1.lead_id,
            phone: lead1.phone,
            body: 'Hello',
            media: null,
            window_id: windowId,
            attempts: 0,
            campaign_id: f.campaign,
            enrollment_id: null,
            step: null,
            not_before: at(0),
          },
          {
            id: enrolled,
            user_id: f.userId,
            device_id: d2,
            lead_id: lead2.lead_id,
            phone: lead2.phone,
            body: 'Hello',
            media: null,
            window_id: null,
            attempts: 1,
            campaign_id: null,
            enrollment_id: 77,
            step: 1,
            not_before: at(5 * S),
          },
        ] satisfies ClaimedMessage[]);
        assert.deepEqual((await claim(T + 20 * S)).map((m) => m.id), [second]);
        assert.deepEqual((await claim(T + 20 * S)).map((m) => m.id), [late]);
        assert.deepEqual(await claim(T + 20 * S), [], 'the last one is not due until 60 s');
        assert.deepEqual(await claim(T + 60 * S - 1), []);
        assert.deepEqual((await claim(T + 60 * S)).map((m) => m.id), [future]);
        assert.deepEqual(
          (await rows(db)).map((r) => [r.id, r.status, r.attempts]),
          [
            [late, 'sending', 0],
            [first, 'sending', 0],
            [second, 'sending', 0],
            [future, 'sending', 0],
            [failed, 'failed', 3],
            [enrolled, 'sending', 1],
          ],
        );
      }));

    it('concurrent claims from two pools never return the same message', () =>
      withFleet(8, async (db, f, t) => {
        const [p1, p2, close] = await twoPools(t);
        try {
          await addMany(db, f, f.devices, 25);
          await acquireLeases(db, 'a', at(0), at(HOUR), 8, false);
          const seen = new Map<number, number>();
          let statements = 0;
          for (;;) {
            const got = await Promise.all([claimDueHeads(p1, 'a', f.devices, at(S)), claimDueHeads(p2, 'a', f.devices, at(S))]);
            statements += 2;
            for (const batch of got) {
              const devices = batch.map((m) => m.device_id);
              assert.equal(new Set(devices).size, devices.length, 'one statement claimed two messages of one device');
              for (const m of batch) seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
            }
            if (got[0]!.length === 0 && got[1]!.length === 0) break;
            assert.ok(statements < 200, 'claims did not drain the outbox');
          }
          assert.equal(seen.size, 200);
          assert.deepEqual([...seen.values()].filter((n) => n > 1), [], 'a message was claimed twice');
          assert.deepEqual(await db.query('select status, count(*)::int as n from messages group by status').then((r) => r.rows), [
            { status: 'sending', n: 200 },
          ]);
        } finally {
          await close();
        }
      }));

    it('concurrent claims of two owners stay within each owner’s own devices', () =>
      withFleet(8, async (db, f, t) => {
        const [p1, p2, close] = await twoPools(t);
        try {
          await addMany(db, f, f.devices, 10);
          await acquireLeases(db, 'a', at(0), at(HOUR), 4, false);
          await acquireLeases(db, 'b', at(0), at(HOUR), 4, false);
          const mine = { a: new Set(f.devices.slice(0, 4)), b: new Set(f.devices.slice(4)) };
          const claimed = { a: [] as ClaimedMessage[], b: [] as ClaimedMessage[] };
          for (let i = 0; i < 12; i++) {
            const [a, b] = await Promise.all([claimDueHeads(p1, 'a', f.devices, at(S)), claimDueHeads(p2, 'b', f.devices, at(S))]);
            claimed.a.push(...a);
            claimed.b.push(...b);
          }
          assert.ok(claimed.a.every((m) => mine.a.has(m.device_id)));
          assert.ok(claimed.b.every((m) => mine.b.has(m.device_id)));
          assert.equal(claimed.a.length, 40);
          assert.equal(claimed.b.length, 40);
        } finally {
          await close();
        }
      }));
  });

  describe(`outcomes, receipts, deferrals and recovery on ${backend}`, () => {
    it('recordOutcomes changes only rows still sending', () =>
      withFleet(1, async (db, f) => {
        const d = f.devices[0]!;
        const sending = await addMessage(db, f, { device: d, status: 'sending' });
        const retry = await addMessage(db, f, { device: d, status: 'sending', attempts: 1, lastAttemptAt: T - MIN });
        const offline = await addMessage(db, f, { device: d, status: 'sending', attempts: 1, lastAttemptAt: T - MIN });
        const settled = await addMessage(db, f, { device: d, status: 'unknown', finishedAt: T, errorCode: 'INTERRUPTED' });
        const pending = await addMessage(db, f, { device: d });
        const untouched = await rows(db, [settled, pending]);

        const outcome = (id: number, o: Partial<Outcome>): Outcome => ({
          id,
          status: 'sent',
          attempted: true,
          attemptAt: T + S,
          at: T + 2 * S,
          transportId: null,
          retryAt: null,
          errorCode: null,
          error: null,
          ...o,
        });
        const changed = await recordOutcomes(db, [
          outcome(sending, { transportId: 'wa-1' }),
          outcome(retry, { status: 'pending', retryAt: T + 61 * S, errorCode: 'NETWORK', error: 'timed out' }),
          outcome(offline, { status: 'pending', attempted: false, errorCode: 'DEVICE_OFFLINE', error: 'device is not connected' }),
          outcome(settled, { transportId: 'wa-late' }),
          outcome(pending, { status: 'failed', errorCode: 'REJECTED', error: 'no' }),
        ]);
        assert.equal(changed, 3);
        const base = { device_id: d, delivered_at: null, read_at: null };
        assert.deepEqual(await rows(db, [sending, retry, offline]), [
          {
            ...base,
            id: sending,
            status: 'sent',
            not_before: at(0),
            attempts: 1,
            last_attempt_at: at(S),
            transport_id: 'wa-1',
            sent_at: at(2 * S),
            finished_at: at(2 * S),
            error_code: null,
            error: null,
          },
          {
            ...base,
            id: retry,
            status: 'pending',
            not_before: at(61 * S),
            attempts: 2,
            last_attempt_at: at(S),
            transport_id: null,
            sent_at: null,
            finished_at: null,
            error_code: 'NETWORK',
            error: 'timed out',
          },
          {
            ...base,
            id: offline,
            status: 'pending',
            not_before: at(0),
            attempts: 1,
            last_attempt_at: at(-MIN),
            transport_id: null,
            sent_at: null,
            finished_at: null,
            error_code: 'DEVICE_OFFLINE',
            error: 'device is not connected',
          },
        ]);
        assert.deepEqual(await rows(db, [settled, pending]), untouched);
      }));

    it('recordReceipts moves sent -> delivered -> read, never back, and only for the message’s own device', () =>
      withFleet(2, async (db, f) => {
        const [d1, d2] = f.devices as [number, number];
        const sent = { status: 'sent' as const, attempts: 1, lastAttemptAt: T, sentAt: T, finishedAt: T };
        const m1 = await addMessage(db, f, { device: d1, ...sent });
        const m2 = await addMessage(db, f, { device: d1, ...sent });
        const m3 = await addMessage(db, f, { device: d1, ...sent });
        const pending = await addMessage(db, f, { device: d1 });
        const sending = await addMessage(db, f, { device: d1, status: 'sending' });
        const failed = await addMessage(db, f, { device: d1, status: 'failed', attempts: 1, finishedAt: T });
        const state = async (id: number) => {
          const r = await row(db, id);
          return [r.status, r.delivered_at, r.read_at];
        };

        assert.equal(await recordReceipts(db, [{ id: m1, deviceId: d1, status: 'delivered', at: T + S }]), 1);
        assert.deepEqual(await state(m1), ['delivered', at(S), null]);
        await recordReceipts(db, [{ id: m1, deviceId: d1, status: 'read', at: T + 2 * S }]);
        assert.deepEqual(await state(m1), ['read', at(S), at(2 * S)]);
        // A late or repeated receipt changes nothing that was already known.
        await recordReceipts(db, [
          { id: m1, deviceId: d1, status: 'delivered', at: T + 3 * S },
          { id: m1, deviceId: d1, status: 'read', at: T + 4 * S },
        ]);
        assert.deepEqual(await state(m1), ['read', at(S), at(2 * S)]);

        // Read before delivered (receipts can arrive out of order): delivered is implied.
        await recordReceipts(db, [{ id: m2, deviceId: d1, status: 'read', at: T + 5 * S }]);
        await recordReceipts(db, [{ id: m2, deviceId: d1, status: 'delivered', at: T + 4 * S }]);
        assert.deepEqual(await state(m2), ['read', at(5 * S), at(5 * S)]);

        // Another device cannot speak for a message it did not send.
        assert.equal(await recordReceipts(db, [{ id: m3, deviceId: d2, status: 'read', at: T + S }]), 0);
        assert.deepEqual(await state(m3), ['sent', null, null]);

        // Only messages that went out can be delivered.
        assert.equal(
          await recordReceipts(db, [pending, sending, failed].map((id) => ({ id, deviceId: d1, status: 'delivered' as const, at: T + S }))),
          0,
        );
        assert.deepEqual((await rows(db, [pending, sending, failed])).map((r) => [r.status, r.delivered_at]), [
          ['pending', null],
          ['sending', null],
          ['failed', null],
        ]);
      }));

    it('deferMessages puts the claimed row back at the opening and moves its device+window’s earlier pending rows there', () =>
      withFleet(2, async (db, f) => {
        const [d1, d2] = f.devices as [number, number];
        const w1 = await ensureWindow(db, { timeZone: 'UTC', startMinute: 540, endMinute: 1020, days: 127 });
        const w2 = await ensureWindow(db, { timeZone: 'UTC', startMinute: 600, endMinute: 1200, days: 127 });
        const opening = T + 21 * HOUR;
        const claimed = await addMessage(db, f, { device: d1, windowId: w1, status: 'sending', attempts: 1, lastAttemptAt: T - HOUR });
        const earlier = await addMessage(db, f, { device: d1, windowId: w1, notBefore: T + 5 * MIN });
        const afterOpening = await addMessage(db, f, { device: d1, windowId: w1, notBefore: opening + HOUR });
        const otherWindow = await addMessage(db, f, { device: d1, windowId: w2, notBefore: T });
        const noWindow = await addMessage(db, f, { device: d1, windowId: null, notBefore: T });
        const otherDevice = await addMessage(db, f, { device: d2, windowId: w1, notBefore: T });
        const notPending = await addMessage(db, f, { device: d1, windowId: w1, status: 'sent', attempts: 1, finishedAt: T });
        const settledMeanwhile = await addMessage(db, f, { device: d2, windowId: w2, status: 'unknown', finishedAt: T });
        const before = await rows(db);

        await deferMessages(db, [
          { id: claimed, deviceId: d1, windowId: w1, notBefore: opening },
          // Recovery settled this one first: a deferral must not revive it.
          { id: settledMeanwhile, deviceId: d2, windowId: w2, notBefore: opening },
        ]);

        const after = await rows(db);
        const changed = after.filter((r, i) => JSON.stringify(r) !== JSON.stringify(before[i]));
        assert.deepEqual(
          changed.map((r) => [r.id, r.status, r.not_before, r.attempts]),
          [
            [claimed, 'pending', new Date(opening), 1],
            [earlier, 'pending', new Date(opening), 0],
          ],
        );
        for (const id of [afterOpening, otherWindow, noWindow, otherDevice, notPending, settledMeanwhile]) {
          assert.deepEqual(after.find((r) => r.id === id), before.find((r) => r.id === id));
        }
        // Not an attempt: nothing about the earlier attempt changed.
        assert.deepEqual((await row(db, claimed)).last_attempt_at, at(-HOUR));
      }));

    it('findInFlight reports sending rows with their delivery choice; settleInFlight marks them sent, pending or unknown', () =>
      withFleet(2, async (db, f) => {
        const [d1, d2] = f.devices as [number, number];
        const proven = await addMessage(db, f, { device: d1, status: 'sending' });
        const retried = await addMessage(db, f, { device: d1, status: 'sending', campaign: f.atLeastOnce, attempts: 1, lastAttemptAt: T - HOUR, errorCode: 'NETWORK' });
        const lost = await addMessage(db, f, { device: d1, status: 'sending', enrollment: 5, attempts: 1, lastAttemptAt: T - HOUR });
        const elsewhere = await addMessage(db, f, { device: d2, status: 'sending' });
        const done = await addMessage(db, f, { device: d1, status: 'sent', attempts: 1, lastAttemptAt: T - HOUR, sentAt: T - HOUR, finishedAt: T - HOUR });
        await addMessage(db, f, { device: d1 });

        const inFlight = await findInFlight(db, [d1]);
        assert.deepEqual(
          inFlight.sort((a, b) => a.id - b.id),
          [
            { id: proven, device_id: d1, campaign_id: f.campaign, enrollment_id: null, at_least_once: false },
            { id: retried, device_id: d1, campaign_id: f.atLeastOnce, enrollment_id: null, at_least_once: true },
            { id: lost, device_id: d1, campaign_id: null, enrollment_id: 5, at_least_once: false },
          ],
        );

        const doneBefore = await row(db, done);
        await settleInFlight(db, [
          { id: proven, status: 'sent', at: T - 30 * S },
          { id: retried, status: 'pending', at: T },
          { id: lost, status: 'unknown', at: T },
          { id: done, status: 'unknown', at: T },
        ]);
        const base = { device_id: d1, not_before: at(0), transport_id: null, delivered_at: null, read_at: null };
        assert.deepEqual(await rows(db, [proven, retried, lost]), [
          {
            ...base,
            id: proven,
            status: 'sent',
            attempts: 1,
            last_attempt_at: at(-30 * S),
            sent_at: at(-30 * S),
            finished_at: at(-30 * S),
            error_code: null,
            error: null,
          },
          {
            ...base,
            id: retried,
            status: 'pending',
            attempts: 1,
            last_attempt_at: at(-HOUR),
            sent_at: null,
            finished_at: null,
            error_code: 'NETWORK',
            error: null,
          },
          {
            ...base,
            id: lost,
            status: 'unknown',
            attempts: 1,
            last_attempt_at: at(-HOUR),
            sent_at: null,
            finished_at: at(0),
            error_code: 'INTERRUPTED',
            error: 'the process sending this message stopped mid-send; it may or may not have been delivered',
          },
        ]);
        assert.deepEqual(await row(db, done), doneBefore);
        assert.equal((await row(db, elsewhere)).status, 'sending');
        assert.deepEqual(await findInFlight(db, [d1]), []);
      }));
  });

  describe(`history and retention on ${backend}`, () => {
    it('loadPacingHistory returns the last attempt, the local-day count and the last hour capped at the hourly limit', () =>
      withFleet(
        4,
        async (db, f) => {
          const [d1, d2, d3, d4] = f.devices as [number, number, number, number];
          // 12:00Z is 20:00 in Kuala Lumpur: the local day began at 16:00Z the day before.
          const dayStart = Date.parse('2026-03-05T16:00:00Z');
          const attempt = (device: number, t: number) =>
            addMessage(db, f, { device, status: 'sent', attempts: 1, lastAttemptAt: t, sentAt: t, finishedAt: t });
          await attempt(d1, dayStart - S);
          await attempt(d1, dayStart);
          await attempt(d1, T - 90 * MIN);
          await attempt(d1, T - HOUR);
          for (const m of [50, 40, 30, 10]) await attempt(d1, T - m * MIN);
          await attempt(d1, T);
          // Another process's clock may run ahead: an attempt after `now` is not history yet.
          await attempt(d1, T + 5 * MIN);
          await addMessage(db, f, { device: d1 });
          await attempt(d2, T - 20 * MIN);
          await attempt(d2, T - 5 * MIN);
          await attempt(d4, T - 2 * HOUR);
          await attempt(d4, dayStart - HOUR);

          const history = await loadPacingHistory(
            db,
            [
              { id: d1, dayStart, hourlyLimit: 3 },
              { id: d2, dayStart, hourlyLimit: null },
              { id: d3, dayStart, hourlyLimit: 5 },
              { id: d4, dayStart, hourlyLimit: 10 },
            ],
            new Date(T),
          );
          assert.deepEqual(
            history.sort((a, b) => a.device_id - b.device_id),
            [
              { device_id: d1, last_at: at(0), day_count: 8, recent: [at(0), at(-10 * MIN), at(-30 * MIN)] },
              { device_id: d2, last_at: at(-5 * MIN), day_count: 2, recent: [] },
              { device_id: d3, last_at: null, day_count: 0, recent: [] },
              { device_id: d4, last_at: at(-2 * HOUR), day_count: 1, recent: [] },
            ],
          );
          assert.deepEqual(await loadPacingHistory(db, [], new Date(T)), []);
        },
        { timeZone: 'Asia/Kuala_Lumpur' },
      ));

    it('deleteFinishedBefore deletes old finished rows in batches and keeps those of running or paused campaigns', () =>
      withFleet(1, async (db, f) => {
        const d = f.devices[0]!;
        const campaign = async (status: string) => {
          const id = await insertCampaign(db, f.userId, { name: status, body: 'x', startsAt: new Date(T - 3 * DAY) }, new Date(T - 3 * DAY));
          await db.query('update campaigns set status = $2 where id = $1', [id, status]);
          return id;
        };
        const completed = await campaign('completed');
        const cancelled = await campaign('cancelled');
        const paused = await campaign('paused');
        const old = T - DAY;
        const finished = (c: number | null, status: MessageStatus, finishedAt: number, enrollment?: number) =>
          addMessage(db, f, { device: d, campaign: c, status, finishedAt, ...(enrollment ? { enrollment } : {}) });

        // These go: a finished campaign's, a cancelled one's, two enrollments', an orphan's.
        await finished(completed, 'sent', old);
        await finished(cancelled, 'cancelled', old);
        await finished(null, 'failed', T - 2 * DAY, 11);
        await finished(null, 'unknown', old, 12);
        await finished(987_654, 'skipped', old);
        const kept = [
          await finished(f.campaign, 'sent', old),
          await finished(paused, 'read', old),
          await finished(completed, 'delivered', T + HOUR),
          await finished(completed, 'sent', T),
          await addMessage(db, f, { device: d, campaign: completed }),
          await addMessage(db, f, { device: d, campaign: null, enrollment: 13, status: 'sending' }),
        ];

        const batches: number[] = [];
        for (;;) {
          const n = await deleteFinishedBefore(db, new Date(T), 2);
          batches.push(n);
          if (n === 0) break;
        }
        assert.deepEqual(batches, [2, 2, 1, 0]);
        assert.deepEqual((await rows(db)).map((r) => r.id), kept);
      }));
  });
}

for (const backend of backends) suite(backend);
