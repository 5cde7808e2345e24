/**
 * Encryption at rest for what must never sit in the database in clear: linked devices' WhatsApp
 * credentials and Signal keys, Cloud API tokens and app secrets.
 *
 * AES-256-GCM (node:crypto) with a fresh 96-bit nonce per value. Each value is bound to where it
 * belongs (the associated data, e.g. `auth:12:session:6012...`), so a value copied into another
 * device's row, or under another key id, does not decrypt. Sealed layout: version byte (1), nonce
 * (12 bytes), tag (16 bytes), ciphertext.
 *
 * The key comes from FLEETCAST_SECRET_KEY (32 bytes, base64 or hex) or, when that is unset, from
 * `secret.key` in the data directory, generated once with mode 0600. With a PostgreSQL server and
 * several machines every process must be given the same key: a key generated on one machine
 * cannot decrypt what another wrote.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const SECRET_KEY_BYTES = 32;
export const SECRET_KEY_FILE = 'secret.key';

export class SecretBoxError extends Error {
  readonly code = 'SECRET_UNREADABLE';
}

/** A 32-byte key written as 64 hex digits or as base64; null when it is neither. */
export function parseSecretKey(text: string): Buffer | null {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) {
    const b = Buffer.from(t, 'base64');
    if (b.length === SECRET_KEY_BYTES) return b;
  }
  return null;
}

export interface LoadedKey {
  key: Buffer;
  /** Where it came from: the environment, the data directory's file, or generated just now. */
  source: 'environment' | 'file' | 'generated';
  file?: string;
}

/**
 * The process's secret key: the configured one, else the data directory's, else a new one written
 * there (0600, never overwritten: `wx` fails if another process wrote it first, and that one wins).
 */
export function loadSecretKey(configured: Buffer | undefined, dataDir: string): LoadedKey {
  if (configured) return { key: configured, source: 'environment' };
  const file = join(dataDir, SECRET_KEY_FILE);
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    try {
      writeFileSync(file, randomBytes(SECRET_KEY_BYTES).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
      return { key: readKeyFile(file), source: 'generated', file };
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
  }
  return { key: readKeyFile(file), source: 'file', file };
}

function readKeyFile(file: string): Buffer {
  const key = parseSecretKey(readFileSync(file, 'utf8'));
  if (!key) throw new SecretBoxError(`${file} does not hold a 32-byte key (base64 or hex)`);
  return key;
}

export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== SECRET_KEY_BYTES) throw new SecretBoxError(`a secret key is ${SECRET_KEY_BYTES} bytes, not ${key.length}`);
  }

  seal(plain: Buffer | string, context: string): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(typeof plain === 'string' ? Buffer.from(plain) : plain), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), nonce, cipher.getAuthTag(), body]);
  }

  open(sealed: Uint8Array, context: string): Buffer {
    const b = Buffer.from(sealed);
    if (b.length < 1 + NONCE_BYTES + TAG_BYTES || b[0] !== VERSION) throw new SecretBoxError('not a sealed value');
    const decipher = createDecipheriv('aes-256-gcm', this.key, b.subarray(1, 1 + NONCE_BYTES));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(b.subarray(1 + NONCE_BYTES, 1 + NONCE_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(b.subarray(1 + NONCE_BYTES + TAG_BYTES)), decipher.final()]);
    } catch {
      throw new SecretBoxError(`cannot decrypt ${context}: wrong key, or the value was altered`);
    }
  }

  sealJson(value: unknown, context: string, replacer?: (key: string, value: unknown) => unknown): Buffer {
    return this.seal(JSON.stringify(value, replacer as ((this: unknown, key: string, value: unknown) => unknown) | undefined), context);
  }

  openJson<T>(sealed: Uint8Array, context: string, reviver?: (key: string, value: unknown) => unknown): T {
    return JSON.parse(this.open(sealed, context).toString('utf8'), reviver as ((this: unknown, key: string, value: unknown) => unknown) | undefined) as T;
  }
}
