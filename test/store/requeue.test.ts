/**
 * A row in flight when its campaign is paused or cancelled must not come back as claimable: a
 * retry, a device found offline or a recovered send lands it `held` (paused) or `cancelled`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { materialiseAll } from '../../src/engine/materialise.js';
import type { Db } from '../../src/store/db.js';
import { insertCampaign, startCampaignNow } from '../../src/store/sql/campaigns.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { generateLeads } from '../../src/store/sql/leads.js';
import { recordOutcomes, settleInFlight, type Outcome } from '../../src/store/sql/messages.js';
import { insertUser } from '../../src/store/sql/users.js';
import { backends, openTestDb } from '../helpers/db.js';

const NOW = new Date('2026-06-01T09:00:00Z');

async function inFlight(db: Db, campaignStatus: string | null): Promise<{ ids: number[]; campaignId: number }> {
  const userId = await insertUser(db, { email: `r-${Math.random()}@example.test`, timeZone: 'UTC' }, NOW);
  const [device] = await insertDevices(db, userId, [{ name: 'd', minDelayMs: 0, maxDelayMs: 0 }], NOW);
  await generateLeads(db, userId, [device!], 4, '+4470', 1, NOW);
  const campaignId = await insertCampaign(db, userId, { name: 'c', body: 'Hi', startsAt: NOW }, NOW);
  await startCampaignNow(db, campaignId, NOW);
  await materialiseAll(db, campaignId, NOW.getTime());
  const res = await db.query<{ id: number }>(`update messages set status = 'sending' where campaign_id = $1 returning id`, [campaignId]);
  if (campaignStatus) await db.query(`update campaigns set status = $2 where id = $1`, [campaignId, campaignStatus]);
  return { ids: res.rows.map((r) => r.id).sort((a, b) => a - b), campaignId };
}

const retry = (id: number): Outcome => ({
  id,
  status: 'pending',
  attempted: true,
  attemptAt: NOW.getTime(),
  at: NOW.getTime(),
  transportId: null,
  retryAt: NOW.getTime() + 60_000,
  errorCode: 'TIMEOUT',
  error: 'timed out',
});

async function statuses(db: Db, campaignId: number) {
  const res = await db.query<{ status: string; error_code: string | null; finished: boolean }>(
    `select status, error_code, finished_at is not null as finished from messages where campaign_id = $1 order by id`,
    [campaignId],
  );
  return res.rows;
}

for (const backend of backends) {
  describe(`requeued rows and their campaign on ${backend}`, () => {
    it('a retry of a running campaign is pending again; of a paused one held; of a cancelled one cancelled', async () => {
      const t = await openTestDb(backend);
      try {
        for (const [state, expected] of [
          ['running', { status: 'pending', error_code: 'TIMEOUT', finished: false }],
          ['paused', { status: 'held', error_code: 'TIMEOUT', finished: false }],
          ['cancelled', { status: 'cancelled', error_code: 'campaign_cancelled', finished: true }],
        ] as const) {
          const { ids, campaignId } = await inFlight(t.db, state);
          assert.equal(await recordOutcomes(t.db, ids.map(retry)), 4);
          assert.deepEqual(await statuses(t.db, campaignId), ids.map(() => expected), state);
        }
      } finally {
        await t.dispose();
      }
    });

    it('crash recovery puts an at-least-once send back the same way', async () => {
      const t = await openTestDb(backend);
      try {
        const { ids, campaignId } = await inFlight(t.db, 'paused');
        await settleInFlight(t.db, ids.map((id) => ({ id, status: 'pending' as const, at: NOW.getTime() })));
        assert.deepEqual((await statuses(t.db, campaignId)).map((r) => r.status), ['held', 'held', 'held', 'held']);
        const other = await inFlight(t.db, 'cancelled');
        await settleInFlight(t.db, [
          { id: other.ids[0]!, status: 'pending', at: NOW.getTime() },
          { id: other.ids[1]!, status: 'sent', at: NOW.getTime() },
          { id: other.ids[2]!, status: 'unknown', at: NOW.getTime() },
        ]);
        assert.deepEqual(
          (await statuses(t.db, other.campaignId)).map((r) => [r.status, r.error_code]),
          [['cancelled', 'campaign_cancelled'], ['sent', null], ['unknown', 'INTERRUPTED'], ['sending', null]],
        );
      } finally {
        await t.dispose();
      }
    });
  });
}
