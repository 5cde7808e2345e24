/**
 * The Cloud API transport against a local HTTP server on 127.0.0.1 that answers like the Graph API:
 * what it sends (text, template, media, the callback data), and how each answer maps to a send
 * result: success, each documented error code, a server fault, JSON that is not JSON, a timeout.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { VirtualClock } from '../../src/engine/clock.js';
import { SecretBox } from '../../src/services/secrets/secret-box.js';
import { saveCloudNumber } from '../../src/store/sql/cloud-api.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { insertUser } from '../../src/store/sql/users.js';
import { CloudApiTransport, credentialsContext, parseTemplate } from '../../src/transports/cloud-api/transport.js';
import type { DeviceRef, OutboundMessage, TransportEvent } from '../../src/transports/transport.js';
import { backends, openTestDb, type TestDb } from '../helpers/db.js';

const T0 = Date.parse('2026-03-02T09:00:00Z');

type Answer = (req: IncomingMessage, body: string, res: ServerResponse) => void;

function graphError(res: ServerResponse, status: number, code: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message, type: 'OAuthException', code, error_data: { details: `details of ${code}` }, fbtrace_id: 'A1' } }));
}

for (const backend of backends) {
  describe(`Cloud API transport against a local Graph API (${backend})`, () => {
    let server: Server;
    let base: string;
    let answer: Answer = () => undefined;
    const requests: { path: string; auth: string | undefined; body: string }[] = [];
    let t: TestDb;
    let wa: CloudApiTransport;
    let ref: DeviceRef;
    let offline: DeviceRef;
    const events: TransportEvent[] = [];
    const clock = new VirtualClock(T0);
    let seq = 0;
    const msg = (o: Partial<OutboundMessage> = {}): OutboundMessage => ({ id: ++seq, deviceId: ref.id, to: '+60123456789', body: 'Hello Aisha', media: null, origin: 'campaign:1', attempt: 1, ...o });

    before(async () => {
      server = createServer((req, res) => {
        let body = '';
        req.setEncoding('latin1');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => {
          requests.push({ path: req.url ?? '', auth: req.headers.authorization, body });
          answer(req, body, res);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v21.0`;
      t = await openTestDb(backend);
      const now = new Date(T0);
      const userId = await insertUser(t.db, { email: 'cloud@example.test', timeZone: 'UTC' }, now);
      const [id, other] = await insertDevices(t.db, userId, [{ name: 'biz', transport: 'cloud_api', minDelayMs: 0, maxDelayMs: 0, linked: false }, { name: 'no creds', transport: 'cloud_api', minDelayMs: 0, maxDelayMs: 0, linked: false }], now);
      const box = new SecretBox(randomBytes(32));
      await saveCloudNumber(t.db, userId, id!, '1055512345', null, box.sealJson({ accessToken: 'EAAG-token', appSecret: 'app-secret', verifyToken: null }, credentialsContext(id!)), now);
      wa = new CloudApiTransport({ db: t.db, clock, box, baseUrl: base, timeoutMs: 2_000, mediaPath: () => '/nonexistent' });
      wa.onEvent((e) => events.push(e));
      ref = { id: id!, userId, phone: null };
      offline = { id: other!, userId, phone: null };
      await wa.connect(ref);
      await wa.connect(offline);
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await t.dispose();
    });

    it('is online with credentials only', () => {
      assert.deepEqual(events.filter((e) => e.type === 'status').map((e) => [e.deviceId, (e as { status: string }).status]), [[ref.id, 'online']]);
    });

    it('sends text with the token, the digits and the outbox id as callback data', async () => {
      answer = (_q, _b, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messaging_product: 'whatsapp', contacts: [{ input: '60123456789', wa_id: '60123456789' }], messages: [{ id: 'wamid.HBgL1' }] }));
      const m = msg();
      assert.deepEqual(await wa.send(m), { ok: true, transportId: 'wamid.HBgL1' });
      const r = requests.at(-1)!;
      assert.equal(r.path, '/v21.0/1055512345/messages');
      assert.equal(r.auth, 'Bearer EAAG-token');
      assert.deepEqual(JSON.parse(r.body), {
        messaging_product: 'whatsapp',
        recipient_type: 'individual',
        to: '60123456789',
        biz_opaque_callback_data: `fleetcast:${m.id}`,
        type: 'text',
        text: { body: 'Hello Aisha', preview_url: false },
      });
    });

    it('sends templates, images and documents', async () => {
      answer = (_q, _b, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messages: [{ id: 'wamid.T' }] }));
      assert.deepEqual(parseTemplate('template: order_update en_US\nAisha\n\n12 March'), { name: 'order_update', language: 'en_US', parameters: ['Aisha', '12 March'] });
      assert.equal(parseTemplate('Template: is just a word here'), null);
      await wa.send(msg({ body: 'template: order_update en_US\nAisha\n12 March' }));
      const tpl = JSON.parse(requests.at(-1)!.body);
      assert.equal(tpl.type, 'template');
      assert.deepEqual(tpl.template, { name: 'order_update', language: { code: 'en_US' }, components: [{ type: 'body', parameters: [{ type: 'text', text: 'Aisha' }, { type: 'text', text: '12 March' }] }] });
      await wa.send(msg({ body: 'New menu', media: { kind: 'image', url: 'https://cdn.example.test/menu.jpg' } }));
      const img = JSON.parse(requests.at(-1)!.body);
      assert.deepEqual([img.type, img.image], ['image', { link: 'https://cdn.example.test/menu.jpg', caption: 'New menu' }]);
      await wa.send(msg({ body: '', media: { kind: 'document', url: 'https://cdn.example.test/p.pdf', fileName: 'prices.pdf' } }));
      const doc = JSON.parse(requests.at(-1)!.body);
      assert.deepEqual([doc.type, doc.document], ['document', { link: 'https://cdn.example.test/p.pdf', filename: 'prices.pdf' }]);
    });

    it('maps each Graph API error', async () => {
      const cases: [number, number, { code: string; transient: boolean; restricted?: boolean }][] = [
        [429, 130429, { code: 'THROUGHPUT', transient: true }],
        [400, 131056, { code: 'PAIR_RATE_LIMIT', transient: true }],
        [400, 131047, { code: 'OUTSIDE_24H_WINDOW', transient: false }],
        [400, 368, { code: 'POLICY_BLOCKED', transient: false, restricted: true }],
        [400, 131048, { code: 'SPAM_RATE_LIMIT', transient: false, restricted: true }],
        [400, 131026, { code: 'NOT_ON_WHATSAPP', transient: false }],
        [400, 100, { code: 'CLOUD_API_100', transient: false }],
        [500, 1, { code: 'CLOUD_API_1', transient: true }],
      ];
      for (const [status, code, want] of cases) {
        answer = (_q, _b, res) => graphError(res, status, code, `error ${code}`);
        const r = await wa.send(msg());
        assert.equal(r.ok, false);
        if (r.ok) continue;
        assert.equal(r.code, want.code, String(code));
        assert.equal(r.transient, want.transient, String(code));
        assert.equal(r.restrictedUntil, want.restricted ? T0 + 24 * 3_600_000 : undefined, String(code));
      }
      const r47 = await (async () => {
        answer = (_q, _b, res) => graphError(res, 400, 131047, 'Re-engagement message');
        return wa.send(msg());
      })();
      assert.ok(!r47.ok && /24 hours/.test(r47.message) && /template/.test(r47.message), 'a clear reason');
    });

    it('backs the device off on throughput errors, longer each time, and only then', async () => {
      answer = (_q, _b, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"messages":[{"id":"wamid.ok"}]}');
      assert.equal((await wa.send(msg())).ok, true);
      events.length = 0;
      answer = (_q, _b, res) => graphError(res, 429, 130429, 'throughput');
      await wa.send(msg());
      await wa.send(msg());
      answer = (_q, _b, res) => graphError(res, 400, 131056, 'pair rate');
      await wa.send(msg());
      const r = events.filter((e) => e.type === 'restricted') as Extract<TransportEvent, { type: 'restricted' }>[];
      assert.deepEqual(r.map((e) => e.until - T0), [30_000, 60_000], 'the device waits; a pair rate limit delays that recipient only');
      answer = (_q, _b, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"messages":[{"id":"wamid.ok"}]}');
      assert.equal((await wa.send(msg())).ok, true);
      answer = (_q, _b, res) => graphError(res, 429, 130429, 'throughput');
      await wa.send(msg());
      assert.equal((events.filter((e) => e.type === 'restricted').at(-1) as { until: number }).until - T0, 30_000, 'a success resets the back-off');
    });

    it('retries on malformed JSON, a timeout, or no answer; is offline without credentials', async () => {
      answer = (_q, _b, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"messages": [');
      let r = await wa.send(msg());
      assert.ok(!r.ok && r.code === 'BAD_RESPONSE' && r.transient);
      answer = (_q, _b, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>Bad gateway</html>');
      r = await wa.send(msg());
      assert.ok(!r.ok && r.code === 'BAD_RESPONSE' && r.transient);
      answer = () => undefined;
      const started = Date.now();
      r = await wa.send(msg());
      assert.ok(!r.ok && r.code === 'NETWORK' && r.transient && /did not answer in time/.test(r.message), JSON.stringify(r));
      assert.ok(Date.now() - started < 10_000);
      answer = (_q, _b, res) => res.writeHead(200).end('{"messaging_product":"whatsapp"}');
      r = await wa.send(msg());
      assert.ok(!r.ok && r.code === 'BAD_RESPONSE' && r.transient);
      r = await wa.send(msg({ deviceId: offline.id }));
      assert.ok(!r.ok && r.code === 'DEVICE_OFFLINE');
    });
  });
}
