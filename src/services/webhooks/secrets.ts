/**
 * Webhook signing secrets. The server needs each secret itself to sign with (a hash would not do),
 * so with FLEETCAST_SECRET_KEY set it is stored sealed with AES-256-GCM under that key; without
 * one it is stored as it is, marked `plain:` (a key set later seals secrets created or rotated from
 * then on, and still opens the old ones). Either way a secret is shown once, at creation or
 * rotation, and never logged.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

export class SecretBox {
  constructor(private readonly key: Buffer | null) {
    if (key !== null && key.length !== 32) throw new Error('the secret key must be 32 bytes');
  }

  get sealing(): boolean {
    return this.key !== null;
  }

  seal(secret: string): string {
    if (!this.key) return `plain:${secret}`;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
    return `v1:${Buffer.concat([iv, c.getAuthTag(), body]).toString('base64')}`;
  }

  open(stored: string): string {
    if (stored.startsWith('plain:')) return stored.slice('plain:'.length);
    if (!stored.startsWith('v1:')) throw new Error('unknown secret format');
    if (!this.key) throw new Error('this secret is sealed: FLEETCAST_SECRET_KEY is needed to open it');
    const raw = Buffer.from(stored.slice(3), 'base64');
    const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8');
  }
}

/** The key FLEETCAST_SECRET_KEY names: 32 bytes as 64 hex digits or base64. */
export function parseSecretKey(value: string): Buffer | null {
  const v = value.trim();
  const b = /^[0-9a-fA-F]{64}$/.test(v) ? Buffer.from(v, 'hex') : Buffer.from(v, 'base64');
  return b.length === 32 ? b : null;
}

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
