/**
 * MediaService: type by bytes, image re-encoding, size limits enforced while reading, storage by
 * content, fetching by URL from a local server (redirects, timeouts, oversized bodies, private
 * addresses), and media prepared for campaigns. Asserts rows and files, not only answers.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import type { Actor } from '../../src/services/actor.js';
import { AppError } from '../../src/services/errors.js';
import { isInternalAddress } from '../../src/services/media/fetch.js';
import { DOCUMENT_MAX_BYTES, IMAGE_OUTPUT_MAX_BYTES, VIDEO_MAX_BYTES } from '../../src/services/media/limits.js';
import { MediaService, mediaPath } from '../../src/services/media/index.js';
import { insertUser } from '../../src/store/sql/users.js';
import { ManualClock } from '../helpers/api.js';
import { backends, openTestDb, type TestDb } from '../helpers/db.js';
import { animatedGif, bombPng, filesUnder, halfTransparentPng, mp4, noisyPng, plainImage, rotatedJpeg, startServer, type TestServer } from '../helpers/media.js';
import { quietLog } from '../helpers/world.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Runs `fn` and returns the AppError it must throw. */
async function refused(fn: () => Promise<unknown>, code: string, status?: number): Promise<AppError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof AppError, `not an AppError: ${String(err)}`);
    assert.equal(err.code, code, `${err.code}: ${err.message}`);
    if (status !== undefined) assert.equal(err.status, status, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

for (const backend of backends) {
  describe(`media service (${backend})`, () => {
    let t: TestDb;
    let dir: string;
    let svc: MediaService;
    let server: TestServer;
    let a: Actor;
    let b: Actor;
    let member: Actor;
    const clock = new ManualClock();
    let png: Buffer;
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

    const actorOf = (userId: number, teamMember = false): Actor => ({
      userId,
      tenantId: userId,
      email: `u${userId}@example.test`,
      role: 'member',
      teamMember,
      deviceScope: teamMember ? [] : null,
      timeZone: 'Asia/Kuala_Lumpur',
      defaultCountry: 'MY',
    });
    const rows = async (tenant: number) =>
      (await t.db.query<Record<string, any>>(`select * from media where user_id = $1 order by id`, [tenant])).rows;
    /** Stored files only; the tmp folder must be empty whatever happened. */
    const stored = () => filesUnder(dir);

    before(async () => {
      t = await openTestDb(backend);
      dir = mkdtempSync(join(tmpdir(), 'fleetcast-media-test-'));
      svc = new MediaService(t.db, clock, { dir, allowPrivateAddresses: true, fetchTimeoutMs: 700, log: quietLog });
      const now = new Date(clock.now());
      const ua = await insertUser(t.db, { email: 'media-a@example.test', timeZone: 'Asia/Kuala_Lumpur' }, now);
      const ub = await insertUser(t.db, { email: 'media-b@example.test', timeZone: 'Asia/Kuala_Lumpur' }, now);
      a = actorOf(ua);
      b = actorOf(ub);
      member = { ...actorOf(ua, true), userId: await insertUser(t.db, { email: 'media-m@example.test', timeZone: 'Asia/Kuala_Lumpur', parentId: ua }, now) };
      png = await plainImage(640, 480);
      server = await startServer({
        'photo.png': { body: png, type: 'image/png' },
        'report.pdf': { body: pdf, type: 'application/pdf' },
        'clip.mp4': { body: mp4(), type: 'video/mp4' },
        'text-as.png': { body: Buffer.from('just some text\n'), type: 'image/png' },
      });
    });
    after(async () => {
      await server.close();
      await t.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    it('shrinks a 4000x3000 noisy PNG to a JPEG of at most 350 KB, keeping its shape', async () => {
      const input = await noisyPng();
      assert.ok(input.length < 16 * 1024 * 1024, `fixture is ${input.length} bytes`);
      const m = await svc.upload(a, { body: input, fileName: 'noise.png' });
      assert.equal(m.kind, 'image');
      assert.equal(m.mime_type, 'image/jpeg');
      assert.equal(m.file_name, 'noise.jpg');
      assert.ok(m.bytes <= IMAGE_OUTPUT_MAX_BYTES, `${m.bytes} bytes`);
      assert.ok(Math.abs(m.width! * 3 - m.height! * 4) <= 4, `${m.width}x${m.height} is not 4:3`);
      const file = readFileSync(mediaPath(dir, m.sha256));
      assert.equal(file.length, m.bytes);
      assert.equal(sha(file), m.sha256);
      const meta = await sharp(file).metadata();
      assert.equal(meta.format, 'jpeg');
      assert.deepEqual([meta.width, meta.height], [m.width, m.height]);
      const [row] = (await rows(a.tenantId)).filter((r) => r.id === m.id);
      assert.equal(row!.storage_key, m.sha256);
      assert.equal(row!.bytes, file.length);
      assert.equal(row!.source_url, null);
    });

    it('keeps a tall image’s aspect ratio within a pixel, and never enlarges a small one', async () => {
      const tall = await svc.upload(a, { body: await plainImage(600, 2400) });
      assert.ok(tall.height! <= 2400 && tall.width! <= 600);
      assert.ok(Math.abs(tall.height! * (600 / 2400) - tall.width!) <= 1, `${tall.width}x${tall.height}`);
      const small = await svc.upload(a, { body: await plainImage(320, 200, 'jpeg') });
      assert.deepEqual([small.width, small.height], [320, 200]);
      const meta = await sharp(readFileSync(mediaPath(dir, small.sha256))).metadata();
      assert.deepEqual([meta.width, meta.height], [320, 200]);
    });

    it('flattens transparency onto white', async () => {
      const m = await svc.upload(a, { body: await halfTransparentPng() });
      const { data, info } = await sharp(readFileSync(mediaPath(dir, m.sha256))).raw().toBuffer({ resolveWithObject: true });
      assert.equal(info.channels, 3);
      const px = (x: number, y: number) => [...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3)];
      assert.ok(px(20, 50).every((c) => c > 240), `transparent half is ${px(20, 50)}`);
      const red = px(180, 50);
      assert.ok(red[0]! > 200 && red[1]! < 60 && red[2]! < 60, `opaque half is ${red}`);
    });

    it('turns an EXIF-rotated JPEG upright and strips its metadata', async () => {
      const m = await svc.upload(a, { body: await rotatedJpeg() });
      assert.deepEqual([m.width, m.height], [200, 400]);
      const file = readFileSync(mediaPath(dir, m.sha256));
      const meta = await sharp(file).metadata();
      assert.equal(meta.orientation, undefined);
      assert.equal(meta.exif, undefined);
      assert.ok(!file.includes('secret-exif-marker'));
      const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
      const at = (y: number) => [...data.subarray(y * info.width * 3 + 100 * 3, y * info.width * 3 + 100 * 3 + 3)];
      assert.ok(at(50)[0]! > 200 && at(50)[2]! < 60, `top is ${at(50)}: should be red`);
      assert.ok(at(350)[2]! > 200 && at(350)[0]! < 60, `bottom is ${at(350)}: should be blue`);
    });

    it('takes the first frame of an animated GIF', async () => {
      const m = await svc.upload(a, { body: await animatedGif(), kind: 'image' });
      assert.deepEqual([m.width, m.height], [100, 100]);
      const stats = await sharp(readFileSync(mediaPath(dir, m.sha256))).stats();
      assert.ok(stats.channels[0]!.mean > 200 && stats.channels[2]!.mean < 60, 'red, the first frame');
    });

    it('refuses broken, mislabelled and oversized files, writing nothing', async () => {
      const tenant = b.tenantId;
      const before = stored();
      const corrupt = Buffer.concat([png.subarray(0, 60), Buffer.alloc(5000, 0x5a)]);
      const e1 = await refused(() => svc.upload(b, { body: corrupt, kind: 'image' }), 'MEDIA_UNREADABLE', 422);
      assert.match(e1.message, /cannot be decoded/);
      const e2 = await refused(() => svc.upload(b, { body: Buffer.from('hello, not an image\n'), contentType: 'image/png', fileName: 'x.png', kind: 'image' }), 'MEDIA_UNSUPPORTED', 415);
      assert.match(e2.message, /text file/);
      const e3 = await refused(() => svc.upload(b, { body: bombPng() }), 'MEDIA_TOO_LARGE', 413);
      assert.match(e3.message, /30000 x 30000/);
      await refused(() => svc.upload(b, { body: Buffer.from('GIF89a not really') }), 'MEDIA_UNREADABLE', 422);
      await refused(() => svc.upload(b, { body: Buffer.alloc(0) }), 'MEDIA_UNREADABLE', 422);
      await refused(() => svc.upload(b, { body: Buffer.from([0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0xff, 0xff]), kind: 'document' }), 'MEDIA_UNSUPPORTED', 415);

      // Oversized: the source is read only a little past the limit, then left.
      const big = (head: Buffer, total: number) => {
        let pulled = 0;
        const chunk = Buffer.alloc(256 * 1024, 0x20);
        const stream = Readable.from(
          (function* () {
            yield head;
            pulled += head.length;
            while (pulled < total) {
              pulled += chunk.length;
              yield chunk;
            }
          })(),
        );
        return { stream, pulled: () => pulled };
      };
      const video = big(mp4({ payload: 0 }), VIDEO_MAX_BYTES + 4 * 1024 * 1024);
      const e4 = await refused(() => svc.upload(b, { body: video.stream, kind: 'video' }), 'MEDIA_TOO_LARGE', 413);
      assert.equal(e4.details[0]!.limit_bytes, VIDEO_MAX_BYTES);
      assert.ok(video.pulled() <= VIDEO_MAX_BYTES + 1024 * 1024, `read ${video.pulled()} bytes`);
      const doc = big(pdf, DOCUMENT_MAX_BYTES + 8 * 1024 * 1024);
      const e5 = await refused(() => svc.upload(b, { body: doc.stream }), 'MEDIA_TOO_LARGE', 413);
      assert.equal(e5.details[0]!.limit_bytes, DOCUMENT_MAX_BYTES);
      assert.ok(doc.pulled() <= DOCUMENT_MAX_BYTES + 1024 * 1024, `read ${doc.pulled()} bytes`);
      // Without a kind, a JPEG's limit is an image's: 16 MB.
      const jpeg = big(Buffer.from([0xff, 0xd8, 0xff, 0xe0]), 17 * 1024 * 1024);
      await refused(() => svc.upload(b, { body: jpeg.stream }), 'MEDIA_TOO_LARGE', 413);

      assert.deepEqual(await rows(tenant), []);
      assert.deepEqual(stored(), before, 'no file left behind, not even a temporary one');
    });

    it('checks videos: MP4 with H.264 is stored as is; HEVC, QuickTime, truncated are refused', async () => {
      const clip = mp4({ payload: 20_000 });
      const m = await svc.upload(b, { body: clip, fileName: 'clip' });
      assert.equal(m.kind, 'video');
      assert.equal(m.mime_type, 'video/mp4');
      assert.equal(m.file_name, 'clip.mp4');
      assert.equal(m.sha256, sha(clip), 'stored byte for byte');
      assert.deepEqual(readFileSync(mediaPath(dir, m.sha256)), clip);
      const g3 = await svc.upload(b, { body: mp4({ brand: '3gp5' }), kind: 'video' });
      assert.equal(g3.mime_type, 'video/3gpp');
      const hevc = await refused(() => svc.upload(b, { body: mp4({ codecs: ['hvc1', 'mp4a'] }), kind: 'video' }), 'MEDIA_UNSUPPORTED', 415);
      assert.match(hevc.message, /H\.265/);
      await refused(() => svc.upload(b, { body: mp4({ brand: 'qt  ' }), kind: 'video' }), 'MEDIA_UNSUPPORTED', 415);
      await refused(() => svc.upload(b, { body: mp4({ moov: false }), kind: 'video' }), 'MEDIA_UNREADABLE', 422);
      await refused(() => svc.upload(b, { body: clip.subarray(0, clip.length - 100), kind: 'video' }), 'MEDIA_UNREADABLE', 422);
      await refused(() => svc.upload(b, { body: pdf, kind: 'video' }), 'MEDIA_UNSUPPORTED', 415);
      assert.equal((await rows(b.tenantId)).length, 2);
    });

    it('tells documents by their bytes', async () => {
      const p = await svc.upload(b, { body: pdf, fileName: 'dir/../Price list', contentType: 'text/plain' });
      assert.deepEqual([p.kind, p.mime_type, p.file_name], ['document', 'application/pdf', 'Price list.pdf']);
      const csv = await svc.upload(b, { body: Buffer.from('name,phone\nA,1\n'), fileName: 'leads.csv' });
      assert.deepEqual([csv.kind, csv.mime_type], ['document', 'text/csv']);
      const txt = await svc.upload(b, { body: Buffer.from('Selamat pagi — notes\n'), kind: 'document' });
      assert.deepEqual([txt.mime_type, txt.file_name], ['text/plain', null]);
      // An image sent as a document is a file: not re-encoded.
      const asDoc = await svc.upload(b, { body: png, kind: 'document', fileName: 'original.png' });
      assert.deepEqual([asDoc.mime_type, asDoc.sha256, asDoc.width], ['image/png', sha(png), null]);
    });

    it('stores identical files once, and removes a file with its last record', async () => {
      const doc = Buffer.from('%PDF-1.7\nsame bytes for two tenants\n%%EOF\n');
      const one = await svc.upload(a, { body: doc, fileName: 'a.pdf' });
      const two = await svc.upload(b, { body: Readable.from([doc.subarray(0, 10), doc.subarray(10)]), fileName: 'b.pdf' });
      const three = await svc.upload(a, { body: doc, fileName: 'again.pdf' });
      assert.equal(one.sha256, two.sha256);
      assert.notEqual(one.id, two.id);
      assert.equal(stored().filter((f) => f.endsWith(one.sha256)).length, 1);
      const keys = await t.db.query<{ n: number }>(`select count(*)::int as n from media where storage_key = $1`, [one.sha256]);
      assert.equal(keys.rows[0]!.n, 3);
      await svc.delete(a, one.id);
      await svc.delete(a, three.id);
      assert.ok(existsSync(mediaPath(dir, one.sha256)), 'still named by the other tenant');
      await svc.delete(b, two.id);
      assert.ok(!existsSync(mediaPath(dir, one.sha256)), 'gone with its last record');
      await refused(() => svc.get(b, two.id), 'MEDIA_NOT_FOUND', 404);
    });

    it('fetches by URL: 200, redirects up to 5, and says why a fetch failed', async () => {
      const m = await svc.fromUrl(a, `${server.url}/chain/5/photo.png`, 'image');
      assert.equal(m.source_url, `${server.url}/chain/5/photo.png`);
      assert.equal(m.file_name, 'photo.jpg');
      assert.deepEqual([m.width, m.height], [640, 480]);
      assert.ok(existsSync(mediaPath(dir, m.sha256)));
      const [row] = (await rows(a.tenantId)).filter((r) => r.id === m.id);
      assert.equal(row!.source_url, m.source_url);
      const d = await svc.fromUrl(a, `${server.url}/file/report.pdf`, 'document', 'Offer.pdf');
      assert.deepEqual([d.file_name, d.sha256], ['Offer.pdf', sha(pdf)]);

      const before = (await rows(a.tenantId)).length;
      const files = stored();
      const fail = async (path: string, kind: 'image' | 'video' | 'document', code: string, reason?: string) => {
        const url = `${server.url}${path}`;
        const err = await refused(() => svc.fromUrl(a, url, kind), code);
        if (reason) assert.equal(err.details[0]!.code, reason, err.message);
        assert.equal(err.details[0]!.url, url);
        return err;
      };
      const notFound = await fail('/missing', 'image', 'MEDIA_FETCH_FAILED', 'HTTP_STATUS');
      assert.equal(notFound.status, 422);
      assert.equal(notFound.details[0]!.status, 404);
      assert.match(notFound.message, /HTTP 404/);
      await fail('/chain/6/photo.png', 'image', 'MEDIA_FETCH_FAILED', 'TOO_MANY_REDIRECTS');
      const loops = server.hits.filter((h) => h === '/loop').length;
      await fail('/loop', 'image', 'MEDIA_FETCH_FAILED', 'TOO_MANY_REDIRECTS');
      assert.equal(server.hits.filter((h) => h === '/loop').length - loops, 6, 'the first request and 5 redirects');
      const started = Date.now();
      await fail('/slow', 'image', 'MEDIA_FETCH_FAILED', 'TIMEOUT');
      assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
      const unsupported = await fail('/file/text-as.png', 'image', 'MEDIA_UNSUPPORTED');
      assert.equal(unsupported.status, 422, 'a remote file of the wrong type is not the request’s media type');
      await fail('/declared-huge', 'document', 'MEDIA_TOO_LARGE');

      const e = await fail('/endless', 'video', 'MEDIA_TOO_LARGE');
      assert.equal(e.status, 413);
      for (let i = 0; i < 50 && !server.endless.closed; i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(server.endless.closed, 'the connection was dropped');
      assert.ok(server.endless.written < VIDEO_MAX_BYTES + 8 * 1024 * 1024, `the server wrote ${server.endless.written} bytes`);

      const closed = await startServer({});
      const deadUrl = `${closed.url}/x`;
      await closed.close();
      const refusedErr = await refused(() => svc.fromUrl(a, deadUrl, 'image'), 'MEDIA_FETCH_FAILED');
      assert.equal(refusedErr.details[0]!.code, 'CONNECTION_REFUSED');
      const dns = await refused(() => svc.fromUrl(a, 'http://no-such-host.invalid/x.png', 'image'), 'MEDIA_FETCH_FAILED');
      assert.equal(dns.details[0]!.code, 'DNS_FAILED');
      await refused(() => svc.fromUrl(a, 'ftp://example.com/x.png', 'image'), 'MEDIA_FETCH_FAILED');

      assert.equal((await rows(a.tenantId)).length, before, 'no record for a failed fetch');
      assert.deepEqual(stored(), files, 'no file for a failed fetch');
    });

    it('refuses private and loopback addresses unless allowed', async () => {
      const strict = new MediaService(t.db, clock, { dir, fetchTimeoutMs: 2000 });
      const hits = server.hits.length;
      for (const url of [`${server.url}/file/photo.png`, `http://localhost:${server.port}/file/photo.png`, `http://[::1]:${server.port}/x`]) {
        const err = await refused(() => strict.fromUrl(a, url, 'image'), 'MEDIA_ADDRESS_FORBIDDEN', 422);
        assert.equal(err.details[0]!.url, url);
      }
      assert.equal(server.hits.length, hits, 'no request reached the server');
      for (const addr of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '64:ff9b::a00:1']) {
        assert.equal(isInternalAddress(addr), true, addr);
      }
      for (const addr of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808']) {
        assert.equal(isInternalAddress(addr), false, addr);
      }
    });

    it('prepares campaign media by id or by URL; another tenant’s id is missing, a wrong kind is refused', async () => {
      const img = await svc.upload(a, { body: png, fileName: 'promo.png' });
      const byId = await svc.prepareForCampaign(a, { type: 'image', media_id: img.id, caption: 'Promo!' });
      assert.deepEqual(byId, { kind: 'image', mediaId: img.id, mimeType: 'image/jpeg', fileName: 'promo.jpg', caption: 'Promo!', bytes: img.bytes, storageKey: img.sha256 });
      assert.ok(existsSync(svc.pathOf(byId.storageKey)));
      await refused(() => svc.prepareForCampaign(b, { type: 'image', media_id: img.id }), 'MEDIA_NOT_FOUND', 404);
      await refused(() => svc.prepareForCampaign(a, { type: 'image', media_id: 987654 }), 'MEDIA_NOT_FOUND', 404);
      const mismatch = await refused(() => svc.prepareForCampaign(a, { type: 'document', media_id: img.id }), 'MEDIA_KIND_MISMATCH', 422);
      assert.equal(mismatch.details[0]!.kind, 'image');
      await refused(() => svc.prepareForCampaign(a, { type: 'image' }), 'VALIDATION_FAILED', 400);
      await refused(() => svc.prepareForCampaign(a, { type: 'image', media_id: img.id, url: `${server.url}/file/photo.png` }), 'VALIDATION_FAILED', 400);

      const url = `${server.url}/file/report.pdf`;
      const byUrl = await svc.prepareForCampaign(a, { type: 'document', url, filename: 'Katalog.pdf' });
      assert.equal(byUrl.kind, 'document');
      assert.equal(byUrl.mimeType, 'application/pdf');
      assert.equal(byUrl.fileName, 'Katalog.pdf');
      assert.equal(byUrl.sourceUrl, url);
      assert.equal(byUrl.bytes, pdf.length);
      const [row] = (await rows(a.tenantId)).filter((r) => r.id === byUrl.mediaId);
      assert.equal(row!.source_url, url);
      assert.deepEqual(readFileSync(svc.pathOf(byUrl.storageKey)), pdf);
      await refused(() => svc.prepareForCampaign(a, { type: 'image', url: `${server.url}/missing` }), 'MEDIA_FETCH_FAILED', 422);
    });

    it('keeps team members out, and media a campaign uses from being deleted', async () => {
      await refused(() => svc.upload(member, { body: pdf }), 'TEAM_MEMBER_FORBIDDEN', 403);
      await refused(() => svc.list(member, { limit: 10 }), 'TEAM_MEMBER_FORBIDDEN', 403);
      const m = await svc.upload(a, { body: Buffer.from('%PDF-1.4\nin use\n') });
      await refused(() => svc.get(member, m.id), 'TEAM_MEMBER_FORBIDDEN', 403);
      const prepared = await svc.prepareForCampaign(a, { type: 'document', media_id: m.id });
      const now = new Date(clock.now());
      const c = await t.db.query<{ id: number }>(
        `insert into campaigns (user_id, name, body, media, starts_at, status, created_at, updated_at) values ($1, 'c', 'hi', $2, $3, 'scheduled', $3, $3) returning id`,
        [a.tenantId, JSON.stringify(prepared), now],
      );
      await refused(() => svc.delete(a, m.id), 'MEDIA_IN_USE', 409);
      assert.ok(existsSync(mediaPath(dir, m.sha256)));
      await t.db.query(`update campaigns set status = 'completed' where id = $1`, [c.rows[0]!.id]);
      await svc.delete(a, m.id);
      assert.equal((await t.db.query(`select 1 from media where id = $1`, [m.id])).rows.length, 0);
    });

    it('lists newest first by keyset, per tenant, and opens the stored bytes', async () => {
      const mine = (await rows(b.tenantId)).map((r) => r.id as number);
      const seen: number[] = [];
      let after: number | undefined;
      for (;;) {
        const page = await svc.list(b, { after, limit: 2 });
        seen.push(...page.map((m) => m.id));
        if (page.length < 2) break;
        after = page[page.length - 1]!.id;
      }
      assert.deepEqual(seen, [...mine].sort((x, y) => y - x));
      const content = await svc.open(b, seen[0]!);
      const chunks: Buffer[] = [];
      for await (const c of content.stream) chunks.push(c as Buffer);
      const [row] = (await rows(b.tenantId)).filter((r) => r.id === seen[0]);
      assert.equal(sha(Buffer.concat(chunks)), row!.sha256);
      assert.equal(content.bytes, row!.bytes);
      await refused(() => svc.open(a, seen[0]!), 'MEDIA_NOT_FOUND', 404);
    });
  });
}
