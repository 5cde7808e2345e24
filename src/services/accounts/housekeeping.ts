/** Drops what has outlived its use: expired sessions, old throttle counters, day-old idempotency keys. */
import type { Clock } from '../../engine/clock.js';
import type { Db } from '../../store/db.js';
import { deleteOldIdempotencyKeys } from '../../store/sql/idempotency.js';
import { deleteExpiredSessions } from '../../store/sql/sessions.js';
import { deleteStaleThrottles } from '../../store/sql/throttle.js';

export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;

export async function accountHousekeeping(db: Db, clock: Clock, throttleWindowMs: number): Promise<{ sessions: number; throttles: number; keys: number }> {
  const now = clock.now();
  return {
    sessions: await deleteExpiredSessions(db, new Date(now)),
    throttles: await deleteStaleThrottles(db, new Date(now - throttleWindowMs)),
    keys: await deleteOldIdempotencyKeys(db, new Date(now - IDEMPOTENCY_TTL_MS)),
  };
}
