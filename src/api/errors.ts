/**
 * One error shape for every answer that is not a success:
 *   {"error": {"code": "STABLE_CODE", "message": "...", "details": [...]}}
 * Bad input of any kind (wrong types, unknown fields, broken JSON, huge bodies, unknown media
 * types) is a 4xx with a code; only a fault of ours is a 500, and it never carries a stack trace.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AppError, type ErrorDetail } from '../services/errors.js';

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.array(z.object({ path: z.string().optional(), code: z.string().optional(), message: z.string() }).passthrough()),
    }),
  })
  .meta({ id: 'Error' });

export function sendError(reply: FastifyReply, status: number, code: string, message: string, details: ErrorDetail[] = []): FastifyReply {
  return reply.status(status).type('application/json; charset=utf-8').send({ error: { code, message, details } });
}

interface ValidationIssue {
  keyword?: string;
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

function validationDetails(err: { validation: ValidationIssue[]; validationContext?: string }): ErrorDetail[] {
  const where = err.validationContext ?? 'body';
  return err.validation.map((v) => {
    const path = (v.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
    const keys = Array.isArray(v.params?.keys) ? (v.params.keys as unknown[]).map(String) : [];
    return {
      path: path ? `${where}.${path}` : where,
      ...(v.keyword ? { code: v.keyword } : {}),
      message: v.message ?? 'invalid',
      ...(keys.length > 0 ? { keys } : {}),
    };
  });
}

const byFastifyCode: Record<string, [number, string, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'UNSUPPORTED_MEDIA_TYPE', 'this content type is not accepted here'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'BODY_TOO_LARGE', 'the request body is too large'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'INVALID_JSON', 'the request body is empty but the content type says JSON'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'INVALID_JSON', 'the request body is not valid JSON'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'BAD_REQUEST', 'the content length does not match the body'],
  FST_ERR_CTP_INVALID_TYPE: [415, 'UNSUPPORTED_MEDIA_TYPE', 'the content type is not valid'],
};

/**
 * `notFound.first` may answer an unknown route before the JSON 404 (the web app's index.html for
 * a browser's deep link); it is filled in once the web app is installed.
 */
export interface NotFoundHook {
  first?: ((req: FastifyRequest, reply: FastifyReply) => boolean) | undefined;
}

export function installErrorHandling(app: FastifyInstance, notFound: NotFoundHook = {}): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof AppError) {
      if (err.retryAfterS !== undefined) void reply.header('retry-after', String(err.retryAfterS));
      return sendError(reply, err.status, err.code, err.message, err.details);
    }
    if (hasZodFastifySchemaValidationErrors(err)) {
      return sendError(reply, 400, 'VALIDATION_FAILED', 'the request does not match the schema', validationDetails(err as unknown as { validation: ValidationIssue[]; validationContext?: string }));
    }
    if (isResponseSerializationError(err)) {
      req.log.error({ err: { message: err.message, issues: err.cause?.issues }, url: req.url }, 'response does not match its schema');
      return sendError(reply, 500, 'INTERNAL', 'internal error');
    }
    const known = err.code ? byFastifyCode[err.code] : undefined;
    if (known) return sendError(reply, known[0], known[1], known[2]);
    if (err instanceof SyntaxError || (err as { type?: string }).type === 'entity.parse.failed') {
      return sendError(reply, 400, 'INVALID_JSON', 'the request body is not valid JSON');
    }
    // A PostgreSQL unique violation that no service anticipated is still a conflict, not a crash.
    if ((err as { code?: string }).code === '23505') return sendError(reply, 409, 'CONFLICT', 'this would duplicate an existing record');
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return sendError(reply, err.statusCode, err.statusCode === 429 ? 'RATE_LIMITED' : 'BAD_REQUEST', err.message);
    }
    req.log.error({ err }, 'request failed');
    return sendError(reply, 500, 'INTERNAL', 'internal error');
  });
  app.setNotFoundHandler((req, reply) => (notFound.first?.(req, reply) ? reply : sendError(reply, 404, 'ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)));
}
