/**
 * GET /api/v1/live over a real socket: a viewer gets its own tenant's live events (a device's link
 * starting, a pause, the engine's status changes and campaign progress relayed), never another
 * tenant's; a team member only its devices'; `figures` at once and then at the set pace; the LISTEN
 * subscription ends with the stream, and a signed-out session ends the stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EngineEvents } from '../../src/engine/events.js';
import { publishLive } from '../../src/services/live/channel.js';
import { LiveRelay } from '../../src/services/live/engine-relay.js';
import { backends } from '../helpers/db.js';
import { login, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { listenOnce, openSse, type SseFrame, type SseStream } from '../helpers/sse.js';

const bearer = (c: Caller) => ({ authorization: `Bearer ${c.token}` });
const about = (type: string, deviceId: number) => (f: SseFrame) => f.event === type && f.data.device_id === deviceId;

async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const backend of backends) {
  describe(`live events over Server-Sent Events (${backend})`, () => {
    let api: TestApi;
    let base: string;
    let a: Caller;
    let b: Caller;
    let a1: number;
    let a2: number;
    let b1: number;
    let subscriptions = 0;
    const streams: SseStream[] = [];
    const open = async (path: string, headers: Record<string, string>) => {
      const s = await openSse(base, path, headers);
      streams.push(s);
      return s;
    };

    before(async () => {
      api = await openApi(backend, { server: { live: { figuresMs: 150, heartbeatMs: 100 } } });
      // Count the store's live subscriptions, to see each stream's end drop its own.
      const listen = api.t.db.listen.bind(api.t.db);
      api.t.db.listen = async (channel, handler) => {
        const off = await listen(channel, handler);
        if (channel !== 'fleetcast_live') return off;
        subscriptions++;
        let done = false;
        return async () => {
          if (!done) subscriptions--;
          done = true;
          await off();
        };
      };
      base = await listenOnce(api.app);
      a = await tenant(api);
      b = await tenant(api);
      a1 = ok(await a.call('POST', '/api/v1/devices', { name: 'A one', linked: false }), 201).id;
      a2 = ok(await a.call('POST', '/api/v1/devices', { name: 'A two' }), 201).id;
      b1 = ok(await b.call('POST', '/api/v1/devices', { name: 'B one', linked: false }), 201).id;
    });
    after(async () => {
      for (const s of streams) s.close();
      await api.dispose();
    });

    it("streams the tenant's own events and never another tenant's", async () => {
      const sa = await open('/api/v1/live', bearer(a));
      assert.equal(sa.status, 200);
      assert.match(sa.headers.get('content-type') ?? '', /^text\/event-stream/);
      assert.equal(sa.headers.get('cache-control'), 'no-cache, no-transform');
      await sa.next((f) => f.event === 'figures');
      // B acts first; A's events after B's are the proof that B's were not merely late.
      ok(await b.call('POST', `/api/v1/devices/${b1}/link`, { method: 'qr' }), 202);
      await publishLive(api.t.db, { tenantId: b.userId, type: 'campaign.state', at: api.clock.now(), data: { campaign_id: 999, status: 'running' } });
      const link = await (async () => {
        const res = await a.call('POST', `/api/v1/devices/${a1}/link`, { method: 'qr' });
        assert.ok(res.statusCode < 300, res.body);
        return sa.next(about('device.link', a1));
      })();
      assert.equal(link.data.state, 'starting');
      assert.equal(link.data.method, 'qr');
      ok(await a.call('POST', `/api/v1/devices/${a2}/pause`, { reason: 'lunch' }));
      const paused = await sa.next(about('device.status', a2));
      assert.equal(paused.data.reason, 'lunch');
      assert.ok(paused.data.paused_until);
      const shown = JSON.stringify(sa.frames);
      assert.ok(!sa.frames.some((f) => f.data?.device_id === b1), shown);
      assert.ok(!sa.frames.some((f) => f.data?.campaign_id === 999), shown);

      // B, watching too, sees its own link and none of A's.
      const sb = await open('/api/v1/live', bearer(b));
      await sb.next((f) => f.event === 'figures');
      await publishLive(api.t.db, { tenantId: a.userId, deviceId: a1, type: 'device.status', at: api.clock.now(), data: { device_id: a1, status: 'online' } });
      await publishLive(api.t.db, { tenantId: b.userId, deviceId: b1, type: 'device.status', at: api.clock.now(), data: { device_id: b1, status: 'online' } });
      await sb.next(about('device.status', b1));
      assert.ok(!sb.frames.some((f) => f.data?.device_id === a1 || f.data?.device_id === a2), JSON.stringify(sb.frames));
    });

    it('a team member sees only the events of its devices', async () => {
      ok(await a.call('POST', '/api/v1/members', { email: `live-member-${a.userId}@example.test`, password: 'member password', device_ids: [a2] }), 201);
      const s = await login(api, `live-member-${a.userId}@example.test`, 'member password');
      const sm = await open('/api/v1/live', { cookie: s.cookie });
      assert.equal(sm.status, 200);
      const first = await sm.next((f) => f.event === 'figures');
      // Its figures count its one device (paused above).
      assert.equal(Object.values(first.data.devices as Record<string, number>).reduce((x, y) => x + y, 0), 1);
      assert.equal(first.data.devices.paused, 1);
      await publishLive(api.t.db, { tenantId: a.userId, deviceId: a1, type: 'device.status', at: api.clock.now(), data: { device_id: a1, status: 'offline' } });
      await publishLive(api.t.db, { tenantId: a.userId, type: 'campaign.state', at: api.clock.now(), data: { campaign_id: 1, status: 'running' } });
      ok(await a.call('POST', `/api/v1/devices/${a2}/resume`));
      const resumed = await sm.next(about('device.status', a2));
      assert.equal(resumed.data.paused_until, null);
      assert.ok(!sm.frames.some((f) => f.data?.device_id === a1), JSON.stringify(sm.frames));
      assert.ok(!sm.frames.some((f) => f.event === 'campaign.state'), JSON.stringify(sm.frames));
    });

    it('relays the engine: device status, campaign start, progress and completion, to the tenant only', async () => {
      const events = new EngineEvents();
      const relay = new LiveRelay(api.t.db, api.clock, events, { progressEveryMs: 20 });
      relay.start();
      try {
        const sa = await open('/api/v1/live', bearer(a));
        const sb = await open('/api/v1/live', bearer(b));
        await sa.next((f) => f.event === 'figures');
        await sb.next((f) => f.event === 'figures');
        events.emit('device.status', { deviceId: a2, status: 'online', at: api.clock.now() });
        const st = await sa.next((f) => f.event === 'device.status' && f.data.device_id === a2 && f.data.status === 'online');
        assert.equal(st.data.reason, null);

        const lead = ok(await a.call('POST', '/api/v1/leads', { phone: '+60123000011', device_id: a2 }), 201).id;
        const lead2 = ok(await a.call('POST', '/api/v1/leads', { phone: '+60123000012', device_id: a2 }), 201).id;
        const c = ok(await a.call('POST', '/api/v1/campaigns', { name: 'Live', body: 'Hi', audience: { device_ids: [a2] } }), 201).id;
        await api.t.db.query(`update campaigns set status = 'running' where id = $1`, [c]);
        for (const [l, status] of [[lead, 'sent'], [lead2, 'pending']] as const) {
          await api.t.db.query(
            `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, created_at)
             values ($1, $2, $3, '+60123000011', $4, 'Hi', $5, $6, $6)`,
            [a.userId, a2, l, c, status, new Date(api.clock.now())],
          );
        }
        events.emit('campaign.started', { campaignId: c, messages: 2, mode: 'owned', at: api.clock.now() });
        assert.equal((await sa.next((f) => f.event === 'campaign.state' && f.data.campaign_id === c)).data.status, 'running');
        events.emit('outcomes.recorded', { count: 1, at: api.clock.now(), devices: [a2], statuses: 0, campaigns: [c] });
        const p = await sa.next((f) => f.event === 'campaign.progress' && f.data.campaign_id === c);
        assert.deepEqual(p.data, { campaign_id: c, status: 'running', total: 2, waiting: 1, sending: 0, sent: 1, delivered: 0, read: 0, failed: 0, other: 0 });
        await api.t.db.query(`update messages set status = 'failed' where campaign_id = $1 and status = 'pending'`, [c]);
        await api.t.db.query(`update campaigns set status = 'completed' where id = $1`, [c]);
        events.emit('campaign.completed', { campaignId: c, at: api.clock.now() });
        const done = await sa.next((f) => f.event === 'campaign.progress' && f.data.campaign_id === c && f.data.status === 'completed');
        assert.equal(done.data.failed, 1);
        assert.equal(done.data.waiting, 0);
        await relay.idle();
        // B's stream saw none of it: wait for one more figures tick of B's, then look.
        const seen = sb.frames.length;
        await sb.next((f) => f.event === 'figures' && sb.frames.indexOf(f) >= seen);
        assert.ok(!sb.frames.some((f) => f.event.startsWith('campaign.') || f.data?.device_id === a2), JSON.stringify(sb.frames));
      } finally {
        await relay.stop();
      }
    });

    it("publishes a lead import's progress and a campaign's scheduling and pause", async () => {
      const sa = await open('/api/v1/live', bearer(a));
      await sa.next((f) => f.event === 'figures');
      const imp = await api.app.inject({
        method: 'POST',
        url: `/api/v1/leads/imports?device_id=${a2}`,
        headers: { authorization: `Bearer ${a.token}`, 'content-type': 'text/csv' },
        payload: 'name,phone\nOne,+60123000051\nTwo,+60123000052\nBad,not a phone\n',
      });
      const importId = ok(imp, 202).id as number;
      const done = await sa.next((f) => f.event === 'import.progress' && f.data.import_id === importId && f.data.status === 'completed');
      const row = (await api.t.db.query<{ inserted: number; failed: number; rows_total: number }>(`select inserted, failed, rows_total from lead_imports where id = $1`, [importId])).rows[0]!;
      assert.deepEqual([done.data.inserted, done.data.failed, done.data.rows_total], [row.inserted, row.failed, row.rows_total]);
      assert.deepEqual([done.data.inserted, done.data.failed], [2, 1]);

      const c = ok(await a.call('POST', '/api/v1/campaigns', { name: 'Later', body: 'Hi', starts_at: '2026-04-01T09:00:00Z', audience: { device_ids: [a2] } }), 201).id;
      ok(await a.call('POST', `/api/v1/campaigns/${c}/schedule`));
      assert.equal((await sa.next((f) => f.event === 'campaign.state' && f.data.campaign_id === c)).data.status, 'scheduled');
      ok(await a.call('POST', `/api/v1/campaigns/${c}/pause`));
      await sa.next((f) => f.event === 'campaign.state' && f.data.campaign_id === c && f.data.status === 'paused');
    });

    it('sends figures at once and then at its pace, and heartbeats', async () => {
      const s = await open('/api/v1/live', bearer(a));
      const first = await s.next((f) => f.event === 'figures', 1000);
      assert.deepEqual(Object.keys(first.data).sort(), ['at', 'devices', 'outbox', 'sent_last_minute', 'sent_this_minute', 'today']);
      assert.deepEqual(Object.keys(first.data.today).sort(), ['delivered', 'failed', 'read', 'replies', 'sent']);
      await eventually(() => s.frames.filter((f) => f.event === 'figures').length >= 3, 3000);
      await s.next((f) => f.event === 'comment', 2000);
    });

    it('drops its subscription when the client goes away, and when the server closes', async () => {
      for (const s of streams.splice(0)) s.close();
      await eventually(() => subscriptions === 0);
      const s = await open('/api/v1/live', bearer(a));
      await s.next((f) => f.event === 'figures');
      assert.equal(subscriptions, 1);
      s.close();
      await s.ended;
      await eventually(() => subscriptions === 0);
    });

    it('ends the stream when its session is signed out', async () => {
      const s = await login(api, a.email, a.password);
      const st = await open('/api/v1/live', { cookie: s.cookie });
      await st.next((f) => f.event === 'figures');
      const out = await api.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
      assert.equal(out.statusCode, 204);
      const ended = await st.next((f) => f.event === 'signed_out', 3000);
      assert.equal(ended.data.code, 'UNAUTHENTICATED');
      await st.ended;
      await eventually(() => subscriptions === 0);
    });

    it('a server closing ends the streams still open', async () => {
      const other = await openApi(backend, { server: { live: { figuresMs: 100 } } });
      try {
        const c = await tenant(other);
        const s = await openSse(await listenOnce(other.app), '/api/v1/live', bearer(c));
        await s.next((f) => f.event === 'figures');
        await other.app.close();
        await s.ended;
      } finally {
        await other.dispose();
      }
    });
  });
}
