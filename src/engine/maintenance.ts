/**
 * Keeps the outbox healthy. Every message row is updated several times (claimed, recorded,
 * receipts), so dead tuples pile up: on PostgreSQL autovacuum handles them (the migration tunes it
 * for the outbox); PGlite has no autovacuum worker, so here we VACUUM it once enough rows changed,
 * with the other tables the engine rewrites all the time: enrollments (twice a sequence step) and
 * device leases (every renewal). The ANALYZE matters as much: PGlite never gathers statistics by
 * itself, and without them a batch of enrollment ids was planned as a scan of a whole index.
 * Finished rows older than the retention period are deleted in batches (never those of a campaign
 * still running, whose statistics come from its rows), and so are finished webhook deliveries
 * (with their attempts) and audit entries past their own retention periods.
 *
 * States: sleeping (interval on the injected clock) -> retention pass -> vacuum if due -> sleeping.
 */
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { deleteAuditBefore } from '../store/sql/audit.js';
import { deleteFinishedBefore } from '../store/sql/messages.js';
import { deleteFinishedDeliveries } from '../store/sql/webhooks.js';
import type { Clock } from './clock.js';
import type { EngineEvents } from './events.js';

export interface MaintenanceOptions {
  intervalMs?: number;
  retentionDays?: number;
  /** Row changes (as counted by the dispatcher) between two manual VACUUMs. */
  vacuumEvery?: number;
  /** Delivered and failed webhook deliveries (and their attempts) older than this go; default 30. */
  webhookRetentionDays?: number;
  /** Audit entries older than this go; default 365. */
  auditRetentionDays?: number;
  changedRows: () => number;
}

export class Maintenance {
  private stopping = false;
  private readonly abort = new AbortController();
  private done: Promise<void> | undefined;
  private changedAtLastVacuum = 0;
  readonly stats = { deleted: 0, vacuums: 0, deliveriesDeleted: 0, auditDeleted: 0 };

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly events: EngineEvents,
    private readonly log: Logger,
    private readonly opts: MaintenanceOptions,
  ) {}

  start(): void {
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    await this.done;
  }

  private async loop(): Promise<void> {
    const interval = this.opts.intervalMs ?? 10 * 60_000;
    while (!this.stopping) {
      await this.clock.sleepUntil(this.clock.now() + interval, this.abort.signal);
      if (this.stopping) break;
      try {
        await this.runOnce();
      } catch (error) {
        this.events.emit('error', { where: 'maintenance', error });
        this.log.error({ err: error }, 'outbox maintenance failed');
      }
    }
  }

  async runOnce(): Promise<void> {
    const days = this.opts.retentionDays ?? 90;
    const before = new Date(this.clock.now() - days * 86_400_000);
    for (;;) {
      const n = await deleteFinishedBefore(this.db, before, 10_000);
      this.stats.deleted += n;
      if (n < 10_000 || this.stopping) break;
    }
    const now = this.clock.now();
    const deliveriesBefore = new Date(now - (this.opts.webhookRetentionDays ?? 30) * 86_400_000);
    for (;;) {
      const n = await deleteFinishedDeliveries(this.db, deliveriesBefore, 10_000);
      this.stats.deliveriesDeleted += n;
      if (n < 10_000 || this.stopping) break;
    }
    const auditBefore = new Date(now - (this.opts.auditRetentionDays ?? 365) * 86_400_000);
    for (;;) {
      const n = await deleteAuditBefore(this.db, auditBefore, 10_000);
      this.stats.auditDeleted += n;
      if (n < 10_000 || this.stopping) break;
    }
    const changed = this.opts.changedRows();
    if (this.db.profile.manualVacuum && changed - this.changedAtLastVacuum >= (this.opts.vacuumEvery ?? 200_000)) {
      await this.db.exec('vacuum (analyze) messages, enrollments, device_leases');
      this.changedAtLastVacuum = changed;
      this.stats.vacuums++;
    }
  }
}
