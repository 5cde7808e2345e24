/**
 * CSV import and export of leads. The upload is the request body itself (Content-Type text/csv),
 * streamed to disk and imported by a job whose progress GET shows; the export streams as it reads.
 */
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { exportLeads } from '../../services/leads/export.js';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { cursorOf, id, idParams, nullableTimestamp, page, pageOf, pageQuery, security, stringList, tag, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';
import { filterOf, leadFilterQuery } from './leads.js';

const importView = z
  .object({
    id: z.number().int(),
    status: z.enum(['queued', 'running', 'completed', 'failed']),
    file_name: z.string().nullable(),
    file_bytes: z.number().int(),
    bytes_read: z.number().int(),
    on_duplicate: z.enum(['skip', 'update']),
    rows_total: z.number().int(),
    inserted: z.number().int(),
    updated: z.number().int(),
    skipped: z.number().int(),
    failed: z.number().int(),
    error_code: z.string().nullable(),
    error: z.string().nullable(),
    created_at: timestamp,
    started_at: nullableTimestamp,
    finished_at: nullableTimestamp,
  })
  .meta({ id: 'LeadImport' });

const importError = z
  .object({ line: z.number().int(), code: z.string(), message: z.string(), excerpt: z.string().nullable() })
  .meta({ id: 'LeadImportError' });

const e = (...codes: (400 | 401 | 403 | 404 | 413 | 415 | 422)[]) => Object.fromEntries(codes.map((c) => [c, errorSchema]));

const CSV_TYPES = ['text/csv', 'application/csv', 'text/plain', 'application/vnd.ms-excel', 'application/octet-stream'];

export function importRoutes(root: Api, s: Services): void {
  void root.register(async (app) => {
    // The body stays a stream: a million-row file never sits in memory.
    app.addContentTypeParser(CSV_TYPES, (_req, payload, done) => done(null, payload));
    const api = app as unknown as Api;
    api.post('/api/v1/leads/imports', {
      schema: {
        tags: ['leads'],
        summary: 'Import leads from a CSV file',
        description:
          'Send the file as the request body (Content-Type: text/csv). Answers 202 with the job; follow its ' +
          'progress with GET /api/v1/leads/imports/{id} and read every refused row at .../errors.',
        security,
        consumes: ['text/csv'],
        querystring: z.strictObject({
          on_duplicate: z.enum(['skip', 'update']).default('skip').describe('a phone you already have: leave it (skip) or overwrite the fields in the file (update)'),
          device_id: id.optional().describe('give every lead to this device (default: the shared pool)'),
          status: tag.optional().describe('status for rows without one (default prospect)'),
          niches: stringList.optional().describe('added to every row'),
          triggers: stringList.optional().describe('added to every row'),
          source: z.string().max(200).optional(),
          encoding: z.enum(['utf8', 'latin1', 'utf16le']).optional().describe('default utf8 (with or without BOM); a UTF-16 BOM is detected'),
          file_name: z.string().max(255).optional(),
        }),
        body: z.any().describe('the CSV file'),
        response: { 202: importView, ...e(400, 401, 403, 404, 413, 415, 422) },
      },
      handler: async (req, reply) => {
        const q = req.query;
        const view = await s.imports.start(actorOf(req), req.body as Readable, {
          onDuplicate: q.on_duplicate,
          deviceId: q.device_id,
          status: q.status,
          niches: q.niches,
          triggers: q.triggers,
          source: q.source,
          encoding: q.encoding,
          fileName: q.file_name,
        });
        return reply.status(202).send(view);
      },
    });
  });
  root.get('/api/v1/leads/imports', {
    schema: { tags: ['leads'], summary: 'Your lead imports, newest first', security, querystring: z.strictObject(pageQuery), response: { 200: page(importView), ...e(400, 401) } },
    handler: async (req) => pageOf(await s.imports.list(actorOf(req), { after: cursorOf(req.query.cursor), limit: req.query.limit }), req.query.limit),
  });
  root.get('/api/v1/leads/imports/:id', {
    schema: { tags: ['leads'], summary: 'A lead import and its progress', security, params: idParams, response: { 200: importView, ...e(400, 401, 404) } },
    handler: async (req) => s.imports.get(actorOf(req), req.params.id),
  });
  root.get('/api/v1/leads/imports/:id/errors', {
    schema: {
      tags: ['leads'],
      summary: 'The rows an import refused, by line',
      security,
      params: idParams,
      querystring: z.strictObject({ after_line: z.coerce.number().int().min(0).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      response: { 200: z.object({ data: z.array(importError), next_after_line: z.number().int().nullable() }), ...e(400, 401, 404) },
    },
    handler: async (req) => {
      const rows = await s.imports.errors(actorOf(req), req.params.id, { afterLine: req.query.after_line, limit: req.query.limit });
      return { data: rows, next_after_line: rows.length === req.query.limit ? rows[rows.length - 1]!.line : null };
    },
  });
  root.get('/api/v1/leads/export', {
    schema: {
      tags: ['leads'],
      summary: 'Export leads as CSV',
      description: 'Streams every lead the filter selects (same filters as GET /api/v1/leads).',
      security,
      produces: ['text/csv'],
      querystring: z.strictObject(leadFilterQuery),
      response: { 200: z.string().describe('CSV'), ...e(400, 401) },
    },
    handler: async (req, reply) => {
      const stream = exportLeads(s.db, actorOf(req), filterOf(req.query));
      // A stream goes out as it is; the response schema above only documents the body.
      void reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="leads.csv"');
      return reply.send(stream as unknown as string);
    },
  });
}
