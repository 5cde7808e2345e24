/**
 * The first admin. On a database without any account, one admin is created from
 * FLEETCAST_ADMIN_EMAIL / FLEETCAST_ADMIN_PASSWORD, or with a generated password that is printed
 * once (to the terminal, never to the log). Several processes starting at once create one admin:
 * the check and the insert run under one transaction-scoped advisory lock.
 */
import type { Clock } from '../../engine/clock.js';
import type { Db } from '../../store/db.js';
import { countUsers, insertUser } from '../../store/sql/users.js';
import { generatePassword, type PasswordHasher } from './passwords.js';

export interface BootstrapResult {
  email: string;
  /** Set only when the password was generated here and must be shown to the operator. */
  generatedPassword: string | null;
}

const BOOTSTRAP_LOCK = 0x666c6361; // "flca"

export async function ensureFirstAdmin(
  db: Db,
  clock: Clock,
  passwords: PasswordHasher,
  email: string,
  password: string | undefined,
): Promise<BootstrapResult | null> {
  // Hashing takes a while; do it before taking the lock, and only if an admin may be needed.
  if ((await countUsers(db)) > 0) return null;
  const generated = password === undefined ? generatePassword() : null;
  const hash = await passwords.hash(password ?? generated!);
  return db.transaction(async (tx) => {
    await tx.query(`select pg_advisory_xact_lock($1)`, [BOOTSTRAP_LOCK]);
    if ((await countUsers(tx)) > 0) return null;
    await insertUser(tx, { email, name: 'Admin', role: 'admin', timeZone: 'UTC', passwordHash: hash }, new Date(clock.now()));
    return { email, generatedPassword: generated };
  });
}
