/**
 * Tenant isolation, proven by walking the OpenAPI document: every route and verb is called with a
 * second tenant's credentials against the first tenant's resources, and must answer as if they did
 * not exist (404), change nothing, and list none of them. A route missing from the table below
 * fails the test, so a new route cannot ship without joining the walk.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backends } from '../helpers/db.js';
import { json, login, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { listenOnce, openSse } from '../helpers/sse.js';
import { publishLive } from '../../src/services/live/channel.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Ids {
  device: number;
  lead: number;
  token: number;
  member: number;
  import: number;
  campaign: number;
  sequence: number;
  step: number;
  enrollment: number;
  user: number;
  media: number;
  webhook: number;
  delivery: number;
}

/**
 * What B sends to each route: a body valid in every respect but ownership, so that only the
 * tenant check can refuse it. `expect` is the status B must get; list routes are checked for leaks.
 */
interface Probe {
  body?: (a: Ids) => unknown;
  query?: (a: Ids) => string;
  expect: number | number[];
  /** GET lists: the response must hold none of A's ids. */
  list?: boolean;
  /** Other answers that show rows: true when this one shows one of A's. */
  leaks?: (body: any, a: Ids) => boolean;
  contentType?: string;
  /** A Server-Sent Events stream: read over a socket until its first `figures` event. */
  stream?: boolean;
}

const probes: Record<string, Probe> = {
  'POST /api/v1/auth/login': { body: () => ({ email: 'nobody-here@example.test', password: 'wrong password' }), expect: 401 },
  'POST /api/v1/auth/logout': { expect: 204 },
  'GET /api/v1/me': { expect: 200 },
  'PATCH /api/v1/me': { body: () => ({ name: 'B' }), expect: 200 },
  'POST /api/v1/me/password': { body: () => ({ current_password: 'not the password', new_password: 'some new password' }), expect: 401 },

  'GET /api/v1/tokens': { expect: 200, list: true },
  'POST /api/v1/tokens': { body: () => ({ name: 'b token' }), expect: 201 },
  'GET /api/v1/tokens/{id}': { expect: 404 },
  'DELETE /api/v1/tokens/{id}': { expect: 404 },

  'GET /api/v1/members': { expect: 200, list: true },
  'POST /api/v1/members': { body: (a) => ({ email: `b-member-${a.device}@example.test`, password: 'member password', device_ids: [a.device] }), expect: 404 },
  'GET /api/v1/members/{id}': { expect: 404 },
  'PATCH /api/v1/members/{id}': { body: () => ({ name: 'taken over', disabled: true }), expect: 404 },
  'PUT /api/v1/members/{id}/devices': { body: () => ({ device_ids: [] }), expect: 404 },
  'DELETE /api/v1/members/{id}': { expect: 404 },

  // Accounts are an admin's business: a member is refused before anything is looked up.
  'GET /api/v1/users': { expect: 403 },
  'POST /api/v1/users': { body: () => ({ email: 'new-by-b@example.test', password: 'long enough pw' }), expect: 403 },
  'GET /api/v1/users/{id}': { expect: 403 },
  'PATCH /api/v1/users/{id}': { body: () => ({ disabled: true }), expect: 403 },
  'DELETE /api/v1/users/{id}': { expect: 403 },

  'GET /api/v1/devices': { expect: 200, list: true },
  'POST /api/v1/devices': { body: () => ({ name: 'b device' }), expect: 201 },
  'GET /api/v1/devices/{id}': { expect: 404 },
  'PATCH /api/v1/devices/{id}': { body: () => ({ name: 'taken over', hourly_limit: 1 }), expect: 404 },
  'DELETE /api/v1/devices/{id}': { expect: 404 },
  'POST /api/v1/devices/{id}/pause': { body: () => ({ reason: 'sabotage' }), expect: 404 },
  'POST /api/v1/devices/{id}/resume': { expect: 404 },
  'GET /api/v1/devices/{id}/stats': { expect: 404 },

  'GET /api/v1/leads': { expect: 200, list: true },
  'POST /api/v1/leads': { body: (a) => ({ phone: '+60129990001', device_id: a.device }), expect: 404 },
  'POST /api/v1/leads/bulk': { body: (a) => ({ ids: [a.lead], action: { op: 'delete' } }), expect: 200 },
  'GET /api/v1/leads/{id}': { expect: 404 },
  'PATCH /api/v1/leads/{id}': { body: () => ({ status: 'customer', opted_out: true }), expect: 404 },
  'DELETE /api/v1/leads/{id}': { expect: 404 },
  'GET /api/v1/leads/export': { expect: 200 },
  'GET /api/v1/leads/count': { expect: 200, leaks: (body) => body?.count !== 0 },
  'GET /api/v1/leads/imports': { expect: 200, list: true },
  'POST /api/v1/leads/imports': { query: (a) => `?device_id=${a.device}`, body: () => 'phone\n+60129990002\n', contentType: 'text/csv', expect: 404 },
  'GET /api/v1/leads/imports/{id}': { expect: 404 },
  'GET /api/v1/leads/imports/{id}/errors': { expect: 404 },

  'GET /api/v1/campaigns': { expect: 200, list: true },
  'POST /api/v1/campaigns': {
    body: (a) => ({ name: 'b campaign', body: 'hi', starts_at: '2026-04-01T09:00:00Z', audience: { device_ids: [a.device] } }),
    expect: 404,
  },
  'GET /api/v1/campaigns/{id}': { expect: 404 },
  'PATCH /api/v1/campaigns/{id}': { body: () => ({ name: 'taken over' }), expect: 404 },
  'DELETE /api/v1/campaigns/{id}': { expect: 404 },
  'POST /api/v1/campaigns/{id}/schedule': { expect: 404 },
  'POST /api/v1/campaigns/{id}/pause': { expect: 404 },
  'POST /api/v1/campaigns/{id}/resume': { expect: 404 },
  'POST /api/v1/campaigns/{id}/cancel': { expect: 404 },
  'POST /api/v1/campaigns/{id}/clone': { expect: 404 },
  'POST /api/v1/campaigns/{id}/retry': { body: (a) => ({ device_id: a.device }), expect: 404 },
  'GET /api/v1/campaigns/{id}/stats': { expect: 404 },
  'GET /api/v1/campaigns/{id}/failures': { expect: 404 },
  'GET /api/v1/campaigns/{id}/preview': { query: (a) => `?lead_ids=${a.lead}`, expect: 404 },
  'POST /api/v1/campaigns/preview': {
    body: (a) => ({ body: 'Hi {name:there}', lead_ids: [a.lead] }),
    expect: 200,
    leaks: (body, a) => ((body?.data ?? []) as { lead_id: number }[]).some((r) => r.lead_id === a.lead),
  },
  'GET /api/v1/campaigns/{id}/forecast': { expect: 404 },

  'GET /api/v1/sequences': { expect: 200, list: true },
  'POST /api/v1/sequences': { body: (a) => ({ name: 'b sequence', trigger: 'b_trigger', next_sequence_id: a.sequence }), expect: 404 },
  'GET /api/v1/sequences/{id}': { expect: 404 },
  'PATCH /api/v1/sequences/{id}': { body: () => ({ name: 'taken over' }), expect: 404 },
  'DELETE /api/v1/sequences/{id}': { expect: 404 },
  'POST /api/v1/sequences/{id}/pause': { expect: 404 },
  'POST /api/v1/sequences/{id}/resume': { expect: 404 },
  'GET /api/v1/sequences/{id}/steps': { expect: 404 },
  'POST /api/v1/sequences/{id}/steps': { body: () => ({ delay: { hours: 1 }, body: 'hello' }), expect: 404 },
  'GET /api/v1/sequences/{id}/steps/{stepId}': { expect: 404 },
  'PATCH /api/v1/sequences/{id}/steps/{stepId}': { body: () => ({ body: 'taken over', delay: { days: 1 } }), expect: 404 },
  'DELETE /api/v1/sequences/{id}/steps/{stepId}': { expect: 404 },
  'GET /api/v1/sequences/{id}/progress': { expect: 404 },
  'POST /api/v1/sequences/{id}/enrollments': { body: (a) => ({ lead_ids: [a.lead], filter: {} }), expect: 404 },
  'GET /api/v1/sequences/{id}/enrollments': { query: (a) => `?lead_id=${a.lead}`, expect: 404 },
  'GET /api/v1/sequences/{id}/enrollments/{enrollmentId}': { expect: 404 },
  'POST /api/v1/sequences/{id}/enrollments/{enrollmentId}/pause': { expect: 404 },
  'POST /api/v1/sequences/{id}/enrollments/{enrollmentId}/resume': { expect: 404 },
  'DELETE /api/v1/sequences/{id}/enrollments/{enrollmentId}': { expect: 404 },
  'GET /api/v1/leads/{id}/enrollments': { expect: 404 },

  'GET /api/v1/media': { expect: 200, list: true },
  'POST /api/v1/media': { query: () => '?kind=document&filename=b.txt', body: () => 'B uploads its own file\n', contentType: 'text/plain', expect: 201 },
  'GET /api/v1/media/{id}': { expect: 404 },
  'GET /api/v1/media/{id}/content': { expect: 404 },
  'DELETE /api/v1/media/{id}': { expect: 404 },

  'POST /api/v1/devices/{id}/link': { body: () => ({ method: 'qr' }), expect: 404 },
  'GET /api/v1/devices/{id}/link': { expect: 404 },
  'DELETE /api/v1/devices/{id}/link': { expect: 404 },
  'POST /api/v1/devices/{id}/logout': { expect: 404 },
  'POST /api/v1/devices/{id}/link/simulate-scan': { body: () => ({ phone: '+60129990003' }), expect: 404 },
  'PUT /api/v1/devices/{id}/cloud-api': { body: () => ({ phone_number_id: '1055512345', access_token: 'taken over' }), expect: 404 },
  // Public (Meta calls them without credentials): without a known verify token or a valid signature they do nothing.
  'GET /api/v1/cloud-api/webhook': { query: () => '?hub.mode=subscribe&hub.verify_token=guessed-token&hub.challenge=1', expect: 403 },
  'POST /api/v1/cloud-api/webhook': {
    body: () => JSON.stringify({ entry: [{ changes: [{ value: { metadata: { phone_number_id: '1055512345' }, messages: [{ from: '60123000001', text: { body: 'STOP' } }] } }] }] }),
    contentType: 'application/json',
    expect: 401,
  },
  'GET /api/v1/webhooks': { expect: 200, list: true },
  'POST /api/v1/webhooks': { body: () => ({ url: 'http://127.0.0.1:9/b-hook', events: ['message.sent'] }), expect: 201 },
  'GET /api/v1/webhooks/{id}': { expect: 404 },
  'PATCH /api/v1/webhooks/{id}': { body: () => ({ url: 'http://127.0.0.1:9/stolen', active: false }), expect: 404 },
  'DELETE /api/v1/webhooks/{id}': { expect: 404 },
  'POST /api/v1/webhooks/{id}/rotate-secret': { expect: 404 },
  'POST /api/v1/webhooks/{id}/test': { expect: 404 },
  'GET /api/v1/webhooks/{id}/deliveries': { expect: 404 },
  'GET /api/v1/webhooks/{id}/deliveries/{deliveryId}': { expect: 404 },

  // The audit log is an admin's: a member is refused.
  'GET /api/v1/audit': { expect: 403 },

  'GET /api/v1/dashboard': {
    expect: 200,
    leaks: (body, a) => body.campaigns.some((c: { id: number }) => c.id === a.campaign) || body.sequences.some((q: { id: number }) => q.id === a.sequence),
  },
  'GET /api/v1/monitoring': {
    expect: 200,
    leaks: (body, a) => body.devices.some((d: { id: number }) => d.id === a.device) || body.recent_errors.some((e: { device_id: number }) => e.device_id === a.device),
  },
  'GET /api/v1/live': { expect: 200, stream: true, leaks: (frames, a) => (frames as { data: any }[]).some((f) => f.data?.device_id === a.device || f.data?.import_id === a.import) },
};

function fill(path: string, a: Ids): string {
  const collection = /^\/api\/v1\/(leads\/imports|[a-z]+)/.exec(path)?.[1];
  const byCollection: Record<string, number> = {
    devices: a.device,
    leads: a.lead,
    'leads/imports': a.import,
    tokens: a.token,
    members: a.member,
    users: a.user,
    campaigns: a.campaign,
    sequences: a.sequence,
    media: a.media,
    webhooks: a.webhook,
  };
  return path
    .replace('{id}', String(byCollection[collection ?? ''] ?? 0))
    .replace('{stepId}', String(a.step))
    .replace('{enrollmentId}', String(a.enrollment))
    .replace('{deliveryId}', String(a.delivery));
}

/** Every row the tenant owns, as text, to prove the walk changed none of them. */
async function snapshot(api: TestApi, userId: number): Promise<string> {
  const q = async (sql: string) => JSON.stringify((await api.t.db.query(sql, [userId])).rows);
  return [
    await q(`select * from users where id = $1 or parent_id = $1 order by id`),
    await q(`select * from devices where user_id = $1 order by id`),
    await q(`select * from leads where user_id = $1 order by id`),
    await q(`select * from campaigns where user_id = $1 order by id`),
    await q(`select * from sequences where user_id = $1 order by id`),
    await q(`select s.* from sequence_steps s join sequences q on q.id = s.sequence_id where q.user_id = $1 order by s.id`),
    await q(`select * from enrollments where user_id = $1 order by id`),
    await q(`select id, name, revoked_at from api_tokens where user_id = $1 order by id`),
    await q(`select * from lead_imports where user_id = $1 order by id`),
    await q(`select * from device_members dm where dm.user_id in (select id from users where parent_id = $1) order by 1, 2`),
    await q(`select * from messages where user_id = $1 order by id`),
    await q(`select * from media where user_id = $1 order by id`),
    await q(`select cd.* from campaign_devices cd join campaigns c on c.id = cd.campaign_id where c.user_id = $1 order by 1, 2`),
    await q(`select q.* from pool_queue q join campaigns c on c.id = q.campaign_id where c.user_id = $1 order by 1, 2`),
    await q(`select * from device_links where user_id = $1 order by device_id`),
    await q(`select t.* from transport_auth t join devices d on d.id = t.device_id where d.user_id = $1 order by 1, 2, 3`),
    await q(`select * from cloud_api_numbers where user_id = $1 order by device_id`),
    await q(`select * from webhook_subscriptions where user_id = $1 order by id`),
    await q(`select * from webhook_deliveries where user_id = $1 order by id`),
  ].join('\n');
}

for (const backend of backends) {
  describe(`tenant isolation walk over the OpenAPI document (${backend})`, () => {
    let api: TestApi;
    let a: Caller;
    let ids: Ids;
    before(async () => {
      api = await openApi(backend, { server: { live: { figuresMs: 100 } } });
      a = await tenant(api);
      const ok = async (res: import('fastify').LightMyRequestResponse) => {
        assert.ok(res.statusCode < 300, `${res.statusCode} ${res.body}`);
        return json(res).id as number;
      };
      const device = await ok(await a.call('POST', '/api/v1/devices', { name: 'A device' }));
      const lead = await ok(await a.call('POST', '/api/v1/leads', { phone: '+60123000001', device_id: device, triggers: ['a_trigger'] }));
      const token = await ok(await a.call('POST', '/api/v1/tokens', { name: 'A token' }));
      const member = await ok(await a.call('POST', '/api/v1/members', { email: `a-member-${a.userId}@example.test`, password: 'member password', device_ids: [device] }));
      const imp = await api.app.inject({
        method: 'POST',
        url: '/api/v1/leads/imports',
        headers: { authorization: `Bearer ${a.token}`, 'content-type': 'text/csv' },
        payload: 'name,phone\nImported,+60123000002\n',
      });
      const importId = await ok(imp);
      await api.services.imports.idle();
      const campaign = await ok(await a.call('POST', '/api/v1/campaigns', { name: 'A campaign', body: 'Hi {name}', starts_at: '2026-04-01T09:00:00Z', audience: { device_ids: [device] } }));
      const sequence = await ok(await a.call('POST', '/api/v1/sequences', { name: 'A sequence', trigger: 'a_trigger' }));
      const step = await ok(await a.call('POST', `/api/v1/sequences/${sequence}/steps`, { delay: { minutes: 30 }, body: 'Welcome' }));
      // The lead carried the trigger before the sequence existed: it is enrolled by hand.
      const enrolled = await a.call('POST', `/api/v1/sequences/${sequence}/enrollments`, { lead_ids: [lead] });
      assert.deepEqual(json(enrolled), { matched: 1, enrolled: 1, skipped: 0 });
      const enrollment = json(await a.call('GET', `/api/v1/sequences/${sequence}/enrollments`)).data[0].id as number;
      const media = await ok(
        await api.app.inject({
          method: 'POST',
          url: '/api/v1/media?kind=document&filename=a.txt',
          headers: { authorization: `Bearer ${a.token}`, 'content-type': 'text/plain' },
          payload: 'A price list\n',
        }),
      );
      const webhook = await ok(await a.call('POST', '/api/v1/webhooks', { url: 'http://127.0.0.1:9/a-hook', events: ['message.sent', 'lead.replied'] }));
      const delivery = await ok(await a.call('POST', `/api/v1/webhooks/${webhook}/test`));
      ids = { device, lead, token, member, import: importId, campaign, sequence, step, enrollment, user: a.userId, media, webhook, delivery };
    });
    after(() => api.dispose());

    it('covers every route of the document', async () => {
      const doc = json(await api.app.inject({ method: 'GET', url: '/openapi.json' }));
      const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
      );
      const missing = routes.filter((r) => r.includes(' /api/') && !(r in probes));
      assert.deepEqual(missing, [], 'routes without an isolation probe');
      const stale = Object.keys(probes).filter((r) => !routes.includes(r));
      assert.deepEqual(stale, [], 'probes for routes that no longer exist');
    });

    for (const via of ['token', 'cookie'] as const) {
      it(`a second tenant (${via}) gets 404 for every resource of the first, and changes nothing`, async () => {
        const b = await tenant(api);
        await b.call('POST', '/api/v1/devices', { name: 'B device' });
        let cookieHeaders: Record<string, string> = {};
        if (via === 'cookie') {
          const s = await login(api, b.email, b.password);
          cookieHeaders = { cookie: s.cookie, 'x-csrf-token': s.csrf };
        }
        const before = await snapshot(api, a.userId);
        const doc = json(await api.app.inject({ method: 'GET', url: '/openapi.json' }));
        const failures: string[] = [];
        for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
          for (const m of Object.keys(ops)) {
            const key = `${m.toUpperCase()} ${path}`;
            const probe = probes[key];
            if (!probe) continue;
            // Signing out would end B's cookie session halfway through the walk: it goes last.
            if (key === 'POST /api/v1/auth/logout') continue;
            const url = fill(path, ids) + (probe.query?.(ids) ?? '');
            const body = probe.body?.(ids);
            const headers: Record<string, string> = via === 'token' ? { authorization: `Bearer ${b.token}` } : { ...cookieHeaders };
            if (probe.contentType) headers['content-type'] = probe.contentType;
            if (probe.stream) {
              // A's own event goes out while B watches: B's stream must not carry it.
              const sse = await openSse(await listenOnce(api.app), url, headers);
              try {
                if (sse.status === 200) {
                  await sse.next((f) => f.event === 'figures');
                  await publishLive(api.t.db, { tenantId: a.userId, deviceId: ids.device, type: 'device.status', at: api.clock.now(), data: { device_id: ids.device, status: 'online' } });
                  await publishLive(api.t.db, { tenantId: b.userId, type: 'walk.done', at: api.clock.now(), data: {} });
                  await sse.next((f) => f.event === 'walk.done');
                }
              } finally {
                sse.close();
              }
              const expected = Array.isArray(probe.expect) ? probe.expect : [probe.expect];
              if (!expected.includes(sse.status)) failures.push(`${key} -> ${sse.status}`);
              if (probe.leaks?.(sse.frames, ids)) failures.push(`${key} shows the first tenant's events`);
              continue;
            }
            const res = await api.app.inject({
              method: m.toUpperCase() as Method,
              url,
              headers,
              ...(body === undefined ? {} : { payload: body as string }),
            });
            const expected = Array.isArray(probe.expect) ? probe.expect : [probe.expect];
            if (!expected.includes(res.statusCode)) failures.push(`${key} -> ${res.statusCode} ${res.body.slice(0, 200)}`);
            if (res.statusCode === 404 && json(res).error?.code === 'ROUTE_NOT_FOUND') failures.push(`${key}: route not found (${url})`);
            if (probe.leaks && res.statusCode === 200 && probe.leaks(json(res), ids)) failures.push(`${key} shows the first tenant's rows`);
            if (probe.list && res.statusCode === 200) {
              // Ids are per table: A's row of this collection must not be in B's list.
              const own = Number(fill(`${path}/{id}`, ids).split('/').pop());
              const data = (json(res).data ?? []) as { id: number }[];
              if (data.some((r) => r.id === own)) failures.push(`${key} lists the first tenant's row ${own}`);
            }
          }
        }
        assert.deepEqual(failures, []);
        assert.equal(await snapshot(api, a.userId), before, "the first tenant's rows are untouched");
      });
    }

    it('lists and exports show a second tenant none of the first tenant’s rows', async () => {
      const b = await tenant(api);
      const get = async (url: string) => {
        const res = await b.call('GET', url);
        assert.equal(res.statusCode, 200, `${url}: ${res.body}`);
        return res;
      };
      assert.deepEqual(json(await get('/api/v1/devices')).data, []);
      assert.deepEqual(json(await get('/api/v1/leads?limit=500')).data, []);
      assert.deepEqual(json(await get(`/api/v1/leads?device_id=${ids.device}`)).data, []);
      assert.deepEqual(json(await get('/api/v1/leads?q=60123')).data, []);
      assert.deepEqual(json(await get('/api/v1/campaigns')).data, []);
      assert.deepEqual(json(await get('/api/v1/sequences')).data, []);
      assert.deepEqual(json(await get('/api/v1/members')).data, []);
      assert.deepEqual(json(await get('/api/v1/leads/imports')).data, []);
      assert.deepEqual(json(await get('/api/v1/media')).data, []);
      assert.deepEqual(json(await get('/api/v1/webhooks')).data, []);
      const csv = (await get('/api/v1/leads/export')).body;
      assert.ok(!csv.includes('+60123000001') && !csv.includes('+60123000002'), csv);
      assert.deepEqual(json(await get('/api/v1/tokens')).data.map((t: { name: string }) => t.name), ['test']);
      const bulk = await b.call('POST', '/api/v1/leads/bulk', { filter: {}, action: { op: 'set_status', value: 'stolen' } });
      assert.equal(json(bulk).affected, 0);
      const aLeads = await api.t.db.query<{ status: string }>(`select status from leads where user_id = $1`, [a.userId]);
      assert.ok(aLeads.rows.every((r) => r.status !== 'stolen'));

      // B's own sequence on the same trigger, enrolling every lead B can see or naming A's lead,
      // reaches none of A's leads; neither does tagging "every lead" with that trigger.
      const enrollmentsBefore = JSON.stringify((await api.t.db.query(`select * from enrollments order by id`)).rows);
      const seq = json(await b.call('POST', '/api/v1/sequences', { name: 'B drip', trigger: 'a_trigger' })).id as number;
      assert.equal((await b.call('POST', `/api/v1/sequences/${seq}/steps`, { body: 'Hi' })).statusCode, 201);
      assert.deepEqual(json(await b.call('POST', `/api/v1/sequences/${seq}/enrollments`, { filter: {} })), { matched: 0, enrolled: 0, skipped: 0 });
      assert.deepEqual(json(await b.call('POST', `/api/v1/sequences/${seq}/enrollments`, { lead_ids: [ids.lead] })), { matched: 0, enrolled: 0, skipped: 0 });
      const tagged = await b.call('POST', '/api/v1/leads/bulk', { filter: {}, action: { op: 'add_triggers', values: ['a_trigger', 'other'] } });
      assert.equal(json(tagged).affected, 0);
      assert.deepEqual(json(await get(`/api/v1/sequences/${seq}/enrollments`)).data, []);
      assert.equal(JSON.stringify((await api.t.db.query(`select * from enrollments order by id`)).rows), enrollmentsBefore);
      assert.equal((await b.call('GET', `/api/v1/leads/${ids.lead}/enrollments`)).statusCode, 404);
    });

    it('a team member of the first tenant sees none of another tenant', async () => {
      const other = await tenant(api);
      const od = json(await other.call('POST', '/api/v1/devices', { name: 'other' })).id as number;
      const ol = json(await other.call('POST', '/api/v1/leads', { phone: '+60123000077', device_id: od })).id as number;
      const s = await login(api, `a-member-${a.userId}@example.test`, 'member password');
      const get = (url: string) => api.app.inject({ method: 'GET', url, headers: { cookie: s.cookie } });
      assert.equal((await get(`/api/v1/devices/${od}`)).statusCode, 404);
      assert.equal((await get(`/api/v1/leads/${ol}`)).statusCode, 404);
      assert.deepEqual(json(await get('/api/v1/leads')).data.map((l: { id: number }) => l.id), [ids.lead]);
    });
  });
}
