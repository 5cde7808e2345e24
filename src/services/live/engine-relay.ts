/**
 * What the engine of this process sees, told to the people watching (services/live/channel.ts):
 * - `device.status` {device_id, status, reason}: a device went online, offline, logged out;
 * - `campaign.state` {campaign_id, status}: a campaign started or completed (the API's own
 *   changes, pause, resume, cancel, are published by the campaign service);
 * - `campaign.progress` {campaign_id, status, total, waiting, sending, sent, delivered, read,
 *   failed, other}: a running campaign's messages by state, at most once per `progressEveryMs`
 *   (and never more often than four times the last count took: a campaign of a million rows is
 *   counted every few seconds) for the campaigns whose messages settled since the last one.
 *
 * Engine events name devices and campaigns, live events their tenant: the tenant of a device or a
 * campaign never changes, so it is looked up once and remembered. Publishing never holds up the
 * engine: events are queued and sent one at a time, and a failure is reported, not thrown.
 */
import type { EngineEvents } from '../../engine/events.js';
import type { Clock } from '../../engine/clock.js';
import type { Db } from '../../store/db.js';
import { campaignsByIds, liveCampaignProgress, tenantsOfDevices } from '../../store/sql/dashboard.js';
import { publishLive } from './channel.js';

export interface LiveRelayOptions {
  /** The least time between two progress events of one campaign; default 1 s. */
  progressEveryMs?: number | undefined;
}

const MAX_REMEMBERED = 100_000;

export class LiveRelay {
  private readonly offs: (() => void)[] = [];
  private readonly deviceTenants = new Map<number, number>();
  private readonly campaignTenants = new Map<number, number>();
  private readonly touched = new Set<number>();
  private progressTimer: NodeJS.Timeout | null = null;
  private queue: Promise<void> = Promise.resolve();
  private readonly progressEveryMs: number;
  /** How long the last progress round took (wall time). */
  private lastProgressMs = 0;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly events: EngineEvents,
    o: LiveRelayOptions = {},
  ) {
    this.progressEveryMs = o.progressEveryMs ?? 1000;
  }

  start(): void {
    this.offs.push(
      this.events.on('device.status', (e) =>
        this.enqueue(async () => {
          const tenantId = await this.tenantOfDevice(e.deviceId);
          if (tenantId === undefined) return;
          await publishLive(this.db, {
            tenantId,
            deviceId: e.deviceId,
            type: 'device.status',
            at: e.at,
            data: { device_id: e.deviceId, status: e.status, reason: e.reason ?? null, at: new Date(e.at).toISOString() },
          });
        }),
      ),
      this.events.on('campaign.started', (e) => this.enqueue(() => this.campaignState(e.campaignId, 'running', e.at))),
      this.events.on('campaign.completed', (e) =>
        this.enqueue(async () => {
          this.touched.delete(e.campaignId);
          await this.campaignState(e.campaignId, 'completed', e.at);
          await this.progress([e.campaignId]);
        }),
      ),
      this.events.on('outcomes.recorded', (e) => {
        for (const c of e.campaigns ?? []) this.touched.add(c);
        if (this.touched.size > 0 && this.progressTimer === null) {
          // Counting a big campaign's rows takes a while: never spend more than a fifth of the time on it.
          this.progressTimer = setTimeout(() => {
            this.progressTimer = null;
            this.enqueue(() => this.progress());
          }, Math.max(this.progressEveryMs, 4 * this.lastProgressMs));
        }
      }),
    );
  }

  /** Waits for every queued publication (tests, shutdown). */
  async idle(): Promise<void> {
    let q: Promise<void>;
    do {
      q = this.queue;
      await q;
    } while (q !== this.queue);
  }

  async stop(): Promise<void> {
    for (const off of this.offs.splice(0)) off();
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.progressTimer = null;
    await this.idle();
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((error: unknown) => this.events.emit('error', { where: 'live relay', error }));
  }

  private async tenantOfDevice(id: number): Promise<number | undefined> {
    const known = this.deviceTenants.get(id);
    if (known !== undefined) return known;
    const found = await tenantsOfDevices(this.db, [id]);
    if (this.deviceTenants.size >= MAX_REMEMBERED) this.deviceTenants.clear();
    for (const [d, t] of found) this.deviceTenants.set(d, t);
    return found.get(id);
  }

  private async tenantsOfCampaigns(ids: readonly number[]): Promise<Map<number, number>> {
    const missing = ids.filter((id) => !this.campaignTenants.has(id));
    if (missing.length > 0) {
      if (this.campaignTenants.size >= MAX_REMEMBERED) this.campaignTenants.clear();
      for (const c of await campaignsByIds(this.db, missing)) this.campaignTenants.set(c.id, c.user_id);
    }
    const out = new Map<number, number>();
    for (const id of ids) {
      const t = this.campaignTenants.get(id);
      if (t !== undefined) out.set(id, t);
    }
    return out;
  }

  private async campaignState(campaignId: number, status: string, at: number): Promise<void> {
    const tenantId = (await this.tenantsOfCampaigns([campaignId])).get(campaignId);
    if (tenantId === undefined) return;
    await publishLive(this.db, { tenantId, type: 'campaign.state', at, data: { campaign_id: campaignId, status } });
  }

  private async progress(only?: readonly number[]): Promise<void> {
    const ids = only ?? [...this.touched];
    if (!only) this.touched.clear();
    const byTenant = new Map<number, number[]>();
    for (const [c, t] of await this.tenantsOfCampaigns(ids)) byTenant.set(t, [...(byTenant.get(t) ?? []), c]);
    const at = this.clock.now();
    const started = performance.now();
    for (const [tenantId, campaignIds] of byTenant) {
      for (const p of await liveCampaignProgress(this.db, tenantId, campaignIds)) {
        const { name: _name, mode: _mode, audience_size: _size, started_at: _started, id, ...counts } = p;
        await publishLive(this.db, { tenantId, type: 'campaign.progress', at, data: { campaign_id: id, ...counts } });
      }
    }
    this.lastProgressMs = performance.now() - started;
  }
}
