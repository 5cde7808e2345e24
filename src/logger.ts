import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * What a log line must never carry, wherever it appears in the logged object: credentials
 * (passwords, tokens, cookies, CSRF tokens, signing secrets) and message bodies. Fastify's request
 * and response serializers log neither headers nor bodies; these paths catch anything passed to a
 * log call by hand (`log.info({ req })`, an error holding a request body).
 */
export const REDACT_PATHS = [
  'password',
  'new_password',
  'current_password',
  'token',
  'secret',
  'csrf_token',
  'authorization',
  'cookie',
  'body',
  'text',
  '*.password',
  '*.new_password',
  '*.current_password',
  '*.token',
  '*.secret',
  '*.csrf_token',
  '*.authorization',
  '*.cookie',
  '*.body',
  '*.text',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-csrf-token"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-csrf-token"]',
  'headers["set-cookie"]',
];

/** JSON lines on stderr (or `destination`, in tests). */
export function createLogger(level: string, name = 'fleetcast', destination?: DestinationStream): Logger {
  return pino({ name, level, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination ?? pino.destination(2));
}

export type { Logger };
