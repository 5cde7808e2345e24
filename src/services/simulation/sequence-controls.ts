/**
 * What a scenario's sequence and tag events do to the world, in one place: pausing and resuming a
 * sequence, and leads gaining a trigger tag. Each runs the store statements the services run for
 * the same action (SequenceService's pause and resume, LeadService's enrollment of gained tags),
 * in one transaction, then sends the same notifications, so the engine sees a simulated pause or
 * tag exactly as a real one. A scenario names no acting user for these, so they work on ids
 * directly; this module is the one place to swap for calls to the services as the owner.
 */
import { SEQUENCES_CHANNEL, WORK_CHANNEL, workPayload } from '../../engine/events.js';
import type { Db } from '../../store/db.js';
import { enrollGainedTags, holdEnrollmentMessages, releaseEnrollmentMessages } from '../../store/sql/enrollments.js';

export interface ControlOutcome {
  applied: boolean;
  /** The sequence's status after the action (applied), or the status that refused it. */
  status: string;
}

async function statusOf(db: Db, sequenceId: number): Promise<string> {
  const res = await db.query<{ status: string }>(`select status from sequences where id = $1`, [sequenceId]);
  return res.rows[0]?.status ?? 'deleted';
}

/**
 * Pauses an active sequence: no later step is planned, and the messages its enrollments have
 * waiting are held (out of the dispatcher's reach). A message already being sent finishes.
 */
export async function pauseSequence(db: Db, sequenceId: number, now: Date): Promise<ControlOutcome> {
  const applied = await db.transaction(async (tx) => {
    const res = await tx.query(`update sequences set status = 'paused', updated_at = $2 where id = $1 and status = 'active'`, [sequenceId, now]);
    if (res.rowCount === 0) return false;
    await holdEnrollmentMessages(tx, `e.sequence_id = $1::bigint`, [sequenceId]);
    return true;
  });
  return { applied, status: await statusOf(db, sequenceId) };
}

/**
 * Resumes a paused sequence: its held messages wait again (due at once if their time passed;
 * each device's pacing spreads them), and the planner is told that steps which fell due meanwhile
 * are now to be written.
 */
export async function resumeSequence(db: Db, sequenceId: number, now: Date): Promise<ControlOutcome> {
  const devices = await db.transaction(async (tx) => {
    const res = await tx.query(`update sequences set status = 'active', updated_at = $2 where id = $1 and status = 'paused'`, [sequenceId, now]);
    if (res.rowCount === 0) return null;
    return releaseEnrollmentMessages(tx, `e.sequence_id = $1::bigint`, [sequenceId], now);
  });
  if (devices === null) return { applied: false, status: await statusOf(db, sequenceId) };
  if (devices.length > 0) await db.notify(WORK_CHANNEL, workPayload(devices));
  await db.notify(SEQUENCES_CHANNEL, '{}');
  return { applied: true, status: 'active' };
}

/** Which of a user's leads a tag event tags (every given part must match). */
export interface LeadChoice {
  /** Leads with one of these phones. */
  phones?: readonly string[];
  /** Leads owned by one of these devices. */
  deviceIds?: readonly number[];
  /** At most this many, lowest lead id first. */
  count?: number;
}

export interface Tagged {
  /** Leads that gained the tag (those already carrying it are left as they are). */
  gained: number;
  /** Enrollments the gained tag made (into every sequence of the user it triggers). */
  enrolled: number;
}

/**
 * The chosen leads of the user that do not carry `tag` gain it, and exactly those are enrolled
 * into the sequences it triggers (enrollGainedTags: opt-outs, live enrollments and each sequence's
 * re-entry rule apply), in one transaction: a statement to tag, one to enroll, whatever the count.
 */
export async function tagLeads(db: Db, userId: number, choice: LeadChoice, tag: string, now: Date): Promise<Tagged> {
  const params: unknown[] = [userId, tag, now];
  let filter = '';
  if (choice.phones !== undefined) filter += ` and x.phone = any($${params.push(choice.phones)}::text[])`;
  if (choice.deviceIds !== undefined) filter += ` and x.device_id = any($${params.push(choice.deviceIds)}::bigint[])`;
  const limit = choice.count === undefined ? '' : ` limit $${params.push(choice.count)}`;
  const r = await db.transaction(async (tx) => {
    const res = await tx.query<{ id: number }>(
      `update leads l set triggers = array_append(l.triggers, $2::text), updated_at = $3
        where l.id in (select x.id from leads x
                        where x.user_id = $1::bigint and not ($2::text = any(x.triggers))${filter}
                        order by x.id${limit})
       returning l.id`,
      params,
    );
    const gained = res.rows.map((row) => ({ leadId: row.id, tag }));
    const e = await enrollGainedTags(tx, userId, gained, 'trigger', now);
    return { gained: gained.length, enrolled: e.enrolled, firstDue: e.firstDue };
  });
  if (r.enrolled > 0) await db.notify(SEQUENCES_CHANNEL, JSON.stringify(r.firstDue === null ? {} : { due: r.firstDue.getTime() }));
  return { gained: r.gained, enrolled: r.enrolled };
}
