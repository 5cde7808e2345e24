/**
 * Downloads media by URL for a tenant. Every tenant can make this server fetch a URL of its
 * choosing, so, unless told otherwise (`allowPrivateAddresses`, for tests and single-tenant
 * installs), it refuses to reach private, loopback, link-local and other internal addresses: a
 * media URL must not become a way to read the server's own network (cloud metadata at
 * 169.254.169.254, a database on 10.x). The check runs on the address each connection actually
 * uses (a DNS answer that changes between a check and the connection gains nothing), and again on
 * every redirect.
 *
 * Only http and https; at most FETCH_MAX_REDIRECTS redirects; one deadline for the whole transfer,
 * body included; a declared Content-Length over the limit is refused before the body is read, and
 * the reader of the body stops it as soon as it passes the limit (see store.ts).
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.js';
import { addressForbidden, fetchFailed, tooLarge } from './errors.js';
import type { MediaKind } from '../../store/sql/media.js';
import { FETCH_MAX_REDIRECTS } from './limits.js';

const internal = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  internal.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['::', 96], // IPv4-compatible (deprecated)
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  internal.addSubnet(net, prefix, 'ipv6');
}

/** The eight 16-bit groups of an IPv6 address (an embedded dotted IPv4 tail included). */
function ipv6Groups(address: string): number[] | null {
  let a = address.split('%')[0]!.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const parts = v4[1]!.split('.').map(Number);
    a = a.slice(0, -v4[1]!.length) + `${((parts[0]! << 8) | parts[1]!).toString(16)}:${((parts[2]! << 8) | parts[3]!).toString(16)}`;
  }
  const [left, right] = a.split('::') as [string, string | undefined];
  const l = left ? left.split(':') : [];
  const r = right === undefined ? [] : right ? right.split(':') : [];
  const missing = 8 - l.length - r.length;
  if (right === undefined ? l.length !== 8 : missing < 0) return null;
  return [...l, ...Array<string>(right === undefined ? 0 : missing).fill('0'), ...r].map((g) => parseInt(g, 16));
}

/** Whether an address is internal; an IPv4 address inside IPv6 (mapped, NAT64) is judged as IPv4. */
export function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return internal.check(address, 'ipv4');
  if (family !== 6) return true;
  const g = ipv6Groups(address);
  if (!g) return true;
  const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
  const nat64 = g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0);
  if (mapped || nat64) return internal.check(`${g[6]! >> 8}.${g[6]! & 0xff}.${g[7]! >> 8}.${g[7]! & 0xff}`, 'ipv4');
  return internal.check(address, 'ipv6');
}

/**
 * A DNS lookup for http(s).request that refuses (error code EADDRFORBIDDEN, `onRefused` told the
 * address) a host name resolving to any internal address, unless `allowPrivate`. It runs for the
 * connection itself, so a DNS answer that changes after an earlier check gains nothing.
 */
export function guardedLookup(allowPrivate: boolean, onRefused: (address: string) => void = () => undefined): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 4);
      const bad = allowPrivate ? undefined : addresses.find((a) => isInternalAddress(a.address));
      if (bad) {
        onRefused(bad.address);
        const e: NodeJS.ErrnoException = new Error(`${hostname} resolves to an internal address`);
        e.code = 'EADDRFORBIDDEN';
        return callback(e, '', 4);
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      return callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}

export interface FetchOptions {
  /** The most bytes accepted: a larger Content-Length is refused before reading. */
  maxBytes: number;
  /** For the size error's message. */
  kind: MediaKind;
  /** For the whole transfer: connections, redirects and body. */
  timeoutMs: number;
  allowPrivateAddresses: boolean;
}

export interface FetchedBody {
  body: Readable;
  /** Where the body came from after redirects. */
  finalUrl: string;
  contentType: string | undefined;
  /** Clears the deadline; the body has been read whole or abandoned. */
  close(): void;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** A network error as the reason a fetch failed. */
function networkError(url: string, err: NodeJS.ErrnoException): AppError {
  const code = err.code ?? '';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL' || code === 'EAI_NODATA') {
    return fetchFailed(url, 'DNS_FAILED', `the host name ${new URL(url).hostname} does not resolve (${code})`);
  }
  if (code === 'ECONNREFUSED') return fetchFailed(url, 'CONNECTION_REFUSED', 'the connection was refused');
  if (/CERT|SSL|TLS|SELF_SIGNED/.test(code) || /certificate|ssl|tls/i.test(err.message)) {
    return fetchFailed(url, 'TLS_FAILED', `the TLS connection failed (${code || err.message})`);
  }
  return fetchFailed(url, 'CONNECTION_FAILED', `the connection failed (${code || err.message})`);
}

function parseUrl(raw: string, original: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw fetchFailed(original, 'INVALID_URL', `"${raw.slice(0, 200)}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw fetchFailed(original, 'INVALID_URL', `only http and https URLs are fetched, not ${u.protocol}`);
  if (u.username || u.password) throw fetchFailed(original, 'INVALID_URL', 'URLs with credentials are not fetched');
  return u;
}

/**
 * Opens `url` and follows redirects; answers with the body of the final 2xx response, not yet
 * read. Fails with MEDIA_FETCH_FAILED (the reason in details[0].code), MEDIA_ADDRESS_FORBIDDEN or
 * MEDIA_TOO_LARGE.
 */
export function openUrl(url: string, o: FetchOptions): Promise<FetchedBody> {
  return new Promise<FetchedBody>((resolve, reject) => {
    let settled = false;
    let current: { req: http.ClientRequest; res?: http.IncomingMessage } | null = null;
    const timeout = fetchFailed(url, 'TIMEOUT', `no complete answer within ${o.timeoutMs} ms`);
    const timer = setTimeout(() => {
      // Destroying with the error makes whoever reads (this promise, or the body's reader) see it.
      if (current?.res) current.res.destroy(timeout);
      else current?.req.destroy(timeout);
    }, o.timeoutMs);
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      current?.req.destroy();
      reject(err);
    };

    const hop = (target: string, redirects: number) => {
      let u: URL;
      try {
        u = parseUrl(target, url);
      } catch (err) {
        fail(err);
        return;
      }
      const host = u.hostname.replace(/^\[|\]$/g, '');
      if (!o.allowPrivateAddresses && isIP(host) !== 0 && isInternalAddress(host)) {
        fail(addressForbidden(url, host));
        return;
      }
      let refused: string | null = null;
      // Used for host names; an IP literal is connected to directly (and checked above).
      const lookup = guardedLookup(o.allowPrivateAddresses, (address) => {
        refused = address;
      });
      const client = u.protocol === 'https:' ? https : http;
      const req = client.request(u, {
        method: 'GET',
        agent: false,
        lookup,
        headers: { 'user-agent': 'Fleetcast-media/1', accept: '*/*', 'accept-encoding': 'identity' },
      });
      current = { req };
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof AppError) fail(err);
        else if (refused !== null) fail(addressForbidden(url, refused));
        else fail(networkError(target, err));
      });
      req.on('response', (res) => {
        current = { req, res };
        const status = res.statusCode ?? 0;
        if (REDIRECTS.has(status)) {
          res.resume();
          const location = res.headers.location;
          if (!location) return fail(fetchFailed(url, 'BAD_REDIRECT', `HTTP ${status} without a Location header`, { status }));
          if (redirects >= FETCH_MAX_REDIRECTS) {
            return fail(fetchFailed(url, 'TOO_MANY_REDIRECTS', `more than ${FETCH_MAX_REDIRECTS} redirects (a loop?)`, { redirects: redirects + 1 }));
          }
          let next: string;
          try {
            next = new URL(location, u).toString();
          } catch {
            return fail(fetchFailed(url, 'BAD_REDIRECT', `HTTP ${status} to an invalid Location`, { status }));
          }
          req.destroy();
          return hop(next, redirects + 1);
        }
        if (status < 200 || status >= 300) {
          res.resume();
          const via = target === url ? '' : ` (redirected to ${target})`;
          return fail(fetchFailed(url, 'HTTP_STATUS', `the server answered HTTP ${status}${via}`, { status }));
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > o.maxBytes) {
          return fail(tooLarge({ via: 'url', url }, o.kind, o.maxBytes, `the file is ${declared} bytes, more than the limit for ${o.kind === 'image' ? 'an' : 'a'} ${o.kind} (${o.maxBytes} bytes)`));
        }
        res.once('close', () => clearTimeout(timer));
        settled = true;
        resolve({
          body: res,
          finalUrl: target,
          contentType: res.headers['content-type'],
          close: () => clearTimeout(timer),
        });
      });
      req.end();
    };
    hop(url, 0);
  });
}
