/**
 * What a chaos run is judged by, computed from the simulator's send log (every attempt any worker
 * made, appended before the worker heard the answer) and from the lease observations: duplicate
 * sends, gaps shorter than a device's minimum, rolling hours over a device's cap, and how long a
 * killed worker's devices waited for another worker.
 */
import type { SendAttempt } from '../../transports/simulator.js';

const HOUR = 3_600_000;

/** Attempts that reached WhatsApp: a send to a device found offline never left the phone. */
export function reachedWhatsApp(a: SendAttempt): boolean {
  return a.outcome !== 'offline';
}

/** Message ids sent (outcome `sent`) more than once. */
export function duplicateSends(attempts: readonly SendAttempt[]): number[] {
  const seen = new Set<number>();
  const dup = new Set<number>();
  for (const a of attempts) {
    if (a.outcome !== 'sent') continue;
    if (seen.has(a.message)) dup.add(a.message);
    seen.add(a.message);
  }
  return [...dup].sort((x, y) => x - y);
}

function byDevice(attempts: readonly SendAttempt[]): Map<number, SendAttempt[]> {
  const out = new Map<number, SendAttempt[]>();
  for (const a of attempts) {
    if (!reachedWhatsApp(a)) continue;
    let list = out.get(a.device);
    if (!list) out.set(a.device, (list = []));
    list.push(a);
  }
  for (const list of out.values()) list.sort((x, y) => x.at - y.at);
  return out;
}

export interface GapViolation {
  device: number;
  gapMs: number;
  minMs: number;
  at: number;
  /** Which workers made the two attempts (a handover shows as two tags). */
  by: [string | undefined, string | undefined];
  /** The two attempts' messages and attempt numbers. */
  messages: [number, number];
  attempts: [number, number];
}

/** Consecutive attempts on one device closer than its minimum gap. */
export function gapViolations(attempts: readonly SendAttempt[], minGapMs: ReadonlyMap<number, number>): GapViolation[] {
  const out: GapViolation[] = [];
  for (const [device, list] of byDevice(attempts)) {
    const min = minGapMs.get(device) ?? 0;
    for (let i = 1; i < list.length; i++) {
      const gap = list[i]!.at - list[i - 1]!.at;
      if (gap < min) {
        const [p, q] = [list[i - 1]!, list[i]!];
        out.push({ device, gapMs: gap, minMs: min, at: q.at, by: [p.by, q.by], messages: [p.message, q.message], attempts: [p.attempt, q.attempt] });
      }
    }
  }
  return out;
}

export interface CapViolation {
  device: number;
  limit: number;
  /** Attempts in the rolling hour that starts at `from`. */
  count: number;
  from: number;
}

/** Rolling hours in which a device with an hourly cap made more attempts than the cap. */
export function capViolations(attempts: readonly SendAttempt[], hourlyLimit: ReadonlyMap<number, number>): CapViolation[] {
  const out: CapViolation[] = [];
  for (const [device, list] of byDevice(attempts)) {
    const limit = hourlyLimit.get(device);
    if (limit === undefined) continue;
    let start = 0;
    let worst: CapViolation | null = null;
    for (let end = 0; end < list.length; end++) {
      while (list[end]!.at - list[start]!.at >= HOUR) start++;
      const count = end - start + 1;
      if (count > limit && (!worst || count > worst.count)) worst = { device, limit, count, from: list[start]!.at };
    }
    if (worst) out.push(worst);
  }
  return out;
}

/** Attempts per device that reached WhatsApp. */
export function attemptsPerDevice(attempts: readonly SendAttempt[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const [device, list] of byDevice(attempts)) out.set(device, list.length);
  return out;
}

export interface Kill {
  at: number;
  pid: number;
  /** The simulator tag of the killed worker's sends (`pid-<pid>`). */
  tag: string;
  /** Devices the worker held when it was killed. */
  devices: number[];
}

export interface Resume {
  at: number;
  pid: number;
  devices: number;
  /** Until every device of the killed worker was held by a live worker again (lease observations). */
  leasedAgainMs: number | null;
  /** Until every such device that still had work sent again, by another worker (send log). */
  sendingAgainMs: number | null;
  /** Devices that never sent again (their work was done, or their cap reached). */
  idle: number;
}

/**
 * How long each kill left its devices unserved. `leasedAt(device, after)` answers when the device
 * was first seen leased by another owner after `after` (null: never seen).
 */
export function resumeTimes(kills: readonly Kill[], attempts: readonly SendAttempt[], leasedAt: (device: number, after: number) => number | null): Resume[] {
  const perDevice = byDevice(attempts);
  /** The first attempt on `device` after `at` by anyone but `tag`. */
  const nextBy = (device: number, at: number, tag: string): SendAttempt | undefined => {
    const list = perDevice.get(device);
    if (!list) return undefined;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.at <= at) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < list.length; i++) if (list[i]!.by !== tag) return list[i];
    return undefined;
  };
  return kills.map((k) => {
    let leased: number | null = 0;
    let sending = 0;
    let idle = 0;
    for (const d of k.devices) {
      const l = leasedAt(d, k.at);
      if (l === null) leased = null;
      else if (leased !== null) leased = Math.max(leased, l - k.at);
      const next = nextBy(d, k.at, k.tag);
      if (next) sending = Math.max(sending, next.at - k.at);
      else idle++;
    }
    return {
      at: k.at,
      pid: k.pid,
      devices: k.devices.length,
      leasedAgainMs: k.devices.length === 0 ? 0 : leased,
      sendingAgainMs: idle === k.devices.length ? null : sending,
      idle,
    };
  });
}
