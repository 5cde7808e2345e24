import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import pino from 'pino';
import { backends } from '../helpers/db.js';
import { json, login, openApi, tenant, type TestApi } from '../helpers/api.js';
import { buildServer } from '../../src/api/server.js';
import { ensureFirstAdmin } from '../../src/services/accounts/bootstrap.js';
import { PasswordHasher } from '../../src/services/accounts/passwords.js';

for (const backend of backends) {
  describe(`accounts and authentication (${backend})`, () => {
    let api: TestApi;
    before(async () => {
      api = await openApi(backend, { auth: { accountLimit: 3, ipLimit: 6, windowMs: 60_000, lockMs: 120_000 } });
    });
    after(() => api.dispose());

    it('signs in with a cookie session and needs the CSRF token for writes', async () => {
      const a = await tenant(api);
      const { cookie, csrf, res } = await login(api, a.email, a.password);
      assert.equal(res.statusCode, 200);
      const set = res.cookies.find((c) => c.name === 'fleetcast_session')!;
      assert.equal(set.httpOnly, true);
      assert.equal(set.sameSite, 'Lax');
      assert.equal(set.secure, undefined, 'plain HTTP: no Secure flag');
      const me = await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie } });
      assert.equal(me.statusCode, 200);
      assert.equal(json(me).email, a.email);
      assert.equal(json(me).csrf_token, csrf);
      const noCsrf = await api.app.inject({ method: 'POST', url: '/api/v1/devices', headers: { cookie }, payload: { name: 'x' } });
      assert.equal(noCsrf.statusCode, 403);
      assert.equal(json(noCsrf).error.code, 'CSRF_TOKEN_INVALID');
      const wrongCsrf = await api.app.inject({ method: 'POST', url: '/api/v1/devices', headers: { cookie, 'x-csrf-token': 'nope' }, payload: { name: 'x' } });
      assert.equal(wrongCsrf.statusCode, 403);
      assert.equal((await api.t.db.query(`select count(*)::int as n from devices where user_id = $1`, [a.userId])).rows[0]!.n, 0);
      const ok = await api.app.inject({ method: 'POST', url: '/api/v1/devices', headers: { cookie, 'x-csrf-token': csrf }, payload: { name: 'x' } });
      assert.equal(ok.statusCode, 201);
      // Logout ends the session row, and the cookie stops working.
      const out = await api.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: { cookie, 'x-csrf-token': csrf } });
      assert.equal(out.statusCode, 204);
      assert.equal((await api.t.db.query(`select count(*)::int as n from sessions where user_id = $1`, [a.userId])).rows[0]!.n, 0);
      const after = await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie } });
      assert.equal(after.statusCode, 401);
      assert.equal(json(after).error.code, 'UNAUTHENTICATED');
    });

    it('sets Secure on the cookie behind HTTPS', async () => {
      const app = await buildServer(api.services, { trustProxy: true });
      try {
        const a = await tenant(api);
        const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', headers: { 'x-forwarded-proto': 'https' }, payload: { email: a.email, password: a.password } });
        assert.equal(res.statusCode, 200);
        assert.equal(res.cookies.find((c) => c.name === 'fleetcast_session')!.secure, true);
      } finally {
        await app.close();
      }
    });

    it('sessions expire', async () => {
      const a = await tenant(api);
      const { cookie } = await login(api, a.email, a.password);
      api.clock.advance(api.services.auth.settings.sessionTtlMs + 1000);
      const res = await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie } });
      assert.equal(res.statusCode, 401);
    });

    it('throttles failed logins per account, without telling whether the account exists', async () => {
      const a = await tenant(api);
      for (let i = 0; i < 3; i++) {
        const r = await login(api, a.email, 'wrong password!', `10.1.0.${i}`);
        assert.equal(r.res.statusCode, 401);
        assert.equal(json(r.res).error.code, 'INVALID_CREDENTIALS');
      }
      // Locked now: even the right password from a fresh address is refused, before it is checked.
      const locked = await login(api, a.email, a.password, '10.1.0.99');
      assert.equal(locked.res.statusCode, 429);
      assert.equal(json(locked.res).error.code, 'LOGIN_THROTTLED');
      assert.ok(Number(locked.res.headers['retry-after']) > 0);
      const unknown = await login(api, 'nobody@example.test', 'whatever-password', '10.1.1.1');
      assert.equal(unknown.res.statusCode, 401);
      assert.equal(json(unknown.res).error.code, 'INVALID_CREDENTIALS');
      // The lock ends after its period; a success then clears the account's counter.
      api.clock.advance(121_000);
      const ok = await login(api, a.email, a.password, '10.1.0.99');
      assert.equal(ok.res.statusCode, 200);
      const rows = await api.t.db.query(`select key from login_throttle where key = $1`, [`account:${a.email}`]);
      assert.equal(rows.rows.length, 0);
    });

    it('throttles failed logins per address across accounts', async () => {
      const ip = '10.9.9.9';
      for (let i = 0; i < 6; i++) {
        const r = await login(api, `spray${i}@example.test`, 'wrong password!', ip);
        assert.equal(r.res.statusCode, 401);
      }
      const b = await tenant(api);
      const blocked = await login(api, b.email, b.password, ip);
      assert.equal(blocked.res.statusCode, 429);
      const elsewhere = await login(api, b.email, b.password, '10.9.9.10');
      assert.equal(elsewhere.res.statusCode, 200);
    });

    it('revokes API tokens at once, and never shows a secret twice', async () => {
      const a = await tenant(api);
      const created = await a.call('POST', '/api/v1/tokens', { name: 'zapier' });
      assert.equal(created.statusCode, 201);
      const secret = json(created).token as string;
      assert.match(secret, /^fct_/);
      const use = () => api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: `Bearer ${secret}` } });
      assert.equal((await use()).statusCode, 200);
      const list = await a.call('GET', '/api/v1/tokens');
      assert.ok(!list.body.includes(secret), 'listing shows no secret');
      assert.ok(json(list).data.every((t: Record<string, unknown>) => !('token' in t) && !('secret_hash' in t)));
      const stored = await api.t.db.query<{ secret_hash: string }>(`select secret_hash from api_tokens where id = $1`, [json(created).id]);
      assert.notEqual(stored.rows[0]!.secret_hash, secret, 'stored hashed');
      assert.equal((await a.call('DELETE', `/api/v1/tokens/${json(created).id}`)).statusCode, 204);
      const refused = await use();
      assert.equal(refused.statusCode, 401);
      assert.equal(json(refused).error.code, 'UNAUTHENTICATED');
      // Writes with a token need no CSRF token: a browser never sends one on its own.
      assert.equal((await a.call('POST', '/api/v1/devices', { name: 'by token' })).statusCode, 201);
    });

    it('a bad Authorization header is refused, never ignored in favour of a cookie', async () => {
      const a = await tenant(api);
      const { cookie } = await login(api, a.email, a.password);
      const res = await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie, authorization: 'Bearer fct_not-a-token' } });
      assert.equal(res.statusCode, 401);
      const basic = await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: 'Basic abc' } });
      assert.equal(basic.statusCode, 401);
    });

    it('changes a password, ending the other sessions', async () => {
      const a = await tenant(api);
      const one = await login(api, a.email, a.password);
      const two = await login(api, a.email, a.password);
      const wrong = await api.app.inject({
        method: 'POST',
        url: '/api/v1/me/password',
        headers: { cookie: one.cookie, 'x-csrf-token': one.csrf },
        payload: { current_password: 'not it at all', new_password: 'a brand new password' },
      });
      assert.equal(wrong.statusCode, 401);
      const ok = await api.app.inject({
        method: 'POST',
        url: '/api/v1/me/password',
        headers: { cookie: one.cookie, 'x-csrf-token': one.csrf },
        payload: { current_password: a.password, new_password: 'a brand new password' },
      });
      assert.equal(ok.statusCode, 204);
      assert.equal((await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: one.cookie } })).statusCode, 200);
      assert.equal((await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: two.cookie } })).statusCode, 401);
      assert.equal((await login(api, a.email, a.password)).res.statusCode, 401);
      assert.equal((await login(api, a.email, 'a brand new password')).res.statusCode, 200);
      const short = await a.call('POST', '/api/v1/me/password', { current_password: 'a brand new password', new_password: 'short' });
      assert.equal(short.statusCode, 400);
      const hash = await api.t.db.query<{ password_hash: string }>(`select password_hash from users where id = $1`, [a.userId]);
      assert.match(hash.rows[0]!.password_hash, /^scrypt\$/);
      assert.ok(!hash.rows[0]!.password_hash.includes('brand new'));
    });

    it('admins create, disable and delete accounts; members cannot', async () => {
      const admin = await tenant(api, { role: 'admin' });
      const member = await tenant(api);
      const denied = await member.call('POST', '/api/v1/users', { email: 'x@example.test', password: 'long enough pw' });
      assert.equal(denied.statusCode, 403);
      assert.equal(json(denied).error.code, 'ADMIN_REQUIRED');
      const created = await admin.call('POST', '/api/v1/users', { email: 'new.user@example.test', password: 'long enough pw', time_zone: 'Europe/Berlin', default_country: 'DE' });
      assert.equal(created.statusCode, 201);
      assert.ok(!('password_hash' in json(created)) && !created.body.includes('long enough pw'));
      const dup = await admin.call('POST', '/api/v1/users', { email: 'NEW.user@example.test', password: 'long enough pw' });
      assert.equal(dup.statusCode, 409);
      assert.equal(json(dup).error.code, 'EMAIL_TAKEN');
      const badZone = await admin.call('POST', '/api/v1/users', { email: 'z@example.test', password: 'long enough pw', time_zone: 'Mars/Olympus' });
      assert.equal(badZone.statusCode, 400);
      const id = json(created).id as number;
      const s = await login(api, 'new.user@example.test', 'long enough pw');
      assert.equal(s.res.statusCode, 200);
      const disabled = await admin.call('PATCH', `/api/v1/users/${id}`, { disabled: true });
      assert.equal(disabled.statusCode, 200);
      assert.ok(json(disabled).disabled_at);
      assert.equal((await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: s.cookie } })).statusCode, 401);
      const blocked = await login(api, 'new.user@example.test', 'long enough pw');
      assert.equal(blocked.res.statusCode, 403);
      assert.equal(json(blocked.res).error.code, 'ACCOUNT_DISABLED');
      assert.equal((await admin.call('PATCH', `/api/v1/users/${admin.userId}`, { disabled: true })).statusCode, 409);
      assert.equal((await admin.call('DELETE', `/api/v1/users/${id}`)).statusCode, 204);
      assert.equal((await admin.call('GET', `/api/v1/users/${id}`)).statusCode, 404);
      assert.equal((await api.t.db.query(`select count(*)::int as n from users where id = $1`, [id])).rows[0]!.n, 0);
    });

    it('team members see and operate only their assigned devices and those devices’ leads', async () => {
      const owner = await tenant(api);
      const d1 = json(await owner.call('POST', '/api/v1/devices', { name: 'one' })).id as number;
      const d2 = json(await owner.call('POST', '/api/v1/devices', { name: 'two' })).id as number;
      const l1 = json(await owner.call('POST', '/api/v1/leads', { phone: '+60123450001', device_id: d1 })).id as number;
      const l2 = json(await owner.call('POST', '/api/v1/leads', { phone: '+60123450002', device_id: d2 })).id as number;
      const pool = json(await owner.call('POST', '/api/v1/leads', { phone: '+60123450003' })).id as number;
      const m = await owner.call('POST', '/api/v1/members', { email: `member-${owner.userId}@example.test`, password: 'member password', device_ids: [d1] });
      assert.equal(m.statusCode, 201);
      assert.deepEqual(json(m).device_ids, [d1]);
      const ms = await login(api, `member-${owner.userId}@example.test`, 'member password');
      const get = (url: string) => api.app.inject({ method: 'GET', url, headers: { cookie: ms.cookie } });
      const write = (method: 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) =>
        api.app.inject({ method, url, headers: { cookie: ms.cookie, 'x-csrf-token': ms.csrf }, ...(payload === undefined ? {} : { payload: payload as object }) });
      assert.deepEqual(json(await get('/api/v1/devices')).data.map((d: { id: number }) => d.id), [d1]);
      assert.equal((await get(`/api/v1/devices/${d2}`)).statusCode, 404);
      assert.deepEqual(json(await get('/api/v1/leads')).data.map((l: { id: number }) => l.id), [l1]);
      assert.equal((await get(`/api/v1/leads/${l2}`)).statusCode, 404);
      assert.equal((await get(`/api/v1/leads/${pool}`)).statusCode, 404);
      assert.equal((await write('PATCH', `/api/v1/leads/${l1}`, { status: 'customer' })).statusCode, 200);
      assert.equal((await write('PATCH', `/api/v1/leads/${l1}`, { device_id: d2 })).statusCode, 404);
      assert.equal((await write('PATCH', `/api/v1/leads/${l2}`, { status: 'customer' })).statusCode, 404);
      assert.equal((await write('POST', '/api/v1/devices', { name: 'mine' })).statusCode, 403);
      assert.equal((await write('POST', '/api/v1/members', { email: 'x@example.test', password: 'member password' })).statusCode, 403);
      // A new lead from a member lands on the member's device; a phone on another device stays out of reach.
      const added = await write('POST', '/api/v1/leads', { phone: '+60123450009' });
      assert.equal(added.statusCode, 201);
      assert.equal(json(added).device_id, d1);
      const clash = await write('POST', '/api/v1/leads', { phone: '+60123450002' });
      assert.equal(clash.statusCode, 409);
      const l2row = await api.t.db.query(`select status, device_id from leads where id = $1`, [l2]);
      assert.deepEqual(l2row.rows[0], { status: 'prospect', device_id: d2 });
      const bulk = await write('POST', '/api/v1/leads/bulk', { filter: {}, action: { op: 'set_status', value: 'hot' } });
      assert.equal(json(bulk).affected, 2);
      const statuses = await api.t.db.query(`select id, status from leads where user_id = $1 order by id`, [owner.userId]);
      assert.deepEqual(
        statuses.rows.map((r) => r.status),
        ['hot', 'prospect', 'prospect', 'hot'],
      );
      // Reassigning takes effect on the member's next request.
      await owner.call('PUT', `/api/v1/members/${json(m).id}/devices`, { device_ids: [d2] });
      assert.deepEqual(json(await get('/api/v1/devices')).data.map((d: { id: number }) => d.id), [d2]);
    });

    it('creates the first admin once, with a generated password when none is configured', async () => {
      const { openTestDb } = await import('../helpers/db.js');
      const t = await openTestDb(backend);
      try {
        const hasher = new PasswordHasher(10);
        const first = await ensureFirstAdmin(t.db, api.clock, hasher, 'root@example.test', undefined);
        assert.ok(first?.generatedPassword && first.generatedPassword.length >= 20);
        const again = await ensureFirstAdmin(t.db, api.clock, hasher, 'root@example.test', undefined);
        assert.equal(again, null);
        const rows = await t.db.query<{ role: string; password_hash: string }>(`select role, password_hash from users`);
        assert.equal(rows.rows.length, 1);
        assert.equal(rows.rows[0]!.role, 'admin');
        assert.ok(await hasher.verify(first.generatedPassword, rows.rows[0]!.password_hash));
      } finally {
        await t.dispose();
      }
    });

    it('never writes passwords or tokens to the log', async () => {
      const lines: string[] = [];
      const sink = new Writable({
        write(chunk, _enc, cb) {
          lines.push(String(chunk));
          cb();
        },
      });
      const app = await buildServer(api.services, { logger: pino({ level: 'trace' }, sink) });
      try {
        const a = await tenant(api);
        await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: a.email, password: a.password } });
        await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: a.email, password: 'wrong-password-xyz' } });
        await app.inject({ method: 'GET', url: '/api/v1/me', headers: { authorization: `Bearer ${a.token}` } });
        await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: `Bearer ${a.token}` }, payload: { name: 'x' } });
        await app.inject({ method: 'POST', url: '/api/v1/me/password', headers: { authorization: `Bearer ${a.token}` }, payload: { current_password: a.password, new_password: 'another password 1' } });
        const all = lines.join('');
        for (const secret of [a.password, 'wrong-password-xyz', a.token, 'another password 1']) assert.ok(!all.includes(secret), `log holds ${secret.slice(0, 4)}...`);
      } finally {
        await app.close();
      }
    });
  });
}
