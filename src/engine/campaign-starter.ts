/**
 * Starts scheduled campaigns when their time comes and materialises them chunk by chunk.
 *
 * States of the loop: waiting (sleeps until the earliest scheduled start, or until told a campaign
 * changed) -> starting (flips each due campaign to running, FOR UPDATE SKIP LOCKED so several
 * processes can run this at once; the flip also freezes the audience) -> materialising (one chunk
 * of one campaign per transaction, round-robin over every unfinished campaign, so a million-lead
 * start never holds the store for long and a small campaign started meanwhile is not stuck
 * behind it) -> waiting.
 *
 * A campaign is `running` from its first chunk on; the dispatcher is told after every chunk so
 * sending starts before the last chunk is written, and completion waits until the last one is. A
 * crash mid-way leaves the cursor where the last committed chunk put it: on start, this process
 * resumes every unfinished campaign.
 */
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { materialisingCampaignIds, nextCampaignStart, planChunks, runningCampaignIds, takeDueCampaigns } from '../store/sql/campaigns.js';
import { closeFinishedCampaigns } from './campaign-completion.js';
import type { Clock } from './clock.js';
import { CAMPAIGNS_CHANNEL, EngineEvents, WORK_CHANNEL } from './events.js';
import { DEFAULT_CHUNK_LEADS, materialiseNextChunk } from './materialise.js';

export interface CampaignStarterOptions {
  chunkLeads?: number;
}

export class CampaignStarter {
  private stopping = false;
  private wake = new AbortController();
  private done: Promise<void> | undefined;
  private off: (() => Promise<void>) | undefined;
  private readonly chunkLeads: number;
  /** Campaigns with chunks still to write, in the order they get their next chunk. */
  private materialising: number[] = [];
  /** The next scheduled start, once known (null: none scheduled). */
  nextStart: number | null | undefined = undefined;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly events: EngineEvents,
    private readonly log: Logger,
    opts: CampaignStarterOptions = {},
  ) {
    this.chunkLeads = opts.chunkLeads ?? DEFAULT_CHUNK_LEADS;
  }

  /** Nothing to start now and nothing half-materialised. */
  get idle(): boolean {
    return this.nextStart === null && this.materialising.length === 0;
  }

  async start(): Promise<void> {
    this.off = await this.db.listen(CAMPAIGNS_CHANNEL, () => this.poke());
    // Campaigns that finished while no process was recording (a crash between the last send and
    // its record, settled since) are closed on start; half-materialised ones are resumed.
    const now = this.clock.now();
    await closeFinishedCampaigns(this.db, this.events, await runningCampaignIds(this.db), now);
    this.materialising = await materialisingCampaignIds(this.db);
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.poke();
    await this.done;
    await this.off?.();
  }

  poke(): void {
    this.nextStart = undefined;
    if (!this.wake.signal.aborted) this.wake.abort('poke');
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        while (!this.stopping && (await this.startDue())) {
          // keep going while campaigns are due
        }
        if (this.materialising.length > 0) {
          // As many chunk writers as the store runs statements at once (PGlite: one).
          const writers = Math.max(1, this.db.profile.statementParallelism);
          await Promise.all(Array.from({ length: writers }, () => this.writeChunks()));
          continue;
        }
        this.nextStart = await nextCampaignStart(this.db);
        const signal = this.wake.signal;
        if (!signal.aborted && !this.stopping) {
          if (this.nextStart === null) await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
          else await this.clock.sleepUntil(this.nextStart, signal);
        }
        this.wake = new AbortController();
      } catch (error) {
        this.events.emit('error', { where: 'campaign-starter', error });
        this.log.error({ err: error }, 'starting campaigns failed; retrying in 5s');
        await this.clock.sleepUntil(this.clock.now() + 5000, this.wake.signal);
        this.wake = new AbortController();
      }
    }
  }

  /**
   * Flips each due campaign to running and plans its chunks, one campaign per transaction (FOR
   * UPDATE SKIP LOCKED: several processes may run this at once); true if any was started.
   */
  private async startDue(): Promise<boolean> {
    let any = false;
    for (;;) {
      const now = this.clock.now();
      const c = await this.db.transaction(async (tx) => {
        const [due] = await takeDueCampaigns(tx, new Date(now), 1);
        if (due) await planChunks(tx, due, this.chunkLeads);
        return due;
      });
      if (!c) return any;
      any = true;
      this.materialising.push(c.id);
      this.log.info({ campaign: c.id, mode: c.mode }, 'campaign starting');
    }
  }

  /**
   * One writer: chunks of every unfinished campaign in turn, until none is left. Writers share the
   * list without taking campaigns off it, so on PostgreSQL two write one big campaign side by side.
   */
  private async writeChunks(): Promise<void> {
    let turn = 0;
    const drop = (id: number) => {
      const i = this.materialising.indexOf(id);
      if (i >= 0) this.materialising.splice(i, 1);
    };
    while (!this.stopping && this.materialising.length > 0) {
      const id = this.materialising[turn++ % this.materialising.length]!;
      const now = this.clock.now();
      const r = await materialiseNextChunk(this.db, id, now);
      if (r === null) {
        drop(id);
        continue;
      }
      if (r.kind === 'busy') {
        // Its last chunks are being written by another writer or process; look again shortly.
        await this.clock.sleepUntil(this.clock.now() + 50);
        continue;
      }
      if (r.kind === 'chunk') {
        // Owned rows are the dispatcher's work; queued pool leads are the pool allocator's.
        if (r.added > 0) await this.db.notify(r.mode === 'pool' ? CAMPAIGNS_CHANNEL : WORK_CHANNEL, JSON.stringify({ campaign: id }));
        // Let other work (API requests, claims) have the store between chunks.
        await this.clock.track(new Promise<void>((res) => setImmediate(res)));
        continue;
      }
      drop(id);
      this.events.emit('campaign.started', { campaignId: id, messages: r.total, mode: r.mode, at: now });
      this.log.info({ campaign: id, audience: r.total, mode: r.mode }, 'campaign started');
      await this.db.notify(r.mode === 'pool' ? CAMPAIGNS_CHANNEL : WORK_CHANNEL, JSON.stringify({ campaign: id }));
      // Every row may already have been sent while later chunks were written (or there were none).
      await closeFinishedCampaigns(this.db, this.events, [id], now);
      await this.startDue();
    }
  }
}
