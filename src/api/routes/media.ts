/**
 * /api/v1/media: images, videos and documents for campaigns. A file is sent as the request body
 * itself (streamed, never parsed), or named by URL in a JSON body and fetched by the server.
 */
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { AppError } from '../../services/errors.js';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { cursorOf, emptyReply, idParams, page, pageOf, pageQuery, security, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';

const kind = z.enum(['image', 'video', 'document']);

const media = z
  .object({
    id: z.number().int(),
    kind,
    mime_type: z.string().describe('what the stored bytes are (images are always image/jpeg)'),
    file_name: z.string().nullable(),
    bytes: z.number().int().describe('size of the stored file'),
    sha256: z.string(),
    width: z.number().int().nullable().describe('images: pixels after re-encoding'),
    height: z.number().int().nullable(),
    source_url: z.string().nullable().describe('the URL it was fetched from; null for an upload'),
    created_at: timestamp,
  })
  .meta({ id: 'MediaFile' });

const fetchBody = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).max(2048).describe('an http or https URL the server downloads'),
  type: kind,
  filename: z.string().min(1).max(255).optional().describe('the name recipients see (documents); default: the URL’s last segment'),
});

const e = (...codes: (400 | 401 | 403 | 404 | 409 | 413 | 415 | 422)[]) => Object.fromEntries(codes.map((c) => [c, errorSchema]));

export function mediaRoutes(root: Api, s: Services): void {
  void root.register(async (app) => {
    // Any body that is not JSON is the file, left a stream: a 100 MB document never sits in
    // memory, and its type is told from its bytes, not from this header.
    app.removeContentTypeParser('text/plain');
    app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    const api = app as unknown as Api;
    api.post('/api/v1/media', {
      schema: {
        tags: ['media'],
        summary: 'Upload media, or fetch it by URL',
        description:
          'Send the file as the request body with any Content-Type (image/jpeg, video/mp4, application/pdf, ' +
          'application/octet-stream, ...): the type is read from the bytes. Or send JSON {"url", "type", "filename"?} ' +
          'and the server downloads it. Images become a JPEG of at most 350 KB; videos must be MP4/3GP (H.264, AAC) ' +
          'of at most 16 MB; documents at most 100 MB. See docs/media.md.',
        security,
        consumes: ['application/octet-stream', 'image/jpeg', 'image/png', 'video/mp4', 'application/pdf', 'application/json'],
        querystring: z.strictObject({
          kind: kind.optional().describe('uploads: what to treat the file as (default: what its bytes are; anything else is a document)'),
          filename: z.string().min(1).max(255).optional().describe('uploads: the name recipients see'),
        }),
        body: z.any().describe('the file itself, or JSON {"url", "type", "filename"?}'),
        response: { 201: media, ...e(400, 401, 403, 413, 415, 422) },
      },
      handler: async (req, reply) => {
        const actor = actorOf(req);
        const ct = req.headers['content-type'];
        const isJson = /^application\/([a-z.+-]*\+)?json\b/i.test(ct ?? '');
        // A form would be stored as a "text file" holding its boundaries: refuse it with the reason.
        if (/^multipart\//i.test(ct ?? '')) {
          throw new AppError('UNSUPPORTED_MEDIA_TYPE', 415, 'send the file itself as the request body, not a multipart form', [
            { path: 'body', message: 'e.g. curl --data-binary @photo.jpg -H "content-type: image/jpeg"' },
          ]);
        }
        if (isJson) {
          if (req.query.kind !== undefined || req.query.filename !== undefined) {
            throw new AppError('VALIDATION_FAILED', 400, 'with a JSON body, give type and filename in the body', [
              { path: 'querystring', message: 'kind and filename are for uploads' },
            ]);
          }
          const parsed = fetchBody.safeParse(req.body);
          if (!parsed.success) {
            throw new AppError(
              'VALIDATION_FAILED',
              400,
              'the request does not match the schema',
              parsed.error.issues.map((i) => ({ path: ['body', ...i.path.map(String)].join('.'), code: i.code, message: i.message })),
            );
          }
          const view = await s.media.fromUrl(actor, parsed.data.url, parsed.data.type, parsed.data.filename);
          return reply.status(201).send(view);
        }
        const view = await s.media.upload(actor, {
          body: req.body as Readable,
          contentType: ct,
          fileName: req.query.filename,
          kind: req.query.kind,
        });
        return reply.status(201).send(view);
      },
    });
  });
  root.get('/api/v1/media', {
    schema: { tags: ['media'], summary: 'Your media, newest first', security, querystring: z.strictObject(pageQuery), response: { 200: page(media), ...e(400, 401, 403) } },
    handler: async (req) => pageOf(await s.media.list(actorOf(req), { after: cursorOf(req.query.cursor), limit: req.query.limit }), req.query.limit),
  });
  root.get('/api/v1/media/:id', {
    schema: { tags: ['media'], summary: 'One media file’s record', security, params: idParams, response: { 200: media, ...e(400, 401, 403, 404) } },
    handler: async (req) => s.media.get(actorOf(req), req.params.id),
  });
  root.get('/api/v1/media/:id/content', {
    schema: {
      tags: ['media'],
      summary: 'Download the stored file',
      description: 'The bytes as stored (for an image, the re-encoded JPEG), with its type and file name.',
      security,
      params: idParams,
      produces: ['application/octet-stream'],
      response: { 200: z.string().describe('the file'), ...e(400, 401, 403, 404) },
    },
    handler: async (req, reply) => {
      const c = await s.media.open(actorOf(req), req.params.id);
      // RFC 6266: an ASCII fallback, and the exact name percent-encoded.
      const ascii = c.fileName.replace(/[^\x20-\x7e]|["\\]/g, '_');
      void reply
        .type(c.mimeType)
        .header('content-length', String(c.bytes))
        .header('content-disposition', `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(c.fileName)}`)
        .header('x-content-type-options', 'nosniff');
      // A stream goes out as it is; the response schema above only documents the body.
      return reply.send(c.stream as unknown as string);
    },
  });
  root.delete('/api/v1/media/:id', {
    schema: {
      tags: ['media'],
      summary: 'Delete media',
      description: 'Refused (409 MEDIA_IN_USE) while a campaign that can still send, or a sequence step, uses it.',
      security,
      params: idParams,
      response: { 204: emptyReply, ...e(400, 401, 403, 404, 409) },
    },
    handler: async (req, reply) => {
      await s.media.delete(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });
}
