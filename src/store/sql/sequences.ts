/**
 * Sequence and step statements the API runs. Steps are numbered 1..n without gaps; every change of
 * order happens in a transaction that holds the sequence row locked, so two edits of one sequence
 * never interleave their renumbering.
 */
import type { Queryable } from '../db.js';

export type SequenceStatus = 'active' | 'paused';
export type Reentry = 'never' | 'after_completion';
export type OnFailure = 'continue' | 'stop';

export interface SequenceRow {
  id: number;
  name: string;
  trigger: string;
  window_id: number | null;
  next_sequence_id: number | null;
  status: SequenceStatus;
  reentry: Reentry;
  on_failure: OnFailure;
  exit_on_reply: boolean;
  created_at: Date;
  updated_at: Date;
  window_time_zone: string | null;
  window_start_minute: number | null;
  window_end_minute: number | null;
  window_days: number | null;
}

const columns = `s.id, s.name, s.trigger, s.window_id, s.next_sequence_id, s.status, s.reentry, s.on_failure,
  s.exit_on_reply, s.created_at, s.updated_at, w.time_zone as window_time_zone,
  w.start_minute as window_start_minute, w.end_minute as window_end_minute, w.days as window_days`;

const from = `sequences s left join send_windows w on w.id = s.window_id`;

export interface SequenceFields {
  name: string;
  trigger: string;
  windowId: number | null;
  nextSequenceId: number | null;
  reentry: Reentry;
  onFailure: OnFailure;
  exitOnReply: boolean;
}

export async function insertSequenceRow(db: Queryable, tenantId: number, f: SequenceFields, now: Date): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into sequences (user_id, name, trigger, window_id, next_sequence_id, reentry, on_failure, exit_on_reply, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) returning id`,
    [tenantId, f.name, f.trigger, f.windowId, f.nextSequenceId, f.reentry, f.onFailure, f.exitOnReply, now],
  );
  return res.rows[0]!.id;
}

export async function getSequenceRow(db: Queryable, tenantId: number, id: number): Promise<SequenceRow | null> {
  const res = await db.query<SequenceRow>(`select ${columns} from ${from} where s.user_id = $1 and s.id = $2`, [tenantId, id]);
  return res.rows[0] ?? null;
}

/** Locks the tenant's sequence for the rest of the transaction; false when it is not the tenant's. */
export async function lockSequence(db: Queryable, tenantId: number, id: number): Promise<boolean> {
  const res = await db.query(`select id from sequences where user_id = $1 and id = $2 for update`, [tenantId, id]);
  return res.rows.length > 0;
}

/**
 * Serialises changes to one tenant's chain of next sequences, so two edits that are each fine
 * alone (A -> B and B -> A) cannot both pass the cycle check. Released at commit.
 */
export async function lockSequenceChains(db: Queryable, tenantId: number): Promise<void> {
  await db.query(`select pg_advisory_xact_lock(7301, ($1::bigint % 2147483647)::int)`, [tenantId]);
}

export async function listSequenceRows(
  db: Queryable,
  tenantId: number,
  page: { after?: number | undefined; limit: number; status?: SequenceStatus | undefined; trigger?: string | undefined },
): Promise<SequenceRow[]> {
  const p: unknown[] = [tenantId, page.after ?? 0, page.limit];
  let filter = '';
  if (page.status !== undefined) {
    p.push(page.status);
    filter += ` and s.status = $${p.length}`;
  }
  if (page.trigger !== undefined) {
    p.push(page.trigger);
    filter += ` and s.trigger = $${p.length}`;
  }
  const res = await db.query<SequenceRow>(`select ${columns} from ${from} where s.user_id = $1 and s.id > $2${filter} order by s.id limit $3`, p);
  return res.rows;
}

export async function updateSequenceRow(db: Queryable, tenantId: number, id: number, f: Partial<SequenceFields>, now: Date): Promise<boolean> {
  const p: unknown[] = [tenantId, id, now];
  const sets = ['updated_at = $3'];
  const add = (col: string, v: unknown): void => {
    p.push(v);
    sets.push(`${col} = $${p.length}`);
  };
  if (f.name !== undefined) add('name', f.name);
  if (f.trigger !== undefined) add('trigger', f.trigger);
  if (f.windowId !== undefined) add('window_id', f.windowId);
  if (f.nextSequenceId !== undefined) add('next_sequence_id', f.nextSequenceId);
  if (f.reentry !== undefined) add('reentry', f.reentry);
  if (f.onFailure !== undefined) add('on_failure', f.onFailure);
  if (f.exitOnReply !== undefined) add('exit_on_reply', f.exitOnReply);
  const res = await db.query(`update sequences set ${sets.join(', ')} where user_id = $1 and id = $2`, p);
  return res.rowCount > 0;
}

/** Moves the sequence from `from` to `to`; null when it is missing or not in `from`. */
export async function setSequenceStatus(db: Queryable, tenantId: number, id: number, from: SequenceStatus, to: SequenceStatus, now: Date): Promise<SequenceStatus | null> {
  const res = await db.query<{ status: SequenceStatus }>(
    `update sequences set status = $4, updated_at = $5 where user_id = $1 and id = $2 and status = $3 returning status`,
    [tenantId, id, from, to, now],
  );
  return res.rows[0]?.status ?? null;
}

/** Whether following next_sequence_id from `start` ever reaches `target` (the chain is finite). */
export async function chainReaches(db: Queryable, tenantId: number, start: number, target: number): Promise<boolean> {
  const res = await db.query<{ hit: boolean }>(
    `with recursive chain (id, depth) as (
       select $2::bigint, 0
       union all
       select s.next_sequence_id, c.depth + 1
         from chain c join sequences s on s.id = c.id and s.user_id = $1
        where s.next_sequence_id is not null and c.depth < 10000
     )
     select exists (select 1 from chain where id = $3) as hit`,
    [tenantId, start, target],
  );
  return res.rows[0]!.hit;
}

/**
 * Deletes the sequence and its enrollments after cancelling the waiting messages of its
 * enrollments (the outbox keeps no foreign key and would otherwise send on).
 */
export async function deleteSequenceRow(db: Queryable, tenantId: number, id: number, now: Date): Promise<boolean> {
  if (!(await lockSequence(db, tenantId, id))) return false;
  await db.query(
    `update messages set status = 'cancelled', error_code = 'sequence_deleted', finished_at = $2
      where enrollment_id in (select id from enrollments where sequence_id = $1) and status in ('pending', 'held')`,
    [id, now],
  );
  await db.query(`delete from enrollments where sequence_id = $1`, [id]);
  await db.query(`delete from sequences where id = $1`, [id]);
  return true;
}

export const ENROLLMENT_STATUSES = ['active', 'paused', 'completed', 'exited'] as const;
export type EnrollmentCounts = Record<(typeof ENROLLMENT_STATUSES)[number], number>;

export interface SequenceCounts {
  steps: number;
  enrollments: EnrollmentCounts;
}

/** Steps and enrollments by status of one sequence, in one statement. */
export async function sequenceCounts(db: Queryable, id: number): Promise<SequenceCounts> {
  const res = await db.query<{ kind: 'step' | 'enrollment'; status: string | null; n: number }>(
    `select 'step' as kind, null::text as status, count(*)::int as n from sequence_steps where sequence_id = $1
     union all
     select 'enrollment', status, count(*)::int from enrollments where sequence_id = $1 group by status`,
    [id],
  );
  const enrollments = Object.fromEntries(ENROLLMENT_STATUSES.map((s) => [s, 0])) as EnrollmentCounts;
  let steps = 0;
  for (const r of res.rows) {
    if (r.kind === 'step') steps = r.n;
    else enrollments[r.status as keyof EnrollmentCounts] = r.n;
  }
  return { steps, enrollments };
}

/** Step counts of many sequences in one grouped statement (a listing page). */
export async function stepCounts(db: Queryable, ids: readonly number[]): Promise<Map<number, number>> {
  if (ids.length === 0) return new Map();
  const res = await db.query<{ sequence_id: number; n: number }>(
    `select sequence_id, count(*)::int as n from sequence_steps where sequence_id = any($1::bigint[]) group by sequence_id`,
    [ids],
  );
  return new Map(res.rows.map((r) => [r.sequence_id, r.n]));
}

// ---- Steps ----------------------------------------------------------------------------------

export interface StepRow {
  id: number;
  sequence_id: number;
  position: number;
  delay_days: number;
  delay_minutes: number;
  send_minute: number | null;
  body: string;
  media: unknown;
}

const stepColumns = `st.id, st.sequence_id, st.position, st.delay_days, st.delay_minutes, st.send_minute, st.body, st.media`;

export interface StepFields {
  delayDays: number;
  delayMinutes: number;
  sendMinute: number | null;
  body: string;
  media: unknown;
}

const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

/** The sequence's steps in order. The caller has checked the sequence is the tenant's. */
export async function listSteps(db: Queryable, sequenceId: number): Promise<StepRow[]> {
  const res = await db.query<StepRow>(`select ${stepColumns} from sequence_steps st where st.sequence_id = $1 order by st.position`, [sequenceId]);
  return res.rows;
}

export async function getStep(db: Queryable, sequenceId: number, stepId: number): Promise<StepRow | null> {
  const res = await db.query<StepRow>(`select ${stepColumns} from sequence_steps st where st.sequence_id = $1 and st.id = $2`, [sequenceId, stepId]);
  return res.rows[0] ?? null;
}

/** Adds a step after every existing one; reorder() then moves it where it belongs. */
export async function appendStep(db: Queryable, sequenceId: number, f: StepFields): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into sequence_steps (sequence_id, position, delay_days, delay_minutes, send_minute, body, media)
     select $1, coalesce(max(position), 0) + 1, $2, $3, $4, $5, $6 from sequence_steps where sequence_id = $1
     returning id`,
    [sequenceId, f.delayDays, f.delayMinutes, f.sendMinute, f.body, json(f.media)],
  );
  return res.rows[0]!.id;
}

export async function updateStep(db: Queryable, sequenceId: number, stepId: number, f: Partial<StepFields>): Promise<void> {
  const p: unknown[] = [sequenceId, stepId];
  const sets: string[] = [];
  const add = (col: string, v: unknown): void => {
    p.push(v);
    sets.push(`${col} = $${p.length}`);
  };
  if (f.delayDays !== undefined) add('delay_days', f.delayDays);
  if (f.delayMinutes !== undefined) add('delay_minutes', f.delayMinutes);
  if (f.sendMinute !== undefined) add('send_minute', f.sendMinute);
  if (f.body !== undefined) add('body', f.body);
  if (f.media !== undefined) add('media', json(f.media));
  if (sets.length === 0) return;
  await db.query(`update sequence_steps set ${sets.join(', ')} where sequence_id = $1 and id = $2`, p);
}

export async function deleteStep(db: Queryable, sequenceId: number, stepId: number): Promise<void> {
  await db.query(`delete from sequence_steps where sequence_id = $1 and id = $2`, [sequenceId, stepId]);
}

/**
 * Numbers the sequence's steps 1..n in the order of `orderedIds` (all of its steps). The unique
 * (sequence_id, position) key is checked row by row and cannot be deferred, and positions must
 * stay >= 1, so the rows that move are first lifted above every current position, then set:
 * no intermediate state ever holds two rows at one position.
 */
export async function renumberSteps(db: Queryable, sequenceId: number, current: readonly StepRow[], orderedIds: readonly number[]): Promise<void> {
  const at = new Map(current.map((s) => [s.id, s.position]));
  const moving = orderedIds.map((id, i) => ({ id, position: i + 1 })).filter((m) => at.get(m.id) !== m.position);
  if (moving.length === 0) return;
  const lift = Math.max(0, ...current.map((s) => s.position));
  const ids = moving.map((m) => m.id);
  await db.query(`update sequence_steps set position = position + $3 where sequence_id = $1 and id = any($2::bigint[])`, [sequenceId, ids, lift]);
  await db.query(
    `update sequence_steps st set position = u.position
       from unnest($2::bigint[], $3::int[]) as u(id, position)
      where st.sequence_id = $1 and st.id = u.id`,
    [sequenceId, ids, moving.map((m) => m.position)],
  );
}
