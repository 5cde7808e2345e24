/**
 * Operations over HTTP: /healthz and /readyz, /metrics behind its token and counting what the
 * engine does, the audit log (written centrally, read by admins), request ids, and logs that never
 * carry a secret or a message body.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { buildServer } from '../../src/api/server.js';
import { actionOf } from '../../src/api/audit-trail.js';
import { VirtualClock } from '../../src/engine/clock.js';
import { createLogger } from '../../src/logger.js';
import { FleetcastMetrics } from '../../src/services/metrics/registry.js';
import { startCampaignNow } from '../../src/store/sql/campaigns.js';
import { SimulatorTransport } from '../../src/transports/simulator.js';
import { json, login, openApi, tenant, type TestApi } from '../helpers/api.js';
import { backends, openTestDb } from '../helpers/db.js';
import { buildWorld, runToIdle, stopEngine, virtualEngine } from '../helpers/world.js';

const TOKEN = 'metrics-token-0123456789';

/** Prometheus text: the value of a sample (name and labels exactly as printed). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

for (const backend of backends) {
  describe(`health, readiness and metrics on ${backend}`, () => {
    let api: TestApi;
    before(async () => {
      api = await openApi(backend);
    });
    after(() => api.dispose());

    it('/healthz answers without the database; /readyz checks the database and the migrations', async () => {
      const h = await api.app.inject({ method: 'GET', url: '/healthz' });
      assert.equal(h.statusCode, 200);
      assert.deepEqual(json(h), { status: 'ok' });
      const r = await api.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(r.statusCode, 200);
      assert.deepEqual(json(r), { status: 'ok', store: backend, devices: 0, messages: null });

      // A migration missing: not ready, and the answer says which.
      await api.t.db.query('delete from schema_migrations where version = 5');
      try {
        const nr = await api.app.inject({ method: 'GET', url: '/readyz' });
        assert.equal(nr.statusCode, 503);
        assert.equal(json(nr).status, 'unavailable');
        assert.match(json(nr).reason, /migrations not applied: 5/);
        assert.equal((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still alive');
      } finally {
        await api.t.db.query(`insert into schema_migrations (version, name, applied_at) values (5, 'operations', now())`);
      }
    });

    it('/metrics is 404 without a token configured, 401 without the token, Prometheus text with it', async () => {
      assert.equal((await api.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404);
      const metrics = new FleetcastMetrics(api.t.db, api.clock, { processMetrics: false });
      const app = await buildServer(api.services, { logger: createLogger('silent'), metrics: { registry: metrics, token: TOKEN } });
      try {
        const none = await app.inject({ method: 'GET', url: '/metrics' });
        assert.equal(none.statusCode, 401);
        assert.equal(json(none).error.code, 'UNAUTHENTICATED');
        const wrong = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer not-the-token-at-all' } });
        assert.equal(wrong.statusCode, 401);
        // An API token is not the metrics token.
        const a = await tenant(api);
        assert.equal((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${a.token}` } })).statusCode, 401);
        const ok = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(ok.statusCode, 200);
        assert.match(String(ok.headers['content-type']), /^text\/plain/);
        assert.equal(sample(ok.body, 'fleetcast_outbox_messages{status="pending"}'), 0);
        assert.equal(sample(ok.body, 'fleetcast_webhook_backlog'), 0);
        assert.match(ok.body, /# TYPE fleetcast_messages_total counter/);
      } finally {
        await app.close();
        metrics.close();
      }
    });
  });

  describe(`metrics count what the engine does (${backend})`, () => {
    it('sends, outcomes, dispatch latency, outbox depth and devices by status', async () => {
      const T0 = Date.parse('2026-03-02T09:00:00Z');
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 3 });
      try {
        const w = await buildWorld(t.db, { devices: 3, leads: 30, startsAt: new Date(T0), device: { minDelayMs: 2000, maxDelayMs: 2000 } }, new Date(T0));
        const engine = virtualEngine(t.db, clock, sim);
        const metrics = new FleetcastMetrics(t.db, clock, { engine, cacheMs: 0, processMetrics: false });
        await engine.start();
        await startCampaignNow(t.db, w.campaignId, new Date(T0));
        engine.campaigns.poke();
        const during = await (async () => {
          await clock.runUntil(T0 + 5000);
          return metrics.text();
        })();
        assert.ok((sample(during, 'fleetcast_outbox_messages{status="pending"}') ?? 0) > 0, during);
        assert.equal(sample(during, 'fleetcast_devices{status="online"}'), 3);
        await runToIdle(clock, engine, sim, T0 + 3_600_000);
        const text = await metrics.text();
        assert.equal(sample(text, 'fleetcast_messages_sent_total'), 30);
        assert.equal(sample(text, 'fleetcast_messages_total{status="sent"}'), 30);
        assert.equal(sample(text, 'fleetcast_messages_total{status="failed"}'), 0);
        assert.equal(sample(text, 'fleetcast_dispatch_latency_seconds_count'), 30);
        // Ten messages a device, one every 2 s: the last waited about 18 s past its due time.
        assert.ok((sample(text, 'fleetcast_dispatch_latency_seconds_sum') ?? 0) > 100, text);
        assert.equal(sample(text, 'fleetcast_dispatch_latency_seconds_bucket{le="60"}'), 30);
        assert.equal(sample(text, 'fleetcast_outbox_messages{status="pending"}'), 0);
        assert.equal(sample(text, 'fleetcast_devices_served'), 3);
        await stopEngine(clock, engine);
        metrics.close();
      } finally {
        sim.close();
        await t.dispose();
      }
    });
  });

  describe(`the audit log on ${backend}`, () => {
    let api: TestApi;
    before(async () => {
      api = await openApi(backend);
    });
    after(() => api.dispose());

    it('records writes, sign-ins (failed too), sign-outs and exports centrally, for admins to read', async () => {
      const admin = await tenant(api, { role: 'admin' });
      const a = await tenant(api);
      const created = await a.call('POST', '/api/v1/campaigns', { name: 'Audit me', body: 'Hello SECRET BODY', starts_at: '2026-04-01T09:00:00Z' });
      assert.equal(created.statusCode, 201, created.body);
      const campaign = json(created).id as number;
      assert.equal((await a.call('PATCH', `/api/v1/campaigns/${campaign}`, { name: 'Renamed' })).statusCode, 200);
      assert.equal((await a.call('POST', `/api/v1/campaigns/${campaign}/schedule`)).statusCode, 200);
      assert.equal((await a.call('GET', '/api/v1/leads/export')).statusCode, 200);
      assert.equal((await a.call('GET', '/api/v1/campaigns')).statusCode, 200, 'reads are not audited');
      const bad = await a.call('PATCH', `/api/v1/campaigns/${campaign}`, { name: 7 });
      assert.equal(bad.statusCode, 400, 'nor refused writes');
      const failed = await api.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: a.email, password: 'wrong password' } });
      assert.equal(failed.statusCode, 401);
      const s = await login(api, a.email, a.password);
      const out = await api.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
      assert.equal(out.statusCode, 204);

      const res = await admin.call('GET', `/api/v1/audit?tenant_id=${a.userId}&limit=500`);
      assert.equal(res.statusCode, 200, res.body);
      const entries = json(res).data as {
        action: string;
        actor: { id: number | null; email: string | null; via: string };
        target: { type: string; id: number | null } | null;
        status_code: number;
        request_id: string;
        route: string;
      }[];
      const brief = entries.map((e) => [e.action, e.target?.type ?? null, e.target?.id ?? null, e.actor.via]).reverse();
      assert.deepEqual(
        brief.filter(([action]) => action !== 'token.create'),
        [
          ['campaign.create', 'campaign', campaign, 'token'],
          ['campaign.update', 'campaign', campaign, 'token'],
          ['campaign.schedule', 'campaign', campaign, 'token'],
          ['lead.export', 'lead', null, 'token'],
          ['auth.login', 'user', a.userId, 'session'],
          ['auth.logout', null, null, 'session'],
        ],
      );
      assert.ok(entries.every((e) => e.actor.id === a.userId && e.actor.email === a.email && e.request_id.length > 0));
      assert.ok(!res.body.includes('SECRET BODY') && !res.body.includes(a.password) && !res.body.includes(a.token));

      // The failed sign-in has no actor and no tenant, only the e-mail that was tried.
      const f = json(await admin.call('GET', '/api/v1/audit?action=auth.login_failed')).data;
      assert.equal(f.length, 1);
      assert.equal(f[0].actor.id, null);
      assert.equal(f[0].actor.email, a.email);
      assert.equal(f[0].tenant_id, null);
      assert.equal(f[0].status_code, 401);

      // Filters and keyset pages.
      const camp = json(await admin.call('GET', '/api/v1/audit?action=campaign.&limit=2'));
      assert.deepEqual(camp.data.map((e: { action: string }) => e.action), ['campaign.schedule', 'campaign.update']);
      const rest = json(await admin.call('GET', `/api/v1/audit?action=campaign.&limit=2&cursor=${camp.next_cursor}`));
      assert.deepEqual(rest.data.map((e: { action: string }) => e.action), ['campaign.create']);
      const byTarget = json(await admin.call('GET', `/api/v1/audit?target_type=campaign&target_id=${campaign}`)).data;
      assert.equal(byTarget.length, 3);

      // Only admins read it.
      const denied = await a.call('GET', '/api/v1/audit');
      assert.equal(denied.statusCode, 403);
      assert.equal(json(denied).error.code, 'ADMIN_REQUIRED');
      assert.equal((await admin.call('GET', '/api/v1/audit?since=yesterday')).statusCode, 400);
    });
  });
}

describe('audit actions from route patterns', () => {
  it('names the action and its target from the method, the pattern and the parameters', () => {
    const cases: [string, string, Record<string, string>, [string, string | null, number | null, boolean]][] = [
      ['POST', '/api/v1/campaigns', {}, ['campaign.create', 'campaign', null, true]],
      ['PATCH', '/api/v1/campaigns/:id', { id: '7' }, ['campaign.update', 'campaign', 7, false]],
      ['POST', '/api/v1/campaigns/:id/pause', { id: '7' }, ['campaign.pause', 'campaign', 7, false]],
      ['DELETE', '/api/v1/leads/:id', { id: '3' }, ['lead.delete', 'lead', 3, false]],
      ['POST', '/api/v1/leads/bulk', {}, ['lead.bulk', 'lead', null, false]],
      ['POST', '/api/v1/leads/imports', {}, ['lead.import.create', 'import', null, true]],
      ['POST', '/api/v1/sequences/:id/steps', { id: '2' }, ['sequence.step.create', 'step', null, true]],
      ['PATCH', '/api/v1/sequences/:id/steps/:stepId', { id: '2', stepId: '9' }, ['sequence.step.update', 'step', 9, false]],
      ['POST', '/api/v1/sequences/:id/enrollments/:enrollmentId/pause', { id: '2', enrollmentId: '5' }, ['sequence.enrollment.pause', 'enrollment', 5, false]],
      ['PUT', '/api/v1/members/:id/devices', { id: '4' }, ['member.device.set', 'member', 4, false]],
      ['POST', '/api/v1/webhooks/:id/rotate-secret', { id: '1' }, ['webhook.rotate-secret', 'webhook', 1, false]],
      ['PATCH', '/api/v1/me', {}, ['account.update', 'user', null, false]],
      ['POST', '/api/v1/auth/logout', {}, ['auth.logout', null, null, false]],
    ];
    for (const [method, route, params, [action, type, id, creates]] of cases) {
      assert.deepEqual(actionOf(method, route, params), { action, targetType: type, targetId: id, creates }, `${method} ${route}`);
    }
  });
});

describe('request ids and logs', () => {
  let api: TestApi;
  let lines: string[];
  let logged: TestApi['app'];
  before(async () => {
    api = await openApi('pglite');
    lines = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString('utf8').split('\n').filter((l) => l !== ''));
        cb();
      },
    });
    // Every request logged, at the most verbose level: nothing secret may appear even so.
    logged = await buildServer(api.services, { logger: createLogger('trace', 'fleetcast', sink), logRequests: true });
  });
  after(async () => {
    await logged.close();
    await api.dispose();
  });

  it('accepts a sane X-Request-Id, replaces anything else, and answers with it', async () => {
    const mine = await logged.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'lb-4f2a.77' } });
    assert.equal(mine.headers['x-request-id'], 'lb-4f2a.77');
    const odd = await logged.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'x\u0001 injected {"level":60}' } });
    assert.match(String(odd.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const none = await logged.inject({ method: 'GET', url: '/healthz' });
    assert.match(String(none.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const line = lines.map((l) => JSON.parse(l)).find((l) => l.reqId === 'lb-4f2a.77');
    assert.ok(line, 'the request was logged with its id');
  });

  it('logs no password, token, cookie, webhook secret or message body through sign-in, token, webhook and campaign creation', async () => {
    const a = await tenant(api);
    lines.length = 0;
    const signIn = await logged.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: a.email, password: a.password } });
    assert.equal(signIn.statusCode, 200, signIn.body);
    const cookie = String(signIn.headers['set-cookie']).split(';')[0]!;
    const session = cookie.split('=')[1]!;
    const csrf = json(signIn).csrf_token as string;
    const headers = { cookie, 'x-csrf-token': csrf };
    const tok = await logged.inject({ method: 'POST', url: '/api/v1/tokens', headers, payload: { name: 'logged' } });
    assert.equal(tok.statusCode, 201);
    const token = json(tok).token as string;
    const hook = await logged.inject({
      method: 'POST',
      url: '/api/v1/webhooks',
      headers: { authorization: `Bearer ${token}` },
      payload: { url: 'http://127.0.0.1:9/hook', events: ['message.sent'] },
    });
    assert.equal(hook.statusCode, 201, hook.body);
    const secret = json(hook).secret as string;
    const body = 'Dear customer, your PRIVATE OFFER code is 8812';
    const camp = await logged.inject({
      method: 'POST',
      url: '/api/v1/campaigns',
      headers: { authorization: `Bearer ${token}` },
      payload: { name: 'logged campaign', body, starts_at: '2026-04-01T09:00:00Z' },
    });
    assert.equal(camp.statusCode, 201, camp.body);
    // An error path too: a failing request logs at error level.
    await logged.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: a.email, password: 'wrong password here' } });

    const text = lines.join('\n');
    assert.ok(lines.length >= 10, `requests were logged (${lines.length} lines)`);
    assert.ok(lines.every((l) => 'reqId' in JSON.parse(l) || !('req' in JSON.parse(l))), 'request lines carry their id');
    for (const [what, value] of [
      ['password', a.password],
      ['the wrong password', 'wrong password here'],
      ['the session cookie', session],
      ['the CSRF token', csrf],
      ['the API token', token],
      ["the test's API token", a.token],
      ['the webhook secret', secret],
      ['the message body', 'PRIVATE OFFER'],
    ] as const) {
      assert.ok(!text.includes(value), `${what} appears in the log`);
    }
    // And the logger redacts secrets handed to it by mistake.
    const before = lines.length;
    const log = createLogger('info', 'fleetcast', new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }));
    log.info({ password: 'p4ss', user: { token: 't0k', secret: 's3c' }, body: 'hello there', headers: { authorization: 'Bearer x' } }, 'oops');
    await new Promise((r) => setImmediate(r));
    const redacted = lines.slice(before).join('');
    for (const v of ['p4ss', 't0k', 's3c', 'hello there', 'Bearer x']) assert.ok(!redacted.includes(v), `${v} was logged`);
  });
});
