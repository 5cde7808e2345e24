/**
 * One engine per process: the campaign starter and the sequence planner, the pool allocator, the
 * dispatcher and outbox maintenance, sharing a store, a clock, the transports and an event bus.
 */
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import type { Transport } from '../transports/transport.js';
import { CampaignStarter, type CampaignStarterOptions } from './campaign-starter.js';
import type { Clock } from './clock.js';
import { Dispatcher, type DispatcherOptions } from './dispatcher.js';
import { EngineEvents } from './events.js';
import { Maintenance } from './maintenance.js';
import { PoolAllocator, type PoolAllocatorOptions } from './pool-allocator.js';
import { applyReply, DEFAULT_OPT_OUT_WORDS } from './replies.js';
import { SequencePlanner, type SequencePlannerOptions } from './sequence-planner.js';

export interface EngineOptions {
  dispatcher?: DispatcherOptions;
  maintenance?: { intervalMs?: number; retentionDays?: number; vacuumEvery?: number; webhookRetentionDays?: number; auditRetentionDays?: number };
  campaigns?: CampaignStarterOptions;
  pool?: PoolAllocatorOptions;
  sequences?: SequencePlannerOptions;
  /** Replies that opt a lead out (see replies.ts for the defaults). */
  optOutWords?: readonly string[];
}

export class Engine {
  readonly events = new EngineEvents();
  readonly dispatcher: Dispatcher;
  readonly campaigns: CampaignStarter;
  readonly maintenance: Maintenance;
  readonly pool: PoolAllocator;
  readonly sequences: SequencePlanner;
  private readonly optOutWords: readonly string[];
  private offReply: (() => void) | undefined;

  constructor(
    readonly db: Db,
    readonly clock: Clock,
    readonly transports: ReadonlyMap<string, Transport>,
    readonly log: Logger,
    opts: EngineOptions = {},
  ) {
    this.dispatcher = new Dispatcher(db, clock, transports, this.events, log.child({ component: 'dispatcher' }), opts.dispatcher);
    this.campaigns = new CampaignStarter(db, clock, this.events, log.child({ component: 'campaigns' }), opts.campaigns);
    this.pool = new PoolAllocator(db, clock, this.events, log.child({ component: 'pool' }), opts.pool);
    this.sequences = new SequencePlanner(db, clock, this.events, log.child({ component: 'sequences' }), opts.sequences);
    this.optOutWords = opts.optOutWords ?? DEFAULT_OPT_OUT_WORDS;
    this.maintenance = new Maintenance(db, clock, this.events, log.child({ component: 'maintenance' }), {
      ...opts.maintenance,
      changedRows: () => this.dispatcher.stats.recorded + this.dispatcher.stats.claimed,
    });
  }

  async start(): Promise<void> {
    this.offReply = this.events.on('message.reply', (r) => {
      void this.clock.track(this.onReply(r)).catch((error) => this.events.emit('error', { where: 'reply', error }));
    });
    await this.dispatcher.start();
    await this.campaigns.start();
    await this.pool.start();
    await this.sequences.start();
    this.maintenance.start();
  }

  private async onReply(r: { deviceId: number; from: string; text: string; at: number }): Promise<void> {
    const at = new Date(r.at);
    const out = await this.db.transaction((tx) => applyReply(tx, { deviceId: r.deviceId, from: r.from, text: r.text, at }, this.optOutWords));
    if (out.optedOut) for (const leadId of out.leadIds) this.events.emit('lead.opted_out', { leadId, deviceId: r.deviceId, at: r.at });
    if (out.exited > 0) this.events.emit('enrollments.exited', { leadIds: out.leadIds, reason: out.optedOut ? 'opted_out' : 'replied', exited: out.exited, at: r.at });
  }

  async stop(): Promise<void> {
    await this.campaigns.stop();
    await this.pool.stop();
    await this.sequences.stop();
    await this.maintenance.stop();
    await this.dispatcher.stop();
    this.offReply?.();
  }

  /** Stops as a crash would (tests of recovery): nothing flushed, no lease released. */
  async abandon(): Promise<void> {
    await this.campaigns.stop();
    await this.pool.stop();
    await this.sequences.stop();
    await this.maintenance.stop();
    await this.dispatcher.abandon();
    this.offReply?.();
  }

  /**
   * Nothing due, in flight or unrecorded, no campaign waiting to start, no pool lead waiting for
   * quota, no enrollment waiting for a step.
   */
  get idle(): boolean {
    return this.dispatcher.idle && this.campaigns.idle && this.pool.idle && this.sequences.idle;
  }
}
