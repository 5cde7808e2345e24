/**
 * The one error type services throw for anything a caller did wrong or asked for in vain. Its code
 * is stable (clients and tests match on it); its status is what HTTP answers with; details say
 * which field or row, never how the server works inside.
 */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 503;

export interface ErrorDetail {
  path?: string;
  code?: string;
  message: string;
  [key: string]: unknown;
}

export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: ErrorStatus,
    message: string,
    readonly details: ErrorDetail[] = [],
    /** Seconds a client should wait before trying again (429). */
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/** A resource that does not exist or belongs to another tenant: the two are never told apart. */
export function notFound(what: string): AppError {
  return new AppError(`${what.toUpperCase().replace(/[^A-Z]+/g, '_')}_NOT_FOUND`, 404, `${what} not found`);
}

export function conflict(code: string, message: string, details: ErrorDetail[] = []): AppError {
  return new AppError(code, 409, message, details);
}

export function unprocessable(code: string, message: string, details: ErrorDetail[] = []): AppError {
  return new AppError(code, 422, message, details);
}

export function forbidden(code: string, message: string): AppError {
  return new AppError(code, 403, message);
}
