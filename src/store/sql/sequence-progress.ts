/**
 * What a sequence's progress is read from: its enrollments grouped by step and status (an
 * index-only walk of enrollments_sequence_idx), exit reasons, and its messages grouped by step and
 * status (through each enrollment's (enrollment_id, step) index entries, so the cost follows the
 * sequence's own size, not the outbox's).
 */
import type { Queryable } from '../db.js';

export interface StepStatusCount {
  step: number;
  status: string;
  n: number;
}

export async function enrollmentsByStep(db: Queryable, sequenceId: number): Promise<StepStatusCount[]> {
  const res = await db.query<StepStatusCount>(
    `select current_step as step, status, count(*)::int as n from enrollments where sequence_id = $1 group by 1, 2`,
    [sequenceId],
  );
  return res.rows;
}

export async function exitReasons(db: Queryable, sequenceId: number): Promise<Record<string, number>> {
  const res = await db.query<{ reason: string | null; n: number }>(
    `select exit_reason as reason, count(*)::int as n from enrollments where sequence_id = $1 and status = 'exited' group by 1`,
    [sequenceId],
  );
  return Object.fromEntries(res.rows.map((r) => [r.reason ?? 'unknown', r.n]));
}

/** Messages of the sequence by step and status; cancelled ones are counted as exits instead. */
export async function messagesByStep(db: Queryable, sequenceId: number): Promise<StepStatusCount[]> {
  const res = await db.query<StepStatusCount>(
    `select m.step, m.status, count(*)::int as n
       from enrollments e
       join messages m on m.enrollment_id = e.id and m.status <> 'cancelled'
      where e.sequence_id = $1
      group by 1, 2`,
    [sequenceId],
  );
  return res.rows;
}

export interface LiveStepTimes {
  step: number;
  /** The latest due time among live enrollments at this step. */
  last_due: Date | null;
  /** The latest planned time among them (the sequence's rhythm). */
  last_planned: Date | null;
}

export async function liveStepTimes(db: Queryable, sequenceId: number): Promise<LiveStepTimes[]> {
  const res = await db.query<LiveStepTimes>(
    `select current_step as step, max(next_due_at) as last_due, max(planned_at) as last_planned
       from enrollments where sequence_id = $1 and status in ('active', 'paused') group by 1`,
    [sequenceId],
  );
  return res.rows;
}
