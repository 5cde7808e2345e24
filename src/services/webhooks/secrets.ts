/**
 * Webhook signing secrets. The server needs each secret itself to sign with (a hash would not do),
 * so it is stored sealed with AES-256-GCM under the deployment's secret key (FLEETCAST_SECRET_KEY,
 * or the key generated into the data directory: see services/secrets/secret-box.ts). A secret is
 * shown once, at creation or rotation, and never logged.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SecretBox } from '../secrets/secret-box.js';

export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

/**
 * Seals signing secrets with the deployment's secret box (the key that also seals linked devices'
 * credentials), as text for the subscription row. The associated data binds a value to its use.
 */
export class WebhookSecrets {
  constructor(private readonly box: SecretBox) {}

  seal(secret: string): string {
    return `v1:${this.box.seal(secret, CONTEXT).toString('base64')}`;
  }

  open(stored: string): string {
    if (!stored.startsWith('v1:')) throw new Error('unknown secret format');
    return this.box.open(Buffer.from(stored.slice(3), 'base64'), CONTEXT).toString('utf8');
  }
}

const CONTEXT = 'webhook-signing-secret';

/** The hex HMAC-SHA256 of "<t>.<body>". */
export function signature(secret: string, t: number, body: string): string {
  return createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
}

/** `X-Fleetcast-Signature: t=<unix seconds>,v1=<hex>` */
export function signatureHeader(secret: string, t: number, body: string): string {
  return `t=${t},v1=${signature(secret, t, body)}`;
}

/**
 * What a receiver does (docs/webhooks.md): the header's t is recent and one of its v1 values is
 * the HMAC of "<t>.<raw body>". Used by the tests as a receiver would use it.
 */
export function verifySignature(secret: string, header: string, body: string, nowS: number, toleranceS = 300): boolean {
  const parts = header.split(',').map((p) => p.trim().split('='));
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t) || Math.abs(nowS - t) > toleranceS) return false;
  const want = Buffer.from(signature(secret, t, body), 'hex');
  return parts
    .filter(([k]) => k === 'v1')
    .some(([, v]) => {
      const got = Buffer.from(v ?? '', 'hex');
      return got.length === want.length && timingSafeEqual(got, want);
    });
}
