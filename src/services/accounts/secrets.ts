/**
 * Bearer secrets (session cookies, API tokens): 256 random bits, stored only as SHA-256. A fast hash
 * is enough here because the secret itself has full entropy; it is passwords that need scrypt.
 */
import { createHash, randomBytes } from 'node:crypto';

export function newSecret(prefix = ''): string {
  return prefix + randomBytes(32).toString('base64url');
}

export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
