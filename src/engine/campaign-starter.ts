/**
 * Starts scheduled campaigns when their time comes: flips each to running and materialises its
 * outbox in the same transaction, so a campaign is running if and only if its messages exist.
 *
 * States: waiting (sleeps until the earliest scheduled start, or until told a campaign changed)
 * -> starting (one campaign per transaction, FOR UPDATE SKIP LOCKED so several processes can run
 * this at once) -> waiting. After each start it tells the dispatchers there is work.
 */
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { materialiseCampaign, nextCampaignStart, runningCampaignIds, takeDueCampaigns } from '../store/sql/campaigns.js';
import { closeFinishedCampaigns } from './campaign-completion.js';
import { loadWindows } from '../store/sql/windows.js';
import type { Clock } from './clock.js';
import { CAMPAIGNS_CHANNEL, EngineEvents, WORK_CHANNEL } from './events.js';
import { nextWindowOpening } from './pacing.js';

export class CampaignStarter {
  private stopping = false;
  private wake = new AbortController();
  private done: Promise<void> | undefined;
  private off: (() => Promise<void>) | undefined;
  /** The next scheduled start, once known (null: none scheduled). */
  nextStart: number | null | undefined = undefined;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly events: EngineEvents,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.off = await this.db.listen(CAMPAIGNS_CHANNEL, () => this.poke());
    // Campaigns that finished while no process was recording (a crash between the last send and
    // its record, settled since) are closed on start.
    const now = this.clock.now();
    await closeFinishedCampaigns(this.db, this.events, await runningCampaignIds(this.db), now);
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
        while (!this.stopping && (await this.startOne())) {
          // keep going while campaigns are due
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

  /** Starts one due campaign, if any. */
  private async startOne(): Promise<boolean> {
    const now = this.clock.now();
    const started = await this.db.transaction(async (tx) => {
      const [c] = await takeDueCampaigns(tx, new Date(now), 1);
      if (!c) return null;
      let notBefore = Math.max(now, c.starts_at.getTime());
      if (c.window_id !== null) {
        const w = (await loadWindows(tx, [c.window_id])).get(c.window_id);
        if (w) notBefore = nextWindowOpening(w, notBefore);
      }
      const count = await materialiseCampaign(tx, c, new Date(notBefore), new Date(now));
      return { id: c.id, count };
    });
    if (!started) return false;
    this.events.emit('campaign.started', { campaignId: started.id, messages: started.count, at: now });
    this.log.info({ campaign: started.id, messages: started.count }, 'campaign started');
    if (started.count === 0) await closeFinishedCampaigns(this.db, this.events, [started.id], now);
    await this.db.notify(WORK_CHANNEL, JSON.stringify({ campaign: started.id }));
    return true;
  }
}
