import type { Queryable } from '../store/db.js';
import { advanceEnrollments, chainCompleted } from '../store/sql/enrollments.js';

export interface Progressed {
  next: number;
  completed: number;
  exited: number;
  chained: number;
  /** The earliest step now waiting to be written, if any: the planner must wake by then. */
  firstDue: Date | null;
}

/**
 * Moves on the enrollments whose current message finished, and hands the ones that completed on to
 * their next sequence. Called in the transaction that recorded the messages' outcomes, so a step
 * is never recorded as sent without its enrollment moving on.
 */
export async function progressEnrollments(db: Queryable, enrollmentIds: readonly number[], now: Date): Promise<Progressed> {
  const a = await advanceEnrollments(db, enrollmentIds, now);
  const c = await chainCompleted(db, a.completed, now);
  return {
    next: a.next + a.rewritten,
    completed: a.completed.length,
    exited: a.exited,
    chained: c.enrolled,
    firstDue: earliest(a.firstDue, c.firstDue),
  };
}

export function earliest(a: Date | null, b: Date | null): Date | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
}
