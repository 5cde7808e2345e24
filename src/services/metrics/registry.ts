/**
 * Prometheus metrics of one process (prom-client, its own registry so several servers in one test
 * process never share counters).
 *
 * Counters come from the engine's events and the webhook deliverer's attempts, so nothing on the
 * dispatcher's hot path calls into this module. Figures that live in the database (outbox depth,
 * devices by status, webhook backlog) are read at most once per `cacheMs` whatever the scrape
 * rate, by queries that walk partial indexes only: never a count of the whole outbox.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Clock } from '../../engine/clock.js';
import type { Engine } from '../../engine/engine.js';
import type { WebhookDeliverer } from '../../engine/webhook-deliverer.js';
import type { Db } from '../../store/db.js';
import { devicesByStatus } from '../../store/sql/devices.js';
import { outboxDepth } from '../../store/sql/messages.js';
import { webhookBacklog } from '../../store/sql/webhooks.js';

export interface MetricsOptions {
  engine?: Engine | undefined;
  deliverer?: WebhookDeliverer | undefined;
  /** How long database figures are reused between scrapes; default 10 s. */
  cacheMs?: number;
  /** Node's process metrics (CPU, memory, event loop lag); default on. */
  processMetrics?: boolean;
}

interface Snapshot {
  at: number;
  outbox: Record<string, number>;
  devices: Record<string, number>;
  paused: number;
  webhooks: number;
}

/** Seconds; from "due" to "sent" spans sub-second sends and messages that waited hours for their device. */
const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

export class FleetcastMetrics {
  readonly registry = new Registry();
  private readonly offs: (() => void)[] = [];
  private snapshot: Promise<Snapshot> | undefined;
  private readonly cacheMs: number;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    o: MetricsOptions = {},
  ) {
    this.cacheMs = o.cacheMs ?? 10_000;
    const register = [this.registry];
    if (o.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'fleetcast_' });

    const messages = new Counter({
      name: 'fleetcast_messages_total',
      help: 'Send outcomes recorded by this process, by status (sent, failed, skipped; retry: tried again later; requeued: device went offline)',
      labelNames: ['status'],
      registers: register,
    });
    const sent = new Counter({ name: 'fleetcast_messages_sent_total', help: 'Messages sent by this process (rate() gives sends per second)', registers: register });
    const latency = new Histogram({
      name: 'fleetcast_dispatch_latency_seconds',
      help: 'From when a message fell due (not_before) to when the transport accepted it; includes waiting for its device’s pacing',
      buckets: LATENCY_BUCKETS,
      registers: register,
    });
    const webhookOutcomes = new Counter({
      name: 'fleetcast_webhook_deliveries_total',
      help: 'Webhook attempts made by this process, by outcome (delivered; retry: will be tried again; failed: given up)',
      labelNames: ['outcome'],
      registers: register,
    });
    const webhookDuration = new Histogram({
      name: 'fleetcast_webhook_attempt_duration_seconds',
      help: 'How long each webhook attempt took',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: register,
    });
    for (const s of ['sent', 'failed', 'skipped', 'retry', 'requeued']) messages.inc({ status: s }, 0);
    for (const s of ['delivered', 'retry', 'failed']) webhookOutcomes.inc({ outcome: s }, 0);

    const engine = o.engine;
    if (engine) {
      this.offs.push(
        engine.events.on('outcomes.recorded', (e) => {
          for (const x of e.outcomes ?? []) {
            const status = x.status === 'pending' ? (x.attempted ? 'retry' : 'requeued') : x.status;
            messages.inc({ status });
            if (x.status === 'sent') {
              sent.inc();
              if (x.dueAt !== undefined) latency.observe(Math.max(0, x.at - x.dueAt) / 1000);
            }
          }
        }),
      );
      new Gauge({
        name: 'fleetcast_devices_served',
        help: 'Devices whose lease this process holds',
        registers: register,
        collect() {
          this.set(engine.dispatcher.deviceIds.length);
        },
      });
    }
    if (o.deliverer) {
      this.offs.push(
        o.deliverer.onAttempt((a) => {
          webhookOutcomes.inc({ outcome: a.outcome });
          webhookDuration.observe(a.durationMs / 1000);
        }),
      );
    }

    const figures = () => this.figures();
    new Gauge({
      name: 'fleetcast_outbox_messages',
      help: 'Messages waiting in the outbox, by status (pending: claimable; held: campaign or sequence paused; sending: in flight)',
      labelNames: ['status'],
      registers: register,
      async collect() {
        const f = await figures();
        for (const s of ['pending', 'held', 'sending']) this.set({ status: s }, f.outbox[s] ?? 0);
      },
    });
    new Gauge({
      name: 'fleetcast_devices',
      help: 'Devices (not deleted) by connection status; paused: paused or restricted right now, whatever the status',
      labelNames: ['status'],
      registers: register,
      async collect() {
        const f = await figures();
        for (const s of ['online', 'connecting', 'offline', 'logged_out', 'replaced']) this.set({ status: s }, f.devices[s] ?? 0);
        this.set({ status: 'paused' }, f.paused);
      },
    });
    new Gauge({
      name: 'fleetcast_webhook_backlog',
      help: 'Webhook deliveries waiting or in flight',
      registers: register,
      async collect() {
        this.set((await figures()).webhooks);
      },
    });
  }

  private figures(): Promise<Snapshot> {
    const now = this.clock.now();
    const cached = this.snapshot;
    if (cached) {
      return cached.then((s) => {
        if (now - s.at < this.cacheMs) return s;
        // Scrapes arriving together share one read.
        if (this.snapshot === cached) this.snapshot = this.read(now);
        return this.snapshot ?? this.read(now);
      });
    }
    const fresh = this.read(now);
    this.snapshot = fresh;
    return fresh;
  }

  private async read(now: number): Promise<Snapshot> {
    try {
      const outbox = await outboxDepth(this.db);
      const d = await devicesByStatus(this.db, new Date(now));
      const webhooks = await webhookBacklog(this.db);
      return { at: now, outbox, devices: d.byStatus, paused: d.paused, webhooks };
    } catch (err) {
      // A failed read is not cached: the next scrape tries again.
      this.snapshot = undefined;
      throw err;
    }
  }

  /** The Prometheus text exposition. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    for (const off of this.offs.splice(0)) off();
    this.registry.clear();
  }
}
