/**
 * /api/v1/media end to end: raw-body uploads, fetch by URL, records, downloads, deletion, tenant
 * isolation, team members, and the error shape of every refusal. Rows and files are checked.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { mediaPath } from '../../src/services/media/index.js';
import { expectError, json, login, ok, openApi, tenant, type Caller, type TestApi } from '../helpers/api.js';
import { backends } from '../helpers/db.js';
import { filesUnder, mp4, plainImage, startServer, type TestServer } from '../helpers/media.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

for (const backend of backends) {
  describe(`media API (${backend})`, () => {
    let api: TestApi;
    let a: Caller;
    let b: Caller;
    let server: TestServer;
    let png: Buffer;
    const pdf = Buffer.from('%PDF-1.4\n% a price list\n%%EOF\n');

    /** Sends raw bytes as the body, with this content type. */
    const upload = (c: Caller, body: Buffer | string, contentType: string, query = '') =>
      api.app.inject({ method: 'POST', url: `/api/v1/media${query}`, headers: { authorization: `Bearer ${c.token}`, 'content-type': contentType }, payload: body });
    const row = async (id: number) => (await api.t.db.query<Record<string, any>>(`select * from media where id = $1`, [id])).rows[0];
    const count = async (userId: number) => (await api.t.db.query<{ n: number }>(`select count(*)::int as n from media where user_id = $1`, [userId])).rows[0]!.n;

    before(async () => {
      api = await openApi(backend);
      a = await tenant(api);
      b = await tenant(api);
      png = await plainImage(800, 600);
      server = await startServer({ 'banner.png': { body: png, type: 'image/png' }, 'brochure.pdf': { body: pdf, type: 'application/pdf' } });
    });
    after(async () => {
      await server.close();
      await api.dispose();
    });

    it('uploads a raw image body: stored as a JPEG, recorded, downloadable byte for byte', async () => {
      const res = await upload(a, png, 'image/png', '?filename=Summer%20sale.png');
      const m = ok(res, 201);
      assert.equal(m.kind, 'image');
      assert.equal(m.mime_type, 'image/jpeg');
      assert.equal(m.file_name, 'Summer sale.jpg');
      assert.deepEqual([m.width, m.height], [800, 600]);
      assert.equal(m.source_url, null);
      const r = await row(m.id);
      assert.equal(r!.user_id, a.userId);
      assert.equal(r!.storage_key, m.sha256);
      const file = readFileSync(mediaPath(api.mediaDir, m.sha256));
      assert.equal(file.length, m.bytes);
      assert.equal((await sharp(file).metadata()).format, 'jpeg');

      assert.deepEqual(ok(await a.call('GET', `/api/v1/media/${m.id}`)), m);
      const dl = await a.call('GET', `/api/v1/media/${m.id}/content`);
      assert.equal(dl.statusCode, 200);
      assert.equal(dl.headers['content-type'], 'image/jpeg');
      assert.equal(Number(dl.headers['content-length']), m.bytes);
      assert.match(String(dl.headers['content-disposition']), /^attachment; filename="Summer sale.jpg"; filename\*=UTF-8''Summer%20sale\.jpg$/);
      assert.equal(sha(dl.rawPayload), m.sha256);
      assert.deepEqual(dl.rawPayload, file);
    });

    it('takes any content type for a file, and tells the type from the bytes', async () => {
      const doc = ok(await upload(a, pdf, 'application/octet-stream', '?kind=document&filename=Prices.pdf'), 201);
      assert.deepEqual([doc.kind, doc.mime_type, doc.file_name, doc.sha256], ['document', 'application/pdf', 'Prices.pdf', sha(pdf)]);
      const noKind = ok(await upload(a, pdf, 'image/jpeg'), 201);
      assert.equal(noKind.kind, 'document', 'a PDF labelled image/jpeg is still a PDF');
      const text = ok(await upload(a, 'Terms and conditions\n', 'text/plain; charset=utf-8', '?kind=document&filename=terms.txt'), 201);
      assert.deepEqual([text.mime_type, text.bytes], ['text/plain', 21]);
      const clip = mp4();
      const video = ok(await upload(a, clip, 'video/mp4', '?filename=clip.mp4'), 201);
      assert.deepEqual([video.kind, video.mime_type, video.sha256], ['video', 'video/mp4', sha(clip)]);
      assert.deepEqual(readFileSync(mediaPath(api.mediaDir, video.sha256)), clip);
    });

    it('fetches by URL from a JSON body, and says why a fetch failed', async () => {
      const url = `${server.url}/file/banner.png`;
      const m = ok(await a.call('POST', '/api/v1/media', { url, type: 'image' }), 201);
      assert.equal(m.source_url, url);
      assert.equal(m.file_name, 'banner.jpg');
      assert.equal((await row(m.id))!.source_url, url);
      assert.ok(existsSync(mediaPath(api.mediaDir, m.sha256)));
      const named = ok(await a.call('POST', '/api/v1/media', { url: `${server.url}/chain/2/brochure.pdf`, type: 'document', filename: 'Brochure 2026.pdf' }), 201);
      assert.deepEqual([named.file_name, named.sha256], ['Brochure 2026.pdf', sha(pdf)]);

      const before = await count(a.userId);
      const missing = expectError(await a.call('POST', '/api/v1/media', { url: `${server.url}/missing`, type: 'image' }), 422, 'MEDIA_FETCH_FAILED');
      assert.equal(missing.details[0]!.code, 'HTTP_STATUS');
      assert.equal(missing.details[0]!.url, `${server.url}/missing`);
      assert.equal(missing.details[0]!.status, 404);
      const loop = expectError(await a.call('POST', '/api/v1/media', { url: `${server.url}/loop`, type: 'image' }), 422, 'MEDIA_FETCH_FAILED');
      assert.equal(loop.details[0]!.code, 'TOO_MANY_REDIRECTS');
      expectError(await a.call('POST', '/api/v1/media', { url: `${server.url}/file/brochure.pdf`, type: 'image' }), 422, 'MEDIA_UNSUPPORTED');
      assert.equal(await count(a.userId), before);
    });

    it('lists newest first by keyset; another tenant sees none of it and gets 404 for every id', async () => {
      const ids = (await api.t.db.query<{ id: number }>(`select id from media where user_id = $1 order by id desc`, [a.userId])).rows.map((r) => r.id);
      assert.ok(ids.length >= 5);
      const seen: number[] = [];
      let cursor: string | null = '';
      while (cursor !== null) {
        const page = ok(await a.call('GET', `/api/v1/media?limit=2${cursor ? `&cursor=${cursor}` : ''}`));
        seen.push(...page.data.map((m: { id: number }) => m.id));
        cursor = page.next_cursor;
      }
      assert.deepEqual(seen, ids);

      assert.deepEqual(ok(await b.call('GET', '/api/v1/media')).data, []);
      const id = ids[0]!;
      const key = (await row(id))!.storage_key as string;
      expectError(await b.call('GET', `/api/v1/media/${id}`), 404, 'MEDIA_NOT_FOUND');
      expectError(await b.call('GET', `/api/v1/media/${id}/content`), 404, 'MEDIA_NOT_FOUND');
      expectError(await b.call('DELETE', `/api/v1/media/${id}`), 404, 'MEDIA_NOT_FOUND');
      assert.ok(await row(id), 'still there');
      assert.ok(existsSync(mediaPath(api.mediaDir, key)));
    });

    it('deletes the record and its file', async () => {
      const m = ok(await upload(a, Buffer.from('%PDF-1.4\nto be deleted\n'), 'application/pdf'), 201);
      const path = mediaPath(api.mediaDir, m.sha256);
      assert.ok(existsSync(path));
      assert.equal((await a.call('DELETE', `/api/v1/media/${m.id}`)).statusCode, 204);
      assert.equal(await row(m.id), undefined);
      assert.ok(!existsSync(path));
      expectError(await a.call('GET', `/api/v1/media/${m.id}`), 404, 'MEDIA_NOT_FOUND');
      expectError(await a.call('DELETE', `/api/v1/media/${m.id}`), 404, 'MEDIA_NOT_FOUND');
    });

    it('keeps team members out (403), with a token or a cookie', async () => {
      const member = await tenant(api, { parentId: a.userId });
      const own = (await api.t.db.query<{ id: number }>(`select id from media where user_id = $1 order by id limit 1`, [a.userId])).rows[0]!.id;
      expectError(await upload(member, pdf, 'application/pdf'), 403, 'TEAM_MEMBER_FORBIDDEN');
      expectError(await member.call('GET', '/api/v1/media'), 403, 'TEAM_MEMBER_FORBIDDEN');
      expectError(await member.call('GET', `/api/v1/media/${own}`), 403, 'TEAM_MEMBER_FORBIDDEN');
      expectError(await member.call('GET', `/api/v1/media/${own}/content`), 403, 'TEAM_MEMBER_FORBIDDEN');
      expectError(await member.call('DELETE', `/api/v1/media/${own}`), 403, 'TEAM_MEMBER_FORBIDDEN');
      const s = await login(api, member.email, member.password);
      const res = await api.app.inject({
        method: 'POST',
        url: '/api/v1/media',
        headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'content-type': 'application/json' },
        payload: { url: `${server.url}/file/banner.png`, type: 'image' },
      });
      expectError(res, 403, 'TEAM_MEMBER_FORBIDDEN');
      assert.equal(await count(member.userId), 0);
      assert.ok(await row(own));
    });

    it('refuses bad input with a clear 4xx in the one error shape, storing nothing', async () => {
      const c = await tenant(api);
      const files = filesUnder(api.mediaDir);
      const post = (body: unknown, query = '') => c.call('POST', `/api/v1/media${query}`, body);
      const bad = expectError(await post({ url: `${server.url}/file/banner.png`, type: 'audio' }), 400, 'VALIDATION_FAILED');
      assert.equal(bad.details[0]!.path, 'body.type');
      expectError(await post({ url: 'ftp://example.com/x.png', type: 'image' }), 400, 'VALIDATION_FAILED');
      expectError(await post({ url: `${server.url}/file/banner.png`, type: 'image', extra: 1 }), 400, 'VALIDATION_FAILED');
      expectError(await post({ type: 'image' }), 400, 'VALIDATION_FAILED');
      expectError(await post({ url: `${server.url}/file/banner.png`, type: 'image' }, '?kind=image'), 400, 'VALIDATION_FAILED');
      expectError(await c.call('POST', '/api/v1/media', '{"url": ', { 'content-type': 'application/json' }), 400, 'INVALID_JSON');
      expectError(await upload(c, pdf, 'application/pdf', '?kind=audio'), 400, 'VALIDATION_FAILED');
      expectError(await upload(c, pdf, 'application/pdf', '?colour=red'), 400, 'VALIDATION_FAILED');
      const mislabelled = expectError(await upload(c, 'not a picture at all\n', 'image/png', '?kind=image'), 415, 'MEDIA_UNSUPPORTED');
      assert.equal(mislabelled.details[0]!.path, 'body');
      expectError(await upload(c, Buffer.concat([png.subarray(0, 50), Buffer.alloc(2000, 1)]), 'image/png'), 422, 'MEDIA_UNREADABLE');
      expectError(await upload(c, '', 'application/pdf'), 422, 'MEDIA_UNREADABLE');
      expectError(await upload(c, '--x\r\ncontent-disposition: form-data; name="file"\r\n\r\nhi\r\n--x--\r\n', 'multipart/form-data; boundary=x'), 415, 'UNSUPPORTED_MEDIA_TYPE');
      const big = Buffer.concat([mp4({ payload: 0 }), Buffer.alloc(16 * 1024 * 1024)]);
      const tooLarge = expectError(await upload(c, big, 'video/mp4'), 413, 'MEDIA_TOO_LARGE');
      assert.equal(tooLarge.details[0]!.limit_bytes, 16 * 1024 * 1024);
      expectError(await c.call('GET', '/api/v1/media/abc'), 400, 'VALIDATION_FAILED');
      expectError(await c.call('GET', '/api/v1/media?limit=0'), 400, 'VALIDATION_FAILED');
      assert.equal(await count(c.userId), 0);
      assert.deepEqual(filesUnder(api.mediaDir), files);
    });

    it('is described in the OpenAPI document', async () => {
      const doc = json(await api.app.inject({ method: 'GET', url: '/openapi.json' }));
      assert.ok(doc.paths['/api/v1/media'].post.description.includes('350 KB'));
      assert.ok(doc.paths['/api/v1/media/{id}/content'].get);
    });
  });
}
