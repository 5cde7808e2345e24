/**
 * Password hashing with scrypt (memory-hard, in node:crypto). The stored string carries its own
 * parameters, so raising the cost later leaves old hashes verifiable. Default cost: N = 2^15, r = 8
 * (32 MiB and about 100 ms per hash on the development machine), which is what OWASP asks of scrypt.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const KEY_LENGTH = 32;

function derive(password: string, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, KEY_LENGTH, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export class PasswordHasher {
  private readonly n: number;
  private dummy: Promise<string> | undefined;

  /** @param costLog2 log2 of scrypt's N; 15 in production, lower only to keep tests quick. */
  constructor(costLog2 = 15, private readonly r = 8, private readonly p = 1) {
    this.n = 2 ** costLog2;
  }

  private options(n: number, r: number, p: number): ScryptOptions {
    return { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 };
  }

  async hash(password: string): Promise<string> {
    const salt = randomBytes(16);
    const key = await derive(password, salt, this.options(this.n, this.r, this.p));
    return `scrypt$${this.n}$${this.r}$${this.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
  }

  async verify(password: string, stored: string | null): Promise<boolean> {
    // An account without a password (or none at all) still costs one hash, so timing tells nothing.
    if (stored === null) {
      this.dummy ??= this.hash('no account has this password');
      await this.verify(password, await this.dummy);
      return false;
    }
    const parts = stored.split('$');
    if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
    const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
    const salt = Buffer.from(parts[4]!, 'base64url');
    const expected = Buffer.from(parts[5]!, 'base64url');
    const key = await derive(password, salt, this.options(n, r, p));
    return key.length === expected.length && timingSafeEqual(key, expected);
  }
}

/** A password nobody will guess, for the first admin when none was configured. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
