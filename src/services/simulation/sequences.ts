/**
 * A scenario's drip sequences in the world: the sequences of each user with their windows, their
 * steps (written whole, delay days included, in one statement per user), the links to their next
 * sequences, and the enrollment of the leads that carry a trigger at the start. Every statement
 * is per sequence or per user, never per lead: enrolling a hundred thousand tagged leads is one
 * statement per sequence, through the same enrollment statement the API's triggers use.
 */
import type { Queryable } from '../../store/db.js';
import { enrollLeadsWhere } from '../../store/sql/enrollments.js';
import { insertSequenceRow, updateSequenceRow } from '../../store/sql/sequences.js';
import { ensureWindow } from '../../store/sql/windows.js';
import { delayMinutesOf, sequencesOf, type ScenarioUser, type SequenceSpec } from './scenario.js';
import { sendWindowOf } from './windows.js';

export interface WorldSequence {
  id: number;
  name: string;
  userIndex: number;
  spec: SequenceSpec;
}

const minuteOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** Writes one user's sequences and their steps; returns them in scenario order (ids follow it). */
export async function insertUserSequences(db: Queryable, userId: number, user: ScenarioUser, userIndex: number, now: Date): Promise<WorldSequence[]> {
  const specs = sequencesOf(user);
  if (specs.length === 0) return [];
  const out: WorldSequence[] = [];
  for (const spec of specs) {
    const windowId = spec.window ? await ensureWindow(db, sendWindowOf(spec.window, user.timeZone)) : null;
    const id = await insertSequenceRow(
      db,
      userId,
      { name: spec.name, trigger: spec.trigger, windowId, nextSequenceId: null, reentry: spec.reentry, onFailure: spec.onFailure, exitOnReply: spec.exitOnReply },
      now,
    );
    out.push({ id, name: spec.name, userIndex, spec });
  }
  // Validation made names unique per user and the chains loop-free.
  const idOf = new Map(out.map((q) => [q.name, q.id]));
  for (const q of out) {
    if (q.spec.next !== undefined) await updateSequenceRow(db, userId, q.id, { nextSequenceId: idOf.get(q.spec.next)! }, now);
  }
  const paused = out.filter((q) => q.spec.paused).map((q) => q.id);
  if (paused.length > 0) await db.query(`update sequences set status = 'paused' where id = any($1::bigint[])`, [paused]);
  await insertSteps(db, out);
  return out;
}

/** Every step of the given sequences, numbered 1..n in scenario order, in one statement. */
async function insertSteps(db: Queryable, sequences: readonly WorldSequence[]): Promise<void> {
  const rows = sequences.flatMap((q) =>
    q.spec.steps.map((st, i) => ({
      sequenceId: q.id,
      position: i + 1,
      days: st.delay.days ?? 0,
      minutes: delayMinutesOf(st),
      sendMinute: st.sendTime === undefined ? null : minuteOf(st.sendTime),
      body: st.message,
      // Stored as the transport reads it, as a campaign's; the simulator never fetches it.
      media: st.media ? JSON.stringify({ kind: st.media.type, url: st.media.url }) : null,
    })),
  );
  await db.query(
    `insert into sequence_steps (sequence_id, position, delay_days, delay_minutes, send_minute, body, media)
     select u.sequence_id, u.position, u.days, u.minutes, u.send_minute, u.body, u.media::jsonb
       from unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::int[], $6::text[], $7::text[])
            as u(sequence_id, position, days, minutes, send_minute, body, media)`,
    [
      rows.map((r) => r.sequenceId),
      rows.map((r) => r.position),
      rows.map((r) => r.days),
      rows.map((r) => r.minutes),
      rows.map((r) => r.sendMinute),
      rows.map((r) => r.body),
      rows.map((r) => r.media),
    ],
  );
}

/**
 * Enrolls, into each sequence, the user's leads that carry its trigger at the start, as if they
 * had just gained it (source `trigger`): one statement per sequence, over the leads' trigger index.
 * Returns the enrollments made.
 */
export async function enrollTaggedAtStart(db: Queryable, userId: number, sequences: readonly WorldSequence[], now: Date): Promise<number> {
  let enrolled = 0;
  for (const q of sequences) {
    const r = await enrollLeadsWhere(db, q.id, `l.user_id = $1::bigint and l.triggers @> array[$2::text]`, [userId, q.spec.trigger], 'trigger', now);
    enrolled += r.enrolled;
  }
  return enrolled;
}
