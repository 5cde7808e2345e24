/**
 * A sequence's progress as a user reads it: enrollments by state, each step's reach and message
 * outcomes, how much of the planned sending is done, and when the last live enrollment should
 * finish. Everything comes from grouped counts; nothing walks enrollments one by one.
 */
import { DateTime } from 'luxon';
import type { Queryable } from '../store/db.js';
import { enrollmentsByStep, exitReasons, liveStepTimes, messagesByStep, type StepStatusCount } from '../store/sql/sequence-progress.js';
import type { SequenceRow, StepRow } from '../store/sql/sequences.js';

export interface StepProgress {
  step_id: number;
  position: number;
  /** Enrollments that got as far as this step (including those now on it). */
  reached: number;
  /** Live enrollments on this step now: waiting for it, or its message waiting or in flight. */
  active: number;
  paused: number;
  /** Enrollments that ended on this step without completing the sequence. */
  exited: number;
  pending: number;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  /** Skipped (not on WhatsApp) or unknown (a crash with no proof either way). */
  other: number;
}

export interface SequenceProgress {
  sequence_id: number;
  status: SequenceRow['status'];
  enrollments: { total: number; active: number; paused: number; completed: number; exited: number };
  exit_reasons: Record<string, number>;
  messages: { pending: number; sent: number; delivered: number; read: number; failed: number; other: number };
  /** Steps done (sent or settled) over steps planned, for every enrollment ever made; 100 when none is live. */
  percent_complete: number;
  /**
   * When the last live enrollment should send its last step if every message went out when due;
   * null when none is live or the sequence is paused.
   */
  estimated_completion: string | null;
  steps: StepProgress[];
}

/** The JavaScript twin of step-times.ts, for estimates (the engine itself uses the SQL). */
export function nextStepTimes(prevPlanned: number, done: number, step: { delay_days: number; delay_minutes: number; send_minute: number | null }, tz: string): { planned: number; due: number } {
  const grace = 3_600_000;
  const add = (t: number) => DateTime.fromMillis(t, { zone: tz }).plus({ days: step.delay_days }).plus({ minutes: step.delay_minutes });
  // (luxon adds days on the local calendar and minutes as elapsed time, as step-times.ts does)
  const base = Math.max(prevPlanned, done - grace);
  let planned = add(base);
  if (step.send_minute !== null) {
    const at = planned.set({ hour: Math.floor(step.send_minute / 60), minute: step.send_minute % 60, second: 0, millisecond: 0 });
    planned = at < planned ? at.plus({ days: 1 }) : at;
  }
  const p = planned.toMillis();
  return { planned: p, due: Math.max(p, add(done).toMillis()) };
}

export async function sequenceProgress(db: Queryable, seq: SequenceRow, steps: readonly StepRow[], timeZone: string): Promise<SequenceProgress> {
  const [byStep, reasons, messages, live] = [
    await enrollmentsByStep(db, seq.id),
    await exitReasons(db, seq.id),
    await messagesByStep(db, seq.id),
    await liveStepTimes(db, seq.id),
  ];
  const S = steps.length;
  const count = (rows: StepStatusCount[], f: (r: StepStatusCount) => boolean) => rows.filter(f).reduce((a, r) => a + r.n, 0);
  const enrollments = {
    total: count(byStep, () => true),
    active: count(byStep, (r) => r.status === 'active'),
    paused: count(byStep, (r) => r.status === 'paused'),
    completed: count(byStep, (r) => r.status === 'completed'),
    exited: count(byStep, (r) => r.status === 'exited'),
  };
  const msgCount = (step: number | null, statuses: string[]) => count(messages, (r) => (step === null || r.step === step) && statuses.includes(r.status));
  const summary = (step: number | null) => ({
    pending: msgCount(step, ['pending', 'held', 'sending']),
    sent: msgCount(step, ['sent', 'delivered', 'read']),
    delivered: msgCount(step, ['delivered', 'read']),
    read: msgCount(step, ['read']),
    failed: msgCount(step, ['failed']),
    other: msgCount(step, ['skipped', 'unknown']),
  });

  const stepRows: StepProgress[] = steps.map((st) => {
    const k = st.position;
    return {
      step_id: st.id,
      position: k,
      // A completed enrollment went through every step; a live or exited one up to its current step.
      reached: count(byStep, (r) => r.status === 'completed' || r.step >= k),
      active: count(byStep, (r) => r.status === 'active' && r.step === k),
      paused: count(byStep, (r) => r.status === 'paused' && r.step === k),
      exited: count(byStep, (r) => r.status === 'exited' && r.step === k),
      ...summary(k),
    };
  });

  // Done: every step of a finished enrollment (nothing more will be sent to it) and the steps
  // before a live one's current step (a live enrollment moves on as soon as its message finishes).
  let done = 0;
  for (const r of byStep) done += r.status === 'completed' || r.status === 'exited' ? r.n * S : r.n * Math.min(Math.max(r.step - 1, 0), S);
  const liveNow = enrollments.active + enrollments.paused;
  const planned = enrollments.total * S;
  const percent = planned === 0 || liveNow === 0 ? 100 : Math.min(100, Math.floor((1000 * done) / planned) / 10);

  return {
    sequence_id: seq.id,
    status: seq.status,
    enrollments,
    exit_reasons: reasons,
    messages: summary(null),
    percent_complete: percent,
    estimated_completion: seq.status === 'paused' ? null : estimate(live, steps, timeZone),
    steps: stepRows,
  };
}

function estimate(live: readonly { step: number; last_due: Date | null; last_planned: Date | null }[], steps: readonly StepRow[], tz: string): string | null {
  let end: number | null = null;
  for (const l of live) {
    if (l.last_due === null) continue;
    let due = l.last_due.getTime();
    let planned = l.last_planned?.getTime() ?? due;
    for (const st of steps) {
      if (st.position <= l.step) continue;
      const t = nextStepTimes(planned, due, st, tz);
      planned = t.planned;
      due = t.due;
    }
    if (end === null || due > end) end = due;
  }
  return end === null ? null : new Date(end).toISOString();
}
