/**
 * Cloud API devices over the API: credentials are set, sealed and never shown; the public webhook
 * answers Meta's handshake only for a known verify token, and a POST changes nothing unless its
 * X-Hub-Signature-256 signs the raw body with the app secret of the number it names. A signed one
 * records receipts, fails messages WhatsApp could not deliver, and feeds replies and opt-outs.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { expectError, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { backends } from '../helpers/db.js';

const sign = (body: string, secret: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

for (const backend of backends) {
  describe(`Cloud API credentials and webhook (${backend})`, () => {
    let api: TestApi;
    let a: Caller;
    let device: number;
    let leadId: number;
    before(async () => {
      api = await openApi(backend, { transports: ['simulator', 'cloud_api'] });
      a = await tenant(api);
      device = ok(await a.call('POST', '/api/v1/devices', { name: 'business number', transport: 'cloud_api' }), 201).id;
      leadId = ok(await a.call('POST', '/api/v1/leads', { phone: '+60123000001', device_id: device }), 201).id;
    });
    after(() => api.dispose());

    const post = (body: string, headers: Record<string, string> = {}) =>
      api.app.inject({ method: 'POST', url: '/api/v1/cloud-api/webhook', headers: { 'content-type': 'application/json', ...headers }, payload: body });

    it('stores credentials sealed and shows only that they are set', async () => {
      assert.equal(ok(await a.call('GET', `/api/v1/devices/${device}`)).linked, false);
      expectError(await a.call('POST', `/api/v1/devices/${device}/link`, { method: 'qr' }), 409, 'LINK_NOT_SUPPORTED');
      expectError(await a.call('PUT', `/api/v1/devices/${device}/cloud-api`, { phone_number_id: 'abc', access_token: 'x' }), 400, 'VALIDATION_FAILED');
      const sim = ok(await a.call('POST', '/api/v1/devices', { name: 'sim' }), 201).id;
      expectError(await a.call('PUT', `/api/v1/devices/${sim}/cloud-api`, { phone_number_id: '1055512345', access_token: 'x' }), 409, 'NOT_CLOUD_API');
      const view = ok(
        await a.call('PUT', `/api/v1/devices/${device}/cloud-api`, { phone_number_id: '1055512345', access_token: 'EAAG-secret-token', app_secret: 'app-secret-1', verify_token: 'verify-me-please' }),
      );
      assert.deepEqual(Object.keys(view).sort(), ['device_id', 'has_app_secret', 'has_verify_token', 'phone_number_id', 'updated_at']);
      assert.deepEqual([view.phone_number_id, view.has_app_secret, view.has_verify_token], ['1055512345', true, true]);
      assert.equal(ok(await a.call('GET', `/api/v1/devices/${device}`)).linked, true);
      const row = await api.t.db.query<{ secrets: Uint8Array; verify_token_hash: string }>(`select secrets, verify_token_hash from cloud_api_numbers where device_id = $1`, [device]);
      const bytes = Buffer.from(row.rows[0]!.secrets);
      for (const secret of ['EAAG-secret-token', 'app-secret-1', 'verify-me-please']) assert.ok(!bytes.includes(secret), `${secret} is not stored in clear`);
      assert.notEqual(row.rows[0]!.verify_token_hash, 'verify-me-please');
    });

    it('answers the handshake for a known verify token only', async () => {
      const hs = (q: string) => api.app.inject({ method: 'GET', url: `/api/v1/cloud-api/webhook?${q}` });
      const good = await hs('hub.mode=subscribe&hub.verify_token=verify-me-please&hub.challenge=1158201444');
      assert.equal(good.statusCode, 200);
      assert.equal(good.body, '1158201444');
      expectError(await hs('hub.mode=subscribe&hub.verify_token=wrong-token&hub.challenge=1'), 403, 'WEBHOOK_VERIFY_FAILED');
      expectError(await hs('hub.mode=unsubscribe&hub.verify_token=verify-me-please&hub.challenge=1'), 403, 'WEBHOOK_VERIFY_FAILED');
      expectError(await hs(''), 403, 'WEBHOOK_VERIFY_FAILED');
    });

    it('refuses unsigned, wrongly signed and unknown-number calls, changing nothing', async () => {
      const [m] = (
        await api.t.db.query<{ id: number }>(
          `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, created_at, sent_at)
           values ($1, $2, $3, '+60123000001', 1, 'hi', 'sent', now(), now(), now()) returning id`,
          [a.userId, device, leadId],
        )
      ).rows;
      const body = JSON.stringify(statusPayload('1055512345', [{ id: 'wamid.1', status: 'read', biz_opaque_callback_data: `fleetcast:${m!.id}`, timestamp: '1772442000' }], [{ from: '60123000001', text: { body: 'STOP' }, timestamp: '1772442000' }]));
      const snapshot = async () => JSON.stringify((await api.t.db.query(`select id, status, read_at from messages order by id`)).rows) + JSON.stringify((await api.t.db.query(`select opted_out_at, last_reply_at from leads order by id`)).rows);
      const before = await snapshot();
      expectError(await post(body), 401, 'SIGNATURE_MISSING');
      expectError(await post(body, { 'x-hub-signature-256': sign(body, 'not-the-secret') }), 401, 'SIGNATURE_INVALID');
      expectError(await post(body, { 'x-hub-signature-256': 'sha256=zz' }), 401, 'SIGNATURE_INVALID');
      expectError(await post(body.replace('STOP', 'stop'), { 'x-hub-signature-256': sign(body, 'app-secret-1') }), 401, 'SIGNATURE_INVALID');
      const other = JSON.stringify(statusPayload('999999', [], [{ from: '60123000001', text: { body: 'STOP' } }]));
      expectError(await post(other, { 'x-hub-signature-256': sign(other, 'app-secret-1') }), 401, 'SIGNATURE_INVALID');
      expectError(await post('{"entry": [', { 'x-hub-signature-256': sign('{"entry": [', 'app-secret-1') }), 400, 'INVALID_JSON');
      assert.equal(await snapshot(), before);

      // Signed: the read receipt lands, the STOP opts the lead out.
      const res = ok(await post(body, { 'x-hub-signature-256': sign(body, 'app-secret-1') }));
      assert.deepEqual(res, { receipts: 1, failed: 0, replies: 1, ignored: 0 });
      const row = await api.t.db.query<{ status: string; read_at: Date }>(`select status, read_at from messages where id = $1`, [m!.id]);
      assert.equal(row.rows[0]!.status, 'read');
      assert.equal(row.rows[0]!.read_at.getTime(), 1_772_442_000_000);
      const lead = await api.t.db.query<{ opted: boolean }>(`select opted_out_at is not null as opted from leads where id = $1`, [leadId]);
      assert.equal(lead.rows[0]!.opted, true);
    });

    it('fails a message WhatsApp reports failed, with its reason, and pauses the device on a policy block', async () => {
      const rows = (
        await api.t.db.query<{ id: number }>(
          `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, created_at, sent_at)
           values ($1, $2, $3, '+60123000001', 2, 'a', 'sent', now(), now(), now()), ($1, $2, $3, '+60123000001', 3, 'b', 'delivered', now(), now(), now())
           returning id`,
          [a.userId, device, leadId],
        )
      ).rows;
      const body = JSON.stringify(
        statusPayload('1055512345', [
          { id: 'wamid.2', status: 'failed', biz_opaque_callback_data: `fleetcast:${rows[0]!.id}`, errors: [{ code: 131047, title: 'Re-engagement message', error_data: { details: 'Message failed to send because more than 24 hours have passed' } }] },
          { id: 'wamid.3', status: 'failed', biz_opaque_callback_data: `fleetcast:${rows[1]!.id}`, errors: [{ code: 368, title: 'Temporarily blocked for policies violations' }] },
          { id: 'wamid.4', status: 'delivered', biz_opaque_callback_data: 'someone-else' },
        ]),
      );
      const res = ok(await post(body, { 'x-hub-signature-256': sign(body, 'app-secret-1') }));
      assert.deepEqual(res, { receipts: 0, failed: 2, replies: 0, ignored: 1 });
      const got = await api.t.db.query<{ status: string; error_code: string; error: string }>(`select status, error_code, error from messages where id = any($1::bigint[]) order by id`, [rows.map((r) => r.id)]);
      assert.deepEqual(got.rows.map((r) => [r.status, r.error_code]), [['failed', 'CLOUD_API_131047'], ['failed', 'CLOUD_API_368']]);
      assert.match(got.rows[0]!.error, /24 hours/);
      const d = ok(await a.call('GET', `/api/v1/devices/${device}`));
      assert.ok(d.paused_until !== null, 'paused after a policy block');
    });
  });
}

function statusPayload(phoneNumberId: string, statuses: unknown[], messages: unknown[] = []) {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550783881', phone_number_id: phoneNumberId },
              ...(statuses.length > 0 ? { statuses } : {}),
              ...(messages.length > 0 ? { contacts: [{ profile: { name: 'Aisha' }, wa_id: '60123000001' }], messages: messages.map((m, i) => ({ id: `wamid.in${i}`, type: 'text', ...(m as object) })) } : {}),
            },
          },
        ],
      },
    ],
  };
}
