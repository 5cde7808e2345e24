/**
 * The outbox's invariants that live in the schema (a duplicate send is impossible because the row
 * cannot exist twice) and the statement that freezes a campaign's audience into it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Db, Queryable } from '../../src/store/db.js';
import { CHUNK_LEADS, insertCampaign, planChunks, startCampaignNow, takeDueCampaigns, type Audience } from '../../src/store/sql/campaigns.js';
import { materialiseAll } from '../../src/engine/materialise.js';
import { nextWindowOpening } from '../../src/engine/pacing.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { insertLeads, type NewLead } from '../../src/store/sql/leads.js';
import { insertUser } from '../../src/store/sql/users.js';
import { ensureWindow } from '../../src/store/sql/windows.js';
import { backends, openSecondPool, openTestDb, type TestDb } from '../helpers/db.js';

const T0 = Date.parse('2026-03-06T12:00:00Z');
const NOW = new Date(T0);

/** A rejection from the database with this SQLSTATE (and constraint, when given). */
function sqlError(code: string, constraint?: string) {
  return (err: unknown): boolean => {
    const e = err as { code?: string; constraint?: string };
    assert.equal(e.code, code, `SQLSTATE ${e.code} (${String(err)})`);
    if (constraint !== undefined) assert.equal(e.constraint, constraint);
    return true;
  };
}

interface MessageFields {
  userId: number;
  deviceId: number;
  leadId: number;
  phone: string;
  campaignId?: number | null;
  enrollmentId?: number | null;
  step?: number | null;
  body: string;
}

async function insertMessage(db: Queryable, m: MessageFields): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into messages (user_id, device_id, lead_id, phone, campaign_id, enrollment_id, step, body, not_before, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) returning id`,
    [m.userId, m.deviceId, m.leadId, m.phone, m.campaignId ?? null, m.enrollmentId ?? null, m.step ?? null, m.body, NOW],
  );
  return res.rows[0]!.id;
}

async function messageRows(db: Queryable, where = 'true', params: unknown[] = [], orderBy = 'id') {
  const res = await db.query<Record<string, unknown>>(
    `select id, user_id, device_id, lead_id, phone, campaign_id, enrollment_id, step, body, media, window_id, status,
            not_before, attempts, last_attempt_at, transport_id, sent_at, finished_at, error_code, created_at
       from messages where ${where} order by ${orderBy}`,
    params,
  );
  return res.rows;
}

async function insertSequence(db: Queryable, userId: number): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into sequences (user_id, name, trigger, created_at, updated_at) values ($1, 'welcome', 'signup', $2, $2) returning id`,
    [userId, NOW],
  );
  return res.rows[0]!.id;
}

async function insertEnrollment(db: Queryable, userId: number, sequenceId: number, leadId: number, status: string): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into enrollments (user_id, sequence_id, lead_id, status, enrolled_at, updated_at)
     values ($1, $2, $3, $4, $5, $5) returning id`,
    [userId, sequenceId, leadId, status, NOW],
  );
  return res.rows[0]!.id;
}

/**
 * Two tenants. Owner A's leads cover every way of being in or out of an audience; owner B has a
 * device (which one of A's leads points at by mistake) and a lead matching everything.
 */
interface Tenants {
  a: number;
  b: number;
  /** A's devices: d1, d2, and d3 which is deleted. */
  d1: number;
  d2: number;
  d3: number;
  /** B's device. */
  dB: number;
  /** A's leads by label, id and phone. */
  lead: Record<string, { id: number; phone: string; device: number | null }>;
  bLead: number;
}

async function tenants(db: Db): Promise<Tenants> {
  const a = await insertUser(db, { email: 'a@example.test', timeZone: 'Asia/Kuala_Lumpur' }, NOW);
  const b = await insertUser(db, { email: 'b@example.test', timeZone: 'UTC' }, NOW);
  const [d1, d2, d3] = await insertDevices(
    db,
    a,
    ['a-1', 'a-2', 'a-3'].map((name) => ({ name, minDelayMs: 0, maxDelayMs: 0 })),
    NOW,
  );
  const [dB] = await insertDevices(db, b, [{ name: 'b-1', minDelayMs: 0, maxDelayMs: 0 }], NOW);
  const spec: Record<string, Omit<NewLead, 'name' | 'phone'>> = {
    fitYogaProspect: { deviceId: d1!, niches: ['fitness', 'yoga'], status: 'prospect', triggers: ['signup'] },
    yogaCustomer: { deviceId: d2!, niches: ['yoga'], status: 'customer', triggers: ['webinar'] },
    optedOut: { deviceId: d1!, niches: ['fitness', 'yoga'], status: 'prospect', triggers: ['signup'] },
    noDevice: { deviceId: null, niches: ['fitness', 'yoga'], status: 'prospect', triggers: ['signup'] },
    othersDevice: { deviceId: dB!, niches: ['fitness', 'yoga'], status: 'prospect', triggers: ['signup'] },
    deletedDevice: { deviceId: d3!, niches: ['fitness', 'yoga'], status: 'prospect', triggers: ['signup'] },
    cookingCustomer: { deviceId: d1!, niches: ['cooking'], status: 'customer', triggers: ['signup'] },
    bare: { deviceId: d2!, niches: [], status: 'lost', triggers: [] },
  };
  const labels = Object.keys(spec);
  await insertLeads(
    db,
    a,
    labels.map((label, i) => ({ name: label, phone: `+6011000000${i + 1}`, ...spec[label]! })),
    NOW,
  );
  await insertLeads(db, b, [{ name: 'b lead', phone: '+4470000001', deviceId: dB!, niches: ['fitness', 'yoga'], status: 'prospect', triggers: ['signup'] }], NOW);
  await db.query(`update leads set opted_out_at = $2 where user_id = $1 and name = 'optedOut'`, [a, NOW]);
  await db.query('update devices set deleted_at = $2 where id = $1', [d3, NOW]);
  const rows = await db.query<{ id: number; name: string; phone: string; device_id: number | null; user_id: number }>(
    'select id, name, phone, device_id, user_id from leads order by id',
  );
  const lead: Tenants['lead'] = {};
  for (const r of rows.rows) if (r.user_id === a) lead[r.name] = { id: r.id, phone: r.phone, device: r.device_id };
  const bLead = rows.rows.find((r) => r.user_id === b)!.id;
  return { a, b, d1: d1!, d2: d2!, d3: d3!, dB: dB!, lead, bLead };
}

for (const backend of backends) {
  describe(`outbox constraints on ${backend}`, () => {
    async function withDb(fn: (t: TestDb, w: Tenants) => Promise<void>): Promise<void> {
      const t = await openTestDb(backend);
      try {
        await fn(t, await tenants(t.db));
      } finally {
        await t.dispose();
      }
    }

    it('rejects a second message for the same (campaign, lead) and leaves the first untouched', () =>
      withDb(async ({ db }, w) => {
        const campaign = await insertCampaign(db, w.a, { name: 'spring', body: 'Hello', startsAt: NOW }, NOW);
        const other = await insertCampaign(db, w.a, { name: 'summer', body: 'Hi', startsAt: NOW }, NOW);
        const l = w.lead.fitYogaProspect!;
        const base = { userId: w.a, deviceId: w.d1, leadId: l.id, phone: l.phone, campaignId: campaign };
        const first = await insertMessage(db, { ...base, body: 'first' });
        const before = await messageRows(db);

        await assert.rejects(insertMessage(db, { ...base, body: 'second' }), sqlError('23505', 'messages_campaign_lead_key'));
        // Through another device too: the key is the recipient, not the route.
        await assert.rejects(insertMessage(db, { ...base, deviceId: w.d2, body: 'third' }), sqlError('23505', 'messages_campaign_lead_key'));
        assert.deepEqual(await messageRows(db), before);
        assert.equal(before.length, 1);
        assert.equal(before[0]!.id, first);
        assert.equal(before[0]!.body, 'first');

        // The same lead in another campaign, and another lead in this one, are separate messages.
        await insertMessage(db, { ...base, campaignId: other, body: 'other campaign' });
        const l2 = w.lead.yogaCustomer!;
        await insertMessage(db, { ...base, leadId: l2.id, phone: l2.phone, body: 'other lead' });
        assert.deepEqual(
          (await messageRows(db)).map((r) => [r.campaign_id, r.lead_id, r.body]),
          [
            [campaign, l.id, 'first'],
            [other, l.id, 'other campaign'],
            [campaign, l2.id, 'other lead'],
          ],
        );
      }));

    it('rejects a second message for the same (enrollment, step) and leaves the first untouched', () =>
      withDb(async ({ db }, w) => {
        const seq = await insertSequence(db, w.a);
        const l = w.lead.fitYogaProspect!;
        const enrollment = await insertEnrollment(db, w.a, seq, l.id, 'active');
        const base = { userId: w.a, deviceId: w.d1, leadId: l.id, phone: l.phone, enrollmentId: enrollment };
        await insertMessage(db, { ...base, step: 1, body: 'step one' });
        const before = await messageRows(db);

        await assert.rejects(insertMessage(db, { ...base, step: 1, body: 'step one again' }), sqlError('23505', 'messages_enrollment_step_key'));
        assert.deepEqual(await messageRows(db), before);

        await insertMessage(db, { ...base, step: 2, body: 'step two' });
        assert.deepEqual(
          (await messageRows(db)).map((r) => [r.enrollment_id, r.step, r.body, r.campaign_id]),
          [
            [enrollment, 1, 'step one', null],
            [enrollment, 2, 'step two', null],
          ],
        );
      }));

    it('allows one live enrollment per (sequence, lead); finished ones do not count', () =>
      withDb(async ({ db }, w) => {
        const seq = await insertSequence(db, w.a);
        const otherSeq = await insertSequence(db, w.a);
        const lead = w.lead.fitYogaProspect!.id;
        const first = await insertEnrollment(db, w.a, seq, lead, 'active');

        await assert.rejects(insertEnrollment(db, w.a, seq, lead, 'active'), sqlError('23505', 'enrollments_live_key'));
        await assert.rejects(insertEnrollment(db, w.a, seq, lead, 'paused'), sqlError('23505', 'enrollments_live_key'));
        // The same lead in another sequence is another enrollment.
        const elsewhere = await insertEnrollment(db, w.a, otherSeq, lead, 'active');

        await db.query(`update enrollments set status = 'completed', completed_at = $2 where id = $1`, [first, NOW]);
        const second = await insertEnrollment(db, w.a, seq, lead, 'paused');
        await db.query(`update enrollments set status = 'exited', exit_reason = 'replied' where id = $1`, [second]);
        const third = await insertEnrollment(db, w.a, seq, lead, 'active');
        await assert.rejects(insertEnrollment(db, w.a, seq, lead, 'active'), sqlError('23505', 'enrollments_live_key'));
        // Reviving a finished one beside a live one is the same violation.
        await assert.rejects(
          db.query(`update enrollments set status = 'active' where id = $1`, [first]),
          sqlError('23505', 'enrollments_live_key'),
        );

        const rows = await db.query<{ id: number; sequence_id: number; status: string }>(
          'select id, sequence_id, status from enrollments where lead_id = $1 order by id',
          [lead],
        );
        assert.deepEqual(rows.rows, [
          { id: first, sequence_id: seq, status: 'completed' },
          { id: elsewhere, sequence_id: otherSeq, status: 'active' },
          { id: second, sequence_id: seq, status: 'exited' },
          { id: third, sequence_id: seq, status: 'active' },
        ]);
      }));

    it('rejects a message with both or neither of campaign and enrollment, or a step without an enrollment', () =>
      withDb(async ({ db }, w) => {
        const campaign = await insertCampaign(db, w.a, { name: 'spring', body: 'Hello', startsAt: NOW }, NOW);
        const seq = await insertSequence(db, w.a);
        const l = w.lead.fitYogaProspect!;
        const enrollment = await insertEnrollment(db, w.a, seq, l.id, 'active');
        const base = { userId: w.a, deviceId: w.d1, leadId: l.id, phone: l.phone, body: 'x' };

        await assert.rejects(
          insertMessage(db, { ...base, campaignId: campaign, enrollmentId: enrollment, step: 1 }),
          sqlError('23514', 'messages_check'),
        );
        await assert.rejects(insertMessage(db, base), sqlError('23514', 'messages_check'));
        await assert.rejects(insertMessage(db, { ...base, enrollmentId: enrollment }), sqlError('23514', 'messages_check1'));
        await assert.rejects(insertMessage(db, { ...base, campaignId: campaign, step: 2 }), sqlError('23514', 'messages_check1'));
        assert.deepEqual(await messageRows(db), []);
      }));
  });

  describe(`materialising a campaign on ${backend}`, () => {
    it('creates each audience message once however often it runs, through each lead’s own live device', async () => {
      const t = await openTestDb(backend);
      try {
        const { db } = t;
        const w = await tenants(db);
        const windowId = await ensureWindow(db, { timeZone: 'Asia/Kuala_Lumpur', startMinute: 540, endMinute: 1080, days: 127 });
        const media = { kind: 'image', url: 'https://example.test/spring.png' };
        const campaign = await insertCampaign(
          db,
          w.a,
          { name: 'spring', body: 'Spring offer', media, audience: { niches: ['fitness', 'yoga'] }, startsAt: NOW, windowId },
          NOW,
        );
        const [due] = await takeDueCampaigns(db, NOW, 10);
        assert.equal(due?.id, campaign);
        assert.equal(due?.user_id, w.a);
        assert.equal(due?.mode, 'owned');
        const maxLead = await db.query<{ id: number }>(`select max(id) as id from leads where user_id = $1`, [w.a]);
        assert.equal(due?.audience_until, maxLead.rows[0]!.id, 'the audience is frozen at the highest lead id');
        const created = new Date(T0 + 5_000);
        // Due at once, or at the window's next opening in its own zone.
        const notBefore = new Date(
          nextWindowOpening({ timeZone: 'Asia/Kuala_Lumpur', startMinute: 540, endMinute: 1080, days: 127 }, Math.max(created.getTime(), NOW.getTime())),
        );

        assert.equal(await planChunks(db, due!, CHUNK_LEADS), 1);
        assert.equal(await materialiseAll(db, campaign, created.getTime()), 2);
        // One INSERT ... SELECT writes rows in the plan's order, which is no contract: compare by lead.
        const first = await messageRows(db, 'true', [], 'lead_id');
        assert.equal(await materialiseAll(db, campaign, T0 + 9_000), 0);
        assert.deepEqual(await messageRows(db, 'true', [], 'lead_id'), first, 'the second run changes nothing');

        const expected = (label: string) => {
          const l = w.lead[label]!;
          return {
            user_id: w.a,
            device_id: l.device,
            lead_id: l.id,
            phone: l.phone,
            campaign_id: campaign,
            enrollment_id: null,
            step: null,
            body: 'Spring offer',
            media,
            window_id: windowId,
            status: 'pending',
            not_before: notBefore,
            attempts: 0,
            last_attempt_at: null,
            transport_id: null,
            sent_at: null,
            finished_at: null,
            error_code: null,
            created_at: created,
          };
        };
        // Left out: the opted-out lead, the lead without a device, the lead on B's device, the lead
        // on a deleted device, the cooking lead (niches), and B's own lead.
        assert.deepEqual(
          first.map(({ id: _id, ...rest }) => rest),
          [expected('fitYogaProspect'), expected('yogaCustomer')],
        );
      } finally {
        await t.dispose();
      }
    });

    const audiences: [string, (w: Tenants) => Audience, string[]][] = [
      ['no filter', () => ({}), ['fitYogaProspect', 'yogaCustomer', 'cookingCustomer', 'bare']],
      ['niches overlap', () => ({ niches: ['cooking', 'yoga'] }), ['fitYogaProspect', 'yogaCustomer', 'cookingCustomer']],
      ['statuses', () => ({ statuses: ['customer', 'lost'] }), ['yogaCustomer', 'cookingCustomer', 'bare']],
      ['device ids', (w) => ({ deviceIds: [w.d1] }), ['fitYogaProspect', 'cookingCustomer']],
      ['another user’s device', (w) => ({ deviceIds: [w.dB] }), []],
      ['a deleted device', (w) => ({ deviceIds: [w.d3] }), []],
      ['triggers overlap', () => ({ triggers: ['signup', 'unknown'] }), ['fitYogaProspect', 'cookingCustomer']],
      [
        'every filter at once',
        (w) => ({ niches: ['yoga'], statuses: ['prospect', 'customer'], deviceIds: [w.d1, w.d3, w.dB], triggers: ['signup'] }),
        ['fitYogaProspect'],
      ],
    ];

    it('respects each audience filter, alone and together', async () => {
      const t = await openTestDb(backend);
      try {
        const { db } = t;
        const w = await tenants(db);
        for (const [name, audienceOf, labels] of audiences) {
          const audience = audienceOf(w);
          const id = await insertCampaign(db, w.a, { name, body: name, audience, startsAt: NOW }, NOW);
          assert.ok(await startCampaignNow(db, id, NOW));
          assert.equal(await materialiseAll(db, id, NOW.getTime()), labels.length, name);
          assert.equal(await materialiseAll(db, id, NOW.getTime()), 0, name);
          const rows = await messageRows(db, 'campaign_id = $1', [id], 'lead_id');
          assert.deepEqual(
            rows.map((r) => [r.lead_id, r.device_id, r.user_id]),
            labels.map((l) => [w.lead[l]!.id, w.lead[l]!.device, w.a]),
            name,
          );
        }
      } finally {
        await t.dispose();
      }
    });

    if (backend === 'postgres') {
      it('two processes materialising one campaign at once create each message once', async () => {
        const t = await openTestDb(backend);
        const second = await openSecondPool(t);
        try {
          const w = await tenants(t.db);
          const id = await insertCampaign(t.db, w.a, { name: 'race', body: 'race', startsAt: NOW }, NOW);
          assert.ok(await startCampaignNow(t.db, id, NOW, ['scheduled'], 1));
          for (let round = 0; round < 5; round++) {
            const counts = await Promise.all(
              [t.db, second].map((db) => materialiseAll(db, id, NOW.getTime())),
            );
            assert.equal(counts[0]! + counts[1]!, round === 0 ? 4 : 0);
          }
          const rows = await messageRows(t.db, 'campaign_id = $1', [id], 'lead_id');
          assert.deepEqual(
            rows.map((r) => r.lead_id),
            ['fitYogaProspect', 'yogaCustomer', 'cookingCustomer', 'bare'].map((l) => w.lead[l]!.id),
          );
        } finally {
          await second.close();
          await t.dispose();
        }
      });
    }
  });
}
