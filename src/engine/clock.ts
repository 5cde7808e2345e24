/**
 * Time for the engine. Nothing in the engine reads `Date.now()` or calls SQL `now()`: it asks a Clock,
 * and passes `clock.now()` into SQL as `$now`.
 *
 * Two clocks:
 * - SystemClock: wall time; sleeps are real timers.
 * - VirtualClock: a discrete-event clock. Time stands still while anything is working and jumps to
 *   the next timer when everything is idle. "Working" means an operation registered with `track()`
 *   (every database query is) or a continuation that has not yet reached its next await. This is what
 *   lets a multi-day drip over thousands of devices run in seconds while every gap, window and cap
 *   is computed exactly as it would be in real time.
 *
 * VirtualClock states: idle (no tracked work, timers pending) -> advancing (fires every timer due at
 * the next instant) -> busy (tracked work running) -> idle ... -> drained (no timers left, or the
 * horizon given to `runUntil` reached). The trade-off: anything async that is neither a timer nor a
 * tracked promise (a socket notification, an untracked fs write) is invisible to it, so in virtual mode
 * every component wakes each other through in-process signals, never through the network.
 */

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Resolves at `at` (or at once if it is past); rejects nothing, resolves early when `signal` aborts. */
  sleepUntil(at: number, signal?: AbortSignal): Promise<void>;
  /** Marks `promise` as work in progress (matters to the virtual clock only). */
  track<T>(promise: Promise<T>): Promise<T>;
  readonly virtual: boolean;
}

export class SystemClock implements Clock {
  readonly virtual = false;

  now(): number {
    return Date.now();
  }

  sleepUntil(at: number, signal?: AbortSignal): Promise<void> {
    const ms = at - Date.now();
    if (ms <= 0 || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      // Node timers overflow past 2^31-1 ms; a sleep that long just wakes early and re-evaluates.
      const timer = setTimeout(done, Math.min(ms, 2_147_000_000));
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  track<T>(promise: Promise<T>): Promise<T> {
    return promise;
  }
}

interface Timer {
  at: number;
  seq: number;
  fire: () => void;
  cancelled: boolean;
}

/** A binary min-heap of timers ordered by (at, seq), so equal times fire in creation order. */
class TimerHeap {
  private items: Timer[] = [];

  get size(): number {
    return this.items.length;
  }

  push(t: Timer): void {
    const a = this.items;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(a[p]!, a[i]!)) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }

  peek(): Timer | undefined {
    this.dropCancelled();
    return this.items[0];
  }

  pop(): Timer | undefined {
    this.dropCancelled();
    return this.take();
  }

  private take(): Timer | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && less(a[l]!, a[m]!)) m = l;
        if (r < a.length && less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }

  private dropCancelled(): void {
    while (this.items.length > 0 && this.items[0]!.cancelled) this.take();
  }
}

function less(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

const macrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

export class VirtualClock implements Clock {
  readonly virtual = true;
  private current: number;
  private seq = 0;
  private busy = 0;
  private readonly timers = new TimerHeap();

  constructor(start: number | Date) {
    this.current = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.current;
  }

  sleepUntil(at: number, signal?: AbortSignal): Promise<void> {
    if (at <= this.current || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer: Timer = {
        at,
        seq: this.seq++,
        cancelled: false,
        fire: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        timer.cancelled = true;
        resolve();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.timers.push(timer);
    });
  }

  track<T>(promise: Promise<T>): Promise<T> {
    this.busy++;
    return promise.finally(() => {
      this.busy--;
    });
  }

  /** The time of the next pending timer, if any. */
  nextTimerAt(): number | undefined {
    return this.timers.peek()?.at;
  }

  /**
   * Waits until nothing tracked is running and every continuation has reached a sleep: the busy
   * count must read zero across two consecutive macrotasks, since a continuation that just ran may
   * have started new tracked work.
   */
  async settle(): Promise<void> {
    let quiet = 0;
    while (quiet < 2) {
      await macrotask();
      quiet = this.busy === 0 ? quiet + 1 : 0;
    }
  }

  /** Moves time forward to `at` without firing anything past it; fires everything due by then. */
  async advanceTo(at: number): Promise<void> {
    await this.runUntil(at);
    if (this.current < at) this.current = at;
  }

  /**
   * Runs the world until `until` (inclusive) or until no timer is left, whichever comes first.
   * Returns the virtual time reached.
   */
  async runUntil(until: number, stop?: () => boolean): Promise<number> {
    for (;;) {
      await this.settle();
      if (stop?.()) return this.current;
      const next = this.timers.peek();
      if (!next || next.at > until) return this.current;
      this.current = Math.max(this.current, next.at);
      // Fire every timer due at this instant before letting anything run, so they all see one time.
      while (this.timers.peek() && this.timers.peek()!.at <= this.current) {
        this.timers.pop()!.fire();
      }
    }
  }
}
