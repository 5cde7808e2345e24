/**
 * One engine per process: the campaign starter (planner), the pool allocator, the dispatcher and
 * outbox maintenance, sharing a store, a clock, the transports and an event bus.
 */
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { recordReply } from '../store/sql/leads.js';
import type { Transport } from '../transports/transport.js';
import { CampaignStarter, type CampaignStarterOptions } from './campaign-starter.js';
import type { Clock } from './clock.js';
import { Dispatcher, type DispatcherOptions } from './dispatcher.js';
import { EngineEvents } from './events.js';
import { Maintenance } from './maintenance.js';
import { PoolAllocator, type PoolAllocatorOptions } from './pool-allocator.js';

export interface EngineOptions {
  dispatcher?: DispatcherOptions;
  maintenance?: { intervalMs?: number; retentionDays?: number; vacuumEvery?: number };
  campaigns?: CampaignStarterOptions;
  pool?: PoolAllocatorOptions;
}

export class Engine {
  readonly events = new EngineEvents();
  readonly dispatcher: Dispatcher;
  readonly campaigns: CampaignStarter;
  readonly maintenance: Maintenance;
  readonly pool: PoolAllocator;
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
    this.maintenance = new Maintenance(db, clock, this.events, log.child({ component: 'maintenance' }), {
      ...opts.maintenance,
      changedRows: () => this.dispatcher.stats.recorded + this.dispatcher.stats.claimed,
    });
  }

  async start(): Promise<void> {
    this.offReply = this.events.on('message.reply', (r) => {
      void this.clock
        .track(recordReply(this.db, r.deviceId, r.from, new Date(r.at)))
        .catch((error) => this.events.emit('error', { where: 'recordReply', error }));
    });
    await this.dispatcher.start();
    await this.campaigns.start();
    await this.pool.start();
    this.maintenance.start();
  }

  async stop(): Promise<void> {
    await this.campaigns.stop();
    await this.pool.stop();
    await this.maintenance.stop();
    await this.dispatcher.stop();
    this.offReply?.();
  }

  /** Stops as a crash would (tests of recovery): nothing flushed, no lease released. */
  async abandon(): Promise<void> {
    await this.campaigns.stop();
    await this.pool.stop();
    await this.maintenance.stop();
    await this.dispatcher.abandon();
    this.offReply?.();
  }

  /** Nothing due, in flight or unrecorded, no campaign waiting to start, no pool lead waiting for quota. */
  get idle(): boolean {
    return this.dispatcher.idle && this.campaigns.idle && this.pool.idle;
  }
}
