import type { Queryable } from '../store/db.js';
import { completeFinishedCampaigns } from '../store/sql/campaigns.js';
import type { EngineEvents } from './events.js';

/**
 * Marks the running campaigns among `ids` with nothing left waiting or in flight as completed, and
 * announces each. Called wherever a campaign's last message can be settled: a recorded batch,
 * crash recovery, a start with no audience, and process start.
 */
export async function closeFinishedCampaigns(db: Queryable, events: EngineEvents, ids: readonly number[], now: number): Promise<void> {
  for (const campaignId of await completeFinishedCampaigns(db, ids, new Date(now))) {
    events.emit('campaign.completed', { campaignId, at: now });
  }
}
