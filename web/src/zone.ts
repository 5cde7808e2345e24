/**
 * A wall time in the account's IANA zone to a UTC instant and back, for <input type="datetime-local">,
 * which knows only the browser's zone. Intl gives each zone's offset at an instant; two passes settle
 * an instant near a DST change.
 */

function offsetMs(at: number, zone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(new Date(at));
  const v = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const asUtc = Date.UTC(v('year'), v('month') - 1, v('day'), v('hour'), v('minute'), v('second'));
  return asUtc - Math.floor(at / 1000) * 1000;
}

/** "2026-12-03T10:30" in `zone` -> ISO instant. */
export function wallToIso(wall: string, zone: string): string {
  const [d, t] = wall.split('T');
  const [y, mo, da] = d!.split('-').map(Number);
  const [h, mi] = t!.split(':').map(Number);
  const guess = Date.UTC(y!, mo! - 1, da!, h!, mi!);
  let at = guess - offsetMs(guess, zone);
  at = guess - offsetMs(at, zone);
  return new Date(at).toISOString();
}

/** ISO instant -> "2026-12-03T10:30" in `zone`. */
export function isoToWall(iso: string, zone: string): string {
  const at = new Date(iso).getTime();
  const local = new Date(at + offsetMs(at, zone));
  return local.toISOString().slice(0, 16);
}
