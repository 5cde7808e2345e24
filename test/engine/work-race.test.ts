/**
 * New work announced while the dispatcher is looking at a device's head must not be lost. The race
 * (real on PostgreSQL, where another connection commits between the claim and the look): the look
 * reads a snapshot without the new row and answers "nothing pending" after the notification has
 * already said "look again". The dispatcher must keep the notification's word, not sleep until its
 * next lease refresh.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualClock } from '../../src/engine/clock.js';
import { WORK_CHANNEL } from '../../src/engine/events.js';
import type { Db, QueryResult } from '../../src/store/db.js';
import { insertCampaign } from '../../src/store/sql/campaigns.js';
import { SimulatorTransport } from '../../src/transports/simulator.js';
import { backends, openTestDb } from '../helpers/db.js';
import { buildWorld, stopEngine, virtualEngine } from '../helpers/world.js';

const T0 = Date.parse('2026-07-01T10:00:00Z');

for (const backend of backends) {
  describe(`work announced during a head look on ${backend}`, () => {
    it('is sent at once, not at the next lease refresh', async () => {
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 2 });
      try {
        const w = await buildWorld(t.db, { devices: 1, leads: 1, startsAt: new Date(T0) }, new Date(T0));
        // The late row belongs to another campaign: (campaign, lead) is unique.
        const other = await insertCampaign(t.db, w.userId, { name: 'other', body: 'x', startsAt: new Date(T0), status: 'draft' }, new Date(T0));
        let armed = false;
        let injectedAt = 0;
        // The store as the dispatcher sees it: the first head look after arming answers from before
        // a row that "another connection" commits (and announces) while the look is under way.
        const racing: Db = Object.create(t.db) as Db;
        racing.query = async <R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> => {
          const stale = await t.db.query<R>(sql, params);
          if (armed && /select m\.not_before from messages m/.test(sql)) {
            armed = false;
            injectedAt = clock.now();
            await t.db.query(
              `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, created_at)
               select user_id, device_id, lead_id, phone, $2, 'late news', 'pending', $3, $3 from messages where campaign_id = $1 limit 1`,
              [w.campaignId, other, new Date(clock.now())],
            );
            await t.db.notify(WORK_CHANNEL, JSON.stringify({ devices: w.deviceIds }));
          }
          return stale;
        };
        racing.transaction = t.db.transaction.bind(t.db);
        racing.notify = t.db.notify.bind(t.db);
        racing.listen = t.db.listen.bind(t.db);
        const engine = virtualEngine(racing, clock, sim, { dispatcher: { leaseTtlMs: 3_600_000 } });
        await engine.start();
        await clock.runUntil(T0 + 60_000);
        assert.equal(sim.attempts.length, 1, 'the campaign message went out');
        // Someone announces work that is not there yet: the dispatcher looks, and the race happens.
        armed = true;
        await t.db.notify(WORK_CHANNEL, JSON.stringify({ devices: w.deviceIds }));
        await clock.runUntil(T0 + 10 * 60_000);
        await stopEngine(clock, engine);
        assert.ok(injectedAt > 0, 'the race was staged');
        const late = sim.attempts.filter((a) => a.at >= injectedAt);
        assert.equal(late.length, 1, 'the row committed during the look was sent');
        assert.ok(late[0]!.at - injectedAt < 5_000, `sent ${late[0]!.at - injectedAt} ms after it was announced`);
      } finally {
        sim.close();
        await t.dispose();
      }
    });
  });
}
