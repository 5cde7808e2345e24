/**
 * Continues a device's send timeline past the end of a simulation, without the database: the
 * same pacing rules the dispatcher applies (pacing.ts: gap, hourly and daily caps, pause, window),
 * stepped message by message, with the device's gap fixed at the pace it showed in the run. A
 * forecast of a campaign too large to simulate whole uses it for the part it did not simulate;
 * windows and caps are applied exactly, so nights and capped days are not averaged away the way a
 * straight-line extrapolation would.
 */
import {
  EVERY_DAY,
  nextLocalDayStart,
  nextSendTime,
  nextWindowOpening,
  emptyHistory,
  recordSend,
  type PacingSettings,
  type SendHistory,
  type SendWindow,
} from '../../engine/pacing.js';

export interface Continuation {
  settings: PacingSettings;
  /** The window every further message waits for (null: any time). */
  window: SendWindow | null;
  /** Start times of the device's sends so far, ascending: they rebuild the caps' counts. */
  sends: readonly number[];
  /** The gap after each further send. */
  gapMs: number;
  /** How many more sends. */
  count: number;
  /** When the device may start, if it has sent nothing yet. */
  from: number;
  /** A timeline running past this gives null: not within the horizon. */
  horizon: number;
}

/** When the last of `count` further sends would start (the last known send when count is 0), or null past the horizon. */
export function continueTimeline(c: Continuation): number | null {
  let history: SendHistory = emptyHistory();
  for (const t of c.sends) history = recordSend(c.settings, history, t, c.gapMs);
  let t = c.sends.at(-1) ?? c.from;
  // The close of the window occurrence `t` was last found in: until then no lookup is needed,
  // which keeps a million steps from costing a million time zone computations.
  let openUntil = -Infinity;
  for (let i = 0; i < c.count; i++) {
    for (;;) {
      const paced = nextSendTime(c.settings, history, t);
      if (paced > c.horizon) return null;
      if (c.window === null || paced < openUntil) {
        t = paced;
        break;
      }
      const opens = nextWindowOpening(c.window, paced);
      if (opens === paced) {
        openUntil = windowCloses(c.window, paced);
        t = paced;
        break;
      }
      t = opens;
    }
    history = recordSend(c.settings, history, t, c.gapMs);
  }
  return t;
}

/**
 * The end of the window occurrence that contains `t` (which must be inside one): the first
 * instant at or after `t` at which the window is closed. That is the next opening of the
 * window's complement (its end to its start, every day), computed by the same function, so
 * time zone and DST rules stay in one place.
 */
export function windowCloses(w: SendWindow, t: number): number {
  const start = w.endMinute % 1440;
  const end = w.startMinute === 0 ? 1440 : w.startMinute;
  if (start === end % 1440) {
    // Open all day: on every day it never closes; on some days only, it closes at midnight.
    return w.days === EVERY_DAY ? Infinity : nextLocalDayStart(t, w.timeZone);
  }
  return nextWindowOpening({ timeZone: w.timeZone, startMinute: start, endMinute: end, days: EVERY_DAY }, t);
}

/**
 * The gap a device kept between its sends in a run: the mean of its gaps, leaving out the long
 * ones (a night, a closed window, a cap) that the continuation applies by itself. "Long" is more
 * than twice the median, which keeps every paced gap: a gap drawn uniformly from [min, max] is at
 * most max, and max is at most twice the median (min + max) / 2.
 */
export function pacedGap(sends: readonly number[], fallback: number): number {
  const gaps: number[] = [];
  for (let i = 1; i < sends.length; i++) gaps.push(sends[i]! - sends[i - 1]!);
  if (gaps.length === 0) return fallback;
  const sorted = [...gaps].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const kept = gaps.filter((g) => g <= 2 * median);
  return kept.length === 0 ? fallback : Math.round(kept.reduce((a, b) => a + b, 0) / kept.length);
}
