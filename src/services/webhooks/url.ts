/**
 * Webhook URLs: http or https, no credentials in them, and (unless FLEETCAST_WEBHOOK_ALLOW_PRIVATE)
 * never a private, loopback or link-local address, checked when a subscription is saved and again
 * on every connection (media/fetch.ts's guarded lookup), so a tenant cannot aim the server at its
 * own network.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { unprocessable } from '../errors.js';
import { isInternalAddress } from '../media/fetch.js';

export async function checkWebhookUrl(raw: string, allowPrivate: boolean): Promise<string> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw unprocessable('WEBHOOK_URL_INVALID', 'the URL is not valid', [{ path: 'url', message: 'not a URL' }]);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw unprocessable('WEBHOOK_URL_INVALID', 'webhook URLs are http or https', [{ path: 'url', message: `${u.protocol} is not accepted` }]);
  }
  if (u.username || u.password) {
    throw unprocessable('WEBHOOK_URL_INVALID', 'webhook URLs carry no credentials: the signature authenticates the call', [{ path: 'url', message: 'credentials in the URL' }]);
  }
  if (allowPrivate) return u.toString();
  const host = u.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  if (isIP(host) !== 0) addresses = [host];
  else {
    try {
      addresses = (await lookup(host, { all: true })).map((a) => a.address);
    } catch {
      throw unprocessable('WEBHOOK_URL_UNRESOLVED', `the host name ${host} does not resolve`, [{ path: 'url', message: 'unknown host' }]);
    }
  }
  const bad = addresses.find((a) => isInternalAddress(a));
  if (bad !== undefined) {
    throw unprocessable('WEBHOOK_URL_FORBIDDEN', `${host} is a private, loopback or link-local address (${bad}); webhooks go to public addresses only`, [
      { path: 'url', message: 'internal address' },
    ]);
  }
  return u.toString();
}
