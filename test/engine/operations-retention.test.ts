/** Maintenance trims finished webhook deliveries (with their attempts) and old audit entries. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualClock } from '../../src/engine/clock.js';
import { EngineEvents } from '../../src/engine/events.js';
import { Maintenance } from '../../src/engine/maintenance.js';
import { insertAuditEntry } from '../../src/store/sql/audit.js';
import { insertSubscription } from '../../src/store/sql/webhooks.js';
import { insertUser } from '../../src/store/sql/users.js';
import { backends, openTestDb } from '../helpers/db.js';
import { quietLog } from '../helpers/world.js';

const T0 = Date.parse('2026-06-01T00:00:00Z');
const DAY = 86_400_000;

for (const backend of backends) {
  describe(`webhook and audit retention on ${backend}`, () => {
    it('deletes delivered and failed deliveries past retention with their attempts, keeps waiting ones, and old audit entries', async () => {
      const now = T0 + 100 * DAY;
      const clock = new VirtualClock(now);
      const t = await openTestDb(backend, (p) => clock.track(p));
      try {
        const db = t.db;
        const userId = await insertUser(db, { email: 'retention@example.test', timeZone: 'UTC' }, new Date(T0));
        const sub = await insertSubscription(db, userId, { url: 'https://x.example.com/', events: ['message.sent'], description: '', active: true, secret: 'plain:s', createdBy: userId }, new Date(T0));
        const delivery = async (status: string, finishedDaysAgo: number | null) =>
          (
            await db.query<{ id: number }>(
              `insert into webhook_deliveries (subscription_id, user_id, event_type, payload, occurred_at, status, next_attempt_at, created_at, finished_at)
               values ($1, $2, 'message.sent', '{}', $3, $4, $3, $3, $5) returning id`,
              [sub.id, userId, new Date(T0), status, finishedDaysAgo === null ? null : new Date(now - finishedDaysAgo * DAY)],
            )
          ).rows[0]!.id;
        const oldDelivered = await delivery('delivered', 40);
        const oldFailed = await delivery('failed', 31);
        const recent = await delivery('delivered', 5);
        const waiting = await delivery('pending', null);
        await db.query(`insert into webhook_attempts (delivery_id, attempt, started_at, duration_ms) values ($1, 1, $2, 10), ($3, 1, $2, 10)`, [oldDelivered, new Date(T0), recent]);
        const audit = (daysAgo: number, action: string) =>
          insertAuditEntry(db, {
            at: new Date(now - daysAgo * DAY),
            tenantId: userId,
            actorId: userId,
            actorEmail: 'retention@example.test',
            via: 'token',
            credentialId: 1,
            action,
            targetType: null,
            targetId: null,
            method: 'POST',
            route: '/api/v1/x',
            statusCode: 200,
            requestId: 'r',
            ip: '127.0.0.1',
          });
        await audit(400, 'old.action');
        await audit(10, 'recent.action');

        const m = new Maintenance(db, clock, new EngineEvents(), quietLog, { changedRows: () => 0, webhookRetentionDays: 30, auditRetentionDays: 365 });
        await m.runOnce();
        const left = (await db.query<{ id: number }>('select id from webhook_deliveries order by id')).rows.map((r) => r.id);
        assert.deepEqual(left, [recent, waiting]);
        const attempts = (await db.query<{ delivery_id: number }>('select delivery_id from webhook_attempts')).rows.map((r) => r.delivery_id);
        assert.deepEqual(attempts, [recent], 'the attempts went with their delivery');
        const actions = (await db.query<{ action: string }>('select action from audit_log order by id')).rows.map((r) => r.action);
        assert.deepEqual(actions, ['recent.action']);
        assert.equal(m.stats.deliveriesDeleted, 2);
        assert.equal(m.stats.auditDeleted, 1);
      } finally {
        await t.dispose();
      }
    });
  });
}
