/** Scenario send windows (of campaigns and sequences) as the engine stores them. */
import { EVERY_DAY, type SendWindow } from '../../engine/pacing.js';
import { WEEKDAYS, type WindowSpec } from './scenario.js';

const minuteOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** A scenario window as the engine stores it; an end of 00:00 means the midnight ending the day. */
export function sendWindowOf(w: WindowSpec, userZone: string): SendWindow {
  const end = minuteOf(w.end);
  return {
    timeZone: w.timeZone ?? userZone,
    startMinute: minuteOf(w.start),
    endMinute: end === 0 ? 1440 : end,
    days: w.days ? w.days.reduce((mask, day) => mask | (1 << WEEKDAYS.indexOf(day)), 0) : EVERY_DAY,
  };
}
