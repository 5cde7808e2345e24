/**
 * /api/v1/campaigns: what each request leaves in the tables (campaign rows, send_windows rows,
 * media rows, the outbox), the state machine including the moves it refuses, held rows on pause,
 * retrying failed messages, statistics, validation, tenant isolation and the team-member ban.
 * Media given by URL is served by a local HTTP server on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CAMPAIGNS_CHANNEL, WORK_CHANNEL } from '../../src/engine/events.js';
import type { Queryable } from '../../src/store/db.js';
import { completeFinishedCampaigns, startCampaignNow } from '../../src/store/sql/campaigns.js';
import { materialiseAll } from '../../src/engine/materialise.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { insertLeads } from '../../src/store/sql/leads.js';
import { expectError, json, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { backends } from '../helpers/db.js';
import { plainImage, startServer, type TestServer } from '../helpers/media.js';

const base = '/api/v1/campaigns';
const draft = { name: 'Spring offer', body: 'Hello, 20% off this week.' };

const zeroCounts = { pending: 0, held: 0, sending: 0, sent: 0, delivered: 0, read: 0, failed: 0, cancelled: 0, skipped: 0, unknown: 0 };
const zeroSummary = { total: 0, pending: 0, sent: 0, delivered: 0, read: 0, failed: 0, cancelled: 0, other: 0 };

async function campaignRow(db: Queryable, id: number): Promise<Record<string, any> | undefined> {
  const res = await db.query<Record<string, any>>(
    `select c.*, w.time_zone as w_zone, w.start_minute as w_start, w.end_minute as w_end, w.days as w_days
       from campaigns c left join send_windows w on w.id = c.window_id where c.id = $1`,
    [id],
  );
  return res.rows[0];
}

interface MessageRow {
  id: number;
  device_id: number;
  lead_id: number;
  status: string;
  not_before: Date;
  finished_at: Date | null;
  error_code: string | null;
  error: string | null;
  media: any;
}

async function messageRows(db: Queryable, campaignId: number): Promise<MessageRow[]> {
  const res = await db.query<MessageRow>(
    `select id, device_id, lead_id, status, not_before, finished_at, error_code, error, media from messages where campaign_id = $1 order by device_id, id`,
    [campaignId],
  );
  return res.rows;
}

async function countOf(db: Queryable, sql: string, params: unknown[]): Promise<number> {
  return (await db.query<{ n: number }>(sql, params)).rows[0]!.n;
}

for (const backend of backends) {
  describe(`campaigns API (${backend})`, () => {
    let api: TestApi;
    let server: TestServer;
    let png: Buffer;
    let phone = 60_120_000_000;

    before(async () => {
      api = await openApi(backend);
      png = await plainImage(320, 200);
      server = await startServer({ 'spring.png': { body: png, type: 'image/png' } });
    });
    after(async () => {
      await server.close();
      await api.dispose();
    });

    const now = (): Date => new Date(api.clock.now());
    const fileUrl = (): string => `${server.url}/file/spring.png`;
    const missingUrl = (): string => `${server.url}/missing`;

    async function device(owner: Caller, name = 'phone'): Promise<number> {
      const [id] = await insertDevices(api.t.db, owner.userId, [{ name, minDelayMs: 0, maxDelayMs: 0 }], now());
      return id!;
    }

    async function leads(owner: Caller, deviceId: number | null, n: number, niches = ['cafe']): Promise<void> {
      await insertLeads(
        api.t.db,
        owner.userId,
        Array.from({ length: n }, (_, i) => ({ name: `lead ${i}`, phone: `+${++phone}`, deviceId, niches, status: 'prospect', triggers: [] })),
        now(),
      );
    }

    /** What the starter does when a campaign is due: running, with its outbox materialised. */
    async function start(id: number): Promise<number> {
      const started = await startCampaignNow(api.t.db, id, now(), ['scheduled']);
      assert.ok(started, 'the campaign was scheduled');
      return materialiseAll(api.t.db, id, now().getTime());
    }

    /** Sets the status of the given outbox rows, as the dispatcher would have. */
    async function setStatus(ids: number[], status: string, extra = ''): Promise<void> {
      await api.t.db.query(`update messages set status = $2${extra} where id = any($1::bigint[])`, [ids, status]);
    }

    async function fail(ids: number[]): Promise<void> {
      await api.t.db.query(
        `update messages set status = 'failed', error_code = 'transport_error', error = 'boom', finished_at = $2, attempts = 1, last_attempt_at = $2
          where id = any($1::bigint[])`,
        [ids, now()],
      );
    }

    const mediaCount = (userId: number): Promise<number> => countOf(api.t.db, `select count(*)::int as n from media where user_id = $1`, [userId]);
    const campaignCount = (userId: number): Promise<number> => countOf(api.t.db, `select count(*)::int as n from campaigns where user_id = $1`, [userId]);

    async function upload(owner: Caller, body: Buffer, query = '?filename=spring.png'): Promise<any> {
      const res = await api.app.inject({
        method: 'POST',
        url: `/api/v1/media${query}`,
        headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'image/png' },
        payload: body,
      });
      return ok(res, 201);
    }

    it('creates a draft and stores exactly what was asked', async () => {
      const owner = await tenant(api);
      const d1 = await device(owner);
      const d2 = await device(owner);
      const res = await owner.call('POST', base, {
        ...draft,
        media: { type: 'image', url: fileUrl(), caption: 'Spring' },
        audience: { niches: ['cafe', 'bakery', 'cafe'], statuses: [], device_ids: [d2, d1], triggers: ['vip'] },
        starts_at: '2026-03-10T09:00:00+08:00',
        window: { start: '09:00', end: '18:30', days: ['mon', 'tue', 'wed', 'thu', 'fri'] },
        delivery: 'at_least_once',
        mode: 'pool',
        device_hourly_quota: 30,
        device_daily_quota: 200,
        daily_limit: 1000,
        delay: { min_seconds: 5, max_seconds: 30 },
      });
      const c = ok(res, 201);
      assert.equal(c.status, 'draft');
      assert.equal(c.name, 'Spring offer');
      // A draft only keeps what was asked for: nothing is fetched before it is scheduled.
      assert.deepEqual(c.media, { type: 'image', url: fileUrl(), caption: 'Spring' });
      assert.deepEqual(c.audience, { niches: ['cafe', 'bakery'], statuses: null, device_ids: [d1, d2].sort((a, b) => a - b), triggers: ['vip'] });
      assert.equal(c.starts_at, '2026-03-10T01:00:00.000Z');
      // The account's zone is the default for a window.
      assert.deepEqual(c.window, { start: '09:00', end: '18:30', days: ['mon', 'tue', 'wed', 'thu', 'fri'], time_zone: 'Asia/Kuala_Lumpur' });
      assert.deepEqual(c.delay, { min_seconds: 5, max_seconds: 30 });
      assert.deepEqual(c.counts, zeroCounts);
      assert.equal(c.started_at, null);
      assert.equal(c.audience_size, null);

      const row = (await campaignRow(api.t.db, c.id))!;
      assert.equal(row.user_id, owner.userId);
      assert.equal(row.status, 'draft');
      // The engine reads camelCase audience keys and the transport's media shape.
      assert.deepEqual(row.audience, { niches: ['cafe', 'bakery'], deviceIds: [d1, d2].sort((a, b) => a - b), triggers: ['vip'] });
      assert.deepEqual(row.media, { kind: 'image', url: fileUrl(), caption: 'Spring' });
      assert.equal(row.mode, 'pool');
      assert.equal(row.delivery, 'at_least_once');
      assert.equal(row.device_hourly_quota, 30);
      assert.equal(row.device_daily_quota, 200);
      assert.equal(row.daily_limit, 1000);
      assert.deepEqual([row.min_delay_ms, row.max_delay_ms], [5000, 30000]);
      assert.equal(row.audience_size, null);
      assert.equal(row.starts_at.toISOString(), '2026-03-10T01:00:00.000Z');
      assert.deepEqual([row.w_zone, row.w_start, row.w_end, row.w_days], ['Asia/Kuala_Lumpur', 540, 1110, 31]);
      assert.equal(row.created_at.getTime(), api.clock.now());
      assert.equal(await mediaCount(owner.userId), 0, 'a draft fetches nothing');
      assert.deepEqual(server.hits.filter((h) => h === '/file/spring.png'), []);

      // GET answers the same.
      assert.deepEqual(ok(await owner.call('GET', `${base}/${c.id}`)), c);
    });

    it('stores windows as shared send_windows rows, in the zone given, overnight and to midnight', async () => {
      const owner = await tenant(api);
      const london = { start: '22:00', end: '06:00', days: ['sat', 'sun'], time_zone: 'Europe/London' };
      const a = ok(await owner.call('POST', base, { ...draft, window: { ...london, overnight: true } }), 201);
      const b = ok(await owner.call('POST', base, { ...draft, window: { ...london, overnight: true } }), 201);
      assert.deepEqual(a.window, london);
      const ra = (await campaignRow(api.t.db, a.id))!;
      const rb = (await campaignRow(api.t.db, b.id))!;
      assert.deepEqual([ra.w_zone, ra.w_start, ra.w_end, ra.w_days], ['Europe/London', 1320, 360, 32 + 64]);
      assert.equal(ra.window_id, rb.window_id, 'one row per distinct window');

      // To midnight does not cross it: no overnight flag needed.
      const midnight = ok(await owner.call('POST', base, { ...draft, window: { start: '18:00', end: '00:00', time_zone: 'America/New_York' } }), 201);
      assert.deepEqual(midnight.window, { start: '18:00', end: '24:00', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], time_zone: 'America/New_York' });
      const rm = (await campaignRow(api.t.db, midnight.id))!;
      assert.deepEqual([rm.w_zone, rm.w_start, rm.w_end, rm.w_days], ['America/New_York', 1080, 1440, 127]);
      const fromMidnight = ok(await owner.call('POST', base, { ...draft, window: { start: '00:00', end: '06:00', time_zone: 'UTC' } }), 201);
      const rf = (await campaignRow(api.t.db, fromMidnight.id))!;
      assert.deepEqual([rf.w_zone, rf.w_start, rf.w_end], ['UTC', 0, 360]);

      // null: any time; the window row stays for whoever else uses it.
      const cleared = ok(await owner.call('PATCH', `${base}/${a.id}`, { window: null }));
      assert.equal(cleared.window, null);
      assert.equal((await campaignRow(api.t.db, a.id))!.window_id, null);
      assert.equal((await campaignRow(api.t.db, b.id))!.window_id, rb.window_id);
      const windowRows = await countOf(api.t.db, `select count(*)::int as n from send_windows where id = $1`, [rb.window_id]);
      assert.equal(windowRows, 1);
    });

    it('refuses an end before the start unless the window says overnight, and overnight on a window that does not cross midnight', async () => {
      const owner = await tenant(api);
      const windowsBefore = await countOf(api.t.db, `select count(*)::int as n from send_windows`, []);
      const refused: [Record<string, unknown>, string][] = [
        [{ start: '22:00', end: '06:00' }, 'window.end'],
        [{ start: '18:00', end: '09:00', overnight: false }, 'window.end'],
        [{ start: '00:30', end: '00:10' }, 'window.end'],
        [{ start: '09:00', end: '17:00', overnight: true }, 'window.overnight'],
        [{ start: '18:00', end: '00:00', overnight: true }, 'window.overnight'],
        [{ start: '00:00', end: '06:00', overnight: true }, 'window.overnight'],
      ];
      for (const [window, path] of refused) {
        const err = expectError(await owner.call('POST', base, { ...draft, window }), 400, 'VALIDATION_FAILED');
        assert.deepEqual(err.details.map((d) => d.path), [path], JSON.stringify(window));
      }
      assert.equal(await campaignCount(owner.userId), 0);
      assert.equal(await countOf(api.t.db, `select count(*)::int as n from send_windows`, []), windowsBefore, 'no window row written');

      const ok1 = ok(await owner.call('POST', base, { ...draft, window: { start: '18:00', end: '09:00', overnight: true, time_zone: 'UTC' } }), 201);
      assert.deepEqual(ok1.window, { start: '18:00', end: '09:00', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], time_zone: 'UTC' });
      const row = (await campaignRow(api.t.db, ok1.id))!;
      assert.deepEqual([row.w_zone, row.w_start, row.w_end, row.w_days], ['UTC', 1080, 540, 127]);
      // overnight: false on a same-day window is just the default.
      const sameDay = ok(await owner.call('POST', base, { ...draft, window: { start: '09:00', end: '17:00', overnight: false, time_zone: 'UTC' } }), 201);
      assert.deepEqual([(await campaignRow(api.t.db, sameDay.id))!.w_start, (await campaignRow(api.t.db, sameDay.id))!.w_end], [540, 1020]);

      // The same rules guard an edit, which then changes nothing.
      const before = await campaignRow(api.t.db, ok1.id);
      const e1 = expectError(await owner.call('PATCH', `${base}/${ok1.id}`, { window: { start: '20:00', end: '08:00' } }), 400, 'VALIDATION_FAILED');
      assert.deepEqual(e1.details.map((d) => d.path), ['window.end']);
      const e2 = expectError(await owner.call('PATCH', `${base}/${ok1.id}`, { window: { start: '08:00', end: '20:00', overnight: true } }), 400, 'VALIDATION_FAILED');
      assert.deepEqual(e2.details.map((d) => d.path), ['window.overnight']);
      assert.deepEqual(await campaignRow(api.t.db, ok1.id), before);
      const patched = ok(await owner.call('PATCH', `${base}/${ok1.id}`, { window: { start: '20:00', end: '08:00', overnight: true, time_zone: 'UTC' } }));
      assert.deepEqual([patched.window.start, patched.window.end], ['20:00', '08:00']);
      const after = (await campaignRow(api.t.db, ok1.id))!;
      assert.deepEqual([after.w_start, after.w_end], [1200, 480]);
    });

    it('refuses bad input with a clean error and writes nothing', async () => {
      const owner = await tenant(api);
      const bad: [unknown, number, string, string?][] = [
        [{ ...draft, colour: 'red' }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, audience: { niche: ['x'] } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, window: { start: '25:00', end: '18:00' } }, 400, 'VALIDATION_FAILED', 'body.window.start'],
        [{ ...draft, window: { start: '09:00', end: '09:60' } }, 400, 'VALIDATION_FAILED', 'body.window.end'],
        [{ ...draft, window: { start: '09:00', end: '09:00' } }, 400, 'VALIDATION_FAILED', 'window.end'],
        [{ ...draft, window: { start: '09:00', end: '17:00', time_zone: 'Mars/Olympus_Mons' } }, 400, 'VALIDATION_FAILED', 'window.time_zone'],
        [{ ...draft, window: { start: '09:00', end: '17:00', days: [] } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, window: { start: '09:00', end: '17:00', days: ['someday'] } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, window: { start: '09:00', end: '17:00', extra: 1 } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, window: { start: '09:00', end: '17:00', overnight: 'yes' } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, body: 'x'.repeat(4097) }, 400, 'VALIDATION_FAILED', 'body.body'],
        [{ ...draft, body: '' }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, name: '   ' }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, starts_at: '2026-03-10T09:00:00' }, 400, 'VALIDATION_FAILED', 'body.starts_at'],
        [{ ...draft, media: { type: 'sticker', url: fileUrl() } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, media: { type: 'image', url: 'file:///etc/passwd' } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, media: { type: 'image' } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, media: { type: 'image', url: fileUrl(), media_id: 1 } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, media: { type: 'image', media_id: 0 } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, delivery: 'exactly_once' }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, device_hourly_quota: 10 }, 400, 'VALIDATION_FAILED', 'device_hourly_quota'],
        [{ ...draft, daily_limit: 0 }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, delay: { min_seconds: 10, max_seconds: 5 } }, 400, 'VALIDATION_FAILED', 'delay.max_seconds'],
        [{ ...draft, delay: { min_seconds: -1, max_seconds: 5 } }, 400, 'VALIDATION_FAILED', 'body.delay.min_seconds'],
        [{ ...draft, delay: { min_seconds: 1, max_seconds: 86_401 } }, 400, 'VALIDATION_FAILED', 'body.delay.max_seconds'],
        [{ ...draft, delay: { min_seconds: 1 } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, body: 'Hi {}' }, 400, 'VALIDATION_FAILED', 'body'],
        [{ ...draft, audience: { device_ids: ['one'] } }, 400, 'VALIDATION_FAILED'],
        [{ name: 'no body' }, 400, 'VALIDATION_FAILED'],
      ];
      for (const [body, status, code, path] of bad) {
        const err = expectError(await owner.call('POST', base, body), status, code);
        if (path) assert.ok(err.details.some((d) => d.path === path), `${path} in ${JSON.stringify(err.details)}`);
      }
      const huge = await owner.call('POST', base, JSON.stringify({ ...draft, body: 'x'.repeat(2_000_000) }), { 'content-type': 'application/json' });
      expectError(huge, 413, 'BODY_TOO_LARGE');
      expectError(await owner.call('POST', base, '{"name": ', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
      assert.equal(await campaignCount(owner.userId), 0);
      assert.equal(await mediaCount(owner.userId), 0);

      // The same checks guard an edit, and a refused edit changes nothing.
      const c = ok(await owner.call('POST', base, draft), 201);
      const before = await campaignRow(api.t.db, c.id);
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { status: 'running' }), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { window: { start: '10:00', end: '10:00' } }), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { device_daily_quota: 5 }), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { body: 'Hi {first_name' }), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { delay: { min_seconds: 3, max_seconds: 2 } }), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { media: { type: 'image', url: fileUrl(), media_id: 1 } }), 400, 'VALIDATION_FAILED');
      assert.deepEqual(await campaignRow(api.t.db, c.id), before);
      // Quotas are fine together with pool mode, and switching back to owned must drop them.
      ok(await owner.call('PATCH', `${base}/${c.id}`, { mode: 'pool', device_daily_quota: 5 }));
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { mode: 'owned' }), 400, 'VALIDATION_FAILED');
      assert.deepEqual([(await campaignRow(api.t.db, c.id))!.mode, (await campaignRow(api.t.db, c.id))!.device_daily_quota], ['pool', 5]);
      const owned = ok(await owner.call('PATCH', `${base}/${c.id}`, { mode: 'owned', device_daily_quota: null }));
      assert.equal(owned.mode, 'owned');
      assert.equal(owned.device_daily_quota, null);
      const row = (await campaignRow(api.t.db, c.id))!;
      assert.deepEqual([row.mode, row.device_daily_quota], ['owned', null]);

      expectError(await owner.call('GET', `${base}?status=sleeping`), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('GET', `${base}?colour=red`), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('GET', `${base}/abc`), 400, 'VALIDATION_FAILED');
    });

    it('keeps quotas and a daily limit to pool campaigns', async () => {
      const owner = await tenant(api);
      const all = expectError(
        await owner.call('POST', base, { ...draft, device_hourly_quota: 10, device_daily_quota: 50, daily_limit: 100 }),
        400,
        'VALIDATION_FAILED',
      );
      assert.deepEqual(all.details.map((d) => d.path), ['device_hourly_quota', 'device_daily_quota', 'daily_limit']);
      for (const k of ['device_hourly_quota', 'device_daily_quota', 'daily_limit']) {
        const one = expectError(await owner.call('POST', base, { ...draft, mode: 'owned', [k]: 7 }), 400, 'VALIDATION_FAILED');
        assert.deepEqual(one.details.map((d) => d.path), [k]);
      }
      assert.equal(await campaignCount(owner.userId), 0);

      // Null quotas are no quotas: fine for an owned campaign.
      const owned = ok(await owner.call('POST', base, { ...draft, device_hourly_quota: null, device_daily_quota: null, daily_limit: null }), 201);
      assert.equal(owned.mode, 'owned');
      const pool = ok(await owner.call('POST', base, { ...draft, mode: 'pool', device_hourly_quota: 10, device_daily_quota: 50, daily_limit: 100 }), 201);
      assert.deepEqual([pool.mode, pool.device_hourly_quota, pool.device_daily_quota, pool.daily_limit], ['pool', 10, 50, 100]);
      const prow = (await campaignRow(api.t.db, pool.id))!;
      assert.deepEqual([prow.mode, prow.device_hourly_quota, prow.device_daily_quota, prow.daily_limit], ['pool', 10, 50, 100]);

      // An owned campaign cannot be given one by an edit either; a scheduled one no more than a draft.
      ok(await owner.call('POST', `${base}/${owned.id}/schedule`));
      const before = await campaignRow(api.t.db, owned.id);
      for (const k of ['device_hourly_quota', 'device_daily_quota', 'daily_limit']) {
        const err = expectError(await owner.call('PATCH', `${base}/${owned.id}`, { [k]: 3 }), 400, 'VALIDATION_FAILED');
        assert.deepEqual(err.details.map((d) => d.path), [k]);
      }
      assert.deepEqual(await campaignRow(api.t.db, owned.id), before);
      // Turning it into a pool campaign in the same edit is fine.
      const turned = ok(await owner.call('PATCH', `${base}/${owned.id}`, { mode: 'pool', daily_limit: 3 }));
      assert.deepEqual([turned.status, turned.mode, turned.daily_limit], ['scheduled', 'pool', 3]);
      const trow = (await campaignRow(api.t.db, owned.id))!;
      assert.deepEqual([trow.mode, trow.daily_limit, trow.device_hourly_quota], ['pool', 3, null]);
    });

    it("takes the campaign's own delay, shows it, and edits or clears it", async () => {
      const owner = await tenant(api);
      const err = expectError(await owner.call('POST', base, { ...draft, delay: { min_seconds: 60, max_seconds: 30 } }), 400, 'VALIDATION_FAILED');
      assert.deepEqual(err.details.map((d) => d.path), ['delay.max_seconds']);
      assert.equal(await campaignCount(owner.userId), 0);

      const c = ok(await owner.call('POST', base, { ...draft, delay: { min_seconds: 1.5, max_seconds: 1.5 } }), 201);
      assert.deepEqual(c.delay, { min_seconds: 1.5, max_seconds: 1.5 });
      assert.deepEqual([(await campaignRow(api.t.db, c.id))!.min_delay_ms, (await campaignRow(api.t.db, c.id))!.max_delay_ms], [1500, 1500]);
      const none = ok(await owner.call('POST', base, draft), 201);
      assert.equal(none.delay, null);
      assert.deepEqual([(await campaignRow(api.t.db, none.id))!.min_delay_ms, (await campaignRow(api.t.db, none.id))!.max_delay_ms], [null, null]);

      const before = await campaignRow(api.t.db, c.id);
      const bad = expectError(await owner.call('PATCH', `${base}/${c.id}`, { delay: { min_seconds: 10, max_seconds: 9 } }), 400, 'VALIDATION_FAILED');
      assert.deepEqual(bad.details.map((d) => d.path), ['delay.max_seconds']);
      assert.deepEqual(await campaignRow(api.t.db, c.id), before);

      const e = ok(await owner.call('PATCH', `${base}/${c.id}`, { delay: { min_seconds: 0, max_seconds: 86_400 } }));
      assert.deepEqual(e.delay, { min_seconds: 0, max_seconds: 86_400 });
      assert.deepEqual([(await campaignRow(api.t.db, c.id))!.min_delay_ms, (await campaignRow(api.t.db, c.id))!.max_delay_ms], [0, 86_400_000]);
      // An edit that does not name the delay keeps it.
      ok(await owner.call('PATCH', `${base}/${c.id}`, { name: 'Renamed' }));
      assert.deepEqual([(await campaignRow(api.t.db, c.id))!.min_delay_ms, (await campaignRow(api.t.db, c.id))!.max_delay_ms], [0, 86_400_000]);
      const cleared = ok(await owner.call('PATCH', `${base}/${c.id}`, { delay: null }));
      assert.equal(cleared.delay, null);
      assert.deepEqual([(await campaignRow(api.t.db, c.id))!.min_delay_ms, (await campaignRow(api.t.db, c.id))!.max_delay_ms], [null, null]);
    });

    it('refuses an invalid template with its position, on create and on edit', async () => {
      const owner = await tenant(api);
      const cases: [string, number][] = [
        ['Hi {Hello world}', 3],
        ['Hi {}', 3],
        ['Hi {first_name', 3],
        ['Hi {first_name}}', 15],
        ['{{great|big} news|an offer}', 11],
        ['{name:{x}}', 0],
      ];
      for (const [body, index] of cases) {
        const err = expectError(await owner.call('POST', base, { ...draft, body }), 400, 'VALIDATION_FAILED');
        assert.equal(err.details.length, 1, body);
        assert.equal(err.details[0]!.path, 'body', body);
        assert.equal(err.details[0]!.index, index, body);
        assert.equal(typeof err.details[0]!.message, 'string');
      }
      assert.equal(await campaignCount(owner.userId), 0);

      const good = 'Hi {first_name:there}, {Hello|Hi|Hey}! Use code {{SAVE10}}.';
      const c = ok(await owner.call('POST', base, { ...draft, body: good }), 201);
      assert.equal(c.body, good);
      assert.equal((await campaignRow(api.t.db, c.id))!.body, good);
      const before = await campaignRow(api.t.db, c.id);
      const err = expectError(await owner.call('PATCH', `${base}/${c.id}`, { body: 'Hi {first_name}}' }), 400, 'VALIDATION_FAILED');
      assert.deepEqual(err.details.map((d) => [d.path, d.index]), [['body', 15]]);
      assert.deepEqual(await campaignRow(api.t.db, c.id), before);
    });

    it('schedules on create or later, filling in the start, and tells the engine', async () => {
      const owner = await tenant(api);
      const heard: string[] = [];
      const off = await api.t.db.listen(CAMPAIGNS_CHANNEL, (p) => heard.push(p));
      try {
        const a = ok(await owner.call('POST', base, { ...draft, schedule: true, starts_at: '2026-03-05T00:00:00Z' }), 201);
        assert.equal(a.status, 'scheduled');
        assert.equal((await campaignRow(api.t.db, a.id))!.starts_at.toISOString(), '2026-03-05T00:00:00.000Z');
        const now1 = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
        assert.equal(now1.starts_at, now().toISOString(), 'scheduled without a start: now');
        assert.equal((await campaignRow(api.t.db, now1.id))!.starts_at.getTime(), api.clock.now());
        const b = ok(await owner.call('POST', base, draft), 201);
        assert.equal(b.status, 'draft');
        assert.equal(b.starts_at, null, 'no start time: as soon as scheduled');
        assert.equal((await campaignRow(api.t.db, b.id))!.starts_at, null);
        api.clock.advance(30_000);
        const s = ok(await owner.call('POST', `${base}/${b.id}/schedule`));
        assert.equal(s.status, 'scheduled');
        assert.equal(s.starts_at, now().toISOString());
        const row = (await campaignRow(api.t.db, b.id))!;
        assert.equal(row.status, 'scheduled');
        assert.equal(row.starts_at.getTime(), api.clock.now());
        assert.equal(row.updated_at.getTime(), api.clock.now());
        await new Promise((r) => setTimeout(r, 50));
        assert.ok(heard.some((p) => JSON.parse(p).campaign === a.id), 'create with schedule announced');
        assert.ok(heard.some((p) => JSON.parse(p).campaign === b.id), 'schedule announced');
      } finally {
        await off();
      }
    });

    it('refuses to schedule a start in the past and writes nothing', async () => {
      const owner = await tenant(api);
      const past = new Date(api.clock.now() - 61_000).toISOString();
      const withinGrace = new Date(api.clock.now() - 30_000).toISOString();

      // create with schedule: true
      const e1 = expectError(await owner.call('POST', base, { ...draft, schedule: true, starts_at: past }), 400, 'VALIDATION_FAILED');
      assert.deepEqual(e1.details.map((d) => d.path), ['starts_at']);
      assert.equal(await campaignCount(owner.userId), 0);
      // A few seconds of clock skew are forgiven.
      const skewed = ok(await owner.call('POST', base, { ...draft, schedule: true, starts_at: withinGrace }), 201);
      assert.equal((await campaignRow(api.t.db, skewed.id))!.starts_at.toISOString(), withinGrace);

      // A draft may hold a past start; scheduling it is refused and the draft stays as it was.
      const d = ok(await owner.call('POST', base, { ...draft, starts_at: past }), 201);
      assert.equal(d.status, 'draft');
      const draftBefore = await campaignRow(api.t.db, d.id);
      const e2 = expectError(await owner.call('POST', `${base}/${d.id}/schedule`), 400, 'VALIDATION_FAILED');
      assert.deepEqual(e2.details.map((x) => x.path), ['starts_at']);
      assert.deepEqual(await campaignRow(api.t.db, d.id), draftBefore);
      // Editing a draft to a past time is allowed: it is checked when scheduled.
      ok(await owner.call('PATCH', `${base}/${d.id}`, { starts_at: new Date(api.clock.now() - 3_600_000).toISOString() }));
      assert.equal((await campaignRow(api.t.db, d.id))!.starts_at.getTime(), api.clock.now() - 3_600_000);

      // patch of a scheduled campaign
      const s = ok(await owner.call('POST', base, { ...draft, schedule: true, starts_at: '2026-03-20T00:00:00Z' }), 201);
      const scheduledBefore = await campaignRow(api.t.db, s.id);
      const e3 = expectError(await owner.call('PATCH', `${base}/${s.id}`, { starts_at: past, name: 'moved back' }), 400, 'VALIDATION_FAILED');
      assert.deepEqual(e3.details.map((x) => x.path), ['starts_at']);
      assert.deepEqual(await campaignRow(api.t.db, s.id), scheduledBefore);
      const moved = ok(await owner.call('PATCH', `${base}/${s.id}`, { starts_at: '2026-03-21T00:00:00Z' }));
      assert.equal(moved.starts_at, '2026-03-21T00:00:00.000Z');
      assert.equal((await campaignRow(api.t.db, s.id))!.starts_at.toISOString(), '2026-03-21T00:00:00.000Z');
    });

    it('walks the state machine and refuses every illegal move without touching the row', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 3);
      const c = ok(await owner.call('POST', base, draft), 201);
      const url = `${base}/${c.id}`;

      const refuse = async (method: 'POST' | 'PATCH' | 'DELETE', path: string, status: string): Promise<void> => {
        const before = await campaignRow(api.t.db, c.id);
        const msgs = await messageRows(api.t.db, c.id);
        const body = method === 'PATCH' ? { name: 'changed' } : path === '/retry' ? {} : undefined;
        const err = expectError(await owner.call(method, `${url}${path}`, body), 409, 'CAMPAIGN_STATE');
        assert.equal(err.details[0]!.status, status);
        assert.deepEqual(await campaignRow(api.t.db, c.id), before, `${method} ${path} left the row as it was`);
        assert.deepEqual(await messageRows(api.t.db, c.id), msgs, `${method} ${path} left the outbox as it was`);
      };

      // draft
      await refuse('POST', '/pause', 'draft');
      await refuse('POST', '/resume', 'draft');
      await refuse('POST', '/retry', 'draft');
      // scheduled
      ok(await owner.call('POST', `${url}/schedule`));
      await refuse('POST', '/schedule', 'scheduled');
      await refuse('POST', '/resume', 'scheduled');
      await refuse('POST', '/retry', 'scheduled');
      await refuse('DELETE', '', 'scheduled');
      // paused before it started: resumes to scheduled
      api.clock.advance(1000);
      assert.equal(ok(await owner.call('POST', `${url}/pause`)).status, 'paused');
      assert.equal((await campaignRow(api.t.db, c.id))!.status, 'paused');
      await refuse('POST', '/pause', 'paused');
      await refuse('POST', '/schedule', 'paused');
      await refuse('POST', '/retry', 'paused');
      await refuse('PATCH', '', 'paused');
      await refuse('DELETE', '', 'paused');
      const resumed = ok(await owner.call('POST', `${url}/resume`));
      assert.equal(resumed.status, 'scheduled');
      assert.equal(resumed.started_at, null);
      assert.equal((await campaignRow(api.t.db, c.id))!.status, 'scheduled');

      // running (the starter's move)
      assert.equal(await start(c.id), 3);
      await refuse('PATCH', '', 'running');
      await refuse('POST', '/schedule', 'running');
      await refuse('POST', '/resume', 'running');
      await refuse('DELETE', '', 'running');
      // paused after it started: its rows are held, and resume puts them back
      const paused = ok(await owner.call('POST', `${url}/pause`));
      assert.equal(paused.status, 'paused');
      assert.deepEqual(paused.counts, { ...zeroCounts, held: 3 });
      const back = ok(await owner.call('POST', `${url}/resume`));
      assert.equal(back.status, 'running');
      assert.deepEqual(back.counts, { ...zeroCounts, pending: 3 });
      assert.deepEqual((await messageRows(api.t.db, c.id)).map((m) => m.status), ['pending', 'pending', 'pending']);

      // cancelled: final
      assert.equal(ok(await owner.call('POST', `${url}/cancel`)).status, 'cancelled');
      for (const a of ['/schedule', '/pause', '/resume', '/cancel', '/retry']) await refuse('POST', a, 'cancelled');
      await refuse('PATCH', '', 'cancelled');
      ok(await owner.call('DELETE', url), 204);
      assert.equal(await campaignRow(api.t.db, c.id), undefined);
      expectError(await owner.call('GET', url), 404, 'CAMPAIGN_NOT_FOUND');
      // The outbox rows stay: they are the history.
      assert.deepEqual((await messageRows(api.t.db, c.id)).map((m) => m.status), ['cancelled', 'cancelled', 'cancelled']);
    });

    it('holds the waiting rows on pause and gives them back on resume, due no earlier than the resume', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 4);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      const startedAt = api.clock.now();
      assert.equal(await start(c.id), 4);
      const rows = await messageRows(api.t.db, c.id);
      // One went out, one is in flight, one is due well after the resume.
      await setStatus([rows[0]!.id], 'sent', ', finished_at = not_before');
      await setStatus([rows[1]!.id], 'sending');
      const later = startedAt + 3_600_000;
      await api.t.db.query(`update messages set not_before = $2 where id = $1`, [rows[3]!.id, new Date(later)]);

      api.clock.advance(10_000);
      const p = ok(await owner.call('POST', `${base}/${c.id}/pause`));
      assert.equal(p.status, 'paused');
      assert.deepEqual(p.counts, { ...zeroCounts, sent: 1, sending: 1, held: 2 });
      const held = await messageRows(api.t.db, c.id);
      assert.deepEqual(held.map((m) => m.status), ['sent', 'sending', 'held', 'held']);
      assert.equal(held[2]!.not_before.getTime(), startedAt, 'holding does not move the due time');
      const claimable = await countOf(api.t.db, `select count(*)::int as n from messages where campaign_id = $1 and status = 'pending'`, [c.id]);
      assert.equal(claimable, 0, 'nothing of a paused campaign is left for the dispatcher');

      api.clock.advance(600_000);
      const resumeAt = api.clock.now();
      const r = ok(await owner.call('POST', `${base}/${c.id}/resume`));
      assert.equal(r.status, 'running');
      assert.deepEqual(r.counts, { ...zeroCounts, sent: 1, sending: 1, pending: 2 });
      const back = await messageRows(api.t.db, c.id);
      assert.deepEqual(back.map((m) => m.status), ['sent', 'sending', 'pending', 'pending']);
      assert.equal(back[2]!.not_before.getTime(), resumeAt, 'a row due during the pause is due at the resume');
      assert.equal(back[3]!.not_before.getTime(), later, 'a row due after the resume keeps its time');
      for (const m of back.slice(2)) assert.ok(m.not_before.getTime() >= resumeAt);
      assert.equal((await campaignRow(api.t.db, c.id))!.status, 'running');
    });

    it('writes the rows of a campaign paused while it materialises as held', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 3);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      assert.ok(await startCampaignNow(api.t.db, c.id, now(), ['scheduled']));
      ok(await owner.call('POST', `${base}/${c.id}/pause`));
      assert.equal(await materialiseAll(api.t.db, c.id, now().getTime()), 3);
      assert.deepEqual((await messageRows(api.t.db, c.id)).map((m) => m.status), ['held', 'held', 'held']);
      assert.equal((await campaignRow(api.t.db, c.id))!.audience_size, 3);
      const r = ok(await owner.call('POST', `${base}/${c.id}/resume`));
      assert.equal(r.status, 'running');
      assert.equal(r.audience_size, 3);
      assert.deepEqual((await messageRows(api.t.db, c.id)).map((m) => m.status), ['pending', 'pending', 'pending']);
    });

    it('cancel of a paused campaign cancels its held rows', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 3);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      await start(c.id);
      const rows = await messageRows(api.t.db, c.id);
      await setStatus([rows[0]!.id], 'sending');
      ok(await owner.call('POST', `${base}/${c.id}/pause`));
      assert.deepEqual((await messageRows(api.t.db, c.id)).map((m) => m.status), ['sending', 'held', 'held']);
      api.clock.advance(2000);
      const x = ok(await owner.call('POST', `${base}/${c.id}/cancel`));
      assert.equal(x.status, 'cancelled');
      assert.deepEqual(x.counts, { ...zeroCounts, sending: 1, cancelled: 2 });
      const after = await messageRows(api.t.db, c.id);
      assert.deepEqual(
        after.map((m) => [m.status, m.error_code, m.finished_at?.getTime() ?? null]),
        [
          ['sending', null, null],
          ['cancelled', 'campaign_cancelled', api.clock.now()],
          ['cancelled', 'campaign_cancelled', api.clock.now()],
        ],
      );
      assert.equal((await campaignRow(api.t.db, c.id))!.status, 'cancelled');
    });

    it('edits only a draft or scheduled campaign', async () => {
      const owner = await tenant(api);
      const c = ok(await owner.call('POST', base, draft), 201);
      api.clock.advance(60_000);
      const e = ok(
        await owner.call('PATCH', `${base}/${c.id}`, {
          name: 'Renamed',
          body: 'New text',
          starts_at: '2026-04-01T00:00:00Z',
          media: { type: 'image', url: fileUrl(), filename: 'a.png' },
        }),
      );
      assert.equal(e.name, 'Renamed');
      assert.equal(e.body, 'New text');
      assert.equal(e.starts_at, '2026-04-01T00:00:00.000Z');
      assert.deepEqual(e.media, { type: 'image', url: fileUrl(), filename: 'a.png' });
      assert.equal(e.updated_at, now().toISOString());
      assert.notEqual(e.updated_at, c.updated_at);
      assert.deepEqual((await campaignRow(api.t.db, c.id))!.media, { kind: 'image', url: fileUrl(), fileName: 'a.png' });
      const sch = ok(await owner.call('POST', `${base}/${c.id}/schedule`));
      assert.equal(sch.media.mime_type, 'image/jpeg');
      assert.equal(typeof sch.media.media_id, 'number');
      assert.equal((await campaignRow(api.t.db, c.id))!.media.mediaId, sch.media.media_id);
      const s = ok(await owner.call('PATCH', `${base}/${c.id}`, { media: null, audience: { statuses: ['customer'] } }));
      assert.equal(s.status, 'scheduled');
      assert.equal(s.media, null);
      assert.deepEqual(s.audience, { niches: null, statuses: ['customer'], device_ids: null, triggers: null });
      const row = (await campaignRow(api.t.db, c.id))!;
      assert.equal(row.media, null);
      assert.deepEqual(row.audience, { statuses: ['customer'] });
      assert.equal(row.name, 'Renamed');
      assert.equal(row.status, 'scheduled');
    });

    it('fetches media given by URL when the campaign is scheduled, and every message carries the stored file', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 2);
      const c = ok(await owner.call('POST', base, { ...draft, media: { type: 'image', url: fileUrl(), caption: 'Spring' } }), 201);
      assert.deepEqual((await campaignRow(api.t.db, c.id))!.media, { kind: 'image', url: fileUrl(), caption: 'Spring' });
      assert.equal(await mediaCount(owner.userId), 0);

      const s = ok(await owner.call('POST', `${base}/${c.id}/schedule`));
      assert.equal(s.status, 'scheduled');
      const rec = (await api.t.db.query<Record<string, any>>(`select * from media where user_id = $1`, [owner.userId])).rows;
      assert.equal(rec.length, 1, 'the fetched file is recorded as media of the account');
      const m = rec[0]!;
      assert.deepEqual([m.kind, m.mime_type, m.file_name, m.source_url], ['image', 'image/jpeg', 'spring.jpg', fileUrl()]);
      assert.deepEqual(s.media, { type: 'image', url: fileUrl(), media_id: m.id, filename: 'spring.jpg', caption: 'Spring', mime_type: 'image/jpeg', bytes: m.bytes });
      const row = (await campaignRow(api.t.db, c.id))!;
      assert.equal(row.status, 'scheduled');
      assert.deepEqual(row.media, {
        kind: 'image',
        url: fileUrl(),
        mediaId: m.id,
        storageKey: m.storage_key,
        mimeType: 'image/jpeg',
        bytes: m.bytes,
        fileName: 'spring.jpg',
        caption: 'Spring',
      });
      assert.deepEqual(ok(await owner.call('GET', `${base}/${c.id}`)).media, s.media);

      // The outbox carries the prepared file, not the URL to fetch again.
      assert.equal(await start(c.id), 2);
      const msgs = await messageRows(api.t.db, c.id);
      assert.equal(msgs.length, 2);
      for (const msg of msgs) {
        assert.equal(msg.media.mediaId, m.id);
        assert.equal(msg.media.mimeType, 'image/jpeg');
        assert.equal(msg.media.storageKey, m.storage_key);
      }

      // Created scheduled: fetched at once.
      const direct = ok(await owner.call('POST', base, { ...draft, schedule: true, media: { type: 'image', url: fileUrl() } }), 201);
      assert.equal(direct.status, 'scheduled');
      assert.equal(direct.media.mime_type, 'image/jpeg');
      assert.equal((await campaignRow(api.t.db, direct.id))!.media.mimeType, 'image/jpeg');
      assert.equal(typeof (await campaignRow(api.t.db, direct.id))!.media.mediaId, 'number');
      assert.equal(await mediaCount(owner.userId), 2);
    });

    it('leaves a draft unchanged when its media URL cannot be fetched', async () => {
      const owner = await tenant(api);
      const c = ok(await owner.call('POST', base, { ...draft, media: { type: 'image', url: missingUrl() } }), 201);
      const before = await campaignRow(api.t.db, c.id);
      const err = expectError(await owner.call('POST', `${base}/${c.id}/schedule`), 422, 'MEDIA_FETCH_FAILED');
      assert.equal(err.details[0]!.code, 'HTTP_STATUS');
      assert.equal(err.details[0]!.status, 404);
      assert.equal(err.details[0]!.url, missingUrl());
      assert.deepEqual(await campaignRow(api.t.db, c.id), before);
      assert.equal((await campaignRow(api.t.db, c.id))!.status, 'draft');
      assert.equal(await mediaCount(owner.userId), 0);

      // Created with schedule: true, nothing is written at all.
      expectError(await owner.call('POST', base, { ...draft, schedule: true, media: { type: 'image', url: missingUrl() } }), 422, 'MEDIA_FETCH_FAILED');
      assert.equal(await campaignCount(owner.userId), 1);
      assert.equal(await mediaCount(owner.userId), 0);

      // Fixed, the same draft schedules.
      ok(await owner.call('PATCH', `${base}/${c.id}`, { media: { type: 'image', url: fileUrl() } }));
      assert.equal(ok(await owner.call('POST', `${base}/${c.id}/schedule`)).status, 'scheduled');
      assert.equal((await campaignRow(api.t.db, c.id))!.media.mimeType, 'image/jpeg');
    });

    it('takes an uploaded file by media_id, checks its kind and owner when scheduled', async () => {
      const owner = await tenant(api);
      const other = await tenant(api);
      const up = await upload(owner, png);
      assert.equal(up.mime_type, 'image/jpeg');
      const mediaBefore = await mediaCount(owner.userId);

      const c = ok(await owner.call('POST', base, { ...draft, media: { type: 'image', media_id: up.id, caption: 'Look' } }), 201);
      assert.deepEqual(c.media, { type: 'image', media_id: up.id, caption: 'Look' });
      assert.deepEqual((await campaignRow(api.t.db, c.id))!.media, { kind: 'image', mediaId: up.id, caption: 'Look' });
      const s = ok(await owner.call('POST', `${base}/${c.id}/schedule`));
      assert.deepEqual(s.media, { type: 'image', media_id: up.id, filename: up.file_name, caption: 'Look', mime_type: 'image/jpeg', bytes: up.bytes });
      const stored = await api.t.db.query<{ storage_key: string }>(`select storage_key from media where id = $1`, [up.id]);
      assert.deepEqual((await campaignRow(api.t.db, c.id))!.media, {
        kind: 'image',
        mediaId: up.id,
        storageKey: stored.rows[0]!.storage_key,
        mimeType: 'image/jpeg',
        bytes: up.bytes,
        fileName: up.file_name,
        caption: 'Look',
      });
      assert.equal(await mediaCount(owner.userId), mediaBefore, 'an uploaded file is not stored twice');
      // In use by a campaign that can still send: it cannot be deleted.
      expectError(await owner.call('DELETE', `/api/v1/media/${up.id}`), 409, 'MEDIA_IN_USE');

      // The wrong kind, and another account's file, are refused when scheduled; the draft stays.
      const wrongKind = ok(await owner.call('POST', base, { ...draft, media: { type: 'document', media_id: up.id } }), 201);
      const wkBefore = await campaignRow(api.t.db, wrongKind.id);
      expectError(await owner.call('POST', `${base}/${wrongKind.id}/schedule`), 422, 'MEDIA_KIND_MISMATCH');
      assert.deepEqual(await campaignRow(api.t.db, wrongKind.id), wkBefore);
      const theirs = ok(await other.call('POST', base, { ...draft, media: { type: 'image', media_id: up.id } }), 201);
      const thBefore = await campaignRow(api.t.db, theirs.id);
      expectError(await other.call('POST', `${base}/${theirs.id}/schedule`), 404, 'MEDIA_NOT_FOUND');
      assert.deepEqual(await campaignRow(api.t.db, theirs.id), thBefore);
      expectError(await other.call('POST', base, { ...draft, schedule: true, media: { type: 'image', media_id: up.id } }), 404, 'MEDIA_NOT_FOUND');
      assert.equal(await campaignCount(other.userId), 1);
      assert.equal(await mediaCount(other.userId), 0);
    });

    it('cancel cancels the waiting outbox rows in the same change and leaves finished ones', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 5);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      assert.equal(await start(c.id), 5);
      // Two already went out, one is in flight.
      await api.t.db.query(
        `update messages set status = 'sent', sent_at = $2, finished_at = $2 where id in (select id from messages where campaign_id = $1 order by id limit 2)`,
        [c.id, now()],
      );
      await api.t.db.query(`update messages set status = 'sending' where id = (select max(id) from messages where campaign_id = $1)`, [c.id]);
      // Another campaign's pending row must not be touched.
      const other = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      await api.t.db.query(
        `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, not_before, created_at)
         select user_id, device_id, lead_id, phone, $2, body, not_before, created_at from messages where campaign_id = $1 limit 1`,
        [c.id, other.id],
      );

      api.clock.advance(5000);
      const cancelled = ok(await owner.call('POST', `${base}/${c.id}/cancel`));
      assert.equal(cancelled.status, 'cancelled');
      assert.deepEqual(cancelled.counts, { ...zeroCounts, sending: 1, sent: 2, cancelled: 2 });
      const rows = await api.t.db.query<{ status: string; error_code: string | null; finished_at: Date | null }>(
        `select status, error_code, finished_at from messages where campaign_id = $1 order by id`,
        [c.id],
      );
      assert.deepEqual(
        rows.rows.map((r) => [r.status, r.error_code, r.finished_at?.getTime() ?? null]),
        [
          ['sent', null, api.clock.now() - 5000],
          ['sent', null, api.clock.now() - 5000],
          ['cancelled', 'campaign_cancelled', api.clock.now()],
          ['cancelled', 'campaign_cancelled', api.clock.now()],
          ['sending', null, null],
        ],
      );
      const untouched = await api.t.db.query<{ status: string }>(`select status from messages where campaign_id = $1`, [other.id]);
      assert.deepEqual(untouched.rows, [{ status: 'pending' }]);
    });

    it('completes on resume a running campaign whose messages all settled while paused', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 2);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      await start(c.id);
      ok(await owner.call('POST', `${base}/${c.id}/pause`));
      await api.t.db.query(`update messages set status = 'sent', finished_at = $2 where campaign_id = $1`, [c.id, now()]);
      const r = ok(await owner.call('POST', `${base}/${c.id}/resume`));
      assert.equal(r.status, 'completed');
      assert.equal(r.completed_at, now().toISOString());
      assert.equal(r.counts.sent, 2);
      const row = (await campaignRow(api.t.db, c.id))!;
      assert.equal(row.status, 'completed');
      assert.equal(row.completed_at.getTime(), api.clock.now());
    });

    it('retries failed messages: all of them, or one device’s, and reopens a completed campaign', async () => {
      const owner = await tenant(api);
      const d1 = await device(owner, 'one');
      const d2 = await device(owner, 'two');
      await leads(owner, d1, 3);
      await leads(owner, d2, 3);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      assert.equal(await start(c.id), 6);
      const rows = await messageRows(api.t.db, c.id);
      const one = rows.filter((m) => m.device_id === d1);
      const two = rows.filter((m) => m.device_id === d2);
      await fail([one[0]!.id, one[1]!.id, two[0]!.id]);
      await setStatus([two[1]!.id], 'sent', ', finished_at = not_before');
      const heard: string[] = [];
      const off = await api.t.db.listen(WORK_CHANNEL, (p) => heard.push(p));
      try {
        // One device first.
        api.clock.advance(60_000);
        const r1 = ok(await owner.call('POST', `${base}/${c.id}/retry`, { device_id: d2 }));
        assert.equal(r1.retried, 1);
        assert.equal(r1.campaign.status, 'running');
        assert.equal(r1.campaign.counts.failed, 2);
        let after = await messageRows(api.t.db, c.id);
        const byId = new Map(after.map((m) => [m.id, m]));
        assert.deepEqual(
          [byId.get(two[0]!.id)!.status, byId.get(two[0]!.id)!.not_before.getTime(), byId.get(two[0]!.id)!.error_code, byId.get(two[0]!.id)!.error, byId.get(two[0]!.id)!.finished_at],
          ['pending', api.clock.now(), null, null, null],
        );
        assert.equal(byId.get(one[0]!.id)!.status, 'failed');
        assert.equal(byId.get(one[0]!.id)!.error_code, 'transport_error');
        assert.equal(byId.get(one[1]!.id)!.status, 'failed');
        assert.equal(byId.get(two[1]!.id)!.status, 'sent');

        // Then all that are left.
        api.clock.advance(1000);
        const r2 = ok(await owner.call('POST', `${base}/${c.id}/retry`, {}));
        assert.equal(r2.retried, 2);
        assert.equal(r2.campaign.counts.failed, 0);
        after = await messageRows(api.t.db, c.id);
        for (const id of [one[0]!.id, one[1]!.id]) {
          const m = after.find((x) => x.id === id)!;
          assert.deepEqual([m.status, m.not_before.getTime(), m.error_code, m.finished_at], ['pending', api.clock.now(), null, null]);
        }
        assert.deepEqual(
          after.map((m) => m.status),
          ['pending', 'pending', 'pending', 'pending', 'sent', 'pending'],
        );
        // Nothing failed: nothing to do.
        const r3 = ok(await owner.call('POST', `${base}/${c.id}/retry`, {}));
        assert.equal(r3.retried, 0);
        assert.deepEqual(await messageRows(api.t.db, c.id), after);
        await new Promise((r) => setTimeout(r, 50));
        assert.ok(heard.some((p) => JSON.parse(p).campaign === c.id), 'the dispatcher is told');
      } finally {
        await off();
      }

      // A completed campaign with failures runs again.
      await api.t.db.query(`update messages set status = 'sent', finished_at = $2 where campaign_id = $1 and status = 'pending'`, [c.id, now()]);
      await fail([one[2]!.id]);
      assert.deepEqual(await completeFinishedCampaigns(api.t.db, [c.id], now()), [c.id]);
      assert.equal((await campaignRow(api.t.db, c.id))!.status, 'completed');
      const none = ok(await owner.call('POST', `${base}/${c.id}/retry`, { device_id: d2 }));
      assert.equal(none.retried, 0);
      assert.equal(none.campaign.status, 'completed', 'nothing to retry: it stays completed');
      assert.equal((await campaignRow(api.t.db, c.id))!.status, 'completed');
      api.clock.advance(1000);
      const reopened = ok(await owner.call('POST', `${base}/${c.id}/retry`, {}));
      assert.equal(reopened.retried, 1);
      assert.equal(reopened.campaign.status, 'running');
      assert.equal(reopened.campaign.completed_at, null);
      const row = (await campaignRow(api.t.db, c.id))!;
      assert.deepEqual([row.status, row.completed_at, row.updated_at.getTime()], ['running', null, api.clock.now()]);
      assert.equal((await messageRows(api.t.db, c.id)).find((m) => m.id === one[2]!.id)!.status, 'pending');
    });

    it('refuses a retry in the wrong state or naming a device that is not the account’s, changing nothing', async () => {
      const owner = await tenant(api);
      const stranger = await tenant(api);
      const dev = await device(owner);
      const gone = await device(owner, 'gone');
      const theirs = await device(stranger);
      await leads(owner, dev, 2);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      await start(c.id);
      const rows = await messageRows(api.t.db, c.id);
      await fail([rows[0]!.id]);
      ok(await owner.call('DELETE', `/api/v1/devices/${gone}`), 204);

      const snapshot = async () => [await campaignRow(api.t.db, c.id), await messageRows(api.t.db, c.id)];
      const before = await snapshot();
      for (const deviceId of [theirs, 999_999_999, gone]) {
        const err = expectError(await owner.call('POST', `${base}/${c.id}/retry`, { device_id: deviceId }), 404, 'DEVICE_NOT_FOUND');
        assert.equal(err.details.length, 1);
        assert.equal(err.details[0]!.device_id, deviceId);
        assert.equal(err.details[0]!.message, `no device ${deviceId}`);
      }
      assert.deepEqual(await snapshot(), before);
      expectError(await owner.call('POST', `${base}/${c.id}/retry`, { device_id: 'one' }), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('POST', `${base}/${c.id}/retry`, { colour: 'red' }), 400, 'VALIDATION_FAILED');
      // Another account cannot retry this campaign, even naming the owner's device.
      expectError(await stranger.call('POST', `${base}/${c.id}/retry`, { device_id: dev }), 404, 'CAMPAIGN_NOT_FOUND');
      assert.deepEqual(await snapshot(), before);

      // paused and cancelled keep their failed rows failed.
      ok(await owner.call('POST', `${base}/${c.id}/pause`));
      const pausedBefore = await snapshot();
      assert.equal(expectError(await owner.call('POST', `${base}/${c.id}/retry`, {}), 409, 'CAMPAIGN_STATE').details[0]!.status, 'paused');
      assert.deepEqual(await snapshot(), pausedBefore);
      ok(await owner.call('POST', `${base}/${c.id}/cancel`));
      const cancelledBefore = await snapshot();
      assert.equal(expectError(await owner.call('POST', `${base}/${c.id}/retry`, {}), 409, 'CAMPAIGN_STATE').details[0]!.status, 'cancelled');
      assert.deepEqual(await snapshot(), cancelledBefore);
      assert.deepEqual((await messageRows(api.t.db, c.id)).map((m) => m.status), ['failed', 'cancelled']);
    });

    it('lists a campaign’s failures newest first with their reasons, in pages, and only its own', async () => {
      const owner = await tenant(api);
      const d1 = await device(owner, 'north');
      const d2 = await device(owner, 'south');
      await leads(owner, d1, 4);
      await leads(owner, d2, 3);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      assert.equal(await start(c.id), 7);
      const rows = await messageRows(api.t.db, c.id);
      const [a1, a2, a3] = rows.filter((m) => m.device_id === d1).map((m) => m.id);
      const [b1, b2] = rows.filter((m) => m.device_id === d2).map((m) => m.id);
      await fail([a1!, a2!, b1!]);
      await api.t.db.query(
        `update messages set status = 'failed', error_code = 'not_on_whatsapp', error = 'not on WhatsApp', finished_at = $2, attempts = 1 where id = $1`,
        [b2, now()],
      );
      await setStatus([a3!], 'sent');
      // Another campaign's failure is not this one's.
      const other = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      await api.t.db.query(
        `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, error_code, not_before, created_at)
         select user_id, device_id, lead_id, phone, $2, body, 'failed', 'transport_error', not_before, created_at from messages where id = $1`,
        [a3, other.id],
      );

      const first = ok(await owner.call('GET', `${base}/${c.id}/failures?limit=3`));
      assert.deepEqual(first.data.map((f: { id: number }) => f.id), [b2, b1, a2].sort((x, y) => y! - x!));
      assert.deepEqual(first.reasons, [
        { code: 'transport_error', count: 3, example: 'boom' },
        { code: 'not_on_whatsapp', count: 1, example: 'not on WhatsApp' },
      ]);
      const f0 = first.data.find((f: { id: number }) => f.id === b2);
      assert.equal(f0.device_id, d2);
      assert.equal(f0.device_name, 'south');
      assert.equal(f0.error_code, 'not_on_whatsapp');
      assert.equal(f0.attempts, 1);
      assert.match(f0.phone, /^\+\d+$/);
      assert.equal(typeof f0.failed_at, 'string');
      assert.ok(first.next_cursor);
      const second = ok(await owner.call('GET', `${base}/${c.id}/failures?limit=3&cursor=${first.next_cursor}`));
      assert.deepEqual(second.data.map((f: { id: number }) => f.id), [a1]);
      assert.equal(second.next_cursor, null);
      assert.equal(second.reasons, null, 'reasons come with the first page only');

      // A retry sends them again: the list is empty afterwards.
      ok(await owner.call('POST', `${base}/${c.id}/retry`, {}));
      assert.deepEqual(ok(await owner.call('GET', `${base}/${c.id}/failures`)), { data: [], next_cursor: null, reasons: [] });
      // Bad input is refused with the error shape; another tenant gets 404.
      expectError(await owner.call('GET', `${base}/${c.id}/failures?limit=0`), 400, 'VALIDATION_FAILED');
      const stranger = await tenant(api);
      expectError(await stranger.call('GET', `${base}/${c.id}/failures`), 404, 'CAMPAIGN_NOT_FOUND');
    });

    it('counts a campaign’s messages for its statistics, in total and per device', async () => {
      const owner = await tenant(api);
      const d1 = await device(owner, 'one');
      const d2 = await device(owner, 'two');
      await leads(owner, d1, 6);
      await leads(owner, d2, 5);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      // Before it starts: nothing.
      assert.deepEqual(ok(await owner.call('GET', `${base}/${c.id}/stats`)), {
        campaign_id: c.id,
        status: 'scheduled',
        mode: 'owned',
        audience_size: null,
        totals: zeroSummary,
        queued: 0,
        devices: [],
      });
      assert.equal(await start(c.id), 11);
      const rows = await messageRows(api.t.db, c.id);
      const one = rows.filter((m) => m.device_id === d1).map((m) => m.id);
      const two = rows.filter((m) => m.device_id === d2).map((m) => m.id);
      const d1Statuses = ['sent', 'delivered', 'read', 'failed', 'skipped', 'pending'];
      const d2Statuses = ['sending', 'unknown', 'cancelled', 'failed', 'held'];
      for (const [i, s] of d1Statuses.entries()) await setStatus([one[i]!], s);
      for (const [i, s] of d2Statuses.entries()) await setStatus([two[i]!], s);
      // Another campaign's rows are not counted.
      const other = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      await api.t.db.query(
        `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, created_at)
         select user_id, device_id, lead_id, phone, $2, body, 'sent', not_before, created_at from messages where campaign_id = $1`,
        [c.id, other.id],
      );

      const st = ok(await owner.call('GET', `${base}/${c.id}/stats`));
      assert.deepEqual(st, {
        campaign_id: c.id,
        status: 'running',
        mode: 'owned',
        audience_size: 11,
        totals: { total: 11, pending: 3, sent: 3, delivered: 2, read: 1, failed: 2, cancelled: 1, other: 2 },
        queued: 0,
        devices: [
          { device_id: d1, total: 6, pending: 1, sent: 3, delivered: 2, read: 1, failed: 1, cancelled: 0, other: 1 },
          { device_id: d2, total: 5, pending: 2, sent: 0, delivered: 0, read: 0, failed: 1, cancelled: 1, other: 1 },
        ].sort((a, b) => a.device_id - b.device_id),
      });
      // The raw counts agree, row for row.
      assert.deepEqual(ok(await owner.call('GET', `${base}/${c.id}`)).counts, {
        pending: 1,
        held: 1,
        sending: 1,
        sent: 1,
        delivered: 1,
        read: 1,
        failed: 2,
        cancelled: 1,
        skipped: 1,
        unknown: 1,
      });
      const db = await api.t.db.query<{ status: string; n: number }>(
        `select status, count(*)::int as n from messages where campaign_id = $1 group by status order by status`,
        [c.id],
      );
      assert.deepEqual(
        db.rows.map((r) => [r.status, r.n]),
        [['cancelled', 1], ['delivered', 1], ['failed', 2], ['held', 1], ['pending', 1], ['read', 1], ['sending', 1], ['sent', 1], ['skipped', 1], ['unknown', 1]],
      );
      const otherStats = ok(await owner.call('GET', `${base}/${other.id}/stats`));
      assert.deepEqual(otherStats.totals, { total: 11, pending: 0, sent: 11, delivered: 0, read: 0, failed: 0, cancelled: 0, other: 0 });
      assert.equal(otherStats.audience_size, null);
      expectError(await owner.call('GET', `${base}/999999999/stats`), 404, 'CAMPAIGN_NOT_FOUND');
    });

    it('counts a pool campaign’s queued leads, and cancel empties the queue', async () => {
      const owner = await tenant(api);
      await leads(owner, null, 4, ['cafe']);
      await leads(owner, null, 2, ['gym']);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true, mode: 'pool', audience: { niches: ['cafe'] } }), 201);
      assert.equal(await start(c.id), 4);
      const queue = () => countOf(api.t.db, `select count(*)::int as n from pool_queue where campaign_id = $1`, [c.id]);
      assert.equal(await queue(), 4);
      assert.equal((await campaignRow(api.t.db, c.id))!.audience_size, 4);
      assert.deepEqual(ok(await owner.call('GET', `${base}/${c.id}/stats`)), {
        campaign_id: c.id,
        status: 'running',
        mode: 'pool',
        audience_size: 4,
        totals: zeroSummary,
        queued: 4,
        devices: [],
      });
      ok(await owner.call('POST', `${base}/${c.id}/cancel`));
      assert.equal(await queue(), 0);
      const st = ok(await owner.call('GET', `${base}/${c.id}/stats`));
      assert.deepEqual([st.status, st.queued, st.audience_size], ['cancelled', 0, 4]);
    });

    it('retries with no request body at all (the body is optional)', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 2);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      await start(c.id);
      const rows = await messageRows(api.t.db, c.id);
      await fail([rows[0]!.id]);
      // A plain POST without a body, as `curl -X POST .../retry` sends it.
      const r = ok(await owner.call('POST', `${base}/${c.id}/retry`));
      assert.equal(r.retried, 1);
      assert.deepEqual((await messageRows(api.t.db, c.id)).map((m) => m.status), ['pending', 'pending']);
    });

    it('does not send a retried message to a lead who opted out after it failed', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 2);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      await start(c.id);
      const rows = await messageRows(api.t.db, c.id);
      await fail(rows.map((m) => m.id));
      const optedOut = rows[0]!.lead_id;
      ok(await owner.call('PATCH', `/api/v1/leads/${optedOut}`, { opted_out: true }));
      const r = ok(await owner.call('POST', `${base}/${c.id}/retry`, {}));
      const after = await messageRows(api.t.db, c.id);
      const theirs = after.find((m) => m.lead_id === optedOut)!;
      assert.notEqual(theirs.status, 'pending', 'the opted-out lead is queued to be messaged again');
      assert.equal(after.find((m) => m.lead_id !== optedOut)!.status, 'pending');
      assert.equal(r.retried, 1);
    });

    it('does not requeue failed messages of a deleted device, so the campaign can still complete', async () => {
      const owner = await tenant(api);
      const kept = await device(owner, 'kept');
      const gone = await device(owner, 'gone');
      await leads(owner, kept, 1);
      await leads(owner, gone, 1);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true }), 201);
      assert.equal(await start(c.id), 2);
      const rows = await messageRows(api.t.db, c.id);
      await fail(rows.map((m) => m.id));
      ok(await owner.call('DELETE', `/api/v1/devices/${gone}`), 204);
      const r = ok(await owner.call('POST', `${base}/${c.id}/retry`, {}));
      const after = await messageRows(api.t.db, c.id);
      assert.equal(after.find((m) => m.device_id === kept)!.status, 'pending');
      // No device will ever claim this row: pending, it would keep the campaign running forever.
      assert.notEqual(after.find((m) => m.device_id === gone)!.status, 'pending', "a deleted device's message was requeued");
      assert.equal(r.retried, 1);
      await api.t.db.query(`update messages set status = 'sent', finished_at = $2 where campaign_id = $1 and device_id = $3`, [c.id, now(), kept]);
      assert.deepEqual(await completeFinishedCampaigns(api.t.db, [c.id], now()), [c.id]);
    });

    it('names a re-encoded image the way its media record does', async () => {
      const owner = await tenant(api);
      const c = ok(await owner.call('POST', base, { ...draft, schedule: true, media: { type: 'image', url: fileUrl(), filename: 'Offer.png' } }), 201);
      const m = (await api.t.db.query<Record<string, any>>(`select * from media where user_id = $1`, [owner.userId])).rows[0]!;
      assert.deepEqual([m.mime_type, m.file_name], ['image/jpeg', 'Offer.jpg']);
      const row = (await campaignRow(api.t.db, c.id))!;
      assert.equal(row.media.mimeType, 'image/jpeg');
      assert.equal(row.media.fileName, m.file_name, 'a JPEG sent under a .png name');
      assert.equal(c.media.filename, m.file_name);
    });

    it('only one of two racing moves wins', async () => {
      const owner = await tenant(api);
      const c = ok(await owner.call('POST', base, draft), 201);
      const [a, b] = await Promise.all([owner.call('POST', `${base}/${c.id}/schedule`), owner.call('POST', `${base}/${c.id}/cancel`)]);
      const codes = [a.statusCode, b.statusCode].sort();
      const status = (await campaignRow(api.t.db, c.id))!.status;
      if (codes[0] === 200 && codes[1] === 200) {
        // schedule then cancel: both legal in that order.
        assert.equal(status, 'cancelled');
      } else {
        assert.deepEqual(codes, [200, 409]);
      }
      const [p, q] = await Promise.all([owner.call('POST', `${base}/${c.id}/clone`), owner.call('POST', `${base}/${c.id}/clone`)]);
      assert.equal(p.statusCode, 201);
      assert.equal(q.statusCode, 201);
      const copy = `${base}/${json(p).id}/schedule`;
      const [x, y] = await Promise.all([owner.call('POST', copy), owner.call('POST', copy)]);
      assert.deepEqual([x.statusCode, y.statusCode].sort(), [200, 409]);
      assert.equal((await campaignRow(api.t.db, json(p).id))!.status, 'scheduled');
    });

    it('clones any campaign into a new draft with its settings but not its state', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, null, 2, ['cafe']);
      const up = await upload(owner, png);
      const c = ok(
        await owner.call('POST', base, {
          ...draft,
          schedule: true,
          media: { type: 'image', media_id: up.id, caption: 'Hi' },
          audience: { device_ids: [dev], niches: ['cafe'] },
          window: { start: '20:00', end: '08:00', overnight: true, time_zone: 'Europe/Berlin' },
          delivery: 'at_least_once',
          mode: 'pool',
          device_hourly_quota: 12,
          device_daily_quota: 80,
          daily_limit: 50,
          delay: { min_seconds: 20, max_seconds: 45 },
        }),
        201,
      );
      assert.equal(c.media.mime_type, 'image/jpeg');
      assert.equal(await start(c.id), 2);
      const source = ok(await owner.call('GET', `${base}/${c.id}`));
      assert.equal(source.status, 'running');
      assert.equal(source.audience_size, 2);
      assert.notEqual(source.started_at, null);
      api.clock.advance(1000);
      const copy = ok(await owner.call('POST', `${base}/${c.id}/clone`), 201);
      assert.notEqual(copy.id, c.id);
      assert.equal(copy.status, 'draft');
      assert.equal(copy.name, 'Spring offer (copy)');
      for (const k of ['body', 'media', 'audience', 'starts_at', 'window', 'delivery', 'mode', 'device_hourly_quota', 'device_daily_quota', 'daily_limit', 'delay']) {
        assert.deepEqual(copy[k], source[k], k);
      }
      assert.equal(copy.started_at, null);
      assert.equal(copy.completed_at, null);
      assert.equal(copy.audience_size, null);
      assert.deepEqual(copy.counts, zeroCounts);
      assert.equal(copy.created_at, now().toISOString());

      const src = (await campaignRow(api.t.db, c.id))!;
      const row = (await campaignRow(api.t.db, copy.id))!;
      for (const k of ['body', 'media', 'audience', 'mode', 'starts_at', 'window_id', 'delivery', 'device_hourly_quota', 'device_daily_quota', 'daily_limit', 'min_delay_ms', 'max_delay_ms']) {
        assert.deepEqual(row[k], src[k], k);
      }
      assert.deepEqual([row.min_delay_ms, row.max_delay_ms, row.mode, row.daily_limit], [20_000, 45_000, 'pool', 50]);
      assert.equal(row.media.mediaId, up.id);
      assert.equal(row.user_id, owner.userId);
      assert.equal(row.status, 'draft');
      for (const k of ['started_at', 'completed_at', 'audience_size', 'audience_until', 'materialised_at']) assert.equal(row[k], null, k);
      assert.equal(await countOf(api.t.db, `select count(*)::int as n from pool_queue where campaign_id = $1`, [copy.id]), 0);
      assert.equal(await countOf(api.t.db, `select count(*)::int as n from messages where campaign_id = $1`, [copy.id]), 0);
      // The source is untouched.
      assert.equal(src.status, 'running');
      assert.equal(src.audience_size, 2);

      const long = ok(await owner.call('POST', base, { ...draft, name: 'n'.repeat(200) }), 201);
      const longCopy = ok(await owner.call('POST', `${base}/${long.id}/clone`), 201);
      assert.equal(longCopy.name.length, 200);
      assert.ok(longCopy.name.endsWith(' (copy)'));
      assert.equal((await campaignRow(api.t.db, longCopy.id))!.name, longCopy.name);
    });

    it('lists by id with a cursor and a status filter, without per-row counts', async () => {
      const owner = await tenant(api);
      const other = await tenant(api);
      ok(await other.call('POST', base, draft), 201);
      const ids: number[] = [];
      for (let i = 0; i < 5; i++) ids.push(ok(await owner.call('POST', base, { ...draft, name: `c${i}`, schedule: i % 2 === 0 }), 201).id);
      const p1 = ok(await owner.call('GET', `${base}?limit=2`));
      assert.deepEqual(p1.data.map((c: { id: number }) => c.id), ids.slice(0, 2));
      assert.equal(p1.next_cursor, String(ids[1]));
      assert.equal(p1.data[0].counts, undefined);
      const p2 = ok(await owner.call('GET', `${base}?limit=2&cursor=${p1.next_cursor}`));
      assert.deepEqual(p2.data.map((c: { id: number }) => c.id), ids.slice(2, 4));
      const p3 = ok(await owner.call('GET', `${base}?limit=2&cursor=${p2.next_cursor}`));
      assert.deepEqual(p3.data.map((c: { id: number }) => c.id), ids.slice(4));
      assert.equal(p3.next_cursor, null);
      const scheduled = ok(await owner.call('GET', `${base}?status=scheduled`));
      assert.deepEqual(scheduled.data.map((c: { id: number }) => c.id), [ids[0], ids[2], ids[4]]);
      const both = ok(await owner.call('GET', `${base}?status=draft,scheduled`));
      assert.equal(both.data.length, 5);
      assert.deepEqual(ok(await owner.call('GET', `${base}?status=running`)).data, []);
      const db = await api.t.db.query<{ id: number; status: string }>(`select id, status from campaigns where user_id = $1 order by id`, [owner.userId]);
      assert.deepEqual(db.rows.map((r) => [r.id, r.status]), ids.map((id, i) => [id, i % 2 === 0 ? 'scheduled' : 'draft']));
    });

    it('keeps tenants apart on every verb', async () => {
      const a = await tenant(api);
      const b = await tenant(api);
      const aDevice = await device(a);
      const bDevice = await device(b);
      const c = ok(await a.call('POST', base, { ...draft, audience: { device_ids: [aDevice] } }), 201);
      const before = await campaignRow(api.t.db, c.id);
      const url = `${base}/${c.id}`;
      const attempts: [string, string, unknown?][] = [
        ['GET', url],
        ['PATCH', url, { name: 'stolen' }],
        ['DELETE', url],
        ['POST', `${url}/schedule`],
        ['POST', `${url}/pause`],
        ['POST', `${url}/resume`],
        ['POST', `${url}/cancel`],
        ['POST', `${url}/clone`],
        ['POST', `${url}/retry`, {}],
        ['POST', `${url}/retry`, { device_id: aDevice }],
        ['GET', `${url}/stats`],
      ];
      for (const [method, path, body] of attempts) {
        const res = await b.call(method as 'GET', path, body);
        const err = expectError(res, 404, 'CAMPAIGN_NOT_FOUND');
        assert.deepEqual(err.details, []);
      }
      // The same answers as for an id that does not exist at all.
      const missing = expectError(await b.call('GET', `${base}/999999999`), 404, 'CAMPAIGN_NOT_FOUND');
      assert.deepEqual(missing, json(await b.call('GET', url)).error);
      assert.deepEqual(await campaignRow(api.t.db, c.id), before);
      const bList = ok(await b.call('GET', base));
      assert.ok(!bList.data.some((x: { id: number }) => x.id === c.id));
      assert.equal(await campaignCount(b.userId), 0);

      // Naming another tenant's device fails exactly like naming one that does not exist.
      const foreign = expectError(await b.call('POST', base, { ...draft, audience: { device_ids: [aDevice] } }), 404, 'DEVICE_NOT_FOUND');
      const nowhere = expectError(await b.call('POST', base, { ...draft, audience: { device_ids: [999999999] } }), 404, 'DEVICE_NOT_FOUND');
      assert.deepEqual(foreign.details, [{ path: 'audience.device_ids', message: `no device ${aDevice}`, device_id: aDevice }]);
      assert.equal(foreign.message, nowhere.message);
      const mine = ok(await b.call('POST', base, { ...draft, audience: { device_ids: [bDevice] } }), 201);
      expectError(await b.call('PATCH', `${base}/${mine.id}`, { audience: { device_ids: [bDevice, aDevice] } }), 404, 'DEVICE_NOT_FOUND');
      assert.deepEqual((await campaignRow(api.t.db, mine.id))!.audience, { deviceIds: [bDevice] });

      // A device deleted after the draft was written stops it from being scheduled.
      ok(await b.call('DELETE', `/api/v1/devices/${bDevice}`), 204);
      expectError(await b.call('POST', `${base}/${mine.id}/schedule`), 404, 'DEVICE_NOT_FOUND');
      assert.equal((await campaignRow(api.t.db, mine.id))!.status, 'draft');
    });

    it('forbids team members every campaign route', async () => {
      const owner = await tenant(api);
      const member = await tenant(api, { parentId: owner.userId });
      const c = ok(await owner.call('POST', base, draft), 201);
      const url = `${base}/${c.id}`;
      const before = await campaignRow(api.t.db, c.id);
      const attempts: [string, string, unknown?][] = [
        ['GET', base],
        ['POST', base, draft],
        ['GET', url],
        ['PATCH', url, { name: 'x' }],
        ['DELETE', url],
        ['POST', `${url}/schedule`],
        ['POST', `${url}/pause`],
        ['POST', `${url}/resume`],
        ['POST', `${url}/cancel`],
        ['POST', `${url}/clone`],
        ['POST', `${url}/retry`, {}],
        ['GET', `${url}/stats`],
      ];
      for (const [method, path, body] of attempts) expectError(await member.call(method as 'GET', path, body), 403, 'TEAM_MEMBER_FORBIDDEN');
      assert.deepEqual(await campaignRow(api.t.db, c.id), before);
      assert.equal(await campaignCount(owner.userId), 1);
      assert.equal(await campaignCount(member.userId), 0);
    });

    it('needs credentials and is described in the OpenAPI document', async () => {
      const res = await api.app.inject({ method: 'GET', url: base });
      expectError(res, 401, 'UNAUTHENTICATED');
      const n = await countOf(api.t.db, `select count(*)::int as n from campaigns`, []);
      expectError(await api.app.inject({ method: 'POST', url: base, payload: draft }), 401, 'UNAUTHENTICATED');
      assert.equal(await countOf(api.t.db, `select count(*)::int as n from campaigns`, []), n);
      const doc = json(await api.app.inject({ method: 'GET', url: '/openapi.json' }));
      for (const p of [
        '/api/v1/campaigns',
        '/api/v1/campaigns/{id}',
        '/api/v1/campaigns/{id}/schedule',
        '/api/v1/campaigns/{id}/clone',
        '/api/v1/campaigns/{id}/retry',
        '/api/v1/campaigns/{id}/stats',
      ]) {
        assert.ok(doc.paths[p], p);
      }
      assert.ok(doc.paths['/api/v1/campaigns/{id}/retry'].post);
      assert.ok(doc.paths['/api/v1/campaigns/{id}/stats'].get);
      assert.ok(doc.components.schemas.Campaign);
      assert.ok(doc.components.schemas.CampaignStats);
    });
  });

  describe(`campaigns API: media changed on a scheduled campaign (${backend})`, () => {
    it('fetches the new media when a scheduled campaign is edited, without holding the store', async () => {
      // Run in a process of its own: an edit that never answers would leave its store locked, and a
      // locked store can be neither used nor closed by the rest of this file.
      const r = await runEditMediaScenario(backend, 20_000);
      assert.equal(r.timedOut, false, `PATCH of a scheduled campaign with new media did not answer within 20 s (the store stayed locked); got so far: ${JSON.stringify(r.out)}`);
      const out = r.out as Record<string, any>;
      assert.equal(out.error, undefined, out.error);
      // A URL that cannot be fetched: 422, and the campaign is as it was.
      assert.equal(out.bad.status, 422);
      assert.equal(out.bad.body.error.code, 'MEDIA_FETCH_FAILED');
      assert.deepEqual(out.afterBad, out.before);
      // A good one is fetched, recorded and stored prepared.
      assert.equal(out.good.status, 200, JSON.stringify(out.good.body));
      assert.equal(out.media.length, 1);
      const m = out.media[0];
      assert.deepEqual([m.kind, m.mime_type, m.source_url], ['image', 'image/jpeg', `${out.serverUrl}/file/summer.png`]);
      assert.equal(out.good.body.status, 'scheduled');
      assert.deepEqual(out.good.body.media, { type: 'image', url: m.source_url, media_id: m.id, filename: m.file_name, mime_type: 'image/jpeg', bytes: m.bytes });
      assert.equal(out.afterGood.status, 'scheduled');
      assert.deepEqual(out.afterGood.media, { kind: 'image', url: m.source_url, mediaId: m.id, storageKey: m.storage_key, mimeType: 'image/jpeg', bytes: m.bytes, fileName: m.file_name });
    });
  });
}

/**
 * Creates a scheduled campaign, then edits its media to a missing URL and to a good one, in a child
 * process with its own test database; reports what each step answered and left in the tables.
 */
async function runEditMediaScenario(backend: string, timeoutMs: number): Promise<{ timedOut: boolean; out: unknown }> {
  const apiUrl = new URL('../helpers/api.js', import.meta.url).href;
  const mediaUrl = new URL('../helpers/media.js', import.meta.url).href;
  const code = `
    const { openApi, tenant } = await import(${JSON.stringify(apiUrl)});
    const { startServer, plainImage } = await import(${JSON.stringify(mediaUrl)});
    const out = {};
    const report = () => process.stdout.write(JSON.stringify(out) + '\\n');
    const api = await openApi(${JSON.stringify(backend)});
    const server = await startServer({ 'summer.png': { body: await plainImage(240, 160), type: 'image/png' } });
    out.serverUrl = server.url;
    try {
      const owner = await tenant(api);
      const c = await owner.call('POST', '/api/v1/campaigns', { name: 'Summer', body: 'Hello', schedule: true, starts_at: '2026-04-01T00:00:00Z' });
      const id = c.json().id;
      const row = async () => (await api.t.db.query('select * from campaigns where id = $1', [id])).rows[0];
      out.before = await row();
      const bad = await owner.call('PATCH', '/api/v1/campaigns/' + id, { name: 'moved', media: { type: 'image', url: server.url + '/missing' } });
      out.bad = { status: bad.statusCode, body: bad.json() };
      out.afterBad = await row();
      report();
      const good = await owner.call('PATCH', '/api/v1/campaigns/' + id, { media: { type: 'image', url: server.url + '/file/summer.png' } });
      out.good = { status: good.statusCode, body: good.json() };
      out.afterGood = await row();
      out.media = (await api.t.db.query('select * from media where user_id = $1', [owner.userId])).rows;
    } catch (err) {
      out.error = String(err && err.stack || err);
    }
    report();
    await server.close();
    await api.dispose();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { env: process.env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  await new Promise<void>((resolve) => child.on('close', () => resolve()));
  clearTimeout(timer);
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  return { timedOut, out: lines.length > 0 ? JSON.parse(lines[lines.length - 1]!) : null };
}
