import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { backends } from '../helpers/db.js';
import { json, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { leadSchema } from '../../src/api/routes/leads.js';

for (const backend of backends) {
  describe(`leads API (${backend})`, () => {
    let api: TestApi;
    let a: Caller;
    let device: number;
    before(async () => {
      api = await openApi(backend);
      a = await tenant(api, { country: 'MY' });
      device = json(await a.call('POST', '/api/v1/devices', { name: 'main' })).id;
    });
    after(() => api.dispose());

    const leadRow = async (id: number) => (await api.t.db.query(`select * from leads where id = $1`, [id])).rows[0] as Record<string, unknown>;

    it('stores phones in E.164 using the default country, and rejects invalid ones with the reason', async () => {
      const res = await a.call('POST', '/api/v1/leads', { name: 'Aminah', phone: '012-345 6789', niches: ['fitness'], device_id: device });
      assert.equal(res.statusCode, 201);
      const row = await leadRow(json(res).id);
      assert.equal(row.phone, '+60123456789');
      assert.equal(row.user_id, a.userId);
      const bad = await a.call('POST', '/api/v1/leads', { phone: '12' });
      assert.equal(bad.statusCode, 422);
      assert.equal(json(bad).error.code, 'INVALID_PHONE');
      assert.equal(json(bad).error.details[0].code, 'PHONE_TOO_SHORT');
      const letters = await a.call('POST', '/api/v1/leads', { phone: 'call me' });
      assert.equal(json(letters).error.details[0].code, 'PHONE_NOT_A_NUMBER');
    });

    it('intake is idempotent on the phone and merges tags', async () => {
      const first = await a.call('POST', '/api/v1/leads', { phone: '+60 12-777 0001', triggers: ['fitness_week1'], niches: ['gym'], source: 'form' });
      assert.equal(first.statusCode, 201);
      const again = await a.call('POST', '/api/v1/leads', { phone: '0127770001', name: 'Ben', triggers: ['fitness_week1', 'promo'], attributes: { city: 'KL' } });
      assert.equal(again.statusCode, 200);
      assert.equal(json(again).id, json(first).id);
      const row = await leadRow(json(first).id);
      assert.deepEqual(row.triggers, ['fitness_week1', 'promo']);
      assert.deepEqual(row.niches, ['gym']);
      assert.equal(row.name, 'Ben');
      assert.equal(row.source, 'form');
      assert.deepEqual(row.attributes, { city: 'KL' });
      const count = await api.t.db.query(`select count(*)::int as n from leads where user_id = $1 and phone = '+60127770001'`, [a.userId]);
      assert.equal(count.rows[0]!.n, 1);
    });

    it('honours Idempotency-Key: a retry gets the first answer; another body with the key is refused', async () => {
      const h = { 'idempotency-key': 'form-submission-42' };
      const one = await a.call('POST', '/api/v1/leads', { phone: '+60127770042', name: 'Key' }, h);
      assert.equal(one.statusCode, 201);
      await a.call('PATCH', `/api/v1/leads/${json(one).id}`, { name: 'Changed since' });
      const two = await a.call('POST', '/api/v1/leads', { phone: '+60127770042', name: 'Key' }, h);
      assert.equal(two.statusCode, 201, 'replays the first status');
      assert.equal(two.headers['idempotent-replayed'], 'true');
      assert.equal(json(two).name, 'Key', 'replays the first body');
      const other = await a.call('POST', '/api/v1/leads', { phone: '+60127770043' }, h);
      assert.equal(other.statusCode, 422);
      assert.equal(json(other).error.code, 'IDEMPOTENCY_KEY_REUSED');
      assert.equal((await api.t.db.query(`select count(*)::int as n from leads where phone = '+60127770043'`)).rows[0]!.n, 0);
      // A refused request frees its key for the corrected retry.
      const bad = await a.call('POST', '/api/v1/leads', { phone: 'nope' }, { 'idempotency-key': 'k2' });
      assert.equal(bad.statusCode, 422);
      const fixed = await a.call('POST', '/api/v1/leads', { phone: '+60127770044' }, { 'idempotency-key': 'k2' });
      assert.equal(fixed.statusCode, 201);
    });

    it('lists with filters and keyset pages that neither skip nor repeat', async () => {
      const b = await tenant(api);
      const d = json(await b.call('POST', '/api/v1/devices', { name: 'b' })).id as number;
      for (let i = 0; i < 25; i++) {
        await b.call('POST', '/api/v1/leads', {
          phone: `+6013${String(1000000 + i)}`,
          name: `Lead ${i}`,
          niches: [i % 2 ? 'yoga' : 'gym'],
          status: i % 3 ? 'prospect' : 'customer',
          ...(i < 5 ? { device_id: d } : {}),
        });
      }
      const seen: number[] = [];
      let cursor: string | null = '';
      while (cursor !== null) {
        const res = await b.call('GET', `/api/v1/leads?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
        assert.equal(res.statusCode, 200);
        seen.push(...json(res).data.map((l: { id: number }) => l.id));
        cursor = json(res).next_cursor;
      }
      assert.equal(seen.length, 25);
      assert.equal(new Set(seen).size, 25);
      assert.deepEqual(seen, [...seen].sort((x, y) => y - x), 'newest first');
      const yogaCustomers = json(await b.call('GET', '/api/v1/leads?niche=yoga&status=customer&limit=100')).data;
      assert.deepEqual(yogaCustomers.map((l: { name: string }) => l.name).sort(), ['Lead 15', 'Lead 21', 'Lead 3', 'Lead 9']);
      assert.equal(json(await b.call('GET', '/api/v1/leads?pool=true&limit=100')).data.length, 20);
      assert.equal(json(await b.call('GET', `/api/v1/leads?device_id=${d}&limit=100`)).data.length, 5);
      assert.equal(json(await b.call('GET', '/api/v1/leads?q=lead%201&limit=100')).data.length, 11);
      assert.equal(json(await b.call('GET', '/api/v1/leads?q=1000024')).data[0].name, 'Lead 24');
      assert.equal(json(await b.call('GET', '/api/v1/leads?q=5_%25')).data.length, 0, 'wildcards are literal');
    });

    it('counts the leads a filter selects, as the list does, and only the caller\'s', async () => {
      const c = await tenant(api);
      const d = json(await c.call('POST', '/api/v1/devices', { name: 'counted' })).id as number;
      for (let i = 0; i < 7; i++) {
        const res = await c.call('POST', '/api/v1/leads', { phone: `+6018${2000000 + i}`, niches: i < 4 ? ['gym'] : ['spa'], status: i % 2 === 0 ? 'customer' : 'prospect', device_id: i < 5 ? d : null });
        assert.equal(res.statusCode, 201, res.body);
      }
      const count = async (q: string) => json(await c.call('GET', `/api/v1/leads/count${q}`)).count as number;
      assert.equal(await count(''), 7);
      assert.equal(await count('?niche=gym'), 4);
      assert.equal(await count('?niche=gym&status=customer'), 2);
      assert.equal(await count('?pool=true'), 2);
      assert.equal(await count(`?device_id=${d}&niche=spa`), 1);
      // The list agrees with the count for the same filter, and (sent without a second pass through
      // the response schema) its rows carry exactly the schema's fields.
      const listed = json(await c.call('GET', '/api/v1/leads?niche=gym&status=customer'));
      assert.equal(listed.data.length, 2);
      assert.deepEqual(Object.keys(listed).sort(), ['data', 'next_cursor']);
      for (const row of listed.data) {
        assert.deepEqual(Object.keys(row).sort(), Object.keys(leadSchema.shape).sort());
        assert.equal(leadSchema.safeParse(row).success, true);
      }
      // Another tenant counts none of them; a bad filter is refused.
      const other = await tenant(api);
      assert.equal(json(await other.call('GET', '/api/v1/leads/count')).count, 0);
      const bad = await c.call('GET', '/api/v1/leads/count?limit=5');
      assert.equal(bad.statusCode, 400);
      assert.equal(json(bad).error.code, 'VALIDATION_FAILED');
    });

    it('opting out cancels what waits for the lead; deleting does too', async () => {
      const l = json(await a.call('POST', '/api/v1/leads', { phone: '+60127771111', device_id: device })).id as number;
      const l2 = json(await a.call('POST', '/api/v1/leads', { phone: '+60127771112', device_id: device })).id as number;
      const now = new Date(api.clock.now());
      for (const [lead, camp] of [[l, 1], [l2, 2]] as const) {
        await api.t.db.query(
          `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, not_before, created_at) values ($1, $2, $3, 'x', $4, 'hi', $5, $5)`,
          [a.userId, device, lead, camp, now],
        );
      }
      const res = await a.call('PATCH', `/api/v1/leads/${l}`, { opted_out: true });
      assert.equal(res.statusCode, 200);
      assert.ok(json(res).opted_out_at);
      const m = await api.t.db.query(`select status, error_code from messages where lead_id = $1`, [l]);
      assert.deepEqual(m.rows, [{ status: 'cancelled', error_code: 'opted_out' }]);
      assert.equal((await a.call('DELETE', `/api/v1/leads/${l2}`)).statusCode, 204);
      const m2 = await api.t.db.query(`select status, error_code from messages where lead_id = $1`, [l2]);
      assert.deepEqual(m2.rows, [{ status: 'cancelled', error_code: 'lead_deleted' }]);
      assert.equal((await a.call('GET', `/api/v1/leads/${l2}`)).statusCode, 404);
    });

    it('bulk actions change exactly the selected leads', async () => {
      const c = await tenant(api);
      const d = json(await c.call('POST', '/api/v1/devices', { name: 'c' })).id as number;
      const ids: number[] = [];
      for (let i = 0; i < 6; i++) ids.push(json(await c.call('POST', '/api/v1/leads', { phone: `+6017${1000000 + i}`, niches: i < 3 ? ['cold'] : ['warm'] })).id);
      const add = await c.call('POST', '/api/v1/leads/bulk', { filter: { niches: ['cold'] }, action: { op: 'add_triggers', values: ['fitness_week1'] } });
      assert.deepEqual(json(add), { affected: 3, cancelled_messages: 0 });
      const assign = await c.call('POST', '/api/v1/leads/bulk', { ids: ids.slice(0, 2), action: { op: 'assign_device', device_id: d } });
      assert.equal(json(assign).affected, 2);
      const remove = await c.call('POST', '/api/v1/leads/bulk', { filter: { triggers: ['fitness_week1'] }, action: { op: 'remove_niches', values: ['cold'] } });
      assert.equal(json(remove).affected, 3);
      const rows = await api.t.db.query<{ niches: string[]; triggers: string[]; device_id: number | null }>(
        `select niches, triggers, device_id from leads where user_id = $1 order by id`,
        [c.userId],
      );
      assert.deepEqual(rows.rows.map((r) => [r.niches, r.triggers, r.device_id]), [
        [[], ['fitness_week1'], d],
        [[], ['fitness_week1'], d],
        [[], ['fitness_week1'], null],
        [['warm'], [], null],
        [['warm'], [], null],
        [['warm'], [], null],
      ]);
      const none = await c.call('POST', '/api/v1/leads/bulk', { action: { op: 'opt_out' } });
      assert.equal(none.statusCode, 400, 'a selection is required');
      const del = await c.call('POST', '/api/v1/leads/bulk', { filter: { niches: ['warm'] }, action: { op: 'delete' } });
      assert.equal(json(del).affected, 3);
      assert.equal((await api.t.db.query(`select count(*)::int as n from leads where user_id = $1`, [c.userId])).rows[0]!.n, 3);
    });

    it('refuses a phone another lead has, and a device of another tenant', async () => {
      const x = json(await a.call('POST', '/api/v1/leads', { phone: '+60127779991' })).id;
      await a.call('POST', '/api/v1/leads', { phone: '+60127779992' });
      const clash = await a.call('PATCH', `/api/v1/leads/${x}`, { phone: '+60127779992' });
      assert.equal(clash.statusCode, 409);
      assert.equal(json(clash).error.code, 'LEAD_PHONE_TAKEN');
      const other = await tenant(api);
      const foreign = json(await other.call('POST', '/api/v1/devices', { name: 'theirs' })).id;
      const res = await a.call('PATCH', `/api/v1/leads/${x}`, { device_id: foreign });
      assert.equal(res.statusCode, 404);
      assert.equal(json(res).error.code, 'DEVICE_NOT_FOUND');
      assert.equal((await leadRow(x)).device_id, null);
    });
  });
}
