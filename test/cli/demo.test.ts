/**
 * The demo's seed: a demo account with 5 linked simulated devices, 500 leads with niches,
 * statuses and triggers, a campaign starting at once and one scheduled, a chain of two sequences.
 * Seeding again adds nothing and sets the new password. A device added afterwards links through
 * the QR flow like any other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEMO_EMAIL, parseDemoArgs, seedDemo } from '../../src/cli/demo.js';
import { backends } from '../helpers/db.js';
import { json, login, ok, openApi, type TestApi } from '../helpers/api.js';

async function counts(api: TestApi, userId: number): Promise<Record<string, unknown>> {
  const one = async (sql: string) => (await api.t.db.query<{ n: number }>(sql, [userId])).rows[0]!.n;
  return {
    users: await one(`select count(*)::int as n from users where lower(email) = lower('${DEMO_EMAIL}') and id = $1`),
    devices: await one(`select count(*)::int as n from devices where user_id = $1 and linked and transport = 'simulator' and deleted_at is null`),
    leads: await one(`select count(*)::int as n from leads where user_id = $1`),
    leadsWithDevice: await one(`select count(*)::int as n from leads where user_id = $1 and device_id is not null`),
    niches: await one(`select count(distinct n)::int as n from leads, unnest(niches) n where user_id = $1`),
    statuses: await one(`select count(distinct status)::int as n from leads where user_id = $1`),
    triggered: await one(`select count(*)::int as n from leads where user_id = $1 and cardinality(triggers) > 0`),
    campaigns: (await api.t.db.query(`select name, status from campaigns where user_id = $1 order by id`, [userId])).rows,
    sequences: (await api.t.db.query(`select s.name, s.trigger, n.name as next from sequences s left join sequences n on n.id = s.next_sequence_id where s.user_id = $1 order by s.id`, [userId])).rows,
    steps: await one(`select count(*)::int as n from sequence_steps st join sequences s on s.id = st.sequence_id where s.user_id = $1`),
    enrollments: await one(`select count(*)::int as n from enrollments where user_id = $1`),
  };
}

for (const backend of backends) {
  describe(`demo seed (${backend})`, () => {
    let api: TestApi;
    before(async () => {
      api = await openApi(backend);
    });
    after(() => api.dispose());

    it('creates the account and its sample data once, and sets the password every time', async () => {
      const first = await seedDemo(api.t.db, api.clock, api.services, 'first demo password');
      assert.equal(first.seeded, true);
      const seeded = await counts(api, first.userId);
      assert.deepEqual(seeded, {
        users: 1,
        devices: 5,
        leads: 500,
        leadsWithDevice: 500,
        niches: 6,
        statuses: 3,
        triggered: 70,
        campaigns: [
          { name: 'VIP welcome', status: 'scheduled' },
          { name: 'Property open day', status: 'scheduled' },
        ],
        sequences: [
          { name: 'Warm follow-up', trigger: 'warm', next: null },
          { name: 'Cold intro', trigger: 'cold', next: 'Warm follow-up' },
        ],
        steps: 4,
        enrollments: 50,
      });
      assert.equal((await login(api, DEMO_EMAIL, 'first demo password')).res.statusCode, 200);

      const again = await seedDemo(api.t.db, api.clock, api.services);
      assert.equal(again.seeded, false);
      assert.equal(again.userId, first.userId);
      assert.ok(again.password.length >= 10);
      assert.deepEqual(await counts(api, first.userId), seeded);
      assert.equal((await login(api, DEMO_EMAIL, 'first demo password', '10.0.0.2')).res.statusCode, 401);
      assert.equal((await login(api, DEMO_EMAIL, again.password, '10.0.0.3')).res.statusCode, 200);
    });

    it('a new simulated device of the demo account links through the QR flow', async () => {
      const { password } = await seedDemo(api.t.db, api.clock, api.services, 'second demo password');
      const s = await login(api, DEMO_EMAIL, password, '10.0.0.4');
      const call = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
        api.app.inject({ method, url, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf }, ...(payload === undefined ? {} : { payload: payload as object }) });
      const d = ok(await call('POST', '/api/v1/devices', { name: 'My new phone', linked: false }), 201);
      assert.equal(d.linked, false);
      assert.equal(ok(await call('POST', `/api/v1/devices/${d.id}/link`, { method: 'qr' }), 202).state, 'starting');
      assert.equal(json(await call('GET', `/api/v1/devices/${d.id}`)).linked, false);
    });

    it('parses its arguments', () => {
      assert.match(parseDemoArgs([]).dataDir, /data-demo$/);
      assert.deepEqual(parseDemoArgs(['--data-dir', '/tmp/x', '--password', 'long enough pw', '--port', '0']), { dataDir: '/tmp/x', password: 'long enough pw', port: 0 });
      assert.throws(() => parseDemoArgs(['--password', 'short']), /at least 10/);
      assert.throws(() => parseDemoArgs(['--port', 'x']), /port/);
      assert.throws(() => parseDemoArgs(['--nope']), /demo:/);
    });
  });
}
