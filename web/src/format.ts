/** Numbers and times as the signed-in user reads them: their locale, their time zone. */

const num = new Intl.NumberFormat();

export function n(v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : num.format(v);
}

export function pct(part: number, whole: number): number {
  return whole > 0 ? Math.min(100, Math.round((part / whole) * 1000) / 10) : 0;
}

export function dateTime(iso: string | null | undefined, zone?: string): string {
  if (!iso) return '–';
  try {
    return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone: zone }).format(new Date(iso));
  } catch {
    return new Date(iso).toLocaleString();
  }
}

export function time(iso: string | null | undefined, zone?: string): string {
  if (!iso) return '–';
  try {
    return new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', timeZone: zone }).format(new Date(iso));
  } catch {
    return new Date(iso).toLocaleTimeString();
  }
}

/** The YYYY-MM-DD of an instant in a zone (for the calendar). */
export function dayKey(d: Date, zone?: string): string {
  try {
    return new Intl.DateTimeFormat('en-CA', { year: 'numeric', month: '2-digit', day: '2-digit', timeZone: zone }).format(d);
  } catch {
    return d.toISOString().slice(0, 10);
  }
}

export function ms(v: number): string {
  return v >= 1000 ? `${Math.round(v / 100) / 10} s` : `${v} ms`;
}

export function csv(list: string): string[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
