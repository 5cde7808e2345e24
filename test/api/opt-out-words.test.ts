/**
 * A tenant's own opt-out words through PATCH /me: shown by GET /me (null: the defaults), replaced
 * as a whole, reset with null; bad lists are refused and change nothing; team members cannot
 * change their tenant's words.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_OPT_OUT_WORDS } from '../../src/engine/replies.js';
import { expectError, json, login, ok, openApi, tenant, type TestApi } from '../helpers/api.js';
import { backends } from '../helpers/db.js';

for (const backend of backends) {
  describe(`opt-out words (${backend})`, () => {
    let api: TestApi;
    before(async () => {
      api = await openApi(backend);
    });
    after(() => api.dispose());

    it('defaults include STOP, UNSUBSCRIBE and BERHENTI', () => {
      for (const w of ['stop', 'unsubscribe', 'berhenti']) assert.ok(DEFAULT_OPT_OUT_WORDS.includes(w), w);
    });

    it('are set, shown, reset, and validated', async () => {
      const a = await tenant(api);
      assert.equal(ok(await a.call('GET', '/api/v1/me')).opt_out_words, null);
      ok(await a.call('PATCH', '/api/v1/me', { opt_out_words: [' Tak nak ', 'STOP', 'STOP'] }));
      assert.deepEqual(ok(await a.call('GET', '/api/v1/me')).opt_out_words, ['Tak nak', 'STOP']);
      for (const bad of [[], [''], ['x'.repeat(61)], 'stop', [1]]) {
        expectError(await a.call('PATCH', '/api/v1/me', { opt_out_words: bad }), 400, 'VALIDATION_FAILED');
      }
      assert.deepEqual(ok(await a.call('GET', '/api/v1/me')).opt_out_words, ['Tak nak', 'STOP'], 'unchanged by bad input');
      ok(await a.call('PATCH', '/api/v1/me', { opt_out_words: null }));
      assert.equal(ok(await a.call('GET', '/api/v1/me')).opt_out_words, null);
    });

    it('a team member sees its tenant’s words and cannot change them', async () => {
      const owner = await tenant(api);
      ok(await owner.call('PATCH', '/api/v1/me', { opt_out_words: ['cukup'] }));
      ok(await owner.call('POST', '/api/v1/members', { email: `m-${owner.userId}@example.test`, password: 'member password' }), 201);
      const s = await login(api, `m-${owner.userId}@example.test`, 'member password');
      const me = await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: { cookie: s.cookie } });
      assert.deepEqual(json(me).opt_out_words, ['cukup']);
      const res = await api.app.inject({ method: 'PATCH', url: '/api/v1/me', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf }, payload: { opt_out_words: ['none'] } });
      expectError(res, 403, 'TEAM_MEMBER_FORBIDDEN');
      assert.deepEqual(ok(await owner.call('GET', '/api/v1/me')).opt_out_words, ['cukup']);
    });
  });
}
