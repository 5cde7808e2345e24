/**
 * /api/v1/campaigns: what each request leaves in the tables (campaign rows, send_windows rows, the
 * outbox), the state machine including the moves it refuses, validation, tenant isolation and the
 * team-member ban.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CAMPAIGNS_CHANNEL } from '../../src/engine/events.js';
import type { Queryable } from '../../src/store/db.js';
import { materialiseCampaign, type DueCampaign } from '../../src/store/sql/campaigns.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { insertLeads } from '../../src/store/sql/leads.js';
import { expectError, json, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { backends } from '../helpers/db.js';

const base = '/api/v1/campaigns';

async function campaignRow(db: Queryable, id: number): Promise<Record<string, any> | undefined> {
  const res = await db.query<Record<string, any>>(
    `select c.*, w.time_zone as w_zone, w.start_minute as w_start, w.end_minute as w_end, w.days as w_days
       from campaigns c left join send_windows w on w.id = c.window_id where c.id = $1`,
    [id],
  );
  return res.rows[0];
}

for (const backend of backends) {
  describe(`campaigns API (${backend})`, () => {
    let api: TestApi;
    let phone = 60_120_000_000;

    before(async () => {
      api = await openApi(backend);
    });
    after(async () => {
      await api.dispose();
    });

    const now = (): Date => new Date(api.clock.now());

    async function device(owner: Caller, name = 'phone'): Promise<number> {
      const [id] = await insertDevices(api.t.db, owner.userId, [{ name, minDelayMs: 0, maxDelayMs: 0 }], now());
      return id!;
    }

    async function leads(owner: Caller, deviceId: number, n: number): Promise<void> {
      await insertLeads(
        api.t.db,
        owner.userId,
        Array.from({ length: n }, (_, i) => ({ name: `lead ${i}`, phone: `+${++phone}`, deviceId, niches: ['cafe'], status: 'prospect', triggers: [] })),
        now(),
      );
    }

    /** What the starter does when a campaign is due: running, with its outbox materialised. */
    async function start(id: number): Promise<number> {
      const res = await api.t.db.query<DueCampaign>(
        `update campaigns set status = 'running', started_at = $2, updated_at = $2 where id = $1 and status = 'scheduled'
         returning id, user_id, starts_at, window_id, audience`,
        [id, now()],
      );
      assert.equal(res.rowCount, 1, 'the campaign was scheduled');
      return materialiseCampaign(api.t.db, res.rows[0]!, now(), now());
    }

    const draft = { name: 'Spring offer', body: 'Hello, 20% off this week.' };

    it('creates a draft and stores exactly what was asked', async () => {
      const owner = await tenant(api);
      const d1 = await device(owner);
      const d2 = await device(owner);
      const res = await owner.call('POST', base, {
        ...draft,
        media: { type: 'image', url: 'https://cdn.example.test/spring.jpg', caption: 'Spring' },
        audience: { niches: ['cafe', 'bakery', 'cafe'], statuses: [], device_ids: [d2, d1], triggers: ['vip'] },
        starts_at: '2026-03-10T09:00:00+08:00',
        window: { start: '09:00', end: '18:30', days: ['mon', 'tue', 'wed', 'thu', 'fri'] },
        delivery: 'at_least_once',
        mode: 'pool',
        device_hourly_quota: 30,
        device_daily_quota: 200,
        daily_limit: 1000,
      });
      const c = ok(res, 201);
      assert.equal(c.status, 'draft');
      assert.equal(c.name, 'Spring offer');
      assert.deepEqual(c.media, { type: 'image', url: 'https://cdn.example.test/spring.jpg', caption: 'Spring' });
      assert.deepEqual(c.audience, { niches: ['cafe', 'bakery'], statuses: null, device_ids: [d1, d2].sort((a, b) => a - b), triggers: ['vip'] });
      assert.equal(c.starts_at, '2026-03-10T01:00:00.000Z');
      // The account's zone is the default for a window.
      assert.deepEqual(c.window, { start: '09:00', end: '18:30', days: ['mon', 'tue', 'wed', 'thu', 'fri'], time_zone: 'Asia/Kuala_Lumpur' });
      assert.deepEqual(c.counts, { pending: 0, sending: 0, sent: 0, delivered: 0, read: 0, failed: 0, cancelled: 0, skipped: 0, unknown: 0 });
      assert.equal(c.started_at, null);

      const row = (await campaignRow(api.t.db, c.id))!;
      assert.equal(row.user_id, owner.userId);
      assert.equal(row.status, 'draft');
      // The engine reads camelCase audience keys and the transport's media shape.
      assert.deepEqual(row.audience, { niches: ['cafe', 'bakery'], deviceIds: [d1, d2].sort((a, b) => a - b), triggers: ['vip'] });
      assert.deepEqual(row.media, { kind: 'image', url: 'https://cdn.example.test/spring.jpg', caption: 'Spring' });
      assert.equal(row.mode, 'pool');
      assert.equal(row.delivery, 'at_least_once');
      assert.equal(row.device_hourly_quota, 30);
      assert.equal(row.device_daily_quota, 200);
      assert.equal(row.daily_limit, 1000);
      assert.equal(row.starts_at.toISOString(), '2026-03-10T01:00:00.000Z');
      assert.deepEqual([row.w_zone, row.w_start, row.w_end, row.w_days], ['Asia/Kuala_Lumpur', 540, 1110, 31]);
      assert.equal(row.created_at.getTime(), api.clock.now());

      // GET answers the same.
      assert.deepEqual(ok(await owner.call('GET', `${base}/${c.id}`)), c);
    });

    it('stores windows as shared send_windows rows, in the zone given, overnight and to midnight', async () => {
      const owner = await tenant(api);
      const london = { start: '22:00', end: '06:00', days: ['sat', 'sun'], time_zone: 'Europe/London' };
      const a = ok(await owner.call('POST', base, { ...draft, window: london }), 201);
      const b = ok(await owner.call('POST', base, { ...draft, window: london }), 201);
      assert.deepEqual(a.window, london);
      const ra = (await campaignRow(api.t.db, a.id))!;
      const rb = (await campaignRow(api.t.db, b.id))!;
      assert.deepEqual([ra.w_zone, ra.w_start, ra.w_end, ra.w_days], ['Europe/London', 1320, 360, 32 + 64]);
      assert.equal(ra.window_id, rb.window_id, 'one row per distinct window');

      const midnight = ok(await owner.call('POST', base, { ...draft, window: { start: '18:00', end: '00:00', time_zone: 'America/New_York' } }), 201);
      assert.deepEqual(midnight.window, { start: '18:00', end: '24:00', days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], time_zone: 'America/New_York' });
      const rm = (await campaignRow(api.t.db, midnight.id))!;
      assert.deepEqual([rm.w_zone, rm.w_start, rm.w_end, rm.w_days], ['America/New_York', 1080, 1440, 127]);

      // null: any time; the window row stays for whoever else uses it.
      const cleared = ok(await owner.call('PATCH', `${base}/${a.id}`, { window: null }));
      assert.equal(cleared.window, null);
      assert.equal((await campaignRow(api.t.db, a.id))!.window_id, null);
      assert.equal((await campaignRow(api.t.db, b.id))!.window_id, rb.window_id);
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
        [{ ...draft, body: 'x'.repeat(4097) }, 400, 'VALIDATION_FAILED', 'body.body'],
        [{ ...draft, body: '' }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, name: '   ' }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, starts_at: '2026-03-10T09:00:00' }, 400, 'VALIDATION_FAILED', 'body.starts_at'],
        [{ ...draft, media: { type: 'sticker', url: 'https://x.test/a' } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, media: { type: 'image', url: 'file:///etc/passwd' } }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, delivery: 'exactly_once' }, 400, 'VALIDATION_FAILED'],
        [{ ...draft, device_hourly_quota: 10 }, 400, 'VALIDATION_FAILED', 'device_hourly_quota'],
        [{ ...draft, daily_limit: 0 }, 400, 'VALIDATION_FAILED'],
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
      const count = await api.t.db.query<{ n: number }>(`select count(*)::int as n from campaigns where user_id = $1`, [owner.userId]);
      assert.equal(count.rows[0]!.n, 0);

      // The same checks guard an edit, and a refused edit changes nothing.
      const c = ok(await owner.call('POST', base, draft), 201);
      const before = await campaignRow(api.t.db, c.id);
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { status: 'running' }), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { window: { start: '10:00', end: '10:00' } }), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { device_daily_quota: 5 }), 400, 'VALIDATION_FAILED');
      assert.deepEqual(await campaignRow(api.t.db, c.id), before);
      // Quotas are fine together with pool mode, and switching back to owned must drop them.
      ok(await owner.call('PATCH', `${base}/${c.id}`, { mode: 'pool', device_daily_quota: 5 }));
      expectError(await owner.call('PATCH', `${base}/${c.id}`, { mode: 'owned' }), 400, 'VALIDATION_FAILED');
      const owned = ok(await owner.call('PATCH', `${base}/${c.id}`, { mode: 'owned', device_daily_quota: null }));
      assert.equal(owned.mode, 'owned');
      assert.equal(owned.device_daily_quota, null);

      expectError(await owner.call('GET', `${base}?status=sleeping`), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('GET', `${base}?colour=red`), 400, 'VALIDATION_FAILED');
      expectError(await owner.call('GET', `${base}/abc`), 400, 'VALIDATION_FAILED');
    });

    it('schedules on create or later, and tells the engine', async () => {
      const owner = await tenant(api);
      const heard: string[] = [];
      const off = await api.t.db.listen(CAMPAIGNS_CHANNEL, (p) => heard.push(p));
      try {
        const a = ok(await owner.call('POST', base, { ...draft, schedule: true, starts_at: '2026-03-05T00:00:00Z' }), 201);
        assert.equal(a.status, 'scheduled');
        const b = ok(await owner.call('POST', base, draft), 201);
        assert.equal(b.status, 'draft');
        assert.equal(b.starts_at, now().toISOString(), 'no start time: as soon as scheduled');
        const s = ok(await owner.call('POST', `${base}/${b.id}/schedule`));
        assert.equal(s.status, 'scheduled');
        assert.equal((await campaignRow(api.t.db, b.id))!.status, 'scheduled');
        await new Promise((r) => setTimeout(r, 50));
        assert.ok(heard.some((p) => JSON.parse(p).campaign === a.id), 'create with schedule announced');
        assert.ok(heard.some((p) => JSON.parse(p).campaign === b.id), 'schedule announced');
      } finally {
        await off();
      }
    });

    it('walks the state machine and refuses every illegal move without touching the row', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      await leads(owner, dev, 3);
      const c = ok(await owner.call('POST', base, draft), 201);
      const url = `${base}/${c.id}`;

      const refuse = async (method: 'POST' | 'PATCH' | 'DELETE', path: string, status: string): Promise<void> => {
        const before = await campaignRow(api.t.db, c.id);
        const err = expectError(await owner.call(method, `${url}${path}`, method === 'PATCH' ? { name: 'changed' } : undefined), 409, 'CAMPAIGN_STATE');
        assert.equal(err.details[0]!.status, status);
        assert.deepEqual(await campaignRow(api.t.db, c.id), before, `${method} ${path} left the row as it was`);
      };

      // draft
      await refuse('POST', '/pause', 'draft');
      await refuse('POST', '/resume', 'draft');
      // scheduled
      ok(await owner.call('POST', `${url}/schedule`));
      await refuse('POST', '/schedule', 'scheduled');
      await refuse('POST', '/resume', 'scheduled');
      await refuse('DELETE', '', 'scheduled');
      // paused before it started: resumes to scheduled
      api.clock.advance(1000);
      assert.equal(ok(await owner.call('POST', `${url}/pause`)).status, 'paused');
      await refuse('POST', '/pause', 'paused');
      await refuse('POST', '/schedule', 'paused');
      await refuse('PATCH', '', 'paused');
      await refuse('DELETE', '', 'paused');
      const resumed = ok(await owner.call('POST', `${url}/resume`));
      assert.equal(resumed.status, 'scheduled');
      assert.equal(resumed.started_at, null);

      // running (the starter's move)
      assert.equal(await start(c.id), 3);
      await refuse('PATCH', '', 'running');
      await refuse('POST', '/schedule', 'running');
      await refuse('POST', '/resume', 'running');
      await refuse('DELETE', '', 'running');
      // paused after it started: resumes to running
      assert.equal(ok(await owner.call('POST', `${url}/pause`)).status, 'paused');
      const back = ok(await owner.call('POST', `${url}/resume`));
      assert.equal(back.status, 'running');
      assert.equal(back.counts.pending, 3);

      // cancelled: final
      assert.equal(ok(await owner.call('POST', `${url}/cancel`)).status, 'cancelled');
      for (const a of ['/schedule', '/pause', '/resume', '/cancel']) await refuse('POST', a, 'cancelled');
      await refuse('PATCH', '', 'cancelled');
      ok(await owner.call('DELETE', url), 204);
      assert.equal(await campaignRow(api.t.db, c.id), undefined);
      expectError(await owner.call('GET', url), 404, 'CAMPAIGN_NOT_FOUND');
    });

    it('edits only a draft or scheduled campaign', async () => {
      const owner = await tenant(api);
      const c = ok(await owner.call('POST', base, draft), 201);
      api.clock.advance(60_000);
      const e = ok(await owner.call('PATCH', `${base}/${c.id}`, { name: 'Renamed', body: 'New text', starts_at: '2026-04-01T00:00:00Z', media: { type: 'document', url: 'https://x.test/a.pdf', filename: 'a.pdf' } }));
      assert.equal(e.name, 'Renamed');
      assert.equal(e.body, 'New text');
      assert.equal(e.starts_at, '2026-04-01T00:00:00.000Z');
      assert.deepEqual(e.media, { type: 'document', url: 'https://x.test/a.pdf', filename: 'a.pdf' });
      assert.equal(e.updated_at, now().toISOString());
      assert.notEqual(e.updated_at, c.updated_at);
      ok(await owner.call('POST', `${base}/${c.id}/schedule`));
      const s = ok(await owner.call('PATCH', `${base}/${c.id}`, { media: null, audience: { statuses: ['customer'] } }));
      assert.equal(s.status, 'scheduled');
      assert.equal(s.media, null);
      assert.deepEqual(s.audience, { niches: null, statuses: ['customer'], device_ids: null, triggers: null });
      const row = (await campaignRow(api.t.db, c.id))!;
      assert.equal(row.media, null);
      assert.deepEqual(row.audience, { statuses: ['customer'] });
      assert.equal(row.name, 'Renamed');
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
      assert.deepEqual(cancelled.counts, { pending: 0, sending: 1, sent: 2, delivered: 0, read: 0, failed: 0, cancelled: 2, skipped: 0, unknown: 0 });
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
    });

    it('clones any campaign into a new draft', async () => {
      const owner = await tenant(api);
      const dev = await device(owner);
      const c = ok(
        await owner.call('POST', base, {
          ...draft,
          schedule: true,
          media: { type: 'video', url: 'https://x.test/v.mp4' },
          audience: { device_ids: [dev], niches: ['cafe'] },
          window: { start: '08:00', end: '20:00', time_zone: 'Europe/Berlin' },
          delivery: 'at_least_once',
          daily_limit: 50,
        }),
        201,
      );
      ok(await owner.call('POST', `${base}/${c.id}/cancel`));
      api.clock.advance(1000);
      const copy = ok(await owner.call('POST', `${base}/${c.id}/clone`), 201);
      assert.notEqual(copy.id, c.id);
      assert.equal(copy.status, 'draft');
      assert.equal(copy.name, 'Spring offer (copy)');
      for (const k of ['body', 'media', 'audience', 'starts_at', 'window', 'delivery', 'mode', 'daily_limit']) assert.deepEqual(copy[k], c[k], k);
      assert.equal(copy.created_at, now().toISOString());
      assert.equal((await campaignRow(api.t.db, copy.id))!.window_id, (await campaignRow(api.t.db, c.id))!.window_id);
      const long = ok(await owner.call('POST', base, { ...draft, name: 'n'.repeat(200) }), 201);
      const longCopy = ok(await owner.call('POST', `${base}/${long.id}/clone`), 201);
      assert.equal(longCopy.name.length, 200);
      assert.ok(longCopy.name.endsWith(' (copy)'));
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
      const copies = await api.t.db.query<{ n: number }>(`select count(*)::int as n from campaigns where user_id = $1`, [b.userId]);
      assert.equal(copies.rows[0]!.n, 0);

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
      ];
      for (const [method, path, body] of attempts) expectError(await member.call(method as 'GET', path, body), 403, 'TEAM_MEMBER_FORBIDDEN');
      assert.deepEqual(await campaignRow(api.t.db, c.id), before);
      const n = await api.t.db.query<{ n: number }>(`select count(*)::int as n from campaigns where user_id = $1`, [owner.userId]);
      assert.equal(n.rows[0]!.n, 1);
    });

    it('needs credentials and is described in the OpenAPI document', async () => {
      const res = await api.app.inject({ method: 'GET', url: base });
      expectError(res, 401, 'UNAUTHENTICATED');
      const doc = json(await api.app.inject({ method: 'GET', url: '/openapi.json' }));
      for (const p of ['/api/v1/campaigns', '/api/v1/campaigns/{id}', '/api/v1/campaigns/{id}/schedule', '/api/v1/campaigns/{id}/clone']) {
        assert.ok(doc.paths[p], p);
      }
      assert.ok(doc.components.schemas.Campaign);
    });
  });
}
