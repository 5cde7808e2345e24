import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { json, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';

// Bad input never reaches the database and never costs a 500: every answer has the one error shape.
describe('bad input gets a clear 4xx in the one error shape', () => {
  let api: TestApi;
  let a: Caller;
  before(async () => {
    api = await openApi('pglite');
    a = await tenant(api);
  });
  after(() => api.dispose());

  const shape = (body: unknown) => {
    const e = (body as { error: { code: unknown; message: unknown; details: unknown } }).error;
    assert.equal(typeof e.code, 'string');
    assert.equal(typeof e.message, 'string');
    assert.ok(Array.isArray(e.details));
    assert.ok(!JSON.stringify(body).includes('    at '), 'no stack trace');
  };

  const cases: [string, () => Promise<import('fastify').LightMyRequestResponse>, number, string][] = [
    ['broken JSON', () => api.app.inject({ method: 'POST', url: '/api/v1/devices', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' }, payload: '{"name": ' }), 400, 'INVALID_JSON'],
    ['empty JSON body', () => api.app.inject({ method: 'POST', url: '/api/v1/devices', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' }, payload: '' }), 400, 'INVALID_JSON'],
    ['wrong type', () => a.call('POST', '/api/v1/devices', { name: 42 }), 400, 'VALIDATION_FAILED'],
    ['unknown field', () => a.call('POST', '/api/v1/devices', { name: 'x', colour: 'red' }), 400, 'VALIDATION_FAILED'],
    ['array instead of object', () => a.call('POST', '/api/v1/leads', [1, 2]), 400, 'VALIDATION_FAILED'],
    ['huge body', () => a.call('POST', '/api/v1/leads', { phone: '+60123456789', name: 'x'.repeat(2_000_000) }), 413, 'BODY_TOO_LARGE'],
    ['unsupported media type', () => api.app.inject({ method: 'POST', url: '/api/v1/devices', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/xml' }, payload: '<x/>' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['id that is not a number', () => a.call('GET', '/api/v1/leads/abc'), 400, 'VALIDATION_FAILED'],
    ['id beyond bigint', () => a.call('GET', '/api/v1/leads/99999999999999999999999'), 400, 'VALIDATION_FAILED'],
    ['negative limit', () => a.call('GET', '/api/v1/leads?limit=-1'), 400, 'VALIDATION_FAILED'],
    ['unknown query parameter', () => a.call('GET', '/api/v1/leads?colour=red'), 400, 'VALIDATION_FAILED'],
    ['bad cursor', () => a.call('GET', "/api/v1/leads?cursor=1'--"), 400, 'VALIDATION_FAILED'],
    ['bad date', () => a.call('GET', '/api/v1/leads?created_after=yesterday'), 400, 'VALIDATION_FAILED'],
    ['max delay below min', () => a.call('POST', '/api/v1/devices', { name: 'x', min_delay_ms: 9000, max_delay_ms: 1000 }), 400, 'VALIDATION_FAILED'],
    ['unknown transport', () => a.call('POST', '/api/v1/devices', { name: 'x', transport: 'carrier-pigeon' }), 422, 'UNKNOWN_TRANSPORT'],
    ['no credentials', () => api.app.inject({ method: 'GET', url: '/api/v1/leads' }), 401, 'UNAUTHENTICATED'],
    ['unknown route', () => a.call('GET', '/api/v1/nothing-here'), 404, 'ROUTE_NOT_FOUND'],
    ['missing lead', () => a.call('GET', '/api/v1/leads/123456'), 404, 'LEAD_NOT_FOUND'],
  ];

  for (const [name, send, status, code] of cases) {
    it(name, async () => {
      const res = await send();
      assert.equal(res.statusCode, status, res.body);
      assert.match(String(res.headers['content-type']), /application\/json/);
      shape(json(res));
      assert.equal(json(res).error.code, code);
    });
  }

  it('says which field is wrong', async () => {
    const res = await a.call('POST', '/api/v1/devices', { name: 'x', colour: 'red', hourly_limit: 'many' });
    const details = json(res).error.details as { path: string; message: string }[];
    assert.ok(details.some((d) => d.path.startsWith('body') && /colour/.test(JSON.stringify(d))), JSON.stringify(details));
    assert.ok(details.some((d) => d.path === 'body.hourly_limit'), JSON.stringify(details));
    assert.equal((await api.t.db.query(`select count(*)::int as n from devices`)).rows[0]!.n, 0, 'nothing was written');
  });

  it('serves the OpenAPI document and the interactive page', async () => {
    const doc = await api.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(doc.statusCode, 200);
    const paths = Object.keys(json(doc).paths);
    for (const p of ['/api/v1/auth/login', '/api/v1/leads', '/api/v1/leads/{id}', '/api/v1/devices', '/api/v1/tokens', '/api/v1/users', '/api/v1/me']) assert.ok(paths.includes(p), p);
    const page = await api.app.inject({ method: 'GET', url: '/docs' });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /swagger/i);
    const asset = await api.app.inject({ method: 'GET', url: '/docs/static/swagger-ui-bundle.js' });
    assert.equal(asset.statusCode, 200, 'the page loads its assets from this server, not a CDN');
  });
});
