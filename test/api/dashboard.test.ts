/**
 * GET /api/v1/dashboard and /api/v1/monitoring against rows written in known states at known
 * times: today's figures follow the user's local day (Asia/Kuala_Lumpur, UTC+8: the day starts at
 * 16:00 UTC the day before), devices fall in one state each, the throughput chart counts sends
 * per minute, recent errors are the tenant's failures newest first, and a team member sees only
 * its devices' figures. Another tenant's rows never count.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DashboardService } from '../../src/services/dashboard.js';
import { backends } from '../helpers/db.js';
import { json, login, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';

const NOW = Date.parse('2026-03-02T09:00:00Z');

interface Msg {
  device: number;
  lead: number;
  campaign: number;
  status: string;
  attemptAt?: string;
  errorCode?: string;
  error?: string;
}

let phones = 0;

/** A lead of its own for each message: a campaign has one message per lead. */
async function insertLead(api: TestApi, userId: number, device: number, name: string): Promise<number> {
  const res = await api.t.db.query<{ id: number }>(
    `insert into leads (user_id, device_id, name, phone, created_at, updated_at) values ($1, $2, $3, $4, $5, $5) returning id`,
    [userId, device, name, `+6012${5_000_000 + ++phones}`, new Date(NOW)],
  );
  return Number(res.rows[0]!.id);
}

async function insertMessage(api: TestApi, userId: number, m: Msg): Promise<number> {
  const at = m.attemptAt ? new Date(m.attemptAt) : null;
  const sent = at && ['sent', 'delivered', 'read'].includes(m.status) ? at : null;
  const finished = at && !['pending', 'held', 'sending'].includes(m.status) ? at : null;
  const res = await api.t.db.query<{ id: number }>(
    `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, attempts,
                           last_attempt_at, sent_at, delivered_at, read_at, finished_at, error_code, error, created_at)
     values ($1, $2, $3, '+60123000001', $4, 'hi', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $6) returning id`,
    [
      userId,
      m.device,
      m.lead,
      m.campaign,
      m.status,
      new Date('2026-03-01T00:00:00Z'),
      at ? 1 : 0,
      at,
      sent,
      sent && (m.status === 'delivered' || m.status === 'read') ? sent : null,
      sent && m.status === 'read' ? sent : null,
      finished,
      m.errorCode ?? null,
      m.error ?? null,
    ],
  );
  return Number(res.rows[0]!.id);
}

for (const backend of backends) {
  describe(`dashboard and monitoring figures (${backend})`, () => {
    let api: TestApi;
    let a: Caller;
    let b: Caller;
    const d = {} as Record<'online' | 'paused' | 'restricted' | 'logged_out' | 'offline' | 'unlinked', number>;
    let campaign: number;
    let lead1: number;
    let lead2: number;
    let failedToday: number;
    let failedYesterday: number;
    let failedLeads: number[];
    let member: { cookie: string };

    before(async () => {
      api = await openApi(backend);
      api.clock.t = NOW;
      a = await tenant(api, { timeZone: 'Asia/Kuala_Lumpur' });
      b = await tenant(api, { timeZone: 'Asia/Kuala_Lumpur' });
      for (const name of ['online', 'paused', 'restricted', 'logged_out', 'offline'] as const) {
        d[name] = ok(await a.call('POST', '/api/v1/devices', { name: `A ${name}` }), 201).id;
      }
      d.unlinked = ok(await a.call('POST', '/api/v1/devices', { name: 'A unlinked', linked: false }), 201).id;
      await api.t.db.query(`update devices set status = 'online' where id = $1`, [d.online]);
      // Online but paused by its owner, online but restricted by WhatsApp (which also pauses it).
      await api.t.db.query(`update devices set status = 'online' where id = any($1::bigint[])`, [[d.paused, d.restricted]]);
      ok(await a.call('POST', `/api/v1/devices/${d.paused}/pause`, { reason: 'lunch' }));
      await api.t.db.query(`update devices set paused_until = $2, restricted_until = $2, pause_reason = 'restricted' where id = $1`, [d.restricted, new Date(NOW + 3600_000)]);
      await api.t.db.query(`update devices set status = 'logged_out', linked = false where id = $1`, [d.logged_out]);
      // A deleted device is no state at all.
      const gone = ok(await a.call('POST', '/api/v1/devices', { name: 'A deleted' }), 201).id;
      ok(await a.call('DELETE', `/api/v1/devices/${gone}`), 204);

      lead1 = ok(await a.call('POST', '/api/v1/leads', { name: 'Lead One', phone: '+60123000001', device_id: d.online }), 201).id;
      lead2 = ok(await a.call('POST', '/api/v1/leads', { name: 'Lead Two', phone: '+60123000002', device_id: d.paused }), 201).id;
      // Replies: one today (local), one at 23:00 local yesterday.
      await api.t.db.query(`update leads set last_reply_at = $2 where id = $1`, [lead1, new Date('2026-03-02T01:00:00Z')]);
      await api.t.db.query(`update leads set last_reply_at = $2 where id = $1`, [lead2, new Date('2026-03-01T15:00:00Z')]);
      campaign = ok(await a.call('POST', '/api/v1/campaigns', { name: 'A running', body: 'Hi', audience: { device_ids: [d.online] } }), 201).id;
      await api.t.db.query(`update campaigns set status = 'running', started_at = $2 where id = $1`, [campaign, new Date('2026-03-01T12:00:00Z')]);

      let n = 0;
      const m = async (device: number, status: string, attemptAt?: string, extra: Partial<Msg> = {}) =>
        insertMessage(api, a.userId, { device, lead: await insertLead(api, a.userId, device, `Lead M${++n}`), campaign, status, ...(attemptAt ? { attemptAt } : {}), ...extra });
      await m(d.online, 'sent', '2026-03-02T08:59:30Z');
      await m(d.online, 'delivered', '2026-03-02T08:30:00Z');
      await m(d.online, 'read', '2026-03-01T16:00:00Z'); // local midnight exactly: today
      await m(d.online, 'sent', '2026-03-01T15:59:59Z'); // one second before: yesterday
      failedToday = await m(d.online, 'failed', '2026-03-02T07:00:00Z', { errorCode: 'REJECTED', error: 'simulated permanent failure' });
      failedYesterday = await m(d.online, 'failed', '2026-03-01T10:00:00Z', { errorCode: 'NETWORK', error: 'gave up' });
      failedLeads = (await api.t.db.query<{ lead_id: number }>(`select lead_id from messages where id = any($1::bigint[]) order by id`, [[failedToday, failedYesterday]])).rows.map((r) => Number(r.lead_id));
      await m(d.online, 'pending');
      await m(d.online, 'held');
      await m(d.online, 'sending', '2026-03-02T08:59:59Z');
      await m(d.paused, 'sent', '2026-03-02T08:59:10Z');
      await m(d.online, 'cancelled');

      // Another tenant's busy day, which must show nowhere in A's figures.
      const bd = ok(await b.call('POST', '/api/v1/devices', { name: 'B device' }), 201).id;
      const bl = ok(await b.call('POST', '/api/v1/leads', { phone: '+60123000009', device_id: bd }), 201).id;
      const bc = ok(await b.call('POST', '/api/v1/campaigns', { name: 'B', body: 'Hi', audience: { device_ids: [bd] } }), 201).id;
      await api.t.db.query(`update campaigns set status = 'running' where id = $1`, [bc]);
      await api.t.db.query(`update leads set last_reply_at = $2 where id = $1`, [bl, new Date('2026-03-02T02:00:00Z')]);
      for (const st of ['sent', 'read', 'failed', 'pending']) {
        await insertMessage(api, b.userId, { device: bd, lead: await insertLead(api, b.userId, bd, 'B lead'), campaign: bc, status: st, ...(st === 'pending' ? {} : { attemptAt: '2026-03-02T08:59:00Z' }), errorCode: 'X', error: 'B failure' });
      }

      const mem = ok(await a.call('POST', '/api/v1/members', { email: `dash-member-${a.userId}@example.test`, password: 'member password', device_ids: [d.paused] }), 201);
      assert.ok(mem.id);
      member = await login(api, `dash-member-${a.userId}@example.test`, 'member password');
    });
    after(() => api.dispose());

    it("counts today's messages in the user's zone, devices by state, the outbox and running work", async () => {
      const body = ok(await a.call('GET', '/api/v1/dashboard'));
      assert.equal(body.time_zone, 'Asia/Kuala_Lumpur');
      assert.equal(body.day_start, '2026-03-01T16:00:00.000Z');
      // sent: 08:59:30, 08:30 (delivered), 16:00 the day before (read) and the paused device's 08:59:10.
      assert.deepEqual(body.today, { sent: 4, delivered: 2, read: 1, replies: 1, failed: 1 });
      assert.deepEqual(body.devices, { online: 1, offline: 1, restricted: 1, paused: 1, logged_out: 1, unlinked: 1 });
      assert.deepEqual(body.outbox, { pending: 1, held: 1, sending: 1 });
      assert.equal(body.campaigns.length, 1);
      const c = body.campaigns[0];
      assert.equal(c.id, campaign);
      assert.equal(c.status, 'running');
      assert.deepEqual(
        { total: c.total, waiting: c.waiting, sending: c.sending, sent: c.sent, delivered: c.delivered, read: c.read, failed: c.failed, other: c.other },
        { total: 11, waiting: 2, sending: 1, sent: 5, delivered: 2, read: 1, failed: 2, other: 1 },
      );
      assert.deepEqual(body.sequences, []);
    });

    it('charts the sends of each of the last 60 minutes, the current minute last', async () => {
      const { throughput } = ok(await a.call('GET', '/api/v1/dashboard'));
      assert.equal(throughput.length, 60);
      assert.equal(throughput[59].minute, '2026-03-02T09:00:00.000Z');
      assert.equal(throughput[0].minute, '2026-03-02T08:01:00.000Z');
      const byMinute = Object.fromEntries(throughput.filter((p: { sent: number }) => p.sent > 0).map((p: { minute: string; sent: number }) => [p.minute, p.sent]));
      assert.deepEqual(byMinute, { '2026-03-02T08:30:00.000Z': 1, '2026-03-02T08:59:00.000Z': 2 });
    });

    it('the day boundary moves with the zone', async () => {
      // The same rows for a user in UTC: its day started at 00:00 UTC, so 16:00 yesterday is out.
      await api.t.db.query(`update users set time_zone = 'UTC' where id = $1`, [a.userId]);
      await api.services.auth.changed();
      try {
        const body = ok(await a.call('GET', '/api/v1/dashboard'));
        assert.equal(body.day_start, '2026-03-02T00:00:00.000Z');
        assert.deepEqual(body.today, { sent: 3, delivered: 1, read: 0, replies: 1, failed: 1 });
      } finally {
        await api.t.db.query(`update users set time_zone = 'Asia/Kuala_Lumpur' where id = $1`, [a.userId]);
        await api.services.auth.changed();
      }
    });

    it('monitoring lists each device with its day and last error, and the recent failures', async () => {
      const body = ok(await a.call('GET', '/api/v1/monitoring'));
      assert.deepEqual(body.outbox, { pending: 1, held: 1, sending: 1 });
      assert.equal(body.throughput.length, 60);
      const byId = new Map(body.devices.map((x: { id: number }) => [x.id, x]));
      assert.deepEqual([...byId.keys()].sort((x: any, y: any) => x - y), Object.values(d).sort((x, y) => x - y));
      const online = byId.get(d.online) as any;
      assert.equal(online.state, 'online');
      assert.equal(online.sent_today, 3);
      assert.equal(online.failed_today, 1);
      assert.deepEqual(online.last_error, { code: 'REJECTED', message: 'simulated permanent failure', at: '2026-03-02T07:00:00.000Z' });
      const paused = byId.get(d.paused) as any;
      assert.equal(paused.state, 'paused');
      assert.equal(paused.sent_today, 1);
      assert.equal(paused.last_error, null);
      assert.equal((byId.get(d.restricted) as any).state, 'restricted');
      assert.equal((byId.get(d.restricted) as any).restricted_until, new Date(NOW + 3600_000).toISOString());
      assert.equal((byId.get(d.unlinked) as any).state, 'unlinked');
      assert.equal((byId.get(d.logged_out) as any).state, 'logged_out');
      assert.equal((byId.get(d.offline) as any).state, 'offline');
      assert.deepEqual(
        body.recent_errors.map((e: any) => [e.message_id, e.device_id, e.device_name, e.lead_id, e.lead_name, e.code, e.reason, e.at, e.campaign_id]),
        [
          [failedToday, d.online, 'A online', failedLeads[0], 'Lead M5', 'REJECTED', 'simulated permanent failure', '2026-03-02T07:00:00.000Z', campaign],
          [failedYesterday, d.online, 'A online', failedLeads[1], 'Lead M6', 'NETWORK', 'gave up', '2026-03-01T10:00:00.000Z', campaign],
        ],
      );
    });

    it('recent errors stop at the newest 50', async () => {
      const c = await b.call('GET', '/api/v1/devices');
      const bd = json(c).data[0].id as number;
      const bc = json(await b.call('GET', '/api/v1/campaigns')).data[0].id as number;
      const ids: number[] = [];
      for (let i = 0; i < 55; i++) {
        const at = new Date(Date.parse('2026-03-02T06:00:00Z') + i * 1000).toISOString();
        ids.push(await insertMessage(api, b.userId, { device: bd, lead: await insertLead(api, b.userId, bd, 'B lead'), campaign: bc, status: 'failed', attemptAt: at, errorCode: 'E', error: `failure ${i}` }));
      }
      const body = ok(await b.call('GET', '/api/v1/monitoring'));
      assert.equal(body.recent_errors.length, 50);
      // B's own failure at 08:59 first, then the 49 newest of the 55.
      assert.equal(body.recent_errors[0].reason, 'B failure');
      assert.deepEqual(body.recent_errors.slice(1).map((e: any) => e.message_id), ids.slice(6).reverse());
      assert.ok(body.recent_errors.every((e: any) => e.device_id === bd));
    });

    it('a team member sees only its devices, and no campaigns or sequences', async () => {
      const get = (url: string) => api.app.inject({ method: 'GET', url, headers: { cookie: member.cookie } });
      const home = ok(await get('/api/v1/dashboard'));
      assert.deepEqual(home.today, { sent: 1, delivered: 0, read: 0, replies: 0, failed: 0 });
      assert.deepEqual(home.devices, { online: 0, offline: 0, restricted: 0, paused: 1, logged_out: 0, unlinked: 0 });
      assert.deepEqual(home.outbox, { pending: 0, held: 0, sending: 0 });
      assert.deepEqual(home.campaigns, []);
      const mon = ok(await get('/api/v1/monitoring'));
      assert.deepEqual(mon.devices.map((x: { id: number }) => x.id), [d.paused]);
      assert.deepEqual(mon.recent_errors, []);
      assert.equal(mon.throughput.find((p: { minute: string }) => p.minute === '2026-03-02T08:59:00.000Z').sent, 1);
    });

    it("another tenant's figures are its own", async () => {
      const other = await tenant(api);
      const body = ok(await other.call('GET', '/api/v1/dashboard'));
      assert.deepEqual(body.today, { sent: 0, delivered: 0, read: 0, replies: 0, failed: 0 });
      assert.deepEqual(body.outbox, { pending: 0, held: 0, sending: 0 });
      assert.deepEqual(body.campaigns, []);
      assert.ok(body.throughput.every((p: { sent: number }) => p.sent === 0));
      const mon = ok(await other.call('GET', '/api/v1/monitoring'));
      assert.deepEqual(mon.devices, []);
      assert.deepEqual(mon.recent_errors, []);
    });

    it("the live figures are today's figures, read once for every viewer of a tenant within the sharing window", async () => {
      const actor = (await api.services.auth.byToken(a.token))!.actor;
      const shared = new DashboardService(api.t.db, api.clock, 60_000);
      const first = await shared.figures(actor);
      assert.deepEqual(first.today, { sent: 4, delivered: 2, read: 1, replies: 1, failed: 1 });
      assert.deepEqual(first.outbox, { pending: 1, held: 1, sending: 1 });
      assert.equal(first.devices.online, 1);
      assert.equal(first.sent_last_minute, 2);
      assert.equal(first.sent_this_minute, 0);
      const lead = await insertLead(api, a.userId, d.online, 'Late lead');
      const id = await insertMessage(api, a.userId, { device: d.online, lead, campaign, status: 'sent', attemptAt: '2026-03-02T09:00:00Z' });
      try {
        assert.equal(await shared.figures(actor), first, 'a second viewer within the window shares the read');
        const fresh = await new DashboardService(api.t.db, api.clock, 0).figures(actor);
        assert.equal(fresh.today.sent, 5);
        assert.equal(fresh.sent_this_minute, 1);
      } finally {
        await api.t.db.query(`delete from messages where id = $1`, [id]);
      }
    });

    it('both need credentials', async () => {
      for (const url of ['/api/v1/dashboard', '/api/v1/monitoring', '/api/v1/live']) {
        const res = await api.app.inject({ method: 'GET', url });
        assert.equal(res.statusCode, 401, url);
        assert.equal(json(res).error.code, 'UNAUTHENTICATED');
      }
    });
  });
}
