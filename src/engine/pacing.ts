/**
 * Per-device pacing as pure functions: given a device's settings, what it has sent, and a time,
 * when may it send next? No I/O and no clock here: callers pass every time in, so each rule can be
 * tested exhaustively and the dispatcher, the forecast and the simulator all share one answer.
 *
 * The rules, all global to the device (across every campaign and sequence it serves):
 * - a gap drawn uniformly from [minDelayMs, maxDelayMs] after each send;
 * - an hourly cap over a rolling 60 minutes: a send at s counts for instants in [s, s + 1h);
 * - a daily cap over the owner's local calendar day (IANA zone, DST-aware);
 * - a pause (manual or a WhatsApp restriction) until a time.
 * A message's own daily window is a separate rule (`nextWindowOpening`): it belongs to the message,
 * not to the device, and a closed window defers that message without costing the device its turn.
 */
import { DateTime } from 'luxon';

export const HOUR_MS = 3_600_000;

export interface PacingSettings {
  minDelayMs: number;
  maxDelayMs: number;
  hourlyLimit: number | null;
  dailyLimit: number | null;
  /** The owner's zone: the daily cap counts the owner's local day. */
  timeZone: string;
  pausedUntil: number | null;
}

export interface SendHistory {
  lastSendAt: number | null;
  /** The gap drawn after the last send; the next send may not start before lastSendAt + gapMs. */
  gapMs: number;
  /** Send times of the last hour, ascending; only kept when there is an hourly cap (at most that many). */
  recent: number[];
  /** Start of the local day `dayCount` counts (epoch ms), or null before any send. */
  dayStart: number | null;
  /** Start of the next local day (cached: zone arithmetic is the costly part of pacing). */
  dayEnd: number | null;
  dayCount: number;
}

export const emptyHistory = (): SendHistory => ({ lastSendAt: null, gapMs: 0, recent: [], dayStart: null, dayEnd: null, dayCount: 0 });

export function localDayStart(t: number, zone: string): number {
  return DateTime.fromMillis(t, { zone }).startOf('day').toMillis();
}

export function nextLocalDayStart(t: number, zone: string): number {
  return DateTime.fromMillis(t, { zone }).startOf('day').plus({ days: 1 }).toMillis();
}

/** Sends counted against the daily cap on the local day that contains `t`. */
export function sendsOnDayOf(settings: PacingSettings, history: SendHistory, t: number): number {
  if (history.dayStart === null) return 0;
  if (history.dayEnd !== null) return t >= history.dayStart && t < history.dayEnd ? history.dayCount : 0;
  return localDayStart(t, settings.timeZone) === history.dayStart ? history.dayCount : 0;
}

/** The earliest instant >= `t` at which the rolling-hour cap admits one more send. */
export function hourlyCapOpensAt(settings: PacingSettings, history: SendHistory, t: number): number {
  const limit = settings.hourlyLimit;
  if (limit === null) return t;
  const inHour = history.recent.filter((s) => s > t - HOUR_MS);
  if (inHour.length < limit) return t;
  // Sends counted at t are the last `inHour.length`; the one that must expire is the
  // (len - limit)-th: once it has left the window, limit - 1 remain.
  return Math.max(t, inHour[inHour.length - limit]! + HOUR_MS);
}

/**
 * The earliest instant >= `now` at which the device may start its next send, as far as the device's
 * own rules go (gap, caps, pause). Messages' windows are applied on top by the caller.
 */
export function nextSendTime(settings: PacingSettings, history: SendHistory, now: number): number {
  let t = now;
  if (history.lastSendAt !== null) t = Math.max(t, history.lastSendAt + history.gapMs);
  if (settings.pausedUntil !== null) t = Math.max(t, settings.pausedUntil);
  // Each rule only moves t forward; two rounds settle it (a day boundary can only relax the caps).
  for (let i = 0; i < 4; i++) {
    const before = t;
    t = hourlyCapOpensAt(settings, history, t);
    if (settings.dailyLimit !== null && sendsOnDayOf(settings, history, t) >= settings.dailyLimit) {
      t = nextLocalDayStart(t, settings.timeZone);
    }
    if (t === before) break;
  }
  return t;
}

/** Records a send started at `at`, with the gap drawn for the next one. Returns a new history. */
export function recordSend(settings: PacingSettings, history: SendHistory, at: number, nextGapMs: number): SendHistory {
  const sameDay =
    history.dayStart !== null &&
    (history.dayEnd !== null ? at >= history.dayStart && at < history.dayEnd : localDayStart(at, settings.timeZone) === history.dayStart);
  const dayStart = sameDay ? history.dayStart! : localDayStart(at, settings.timeZone);
  const dayEnd = sameDay && history.dayEnd !== null ? history.dayEnd : nextLocalDayStart(at, settings.timeZone);
  const dayCount = sameDay ? history.dayCount + 1 : 1;
  let recent: number[] = [];
  if (settings.hourlyLimit !== null) {
    recent = history.recent.filter((s) => s > at - HOUR_MS);
    recent.push(at);
    if (recent.length > settings.hourlyLimit) recent = recent.slice(recent.length - settings.hourlyLimit);
  }
  return { lastSendAt: at, gapMs: nextGapMs, recent, dayStart, dayEnd, dayCount };
}

/**
 * A uniformly drawn gap in [min, max]. `random` returns [0, 1). A range of a second or more is
 * drawn in whole seconds from min (5-15 s: one of 5, 6, ... 15 s); a narrower one in milliseconds.
 *
 * Why whole seconds: a gap is counted from the moment of the send, which in real time carries the
 * loop's and the network's own milliseconds, so sends never line up on the second and nothing
 * human-like is lost. On the virtual clock, where every send happens exactly on time, whole
 * seconds let hundreds of devices fall due at the same instant and be claimed in one statement:
 * drawn to the millisecond, 3,000 devices at 5-15 s gaps fell due one or two at a time, two claim
 * statements a message (128 messages a wall second in a 21-day simulation).
 */
export function drawGap(minMs: number, maxMs: number, random: () => number): number {
  if (maxMs <= minMs) return minMs;
  const span = maxMs - minMs;
  if (span < 1000) return minMs + Math.floor(random() * (span + 1));
  return minMs + 1000 * Math.floor(random() * (Math.floor(span / 1000) + 1));
}

/**
 * A daily send window in an IANA zone: [start, end) in minutes after local midnight. An end at or
 * before the start wraps past midnight (22:00-06:00). `days` is a mask of ISO weekdays (bit
 * weekday-1) on which a window may open; an overnight window belongs to the day it opens.
 */
export interface SendWindow {
  timeZone: string;
  startMinute: number;
  endMinute: number;
  days: number;
}

export const EVERY_DAY = 127;

function localAt(date: DateTime, minute: number): number {
  // Minute 1440 is the next midnight. A wall time inside a spring-forward gap does not exist: luxon
  // moves it forward by the gap, so a window "02:30-..." on that day opens at 03:30.
  return date.startOf('day').plus({ days: Math.floor(minute / 1440) }).set({ hour: Math.floor((minute % 1440) / 60), minute: minute % 60 }).toMillis();
}

/**
 * The window's occurrences from the local day before `t` to eight days after it: every occurrence
 * that could contain an instant of the UTC day holding `t` or open within a week after it.
 */
function occurrencesFrom(w: SendWindow, t: number): { open: number; close: number }[] {
  const first = DateTime.fromMillis(t, { zone: w.timeZone }).startOf('day').minus({ days: 1 });
  const list: { open: number; close: number }[] = [];
  for (let i = 0; i < 10; i++) {
    const day = first.plus({ days: i });
    if ((w.days & (1 << (day.weekday - 1))) === 0) continue;
    const open = localAt(day, w.startMinute);
    const endDay = w.endMinute > w.startMinute ? day : day.plus({ days: 1 });
    const close = localAt(endDay, w.endMinute);
    if (close > open) list.push({ open, close });
  }
  return list;
}

const UTC_DAY_MS = 86_400_000;
const OCCURRENCE_CACHE_LIMIT = 4096;
/**
 * Occurrences by window and UTC day. Working them out takes dozens of time zone conversions (about
 * half a millisecond with luxon), and the dispatcher asks for every message it claims: uncached,
 * that was a fifth of a 21-day drip simulation's wall time. Windows are values, so the key is
 * their fields; the cache is emptied when it fills.
 */
const occurrenceCache = new Map<string, { open: number; close: number }[]>();

function occurrencesAround(w: SendWindow, t: number): { open: number; close: number }[] {
  const dayStart = Math.floor(t / UTC_DAY_MS) * UTC_DAY_MS;
  const key = `${w.timeZone}|${w.startMinute}|${w.endMinute}|${w.days}|${dayStart}`;
  let list = occurrenceCache.get(key);
  if (list === undefined) {
    if (occurrenceCache.size >= OCCURRENCE_CACHE_LIMIT) occurrenceCache.clear();
    list = occurrencesFrom(w, dayStart);
    occurrenceCache.set(key, list);
  }
  return list;
}

/** The earliest instant >= t inside the window (t itself when the window is open at t). */
export function nextWindowOpening(w: SendWindow, t: number): number {
  for (const { open, close } of occurrencesAround(w, t)) {
    if (close > t) return Math.max(open, t);
  }
  throw new Error(`send window ${JSON.stringify(w)} never opens`);
}

export function isWindowOpen(w: SendWindow, t: number): boolean {
  return nextWindowOpening(w, t) === t;
}

/** mulberry32: a small seeded generator so simulations and tests are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
