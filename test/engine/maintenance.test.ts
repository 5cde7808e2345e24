/** Outbox housekeeping: retention of finished rows and, on PGlite, VACUUM after enough changes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualClock } from '../../src/engine/clock.js';
import { EngineEvents } from '../../src/engine/events.js';
import { Maintenance } from '../../src/engine/maintenance.js';
import { backends, openTestDb } from '../helpers/db.js';
import { buildWorld, quietLog } from '../helpers/world.js';

const T0 = Date.parse('2026-06-01T00:00:00Z');
const DAY = 86_400_000;

for (const backend of backends) {
  describe(`outbox maintenance on ${backend}`, () => {
    it('deletes finished rows past retention, keeps recent, waiting and running-campaign rows, and vacuums PGlite', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        const done = await buildWorld(t.db, { devices: 1, leads: 4, startsAt: new Date(T0) }, new Date(T0));
        const running = await buildWorld(t.db, { devices: 1, leads: 2, startsAt: new Date(T0) }, new Date(T0));
        // Four messages of a completed campaign: two finished long ago, one recently, one still pending.
        await t.db.query(`update campaigns set status = 'completed' where id = $1`, [done.campaignId]);
        await t.db.query(`update campaigns set status = 'running' where id = $1`, [running.campaignId]);
        for (const w of [done, running]) {
          await t.db.query(
            `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, not_before, created_at)
             select l.user_id, l.device_id, l.id, l.phone, $2, 'Hi', $3, $3 from leads l where l.user_id = $1 order by l.id`,
            [w.userId, w.campaignId, new Date(T0)],
          );
        }
        const ids = (await t.db.query<{ id: number; campaign_id: number }>('select id, campaign_id from messages order by id')).rows;
        const mine = ids.filter((r) => r.campaign_id === done.campaignId).map((r) => r.id);
        const theirs = ids.filter((r) => r.campaign_id === running.campaignId).map((r) => r.id);
        const finishAt = (id: number, at: number) =>
          t.db.query(`update messages set status = 'sent', sent_at = $2, finished_at = $2 where id = $1`, [id, new Date(at)]);
        await finishAt(mine[0]!, T0);
        await finishAt(mine[1]!, T0 + DAY);
        await finishAt(mine[2]!, T0 + 40 * DAY);
        await finishAt(theirs[0]!, T0);

        let changed = 0;
        const m = new Maintenance(t.db, clock, new EngineEvents(), quietLog, { retentionDays: 30, vacuumEvery: 10, changedRows: () => changed });
        await clock.advanceTo(T0 + 45 * DAY);
        changed = 25;
        await m.runOnce();

        const left = (await t.db.query<{ id: number }>('select id from messages order by id')).rows.map((r) => r.id);
        assert.deepEqual(left, [mine[2]!, mine[3]!, ...theirs]);
        assert.equal(m.stats.deleted, 2);
        assert.equal(m.stats.vacuums, backend === 'pglite' ? 1 : 0, 'only PGlite, which has no autovacuum, is vacuumed by hand');
        await m.runOnce();
        assert.equal(m.stats.vacuums, backend === 'pglite' ? 1 : 0, 'no new changes, no new vacuum');
      } finally {
        await t.dispose();
      }
    });
  });
}
