/**
 * The webhook deliverer: sends the delivery outbox (webhook_deliveries) to the subscribers' URLs.
 * One per process (`fleetcast serve` starts it beside the engine); any number of processes share
 * one database's deliveries.
 *
 * Delivery states:
 *   pending (due at next_attempt_at) --claim--> delivering (claimed until next_attempt_at, the
 *   attempt counted) --2xx--> delivered (final)
 *                    --network error, timeout, 5xx, 408, 429--> pending, due after a backoff,
 *                      or failed (final) once maxAttempts attempts were made
 *                    --any other answer (3xx, 4xx)--> failed (final): the receiver refused it and
 *                      would refuse it again
 *   delivering whose claim lapsed (the process died mid-attempt) is due again as it stands: at
 *   least once, never lost. Receivers deduplicate on the event id.
 *
 * Loop: claim as many due rows as there are free slots (bounded concurrency) in one statement
 * (FOR UPDATE SKIP LOCKED: processes never wait on each other's claims) -> post each, at most
 * `timeoutMs` each -> record the attempt and the delivery's next state in one statement -> sleep
 * until the next delivery falls due, a slot frees, a notification on WEBHOOKS_CHANNEL (a test
 * delivery, another process), or at most `pollMs` (deliveries queued by the engine's statements
 * are not announced one by one: that would put a notification on the dispatcher's hot path).
 *
 * Backoff: exponential with full jitter, a uniform draw in [0, min(maxDelay, base * 2^(n-1))]
 * after attempt n, so a receiver that was down is not hit by every delivery at the same instant
 * when it comes back. A Retry-After on 429 or 503 is honoured as a floor, within maxDelay.
 *
 * Time: scheduling uses the injected Clock (tests run it on a virtual clock or with a real one and
 * short delays); each HTTP attempt is tracked on the clock, and its timeout is real time.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { signatureHeader, type WebhookSecrets } from '../services/webhooks/secrets.js';
import { postWebhook, type PostResult } from '../services/webhooks/post.js';
import type { Db } from '../store/db.js';
import { claimDueDeliveries, nextDeliveryAt, recordAttempt, type ClaimedDelivery } from '../store/sql/webhooks.js';
import type { Clock } from './clock.js';

/** Wakes the deliverers of every process: something is due now. */
export const WEBHOOKS_CHANNEL = 'fleetcast_webhooks';

export interface WebhookDelivererOptions {
  secrets: WebhookSecrets;
  concurrency?: number;
  timeoutMs?: number;
  maxAttempts?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  pollMs?: number;
  allowPrivateAddresses?: boolean;
  random?: () => number;
}

export type AttemptOutcome = 'delivered' | 'retry' | 'failed';

export interface AttemptEvent {
  deliveryId: number;
  eventType: string;
  attempt: number;
  outcome: AttemptOutcome;
  statusCode: number | null;
  durationMs: number;
}

const USER_AGENT = 'Fleetcast-Webhooks/1';

/** Whether an answer (or its absence) is worth trying again. */
export function retryable(statusCode: number | null): boolean {
  if (statusCode === null) return true;
  return statusCode >= 500 || statusCode === 408 || statusCode === 429;
}

/** The wait after attempt `n` (1-based): full jitter under an exponential cap; Retry-After as a floor. */
export function backoffMs(n: number, o: { baseMs: number; maxMs: number; random: () => number }, retryAfterMs: number | null = null): number {
  const cap = Math.min(o.maxMs, o.baseMs * 2 ** (n - 1));
  const drawn = Math.floor(o.random() * cap);
  return Math.min(o.maxMs, Math.max(drawn, retryAfterMs ?? 0));
}

export class WebhookDeliverer {
  readonly stats = { attempts: 0, delivered: 0, retried: 0, failed: 0 };
  private readonly emitter = new EventEmitter();
  private readonly concurrency: number;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly pollMs: number;
  private readonly allowPrivate: boolean;
  private readonly random: () => number;
  private inFlight = 0;
  private stopping = false;
  private wake = new AbortController();
  private done: Promise<void> | undefined;
  private off: (() => Promise<void>) | undefined;
  private readonly attempts = new Set<Promise<void>>();

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: WebhookDelivererOptions,
  ) {
    this.concurrency = opts.concurrency ?? 8;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxAttempts = opts.maxAttempts ?? 10;
    this.retryBaseMs = opts.retryBaseMs ?? 30_000;
    this.retryMaxMs = opts.retryMaxMs ?? 4 * 3600_000;
    this.pollMs = opts.pollMs ?? 1000;
    this.allowPrivate = opts.allowPrivateAddresses ?? false;
    this.random = opts.random ?? Math.random;
  }

  onAttempt(listener: (e: AttemptEvent) => void): () => void {
    this.emitter.on('attempt', listener);
    return () => this.emitter.off('attempt', listener);
  }

  async start(): Promise<void> {
    this.off = await this.db.listen(WEBHOOKS_CHANNEL, () => this.poke());
    this.done = this.loop();
  }

  /** Stops claiming, lets the attempts in flight finish and record, then returns. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.poke();
    await this.done;
    await Promise.all([...this.attempts]);
    await this.off?.();
  }

  poke(): void {
    if (!this.wake.signal.aborted) this.wake.abort();
  }

  /** Nothing in flight (tests wait for it). */
  get idle(): boolean {
    return this.inFlight === 0;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const signal = this.wake.signal;
      try {
        const free = this.concurrency - this.inFlight;
        let claimed: ClaimedDelivery[] = [];
        const now = this.clock.now();
        if (free > 0) {
          // A claim outlives the longest attempt by a margin, so only a dead process's claim lapses.
          claimed = await claimDueDeliveries(this.db, new Date(now), new Date(now + this.timeoutMs + 60_000), free);
          for (const d of claimed) this.begin(d);
        }
        if (this.stopping) break;
        if (this.inFlight >= this.concurrency) {
          // Every slot is busy: the next finished attempt pokes. (Due rows waiting for a slot must
          // not make this loop spin.)
          await this.clock.sleepUntil(this.clock.now() + this.pollMs, signal);
        } else if (claimed.length === 0) {
          const next = await nextDeliveryAt(this.db);
          const until = Math.min(next ? next.getTime() : Infinity, this.clock.now() + this.pollMs);
          await this.clock.sleepUntil(until, signal);
        }
      } catch (error) {
        this.log.error({ err: error }, 'webhook delivery failed; retrying in 5s');
        await this.clock.sleepUntil(this.clock.now() + 5000, signal);
      }
      if (this.wake.signal === signal && signal.aborted) this.wake = new AbortController();
    }
  }

  private begin(d: ClaimedDelivery): void {
    this.inFlight++;
    const p = this.clock
      .track(this.attempt(d))
      .catch((error: unknown) => this.log.error({ err: error, delivery: d.id }, 'recording a webhook attempt failed'))
      .finally(() => {
        this.inFlight--;
        this.attempts.delete(p);
        this.poke();
      });
    this.attempts.add(p);
  }

  /** The body a delivery sends on every attempt: the same bytes each time. */
  static body(d: Pick<ClaimedDelivery, 'event_id' | 'event_type' | 'occurred_at' | 'payload'>): string {
    return JSON.stringify({ id: d.event_id, type: d.event_type, created_at: d.occurred_at.toISOString(), data: d.payload });
  }

  /** Signs and posts; a secret that cannot be opened (the key changed) is an answer of its own. */
  private async send(d: ClaimedDelivery, startedAt: number): Promise<PostResult & { sealed: boolean }> {
    let secret: string;
    try {
      secret = this.opts.secrets.open(d.secret);
    } catch (err) {
      return { statusCode: null, error: `SECRET_UNAVAILABLE: ${(err as Error).message}`, excerpt: null, retryAfterMs: null, durationMs: 0, sealed: true };
    }
    const body = WebhookDeliverer.body(d);
    const t = Math.floor(startedAt / 1000);
    const r = await postWebhook(
      d.url,
      body,
      {
        'user-agent': USER_AGENT,
        'x-fleetcast-event': d.event_type,
        'x-fleetcast-delivery': String(d.id),
        'x-fleetcast-attempt': String(d.attempts),
        'x-fleetcast-signature': signatureHeader(secret, t, body),
      },
      { timeoutMs: this.timeoutMs, allowPrivateAddresses: this.allowPrivate },
    );
    return { ...r, sealed: false };
  }

  private async attempt(d: ClaimedDelivery): Promise<void> {
    const startedAt = this.clock.now();
    const r = await this.send(d, startedAt);
    const at = this.clock.now();
    const ok = r.statusCode !== null && r.statusCode >= 200 && r.statusCode < 300;
    const again = !ok && !r.sealed && retryable(r.statusCode) && d.attempts < this.maxAttempts;
    const outcome: AttemptOutcome = ok ? 'delivered' : again ? 'retry' : 'failed';
    const retryAt = again ? at + backoffMs(d.attempts, { baseMs: this.retryBaseMs, maxMs: this.retryMaxMs, random: this.random }, r.retryAfterMs) : null;
    await recordAttempt(this.db, {
      deliveryId: d.id,
      attempt: d.attempts,
      startedAt: new Date(startedAt),
      durationMs: r.durationMs,
      statusCode: r.statusCode,
      error: r.error,
      responseExcerpt: r.excerpt,
      status: outcome === 'retry' ? 'pending' : outcome,
      retryAt: retryAt === null ? null : new Date(retryAt),
      at: new Date(at),
    });
    this.stats.attempts++;
    if (outcome === 'delivered') this.stats.delivered++;
    else if (outcome === 'retry') this.stats.retried++;
    else this.stats.failed++;
    if (outcome === 'failed') this.log.warn({ delivery: d.id, subscription: d.subscription_id, status: r.statusCode, error: r.error, attempts: d.attempts }, 'webhook delivery failed');
    this.emitter.emit('attempt', {
      deliveryId: d.id,
      eventType: d.event_type,
      attempt: d.attempts,
      outcome,
      statusCode: r.statusCode,
      durationMs: r.durationMs,
    } satisfies AttemptEvent);
  }
}
