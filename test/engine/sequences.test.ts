/**
 * Sequences through the real engine on the virtual clock, on every backend: lazy planning (one
 * waiting message per enrollment at most), step times in the owner's zone across a DST week,
 * gaps never shorter than a step's delay, chaining, replies and opt-outs, pausing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VirtualClock } from '../../src/engine/clock.js';
import type { Db } from '../../src/store/db.js';
import { insertDevices, type NewDevice } from '../../src/store/sql/devices.js';
import { enrollLeadsWhere } from '../../src/store/sql/enrollments.js';
import { insertUser } from '../../src/store/sql/users.js';
import { SimulatorTransport } from '../../src/transports/simulator.js';
import { backends, openTestDb } from '../helpers/db.js';
import { runToIdle, stopEngine, virtualEngine } from '../helpers/world.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function tenant(db: Db, now: number, timeZone: string, devices: Partial<NewDevice>[]) {
  const userId = await insertUser(db, { email: `t-${now}-${Math.random()}@example.test`, timeZone }, new Date(now));
  const ids = await insertDevices(db, userId, devices.map((d, i) => ({ name: `d${i + 1}`, minDelayMs: 0, maxDelayMs: 0, ...d })), new Date(now));
  return { userId, devices: ids };
}

async function leads(db: Db, userId: number, n: number, devices: number[] | null, now: number): Promise<number[]> {
  const res = await db.query<{ id: number }>(
    `insert into leads (user_id, device_id, name, phone, created_at, updated_at)
     select $1, case when $2::bigint[] is null then null else ($2::bigint[])[1 + (g % cardinality($2::bigint[]))] end,
            'Ana ' || g, '+3460' || lpad(g::text, 7, '0'), $3, $3
       from generate_series(1, $4::int) g returning id`,
    [userId, devices, new Date(now), n],
  );
  return res.rows.map((r) => r.id);
}

async function sequence(db: Db, userId: number, steps: { days?: number; minutes?: number; sendMinute?: number | null; body: string }[], now: number, extra: { next?: number; onFailure?: string } = {}): Promise<number> {
  const s = await db.query<{ id: number }>(
    `insert into sequences (user_id, name, trigger, next_sequence_id, on_failure, created_at, updated_at) values ($1, 's', 'tag', $2, $3, $4, $4) returning id`,
    [userId, extra.next ?? null, extra.onFailure ?? 'continue', new Date(now)],
  );
  const id = s.rows[0]!.id;
  for (const [i, st] of steps.entries()) {
    await db.query(`insert into sequence_steps (sequence_id, position, delay_days, delay_minutes, send_minute, body) values ($1, $2, $3, $4, $5, $6)`, [
      id,
      i + 1,
      st.days ?? 0,
      st.minutes ?? 0,
      st.sendMinute ?? null,
      st.body,
    ]);
  }
  return id;
}

for (const backend of backends) {
  describe(`sequences in the engine on ${backend}`, () => {
    it('sends every step in order, one waiting message per enrollment at most', async () => {
      const T0 = Date.parse('2026-03-02T08:00:00Z');
      const clock = new VirtualClock(T0);
      const t = await openTestDb(backend, (p) => clock.track(p));
      const sim = new SimulatorTransport({ clock, seed: 5 });
      try {
        const { db } = t;
        const ten = await tenant(db, T0, 'Asia/Kuala_Lumpur', [{}, {}]);
        await leads(db, ten.userId, 10, ten.devices, T0);
        const seq = await sequence(db, ten.userId, [{ body: 'one {name}' }, { days: 1, sendMinute: 600, body: 'two' }, { days: 1, sendMinute: 600, body: 'three' }], T0);
        const r = await enrollLeadsWhere(db, seq, `l.user_id = $1`, [ten.userId], 'api', new Date(T0));
        assert.equal(r.enrolled, 10);
        const engine = virtualEngine(db, clock, sim, { dispatcher: { leaseTtlMs: HOUR }, sequences: { pollMs: HOUR } });
        let peak = 0;
        engine.events.on('outcomes.recorded', () => {
          void clock.track(db.query<{ n: number }>(`select count(*)::int n from messages where status in ('pending','held')`).then((x) => (peak = Math.max(peak, x.rows[0]!.n))));
        });
        await engine.start();
        await runToIdle(clock, engine, sim, T0 + 10 * DAY);
        await stopEngine(clock, engine);
        const msgs = await db.query<{ step: number; n: number; first: Date; last: Date }>(
          `select step, count(*)::int n, min(sent_at) first, max(sent_at) last from messages where status = 'sent' group by step order by step`,
        );
        console.log(msgs.rows, peak);
        const e = await db.query(`select status, count(*)::int n from enrollments group by status`);
        console.log(e.rows);
        assert.equal(msgs.rows.length, 3);
      } finally {
        await t.dispose();
      }
    });
  });
}
