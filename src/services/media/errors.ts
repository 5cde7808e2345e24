/**
 * The errors media answers with. An unsupported type is the request's fault when the file was
 * sent (415), and a property of a remote resource when it was fetched by URL (422).
 */
import type { MediaKind } from '../../store/sql/media.js';
import { AppError, type ErrorDetail } from '../errors.js';
import { sizeText } from './limits.js';

/** Where the bytes came from: decides a status and which field the details point at. */
export type MediaOrigin = { via: 'upload' } | { via: 'url'; url: string };

const pathOf = (o: MediaOrigin): string => (o.via === 'upload' ? 'body' : 'url');
const urlOf = (o: MediaOrigin): Record<string, string> => (o.via === 'url' ? { url: o.url } : {});

export function tooLarge(o: MediaOrigin, kind: MediaKind | 'file', limit: number, message?: string): AppError {
  const what = kind === 'file' ? 'a file' : `${kind === 'image' ? 'an' : 'a'} ${kind}`;
  return new AppError('MEDIA_TOO_LARGE', 413, message ?? `the file is larger than the limit for ${what} (${sizeText(limit)})`, [
    { path: pathOf(o), message: `at most ${limit} bytes`, limit_bytes: limit, ...urlOf(o) },
  ]);
}

export function unsupported(o: MediaOrigin, message: string, detected?: string): AppError {
  return new AppError('MEDIA_UNSUPPORTED', o.via === 'upload' ? 415 : 422, message, [
    { path: pathOf(o), message, ...(detected ? { detected } : {}), ...urlOf(o) },
  ]);
}

export function unreadable(o: MediaOrigin, message: string): AppError {
  return new AppError('MEDIA_UNREADABLE', 422, message, [{ path: pathOf(o), message, ...urlOf(o) }]);
}

/** Why a fetch failed, as a stable code in details[0].code. */
export type FetchFailure =
  | 'INVALID_URL'
  | 'DNS_FAILED'
  | 'CONNECTION_REFUSED'
  | 'CONNECTION_FAILED'
  | 'TLS_FAILED'
  | 'TIMEOUT'
  | 'HTTP_STATUS'
  | 'TOO_MANY_REDIRECTS'
  | 'BAD_REDIRECT';

export function fetchFailed(url: string, code: FetchFailure, message: string, extra: Partial<ErrorDetail> = {}): AppError {
  return new AppError('MEDIA_FETCH_FAILED', 422, `could not fetch ${url}: ${message}`, [{ path: 'url', code, message, url, ...extra }]);
}

export function addressForbidden(url: string, address: string): AppError {
  const message = `${address} is a private, loopback or otherwise internal address`;
  return new AppError('MEDIA_ADDRESS_FORBIDDEN', 422, `refused to fetch ${url}: ${message}`, [{ path: 'url', code: 'ADDRESS_FORBIDDEN', message, url, address }]);
}

export function mediaNotFound(id?: number): AppError {
  return new AppError('MEDIA_NOT_FOUND', 404, 'media not found', id === undefined ? [] : [{ path: 'media_id', message: `no media ${id}` }]);
}
