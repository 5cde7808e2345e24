/**
 * Logging in and out, and turning a cookie or a bearer token into an Actor.
 *
 * Throttling: failures count per account (by e-mail, whether or not it exists, so the answer
 * tells nothing) and per client address, in the database so every process shares the counters.
 * A key at its limit is locked for the lock period; a locked login is refused before the password
 * is checked, so a locked account cannot be probed. A success clears the account's counter only.
 */
import type { Clock } from '../../engine/clock.js';
import type { Db } from '../../store/db.js';
import {
  actorBySession,
  actorByToken,
  deleteSession,
  deleteUserSessions,
  insertSession,
  touchSession,
  touchToken,
  type ActorRow,
} from '../../store/sql/sessions.js';
import { clearFailures, lockedUntil, recordFailures } from '../../store/sql/throttle.js';
import { findLoginUser, getPasswordHash, getUser, setPasswordHash } from '../../store/sql/users.js';
import type { Actor } from '../actor.js';
import { AppError } from '../errors.js';
import type { PasswordHasher } from './passwords.js';
import { newSecret, secretHash } from './secrets.js';
import { userView, type UserView } from './views.js';

export interface AuthSettings {
  sessionTtlMs: number;
  /** Failures per account in one window before it is locked. */
  accountLimit: number;
  /** Failures per client address in one window before it is locked. */
  ipLimit: number;
  windowMs: number;
  lockMs: number;
}

export const defaultAuthSettings: AuthSettings = {
  sessionTtlMs: 7 * 24 * 3600_000,
  accountLimit: 5,
  ipLimit: 30,
  windowMs: 15 * 60_000,
  lockMs: 15 * 60_000,
};

/** How a request proved who it is. */
export interface Credential {
  kind: 'session' | 'token';
  id: number;
  csrfToken: string | null;
}

export interface LoginResult {
  user: UserView;
  sessionSecret: string;
  csrfToken: string;
  expiresAt: Date;
}

/** Tells every process that credentials or scopes changed, so cached actors are dropped. */
export const AUTH_CHANNEL = 'fleetcast_auth';

// A resolved credential is reused for this long at most; any change to accounts, tokens or device
// assignments drops every cached entry at once (in this process directly, in others by NOTIFY), so
// the time-to-live only bounds how long a missed notification could matter. Resolving costs two
// to three statements per request, a third of a filtered listing's time on PGlite.
const CACHE_TTL_MS = 30_000;
const CACHE_MAX = 10_000;

// Writing last-used times at most this often keeps a token that serves thousands of requests a
// second from turning every read into a write.
const TOUCH_EVERY_MS = 60_000;

export const PASSWORD_MIN = 10;
export const PASSWORD_MAX = 256;

interface Cached {
  found: { actor: Actor; credential: Credential };
  until: number;
}

export class AuthService {
  private readonly cache = new Map<string, Cached>();
  private listening: Promise<unknown> | undefined;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly passwords: PasswordHasher,
    readonly settings: AuthSettings = defaultAuthSettings,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  async login(email: string, password: string, ip: string, userAgent: string | null): Promise<LoginResult> {
    const now = this.now();
    const accountKey = `account:${email.trim().toLowerCase()}`;
    const ipKey = `ip:${ip}`;
    const locked = await lockedUntil(this.db, [accountKey, ipKey], now);
    if (locked) {
      const retry = Math.max(1, Math.ceil((locked.getTime() - now.getTime()) / 1000));
      throw new AppError('LOGIN_THROTTLED', 429, 'too many failed logins: try again later', [], retry);
    }
    const user = await findLoginUser(this.db, email.trim());
    const ok = await this.passwords.verify(password, user?.password_hash ?? null);
    if (!user || !ok || user.disabled) {
      await recordFailures(
        this.db,
        [
          { key: accountKey, limit: this.settings.accountLimit },
          { key: ipKey, limit: this.settings.ipLimit },
        ],
        now,
        this.settings.windowMs,
        this.settings.lockMs,
      );
      // A disabled account with the right password is told so; anyone else learns nothing.
      if (user && ok && user.disabled) throw new AppError('ACCOUNT_DISABLED', 403, 'this account is disabled');
      throw new AppError('INVALID_CREDENTIALS', 401, 'wrong e-mail or password');
    }
    await clearFailures(this.db, accountKey);
    const sessionSecret = newSecret();
    const csrfToken = newSecret();
    const expiresAt = new Date(now.getTime() + this.settings.sessionTtlMs);
    await insertSession(this.db, { userId: user.id, secretHash: secretHash(sessionSecret), csrfToken, expiresAt, ip, userAgent }, now);
    const row = await getUser(this.db, user.id);
    return { user: userView(row!), sessionSecret, csrfToken, expiresAt };
  }

  async logout(credential: Credential): Promise<void> {
    if (credential.kind === 'session') {
      await deleteSession(this.db, credential.id);
      await this.changed();
    }
  }

  /** Drops every cached credential here and in every other process. */
  async changed(): Promise<void> {
    this.cache.clear();
    await this.db.notify(AUTH_CHANNEL, '{}');
  }

  private async cached(key: string, now: number): Promise<Cached | undefined> {
    this.listening ??= this.db.listen(AUTH_CHANNEL, () => this.cache.clear()).catch(() => undefined);
    await this.listening;
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit;
    if (hit) this.cache.delete(key);
    return undefined;
  }

  private remember(key: string, found: { actor: Actor; credential: Credential }, now: number, expiresAt: Date | null): void {
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(key, { found, until: Math.min(now + CACHE_TTL_MS, expiresAt?.getTime() ?? Infinity) });
  }

  async bySession(secret: string): Promise<{ actor: Actor; credential: Credential } | null> {
    const now = this.now();
    const key = `s:${secretHash(secret)}`;
    const hit = await this.cached(key, now.getTime());
    if (hit) return hit.found;
    const row = await actorBySession(this.db, key.slice(2), now);
    if (!row) return null;
    if (!row.last_seen_at || now.getTime() - row.last_seen_at.getTime() > TOUCH_EVERY_MS) await touchSession(this.db, row.credential_id, now);
    const found = { actor: actorOf(row), credential: { kind: 'session' as const, id: row.credential_id, csrfToken: row.csrf_token } };
    this.remember(key, found, now.getTime(), row.expires_at);
    return found;
  }

  async byToken(secret: string): Promise<{ actor: Actor; credential: Credential } | null> {
    const now = this.now();
    const key = `t:${secretHash(secret)}`;
    const hit = await this.cached(key, now.getTime());
    if (hit) return hit.found;
    const row = await actorByToken(this.db, key.slice(2), now);
    if (!row) return null;
    if (!row.last_seen_at || now.getTime() - row.last_seen_at.getTime() > TOUCH_EVERY_MS) await touchToken(this.db, row.credential_id, now);
    const found = { actor: actorOf(row), credential: { kind: 'token' as const, id: row.credential_id, csrfToken: null } };
    this.remember(key, found, now.getTime(), row.expires_at);
    return found;
  }

  /** Changes the actor's own password and ends its other sessions. */
  async changePassword(actor: Actor, credential: Credential, current: string, next: string): Promise<void> {
    const stored = await getPasswordHash(this.db, actor.userId);
    if (!(await this.passwords.verify(current, stored))) {
      throw new AppError('INVALID_CREDENTIALS', 401, 'the current password is wrong', [{ path: 'current_password', message: 'wrong password' }]);
    }
    const hash = await this.passwords.hash(next);
    await this.db.transaction(async (tx) => {
      await setPasswordHash(tx, actor.userId, hash, this.now());
      await deleteUserSessions(tx, actor.userId, credential.kind === 'session' ? credential.id : null);
    });
    await this.changed();
  }
}

export function actorOf(row: ActorRow): Actor {
  return {
    userId: row.user_id,
    tenantId: row.tenant_id,
    email: row.email,
    role: row.role,
    teamMember: row.team_member,
    deviceScope: row.team_member ? (row.device_scope ?? []) : null,
    timeZone: row.time_zone,
    defaultCountry: row.default_country,
  };
}
