/**
 * Webhook delivery end to end: subscriptions made over the API, events queued by the store's own
 * writers, the deliverer posting to a receiver on 127.0.0.1 that checks every signature the way
 * docs/webhooks.md tells a receiver to, with a real clock and short backoffs.
 */
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SystemClock } from '../../src/engine/clock.js';
import { backoffMs, retryable, WebhookDeliverer } from '../../src/engine/webhook-deliverer.js';
import { WebhookSecrets } from '../../src/services/webhooks/secrets.js';
import { insertDevices, pauseDevice, setDeviceStatuses } from '../../src/store/sql/devices.js';
import { recordOutcomes, recordReceipts, type Outcome } from '../../src/store/sql/messages.js';
import { materialiseAll } from '../../src/engine/materialise.js';
import { applyReply, DEFAULT_OPT_OUT_WORDS } from '../../src/engine/replies.js';
import { progressEnrollments } from '../../src/engine/sequence-progress.js';
import { completeFinishedCampaigns, insertCampaign, startCampaignNow } from '../../src/store/sql/campaigns.js';
import { generateLeads } from '../../src/store/sql/leads.js';
import { json, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { backends } from '../helpers/db.js';
import { quietLog } from '../helpers/world.js';

type Behaviour = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  raw: string;
  /** The signature checked as docs/webhooks.md shows. */
  verified: boolean;
  at: number;
}

/** A receiver that answers each request with the next scripted behaviour (then 200). */
class Receiver {
  readonly received: Received[] = [];
  script: Behaviour[] = [];
  /** Each subscription has a path of its own, and its secret. */
  readonly secrets = new Map<string, string>();
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const path = req.url ?? '';
      const secret = this.secrets.get(path) ?? '';
      this.received.push({ path, headers: req.headers, raw, verified: verify(secret, String(req.headers['x-fleetcast-signature'] ?? ''), raw), at: Date.now() });
      const b = this.script.shift() ?? { status: 200, body: 'ok' };
      if (b === 'hang') return; // never answers: the deliverer's timeout must end it
      res.writeHead(b.status, b.headers ?? {});
      res.end(b.body ?? '');
    });
  });

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** The verification a receiver writes (docs/webhooks.md), independent of the server's code. */
function verify(secret: string, header: string, raw: string): boolean {
  const fields = Object.fromEntries(header.split(',').map((kv) => kv.split('=') as [string, string]));
  const t = Number(fields.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${raw}`).digest();
  const got = Buffer.from(fields.v1 ?? '', 'hex');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, ms = 10_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const backend of backends) {
  describe(`webhooks on ${backend}`, () => {
    let api: TestApi;
    let a: Caller;
    let receiver: Receiver;
    let url: string;
    let deliverer: WebhookDeliverer;

    before(async () => {
      api = await openApi(backend);
      api.clock.t = Date.now();
      a = await tenant(api);
      receiver = new Receiver();
      url = await receiver.listen();
      deliverer = new WebhookDeliverer(api.t.db, new SystemClock(), quietLog, {
        secrets: new WebhookSecrets(api.secretBox),
        allowPrivateAddresses: true,
        retryBaseMs: 40,
        retryMaxMs: 200,
        // Long enough for a loaded CI machine to answer; the hanging receiver still costs only this.
        timeoutMs: 2000,
        pollMs: 50,
        maxAttempts: 4,
      });
      await deliverer.start();
    });
    after(async () => {
      await deliverer.stop();
      await receiver.close();
      await api.dispose();
    });

    let subscriptions = 0;
    async function subscribe(events: string[]): Promise<{ id: number; secret: string; path: string }> {
      const path = `/hook/${++subscriptions}`;
      const res = await a.call('POST', '/api/v1/webhooks', { url: url.replace('/hook', path), events });
      assert.equal(res.statusCode, 201, res.body);
      const body = json(res);
      assert.match(body.secret, /^whsec_/);
      receiver.secrets.set(path, body.secret);
      return { id: body.id, secret: body.secret, path };
    }

    async function testDelivery(id: number): Promise<number> {
      api.clock.t = Date.now();
      const res = await a.call('POST', `/api/v1/webhooks/${id}/test`);
      assert.equal(res.statusCode, 202, res.body);
      return json(res).id;
    }

    async function finished(id: number, delivery: number) {
      return waitFor(`delivery ${delivery}`, async () => {
        const d = json(await a.call('GET', `/api/v1/webhooks/${id}/deliveries/${delivery}`));
        return d.status === 'delivered' || d.status === 'failed' ? d : null;
      });
    }

    it('signs every delivery so the receiver can verify it, and never shows the secret again', async () => {
      const w = await subscribe(['message.sent']);
      receiver.received.length = 0;
      const d = await testDelivery(w.id);
      const done = await finished(w.id, d);
      assert.equal(done.status, 'delivered');
      assert.equal(done.attempts, 1);
      assert.equal(receiver.received.length, 1);
      const r = receiver.received[0]!;
      assert.equal(r.verified, true, 'the signature verifies with the secret shown at creation');
      assert.equal(r.headers['x-fleetcast-event'], 'webhook.test');
      assert.equal(r.headers['x-fleetcast-delivery'], String(d));
      const body = JSON.parse(r.raw);
      assert.deepEqual(Object.keys(body).sort(), ['created_at', 'data', 'id', 'type']);
      assert.equal(body.type, 'webhook.test');
      assert.equal(body.id, done.event_id);
      assert.equal(done.attempt_log[0].status_code, 200);
      assert.equal(done.attempt_log[0].response_excerpt, 'ok');
      // A tampered body or another secret does not verify.
      assert.equal(verify(w.secret, String(r.headers['x-fleetcast-signature']), r.raw.replace('test', 'tEst')), false);
      assert.equal(verify('whsec_other', String(r.headers['x-fleetcast-signature']), r.raw), false);
      const shown = await a.call('GET', `/api/v1/webhooks/${w.id}`);
      assert.ok(!shown.body.includes(w.secret));
      const listed = await a.call('GET', '/api/v1/webhooks');
      assert.ok(!listed.body.includes(w.secret));

      // Rotation: the new secret signs from now on, the old one no longer does.
      const rotated = json(await a.call('POST', `/api/v1/webhooks/${w.id}/rotate-secret`));
      assert.notEqual(rotated.secret, w.secret);
      receiver.secrets.set(w.path, rotated.secret);
      receiver.received.length = 0;
      await finished(w.id, await testDelivery(w.id));
      assert.equal(receiver.received[0]!.verified, true);
      assert.equal(verify(w.secret, String(receiver.received[0]!.headers['x-fleetcast-signature']), receiver.received[0]!.raw), false);
    });

    it('retries after a 500 and after a timeout, then succeeds; the same body and event id each time', async () => {
      const w = await subscribe(['message.sent']);
      receiver.received.length = 0;
      receiver.script = [{ status: 500, body: 'boom' }, 'hang', { status: 200, body: 'fine' }];
      const d = await testDelivery(w.id);
      const done = await finished(w.id, d);
      assert.equal(done.status, 'delivered');
      assert.equal(done.attempts, 3);
      assert.deepEqual(
        done.attempt_log.map((x: { attempt: number; status_code: number | null; error: string | null }) => [x.attempt, x.status_code, x.error?.split(':')[0] ?? null]),
        [
          [1, 500, 'HTTP_500'],
          [2, null, 'TIMEOUT'],
          [3, 200, null],
        ],
      );
      assert.equal(done.attempt_log[0].response_excerpt, 'boom');
      assert.ok(done.attempt_log[1].duration_ms >= 1950, `the timeout cut the attempt at ~2 s (${done.attempt_log[1].duration_ms})`);
      assert.equal(receiver.received.length, 3);
      assert.ok(receiver.received.every((r) => r.verified));
      assert.equal(new Set(receiver.received.map((r) => r.raw)).size, 1, 'every attempt carries the same body');
      assert.deepEqual(receiver.received.map((r) => r.headers['x-fleetcast-attempt']), ['1', '2', '3']);
    });

    it('does not retry a 400, and gives up after the last attempt on persistent 503s', async () => {
      const w = await subscribe(['message.sent']);
      receiver.received.length = 0;
      receiver.script = [{ status: 400, body: 'bad request' }];
      const d = await testDelivery(w.id);
      const done = await finished(w.id, d);
      assert.equal(done.status, 'failed');
      assert.equal(done.attempts, 1);
      assert.equal(done.last_status_code, 400);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(receiver.received.length, 1, 'a 400 is never tried again');

      receiver.received.length = 0;
      receiver.script = Array.from({ length: 4 }, () => ({ status: 503 }));
      const d2 = await testDelivery(w.id);
      const gaveUp = await finished(w.id, d2);
      assert.equal(gaveUp.status, 'failed');
      assert.equal(gaveUp.attempts, 4, 'maxAttempts');
      assert.equal(receiver.received.length, 4);
    });

    it('retries 408 and 429, honouring Retry-After within the backoff bounds', async () => {
      const w = await subscribe(['message.sent']);
      receiver.received.length = 0;
      receiver.script = [{ status: 408 }, { status: 429, headers: { 'retry-after': '5' } }, { status: 204 }];
      const d = await testDelivery(w.id);
      const done = await finished(w.id, d);
      assert.equal(done.status, 'delivered');
      assert.equal(done.attempts, 3);
      // Retry-After: 5 s is past retryMaxMs (200 ms): the wait is cut to the bound, yet not below it.
      const gap = receiver.received[2]!.at - receiver.received[1]!.at;
      assert.ok(gap >= 150 && gap < 3000, `waited ${gap} ms after the 429`);
    });

    it('queues the events a subscription asked for, from the store’s own writers, for its tenant only', async () => {
      const w = await subscribe(['message.sent', 'message.read', 'device.connected', 'device.restricted']);
      const other = await tenant(api);
      const db = api.t.db;
      const now = new Date(Date.now());
      const [mine] = await insertDevices(db, a.userId, [{ name: 'd', minDelayMs: 0, maxDelayMs: 0 }], now);
      const [theirs] = await insertDevices(db, other.userId, [{ name: 'o', minDelayMs: 0, maxDelayMs: 0 }], now);
      let lead = 0;
      const msg = async (userId: number, deviceId: number, phone: string) =>
        (
          await db.query<{ id: number }>(
            `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, created_at)
             values ($1, $2, $5, $3, 999999, 'SECRET BODY TEXT', 'sending', $4, $4) returning id`,
            [userId, deviceId, phone, now, ++lead],
          )
        ).rows[0]!.id;
      const m1 = await msg(a.userId, mine!, '+60120000001');
      const m2 = await msg(a.userId, mine!, '+60120000002');
      const m3 = await msg(other.userId, theirs!, '+60120000003');
      const o = (id: number, status: Outcome['status']): Outcome => ({
        id,
        status,
        attempted: true,
        attemptAt: now.getTime(),
        at: now.getTime() + 1000,
        transportId: `wa-${id}`,
        retryAt: null,
        errorCode: status === 'failed' ? 'REJECTED' : null,
        error: null,
      });
      receiver.received.length = 0;
      assert.equal(await recordOutcomes(db, [o(m1, 'sent'), o(m2, 'failed'), o(m3, 'sent')]), 3);
      assert.equal(await recordReceipts(db, [{ id: m1, deviceId: mine!, status: 'delivered', at: now.getTime() + 2000 }]), 1);
      assert.equal(await recordReceipts(db, [{ id: m1, deviceId: mine!, status: 'read', at: now.getTime() + 3000 }]), 1);
      assert.equal(await recordReceipts(db, [{ id: m1, deviceId: mine!, status: 'read', at: now.getTime() + 4000 }]), 0, 'a repeated receipt changes nothing');
      await setDeviceStatuses(db, [
        { id: mine!, status: 'online', at: now.getTime() },
        { id: theirs!, status: 'online', at: now.getTime() },
      ]);
      await setDeviceStatuses(db, [{ id: mine!, status: 'online', at: now.getTime() + 10 }]);
      await pauseDevice(db, mine!, new Date(now.getTime() + 3600_000), 'restricted by WhatsApp', now);

      const rows = await db.query<{ user_id: number; event_type: string; payload: Record<string, unknown> }>(
        `select user_id, event_type, payload from webhook_deliveries where subscription_id = $1 and event_type <> 'webhook.test' order by id`,
        [w.id],
      );
      assert.deepEqual(
        rows.rows.map((r) => r.event_type),
        ['message.sent', 'message.read', 'device.connected', 'device.restricted'],
        'only what it asked for: not message.failed, not message.delivered, no second device.connected for a status that did not change',
      );
      assert.ok(rows.rows.every((r) => r.user_id === a.userId));
      const sent = rows.rows[0]!.payload;
      assert.equal(sent.message_id, m1);
      assert.equal(sent.phone, '+60120000001');
      assert.equal(sent.status, 'sent');
      assert.equal(sent.transport_id, `wa-${m1}`);
      assert.equal(sent.device_id, mine);
      assert.equal(rows.rows[3]!.payload.reason, 'restricted by WhatsApp');
      const all = await db.query<{ n: number }>(`select count(*)::int as n from webhook_deliveries where user_id = $1`, [other.userId]);
      assert.equal(all.rows[0]!.n, 0, "the other tenant's events reach no subscription of this one, and it has none");

      // They are delivered, and no body text ever leaves.
      const mineOnly = () => receiver.received.filter((r) => r.path === w.path && r.headers['x-fleetcast-event'] !== 'webhook.test');
      await waitFor('four deliveries', async () => mineOnly().length >= 4);
      const events = mineOnly();
      assert.ok(events.every((r) => r.verified));
      assert.ok(events.every((r) => !r.raw.includes('SECRET BODY TEXT')));
      assert.deepEqual(events.map((r) => JSON.parse(r.raw).type).sort(), ['device.connected', 'device.restricted', 'message.read', 'message.sent']);

      // Deactivated: nothing more is queued for it.
      assert.equal((await a.call('PATCH', `/api/v1/webhooks/${w.id}`, { active: false })).statusCode, 200);
      const m4 = await msg(a.userId, mine!, '+60120000004');
      await recordOutcomes(db, [o(m4, 'sent')]);
      const after = await db.query<{ n: number }>(`select count(*)::int as n from webhook_deliveries where subscription_id = $1 and payload->>'message_id' = $2`, [w.id, String(m4)]);
      assert.equal(after.rows[0]!.n, 0);
    });

    it('queues campaign, sequence and reply events in the statements that make those changes', async () => {
      const w = await subscribe(['campaign.started', 'campaign.completed', 'sequence.completed', 'lead.replied', 'lead.opted_out']);
      const db = api.t.db;
      const now = new Date(Date.now());
      const [device] = await insertDevices(db, a.userId, [{ name: 'c', minDelayMs: 0, maxDelayMs: 0 }], now);
      await generateLeads(db, a.userId, [device!], 3, '+6017', 1, now);
      const leads = (await db.query<{ id: number; phone: string }>('select id, phone from leads where device_id = $1 order by id', [device])).rows;
      const campaign = await insertCampaign(db, a.userId, { name: 'hooked', body: 'Hi {name}', startsAt: now, status: 'draft' }, now);
      await startCampaignNow(db, campaign, now);
      await materialiseAll(db, campaign, now.getTime());
      const ids = (await db.query<{ id: number }>(`update messages set status = 'sending' where campaign_id = $1 returning id`, [campaign])).rows.map((r) => r.id);
      await recordOutcomes(db, ids.map((id) => ({ id, status: 'sent' as const, attempted: true, attemptAt: now.getTime(), at: now.getTime(), transportId: null, retryAt: null, errorCode: null, error: null })));
      assert.deepEqual(await completeFinishedCampaigns(db, [campaign], now), [campaign]);

      // A one-step sequence whose step message went out: recording it completes the enrollment.
      const seq = (await db.query<{ id: number }>(`insert into sequences (user_id, name, trigger, created_at, updated_at) values ($1, 's', 't', $2, $2) returning id`, [a.userId, now])).rows[0]!.id;
      await db.query(`insert into sequence_steps (sequence_id, position, body) values ($1, 1, 'step one')`, [seq]);
      const enr = (await db.query<{ id: number }>(
        `insert into enrollments (user_id, sequence_id, lead_id, current_step, status, enrolled_at, updated_at, planned_at, next_due_at) values ($1, $2, $3, 1, 'active', $4, $4, $4, $4) returning id`,
        [a.userId, seq, leads[0]!.id, now],
      )).rows[0]!.id;
      const msg = (await db.query<{ id: number }>(
        `insert into messages (user_id, device_id, lead_id, phone, enrollment_id, step, body, status, not_before, sent_at, finished_at, created_at) values ($1, $2, $3, $4, $5, 1, 'step one', 'sent', $6, $6, $6, $6) returning id`,
        [a.userId, device, leads[0]!.id, leads[0]!.phone, enr, now],
      )).rows[0]!.id;
      await db.query('update enrollments set message_id = $2 where id = $1', [enr, msg]);
      const p = await db.transaction((tx) => progressEnrollments(tx, [enr], now));
      assert.equal(p.completed, 1);

      await db.transaction((tx) => applyReply(tx, { deviceId: device!, from: leads[1]!.phone, text: 'sounds good', at: now }, DEFAULT_OPT_OUT_WORDS));
      await db.transaction((tx) => applyReply(tx, { deviceId: device!, from: leads[2]!.phone, text: 'STOP', at: now }, DEFAULT_OPT_OUT_WORDS));

      const rows = (await db.query<{ event_type: string; payload: Record<string, unknown> }>(`select event_type, payload from webhook_deliveries where subscription_id = $1 order by id`, [w.id])).rows;
      assert.deepEqual(rows.map((r) => r.event_type), ['campaign.started', 'campaign.completed', 'sequence.completed', 'lead.replied', 'lead.opted_out', 'lead.replied']);
      assert.equal(rows[0]!.payload.messages, 3);
      assert.deepEqual(rows[1]!.payload.counts, { sent: 3 });
      assert.equal(rows[2]!.payload.enrollment_id, enr);
      assert.equal(rows[2]!.payload.lead_id, leads[0]!.id);
      assert.equal(rows[3]!.payload.lead_id, leads[1]!.id);
      assert.equal(rows[4]!.payload.lead_id, leads[2]!.id);
      assert.ok(!JSON.stringify(rows).includes('sounds good') && !JSON.stringify(rows).includes('step one'), 'no message or reply text');
    });

    it('queues lead.opted_out when the API opts leads out, once per lead, one at a time or in bulk', async () => {
      const w = await subscribe(['lead.opted_out']);
      const ids: number[] = [];
      for (const phone of ['+60123000101', '+60123000102', '+60123000103']) {
        const res = await a.call('POST', '/api/v1/leads', { name: 'Opt', phone, niches: ['optout-hook'] });
        assert.equal(res.statusCode, 201, res.body);
        ids.push(json(res).id);
      }
      const events = async () =>
        (await api.t.db.query<{ payload: Record<string, unknown> }>(`select payload from webhook_deliveries where subscription_id = $1 order by id`, [w.id])).rows.map((r) => r.payload);

      assert.equal((await a.call('PATCH', `/api/v1/leads/${ids[0]}`, { opted_out: true })).statusCode, 200);
      let got = await events();
      assert.equal(got.length, 1);
      assert.equal(got[0]!.lead_id, ids[0]);
      assert.equal(got[0]!.phone, '+60123000101');
      assert.equal(got[0]!.source, 'api');
      // Opting out again changes nothing and queues nothing.
      assert.equal((await a.call('PATCH', `/api/v1/leads/${ids[0]}`, { opted_out: true })).statusCode, 200);
      assert.equal((await events()).length, 1);

      // A bulk opt-out over all three queues one event for each of the two not yet opted out.
      const bulk = await a.call('POST', '/api/v1/leads/bulk', { filter: { niches: ['optout-hook'] }, action: { op: 'opt_out' } });
      assert.equal(json(bulk).affected, 3);
      got = await events();
      assert.deepEqual(got.map((p) => p.lead_id).sort(), [...ids].sort());
      assert.ok(got.every((p) => p.source === 'api' && typeof p.opted_out_at === 'string'));
    });

    it('lists deliveries newest first with filters and keyset pages', async () => {
      const w = await subscribe(['lead.replied']);
      const ids: number[] = [];
      for (let i = 0; i < 3; i++) ids.push(await testDelivery(w.id));
      await waitFor('all delivered', async () => {
        const list = json(await a.call('GET', `/api/v1/webhooks/${w.id}/deliveries?status=delivered`)).data as unknown[];
        return list.length === 3;
      });
      const p1 = json(await a.call('GET', `/api/v1/webhooks/${w.id}/deliveries?limit=2`));
      assert.deepEqual(p1.data.map((d: { id: number }) => d.id), [ids[2], ids[1]]);
      const p2 = json(await a.call('GET', `/api/v1/webhooks/${w.id}/deliveries?limit=2&cursor=${p1.next_cursor}`));
      assert.deepEqual(p2.data.map((d: { id: number }) => d.id), [ids[0]]);
      assert.equal(p2.next_cursor, null);
      assert.deepEqual(json(await a.call('GET', `/api/v1/webhooks/${w.id}/deliveries?status=failed`)).data, []);
      assert.equal(json(await a.call('GET', `/api/v1/webhooks/${w.id}/deliveries?event=message.sent`)).data.length, 0);
    });

    it('refuses bad input with clear errors and keeps nothing', async () => {
      const before = (await api.t.db.query<{ n: number }>('select count(*)::int as n from webhook_subscriptions')).rows[0]!.n;
      const bad = async (body: unknown, status: number, code: string) => {
        const res = await a.call('POST', '/api/v1/webhooks', body);
        assert.equal(res.statusCode, status, res.body);
        assert.equal(json(res).error.code, code);
      };
      await bad({ url, events: ['message.exploded'] }, 400, 'VALIDATION_FAILED');
      await bad({ url, events: [] }, 400, 'VALIDATION_FAILED');
      await bad({ url: 'ftp://example.com/x', events: ['message.sent'] }, 422, 'WEBHOOK_URL_INVALID');
      await bad({ url: 'https://user:pw@example.com/x', events: ['message.sent'] }, 422, 'WEBHOOK_URL_INVALID');
      await bad({ url: 'not a url', events: ['message.sent'] }, 422, 'WEBHOOK_URL_INVALID');
      const after = (await api.t.db.query<{ n: number }>('select count(*)::int as n from webhook_subscriptions')).rows[0]!.n;
      assert.equal(after, before);
      const member = await tenant(api, { parentId: a.userId });
      const res = await member.call('GET', '/api/v1/webhooks');
      assert.equal(res.statusCode, 403);
      assert.equal(json(res).error.code, 'TEAM_MEMBER_FORBIDDEN');
    });
  });
}

describe('webhook URLs without the private-address flag', () => {
  it('refuses loopback, private and link-local addresses', async () => {
    const { checkWebhookUrl } = await import('../../src/services/webhooks/url.js');
    for (const u of ['http://127.0.0.1:8080/x', 'http://10.1.2.3/x', 'http://169.254.169.254/latest', 'http://[::1]/x', 'http://192.168.1.1/x', 'http://localhost/x']) {
      await assert.rejects(checkWebhookUrl(u, false), (e: { code: string }) => e.code === 'WEBHOOK_URL_FORBIDDEN', u);
    }
    assert.equal(await checkWebhookUrl('http://127.0.0.1:8080/x', true), 'http://127.0.0.1:8080/x');
  });
});

describe('retry policy', () => {
  it('retries network errors, timeouts, 5xx, 408 and 429 only', () => {
    assert.deepEqual(
      [null, 500, 502, 503, 408, 429, 400, 401, 404, 410, 301].map(retryable),
      [true, true, true, true, true, true, false, false, false, false, false],
    );
  });
  it('draws full jitter under an exponential cap; Retry-After is a floor within the maximum', () => {
    const o = { baseMs: 1000, maxMs: 60_000 };
    assert.deepEqual([1, 2, 3, 4, 10].map((n) => backoffMs(n, { ...o, random: () => 0.999999 })), [999, 1999, 3999, 7999, 59_999]);
    assert.equal(backoffMs(5, { ...o, random: () => 0 }), 0);
    assert.equal(backoffMs(1, { ...o, random: () => 0.5 }, 30_000), 30_000);
    assert.equal(backoffMs(1, { ...o, random: () => 0.5 }, 3_600_000), 60_000);
  });
});
