/**
 * The built dashboard served by the API's server, from a web root made here (index.html and a
 * hashed asset): the SPA fallback for the app's own paths, long-cached assets, security headers on
 * the HTML, and every server path (the API, its 404, documents, health) unchanged. Without a build,
 * `/` says how to make one.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CONTENT_SECURITY_POLICY } from '../../src/api/web-app.js';
import { json, openApi, tenant, type TestApi } from '../helpers/api.js';

const INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-3f2a1b.js"></script></head><body><div id="root"></div></body></html>\n';
const ASSET = 'console.log("fleetcast dashboard");\n';
const html = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' };

function assertHtmlHeaders(headers: Record<string, unknown>): void {
  assert.equal(headers['content-security-policy'], CONTENT_SECURITY_POLICY);
  assert.match(String(headers['content-security-policy']), /default-src 'self'/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['referrer-policy'], 'same-origin');
  assert.equal(headers['cache-control'], 'no-cache');
}

describe('the built dashboard', () => {
  let root: string;
  let api: TestApi;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'fleetcast-web-'));
    mkdirSync(join(root, 'assets'));
    writeFileSync(join(root, 'index.html'), INDEX);
    writeFileSync(join(root, 'assets', 'app-3f2a1b.js'), ASSET);
    writeFileSync(join(root, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    api = await openApi('pglite', { server: { webRoot: root } });
  });
  after(async () => {
    await api.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  it('answers / with index.html and its security headers', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/', headers: html });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, INDEX);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assertHtmlHeaders(res.headers);
  });

  it("answers the app's own paths with index.html (the app routes in the browser)", async () => {
    for (const url of ['/campaigns', '/campaigns/12?tab=devices', '/devices/3/link', '/settings/tokens/']) {
      const res = await api.app.inject({ method: 'GET', url, headers: html });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.body, INDEX, url);
      assertHtmlHeaders(res.headers);
    }
    const head = await api.app.inject({ method: 'HEAD', url: '/leads', headers: html });
    assert.equal(head.statusCode, 200);
  });

  it('serves assets long-cached and immutable, other files revalidated', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/assets/app-3f2a1b.js' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, ASSET);
    assert.match(String(res.headers['content-type']), /javascript/);
    assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    const icon = await api.app.inject({ method: 'GET', url: '/favicon.svg' });
    assert.equal(icon.statusCode, 200);
    assert.equal(icon.headers['cache-control'], 'no-cache');
    // A missing asset is a 404, not the app (a stale page must not get HTML for its script).
    const missing = await api.app.inject({ method: 'GET', url: '/assets/gone-000000.js' });
    assert.equal(missing.statusCode, 404);
    assert.equal(json(missing).error.code, 'ROUTE_NOT_FOUND');
  });

  it('leaves every server path as it was', async () => {
    const unknownApi = await api.app.inject({ method: 'GET', url: '/api/v1/no-such-thing', headers: html });
    assert.equal(unknownApi.statusCode, 404);
    assert.deepEqual(json(unknownApi), { error: { code: 'ROUTE_NOT_FOUND', message: 'no route GET /api/v1/no-such-thing', details: [] } });
    const bare = await api.app.inject({ method: 'GET', url: '/api', headers: html });
    assert.equal(bare.statusCode, 404);
    assert.equal(json(bare).error.code, 'ROUTE_NOT_FOUND');
    assert.equal((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    const doc = await api.app.inject({ method: 'GET', url: '/openapi.json', headers: html });
    assert.equal(doc.statusCode, 200);
    assert.ok(json(doc).paths['/api/v1/dashboard']);
    const docs = await api.app.inject({ method: 'GET', url: '/docs', headers: html });
    assert.ok(docs.statusCode < 400, String(docs.statusCode));
    assert.ok(!docs.body.includes('fleetcast dashboard') && docs.body !== INDEX);
    // The API itself still answers with credentials, and refuses without.
    const a = await tenant(api);
    assert.equal((await a.call('GET', '/api/v1/me')).statusCode, 200);
    assert.equal((await api.app.inject({ method: 'GET', url: '/api/v1/me', headers: html })).statusCode, 401);
  });

  it('a request that does not ask for HTML, or is not a GET, gets the JSON 404', async () => {
    const asJson = await api.app.inject({ method: 'GET', url: '/campaigns', headers: { accept: 'application/json' } });
    assert.equal(asJson.statusCode, 404);
    assert.equal(json(asJson).error.code, 'ROUTE_NOT_FOUND');
    const post = await api.app.inject({ method: 'POST', url: '/campaigns', headers: html, payload: {} });
    assert.equal(post.statusCode, 404);
    assert.equal(json(post).error.code, 'ROUTE_NOT_FOUND');
  });
});

describe('without a built dashboard', () => {
  let api: TestApi;
  let root: string;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'fleetcast-web-empty-'));
    api = await openApi('pglite', { server: { webRoot: join(root, 'missing') } });
  });
  after(async () => {
    await api.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  it('/ says the dashboard was not built and how to build it', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/', headers: html });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(res.body, /dashboard was not built/);
    assert.match(res.body, /npm run build/);
    assertHtmlHeaders(res.headers);
    const deep = await api.app.inject({ method: 'GET', url: '/campaigns', headers: html });
    assert.equal(deep.statusCode, 404);
    assert.equal((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  });
});
