/**
 * When a sequence step falls due, as SQL expressions, so that enrolling a million leads or moving a
 * hundred thousand on to their next step is one statement, and the time zone rules are
 * PostgreSQL's own (the same tz database on PGlite and on a server).
 *
 * The rule, for the step after a message that went out at `done`:
 *   base    = the previous step's planned time, or `done` less GRACE if it went out later than that
 *   planned = base + the step's delay (days on the owner's calendar, then elapsed minutes), then moved to
 *             the first time at or after it that shows the step's send time on the owner's clock
 *   due     = the later of `planned` and `done` + the delay: a step never follows its predecessor
 *             sooner than its delay.
 * For the first step, base and done are the enrollment time.
 *
 * Why two times: device pacing sends the 10:00 step of many leads over a few minutes. Counting the
 * next day's delay from 10:03 and then waiting for "the first 10:00 after it" would push every
 * later step a day on; counting from the planned 10:00 keeps the daily rhythm, and `due` still
 * holds the gap (10:03 the next day). A message that went out more than GRACE late (the device was
 * backlogged, the sequence paused) starts the rhythm again from when it really went out.
 */

/** How late a message may go out and still leave the next step on the sequence's rhythm. */
export const RHYTHM_GRACE = `interval '1 hour'`;

/**
 * SQL for `t` + `days` calendar days on the clock of zone `tz` (a day after 10:00 is 10:00 the
 * next day, 23 or 25 hours across a DST change), then + `minutes` of elapsed time (hours and
 * minutes are durations: 144 hours are 144 hours whatever the clock does). All SQL expressions.
 */
export function localAdd(t: string, days: string, minutes: string, tz: string): string {
  return `(((((${t}) at time zone ${tz}) + make_interval(days => ${days})) at time zone ${tz}) + make_interval(mins => ${minutes}))`;
}

/**
 * SQL for the first instant at or after `t` whose local time in `tz` is `minute` minutes after
 * midnight; `t` itself when `minute` is null. A send time that a DST change skips that day (02:30
 * on a spring-forward night) is read as PostgreSQL reads it: an hour later.
 */
export function alignToMinute(t: string, minute: string, tz: string): string {
  const sameDay = `(date_trunc('day', (${t}) at time zone ${tz}) + make_interval(mins => (${minute})::int))`;
  return `(case when ${minute} is null then (${t})
      when (${sameDay} at time zone ${tz}) >= (${t}) then ${sameDay} at time zone ${tz}
      else (${sameDay} + interval '1 day') at time zone ${tz} end)`;
}

export interface StepTimeInputs {
  /** The previous step's planned time (the enrollment time for the first step). */
  prevPlanned: string;
  /** When the previous message went out (the enrollment time for the first step). */
  done: string;
  days: string;
  minutes: string;
  /** The step's send time in minutes after local midnight, or SQL null. */
  sendMinute: string;
  tz: string;
}

/** SQL for the base the next step is planned from (see the rule above). */
export function rhythmBase(prevPlanned: string, done: string): string {
  return `greatest(${prevPlanned}, (${done}) - ${RHYTHM_GRACE})`;
}

/**
 * SQL for the planned time from a base. The costly half of the rule (a dozen time zone conversions),
 * and the same for every lead whose previous step kept the rhythm: a statement moving many leads on
 * works it out once per distinct base and step (see advanceEnrollments).
 */
export function plannedFrom(base: string, x: Pick<StepTimeInputs, 'days' | 'minutes' | 'sendMinute' | 'tz'>): string {
  return alignToMinute(localAdd(base, x.days, x.minutes, x.tz), x.sendMinute, x.tz);
}

/** SQL for the due time from the planned time and when the previous message went out. */
export function dueFrom(planned: string, x: Pick<StepTimeInputs, 'done' | 'days' | 'minutes' | 'tz'>): string {
  return `greatest(${planned}, ${localAdd(x.done, x.days, x.minutes, x.tz)})`;
}

/** SQL for the step's planned time and due time (see the rule above). */
export function stepTimes(x: StepTimeInputs): { planned: string; due: string } {
  const planned = plannedFrom(rhythmBase(x.prevPlanned, x.done), x);
  return { planned, due: dueFrom(planned, x) };
}
