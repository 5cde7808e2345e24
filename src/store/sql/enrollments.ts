/**
 * Enrollments: a lead's place in a sequence. Every statement here is set-based (a whole selection,
 * a whole batch of finished messages), because a trigger tag may reach a million leads at once and
 * a day of a drip moves a hundred thousand of them on.
 *
 * Lifecycle of one enrollment:
 *   active, waiting (message_id null, next_due_at set) --planner--> active, message written
 *   --message finished--> next step waiting | completed (then the next sequence, if any) | exited
 *   active <-> paused (its message is held meanwhile); active|paused --reply, opt-out, removal--> exited
 *
 * Lock order: statements that touch both tables change `messages` before `enrollments` (recording
 * outcomes then advancing; cancelling a message then exiting), so two of them never wait on each
 * other in a cycle. Where a decision was read from a snapshot, the UPDATE repeats its conditions,
 * which PostgreSQL re-checks against the row's latest version.
 */
import type { Queryable } from '../db.js';
import { queueDeliveries } from './webhooks.js';
import { parseTemplate } from '../../engine/content/template.js';
import { templateExpression } from './template-expression.js';
import { dueFrom, plannedFrom, rhythmBase, stepTimes } from './step-times.js';

/** How many sequences a lead may pass through in one chain (the API already refuses cycles). */
export const MAX_CHAIN_DEPTH = 50;

export type EnrollmentStatus = 'active' | 'paused' | 'completed' | 'exited';
export type EnrollmentSource = 'api' | 'trigger' | 'import' | 'chain';

/** Why an enrollment ended without completing. */
export type ExitReason = 'replied' | 'opted_out' | 'removed' | 'step_failed' | 'not_on_whatsapp' | 'lead_deleted';

const LIVE = `('active', 'paused')`;
const FINISHED_MESSAGE = `('sent', 'delivered', 'read', 'failed', 'skipped', 'unknown', 'cancelled')`;

/** Appends a parameter and returns its placeholder. */
function binder(params: unknown[]): (v: unknown) => string {
  return (v) => `$${params.push(v)}`;
}

/** Step-one times of an enrollment made at `now` (step row `st`, owner row `u`). */
function firstStepTimes(now: string): { planned: string; due: string } {
  return stepTimes({ prevPlanned: now, done: now, days: 'st.delay_days', minutes: 'st.delay_minutes', sendMinute: 'st.send_minute', tz: 'u.time_zone' });
}

const INSERT_COLUMNS = `user_id, sequence_id, lead_id, current_step, planned_at, next_due_at, status, enrolled_at, updated_at, source, chain_root, chain_depth`;

/**
 * What a bulk enrollment does when it meets a live enrollment made by a transaction that committed
 * after its snapshot: `skip` that lead (ON CONFLICT DO NOTHING), or `fail` with a unique violation
 * (see isEnrollmentRace) for a caller that retries with `skip`. Measured on PostgreSQL, 1,000,000
 * leads into a new sequence: 16.2 s with the conflict check, 11.5 s without it.
 */
export type EnrollRace = 'skip' | 'fail';

/** True for the unique violation a bulk enrollment with `race: 'fail'` raises. */
export function isEnrollmentRace(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown; message?: unknown } | null;
  if (e === null || typeof e !== 'object' || e.code !== '23505') return false;
  return e.constraint === 'enrollments_live_key' || (typeof e.message === 'string' && e.message.includes('enrollments_live_key'));
}

/**
 * Enrolls the leads of `candidates` (SQL yielding lead_id, sequence_id and the lead's user_id as
 * lead_user_id and its opted_out_at, its parameters already in `params`) into those sequences, all in one statement. A lead is left out when it opted out,
 * when the sequence has no step yet, when it is in the sequence now, or, for a sequence that never
 * takes a lead twice, when it ever was. Returns how many enrollments were made and the earliest due.
 */
async function enrollCandidates(
  db: Queryable,
  candidates: string,
  params: unknown[],
  source: EnrollmentSource,
  now: Date,
  bulk: { sequenceId: number; race: EnrollRace } | null = null,
): Promise<EnrollResult> {
  const p = binder(params);
  const nowP = `${p(now)}::timestamptz`;
  const t = firstStepTimes(nowP);
  // Who may not enter: leads in the sequence now, or ever for a sequence without re-entry. For a
  // handful of candidates that is an index probe each; for a whole filter (one sequence) it is the
  // sequence's earlier enrollments read once into a hash. Measured on PGlite, 100,000 leads into
  // a new sequence: the probe form was planned as a scan of the (then empty) table per lead, and
  // every lead saw the rows inserted before it: 107 s; the hashed form takes about a second.
  const blocked =
    bulk === null
      ? `not exists (select 1 from enrollments e
                      where e.lead_id = c.lead_id and e.sequence_id = f.sequence_id
                        and (f.reentry = 'never' or e.status in ${LIVE}))`
      : `c.lead_id not in (select e.lead_id from enrollments e join sequences es on es.id = e.sequence_id
                       where e.sequence_id = ${p(bulk.sequenceId)}::bigint
                         and (es.reentry = 'never' or e.status in ${LIVE}))`;
  const onConflict = bulk?.race === 'fail' ? '' : `on conflict (sequence_id, lead_id) where status in ${LIVE} do nothing`;
  // The first step's times depend only on the sequence, its owner and now, so they are worked out
  // once per sequence (`first`) rather than per lead: for 1,000,000 leads the per-row time zone
  // arithmetic was about 3 s of a 19 s enrollment on PostgreSQL.
  const res = await db.query<{ n: number; first_due: Date | null }>(
    `with c as materialized (${candidates}),
     first as materialized (
       select s.id as sequence_id, s.user_id, s.reentry, ${t.planned} as planned, ${t.due} as due
         from sequences s
         join sequence_steps st on st.sequence_id = s.id and st.position = 1
         join users u on u.id = s.user_id
        where s.id in (select distinct sequence_id from c)),
     ins as (
       insert into enrollments (${INSERT_COLUMNS})
       select f.user_id, f.sequence_id, c.lead_id, 1, f.planned, f.due, 'active', ${nowP}, ${nowP}, ${p(source)}, null, 0
         from c
         join first f on f.sequence_id = c.sequence_id
        where c.lead_user_id = f.user_id and c.opted_out_at is null and ${blocked}
       ${onConflict}
       returning next_due_at)
     select count(*)::int as n, min(next_due_at) as first_due from ins`,
    params,
  );
  const r = res.rows[0]!;
  return { enrolled: r.n, firstDue: r.first_due };
}

export interface EnrollResult {
  enrolled: number;
  /** The earliest first step among them, for waking the planner. */
  firstDue: Date | null;
}

/** Enrolls the tenant's leads that `leadWhere` selects (over leads aliased l) into one sequence. */
export function enrollLeadsWhere(
  db: Queryable,
  sequenceId: number,
  leadWhere: string,
  whereParams: readonly unknown[],
  source: EnrollmentSource,
  now: Date,
  race: EnrollRace = 'skip',
): Promise<EnrollResult> {
  const params = [...whereParams];
  const seq = `${binder(params)(sequenceId)}::bigint`;
  return enrollCandidates(db, `select l.id as lead_id, ${seq} as sequence_id, l.user_id as lead_user_id, l.opted_out_at from leads l where ${leadWhere}`, params, source, now, { sequenceId, race });
}

/**
 * Enrolls leads that gained trigger tags: each (lead, tag) pair enrolls the lead into every
 * sequence of the tenant whose trigger is exactly that tag.
 */
export function enrollGainedTags(
  db: Queryable,
  tenantId: number,
  gained: readonly { leadId: number; tag: string }[],
  source: EnrollmentSource,
  now: Date,
): Promise<EnrollResult> {
  if (gained.length === 0) return Promise.resolve({ enrolled: 0, firstDue: null });
  const params: unknown[] = [];
  const p = binder(params);
  const candidates = `select g.lead_id, s.id as sequence_id, l.user_id as lead_user_id, l.opted_out_at
      from unnest(${p(gained.map((g) => g.leadId))}::bigint[], ${p(gained.map((g) => g.tag))}::text[]) as g(lead_id, tag)
      join sequences s on s.user_id = ${p(tenantId)}::bigint and s.trigger = g.tag
      join leads l on l.id = g.lead_id`;
  return enrollCandidates(db, candidates, params, source, now);
}

/**
 * Enrolls the leads `leadWhere` selects that do not carry `tags` yet, into the sequences those tags
 * trigger: run just before a bulk action adds the tags, it enrolls exactly the leads that gain one.
 */
export function enrollBeforeTagging(
  db: Queryable,
  tenantId: number,
  leadWhere: string,
  whereParams: readonly unknown[],
  tags: readonly string[],
  now: Date,
): Promise<EnrollResult> {
  if (tags.length === 0) return Promise.resolve({ enrolled: 0, firstDue: null });
  const params = [...whereParams];
  const p = binder(params);
  const candidates = `select l.id as lead_id, s.id as sequence_id, l.user_id as lead_user_id, l.opted_out_at
      from leads l
      join sequences s on s.user_id = ${p(tenantId)}::bigint and s.trigger = any(${p(tags)}::text[])
     where ${leadWhere} and not (s.trigger = any(l.triggers))`;
  return enrollCandidates(db, candidates, params, 'trigger', now);
}

/** Every trigger of the tenant's sequences (an import checks each batch against them). */
export async function sequenceTriggers(db: Queryable, tenantId: number): Promise<Set<string>> {
  const res = await db.query<{ trigger: string }>(`select distinct trigger from sequences where user_id = $1`, [tenantId]);
  return new Set(res.rows.map((r) => r.trigger));
}

/** The tenant's leads among `phones` carrying any of `tags`, by phone, with their triggers. */
export async function taggedLeadsByPhone(db: Queryable, tenantId: number, phones: readonly string[], tags: readonly string[]): Promise<Map<string, { id: number; triggers: string[] }>> {
  const res = await db.query<{ id: number; phone: string; triggers: string[] }>(
    `select id, phone, triggers from leads where user_id = $1 and phone = any($2::text[]) and triggers && $3::text[]`,
    [tenantId, phones, tags],
  );
  return new Map(res.rows.map((r) => [r.phone, { id: r.id, triggers: r.triggers }]));
}

/** The tenant's sequence triggers among `tags` (most imports and edits carry none: a cheap test first). */
export async function triggersAmong(db: Queryable, tenantId: number, tags: readonly string[]): Promise<Set<string>> {
  if (tags.length === 0) return new Set();
  const res = await db.query<{ trigger: string }>(
    `select distinct trigger from sequences where user_id = $1 and trigger = any($2::text[])`,
    [tenantId, tags],
  );
  return new Set(res.rows.map((r) => r.trigger));
}

// ---- Planning ------------------------------------------------------------------------------

export interface DueEnrollment {
  id: number;
  sequence_id: number;
  current_step: number;
}

/**
 * Up to `limit` enrollments whose next message is due and not written yet, over active sequences.
 * One index probe per active sequence (enrollments_plan_idx is per sequence): a paused sequence's
 * overdue enrollments are never walked, however many there are.
 */
export async function dueEnrollments(db: Queryable, now: Date, limit: number): Promise<DueEnrollment[]> {
  const res = await db.query<DueEnrollment>(
    `select x.id, x.sequence_id, x.current_step
       from sequences s
       cross join lateral (
         select e.id, e.sequence_id, e.current_step from enrollments e
          where e.sequence_id = s.id and e.status = 'active' and e.message_id is null and e.next_due_at <= $1
          order by e.next_due_at
          limit $2) as x
      where s.status = 'active'
      limit $2`,
    [now, limit],
  );
  return res.rows;
}

/** The earliest time any active sequence has an enrollment waiting to be written (null: none). */
export async function nextPlanningAt(db: Queryable): Promise<Date | null> {
  const res = await db.query<{ at: Date | null }>(
    `select min(x.next_due_at) as at
       from sequences s
       cross join lateral (
         select e.next_due_at from enrollments e
          where e.sequence_id = s.id and e.status = 'active' and e.message_id is null
          order by e.next_due_at limit 1) as x
      where s.status = 'active'`,
  );
  return res.rows[0]?.at ?? null;
}

export interface PlanStep {
  id: number;
  sequence_id: number;
  position: number;
  body: string;
}

/** The steps a batch of due enrollments needs, with their current content. */
export async function stepsOf(db: Queryable, sequenceIds: readonly number[]): Promise<PlanStep[]> {
  const res = await db.query<PlanStep>(
    `select id, sequence_id, position, body from sequence_steps where sequence_id = any($1::bigint[])`,
    [sequenceIds],
  );
  return res.rows;
}

export interface PlannedMessage {
  enrollment_id: number;
  device_id: number;
}

/**
 * Writes the due message of each listed enrollment in one statement: the step's body rendered for
 * the lead (one SQL expression per step, chosen by step id), its media, the sequence's window, due
 * at the enrollment's next_due_at, through the lead's device. A lead without a live device (the
 * shared pool, or its device was deleted) is given one of the owner's devices, online ones first,
 * spread by lead id, and keeps it for the later steps. Enrollments another planner holds, paused
 * meanwhile or already written are skipped; opted-out leads, missing steps and owners without any
 * device are left for settleUnplanned.
 */
export async function writeDueMessages(db: Queryable, enrollmentIds: readonly number[], steps: readonly PlanStep[], now: Date): Promise<PlannedMessage[]> {
  if (enrollmentIds.length === 0) return [];
  const params: unknown[] = [];
  const p = binder(params);
  const ids = p(enrollmentIds);
  const nowP = `${p(now)}::timestamptz`;
  const whens = steps.map((st) => {
    const t = parseTemplate(st.body);
    const seed = t.spins > 0 ? `${p(st.id)}::bigint` : '0';
    return `when ${p(st.id)}::bigint then ${templateExpression(t, params, { lead: 'l', seed })}`;
  });
  const body = whens.length === 0 ? `null::text` : `(case st.id ${whens.join(' ')} end)`;
  const res = await db.query<PlannedMessage>(
    `with due as (
       select e.id, e.user_id, e.lead_id, e.sequence_id, e.current_step, e.next_due_at
         from enrollments e
        where e.id = any(${ids}::bigint[]) and e.status = 'active' and e.message_id is null
        for update skip locked),
     -- Materialised: inlined, it was aggregated again for every row (5 s a batch of 5,000 with
     -- 3,000 devices on PostgreSQL, against about 0.1 s).
     fleet as materialized (
       select d.user_id, array_agg(d.id order by d.id) as every,
              array_agg(d.id order by d.id) filter (where d.status = 'online') as online
         from devices d
        where d.deleted_at is null and d.user_id in (select distinct user_id from due)
        group by d.user_id),
     ins as (
       insert into messages (user_id, device_id, lead_id, phone, enrollment_id, step, body, media, window_id, status, not_before, created_at)
       select due.user_id, x.device_id, l.id, l.phone, due.id, due.current_step, ${body}, st.media, s.window_id,
              'pending', due.next_due_at, ${nowP}
         from due
         join leads l on l.id = due.lead_id and l.opted_out_at is null
         join sequences s on s.id = due.sequence_id
         join sequence_steps st on st.sequence_id = due.sequence_id and st.position = due.current_step
         left join devices d on d.id = l.device_id and d.deleted_at is null
         left join fleet f on f.user_id = due.user_id
         cross join lateral (
           select coalesce(d.id, (coalesce(f.online, f.every))[1 + (l.id % cardinality(coalesce(f.online, f.every)))::int]) as device_id) as x
        where x.device_id is not null
        -- Ids in due order on every store, so a seeded simulation repeats itself.
        order by due.next_due_at, due.id
       returning id, enrollment_id, device_id, lead_id),
     given as (
       update leads l set device_id = ins.device_id, updated_at = ${nowP}
         from ins
        where l.id = ins.lead_id and l.device_id is distinct from ins.device_id),
     linked as (
       update enrollments e set message_id = ins.id, last_error = null, updated_at = ${nowP}
         from ins where e.id = ins.enrollment_id)
     select enrollment_id, device_id from ins`,
    params,
  );
  return res.rows;
}

export interface Settled {
  completed: number[];
  exited: number;
  waiting: number;
}

/**
 * Enrollments of a planned batch that got no message: the lead opted out or was deleted (exit),
 * the step no longer exists because steps were removed (completed: there is nothing left to send),
 * or the owner has no device at all (tried again in an hour, with the reason shown).
 */
export async function settleUnplanned(db: Queryable, enrollmentIds: readonly number[], now: Date): Promise<Settled> {
  if (enrollmentIds.length === 0) return { completed: [], exited: 0, waiting: 0 };
  const res = await db.query<{ id: number; status: EnrollmentStatus }>(
    `with w as (
       select e.id,
              case when l.id is null then 'lead_deleted' when l.opted_out_at is not null then 'opted_out' end as exit_reason,
              st.id is null as no_step
         from enrollments e
         left join leads l on l.id = e.lead_id
         left join sequence_steps st on st.sequence_id = e.sequence_id and st.position = e.current_step
        where e.id = any($1::bigint[]) and e.status = 'active' and e.message_id is null)
     update enrollments e set
        status = case when w.exit_reason is not null then 'exited' when w.no_step then 'completed' else 'active' end,
        exit_reason = coalesce(w.exit_reason, e.exit_reason),
        completed_at = case when w.exit_reason is null and w.no_step then $2 else e.completed_at end,
        next_due_at = case when w.exit_reason is null and not w.no_step then $2::timestamptz + interval '1 hour' else e.next_due_at end,
        last_error = case when w.exit_reason is null and not w.no_step then 'no_device' else e.last_error end,
        updated_at = $2
       from w
      where e.id = w.id and e.status = 'active' and e.message_id is null
     returning e.id, e.status`,
    [enrollmentIds, now],
  );
  return {
    completed: res.rows.filter((r) => r.status === 'completed').map((r) => r.id),
    exited: res.rows.filter((r) => r.status === 'exited').length,
    waiting: res.rows.filter((r) => r.status === 'active').length,
  };
}

// ---- Advancing -----------------------------------------------------------------------------

export interface Advanced {
  /** Enrollments now waiting for their next step. */
  next: number;
  completed: number[];
  exited: number;
  /** Enrollments whose message was cancelled under them (device deleted): the step is written again. */
  rewritten: number;
  /** The earliest next step among them. */
  firstDue: Date | null;
}

/**
 * Moves on the listed enrollments whose current message has finished, in one statement:
 * - sent, delivered, read, unknown (it may have gone out), or failed with on_failure = continue:
 *   on to the next step, timed by step-times.ts from when the message went out; completed after
 *   the last step;
 * - failed with on_failure = stop: exited (step_failed); skipped (the number is not on WhatsApp):
 *   exited, since no later step could reach it either;
 * - cancelled while the enrollment is still live (its device was deleted): the same step is
 *   written again, now through another device (a paused one gets it once resumed).
 * Other enrollments that are not active, and those whose message is still waiting or in flight,
 * are left alone.
 */
const SEQUENCE_COMPLETED = queueDeliveries('q', {
  from: 'w',
  userId: 'e.user_id',
  type: `(case when e.action = 'complete' then 'sequence.completed' end)`,
  data: `jsonb_build_object('sequence_id', e.sequence_id, 'enrollment_id', e.id, 'lead_id', e.lead_id, 'steps', e.current_step,
           'enrolled_at', e.enrolled_at, 'completed_at', e.completed_at,
           'next_sequence_id', (select sq.next_sequence_id from sequences sq where sq.id = e.sequence_id))`,
  at: '$2::timestamptz',
  now: '$2::timestamptz',
});

export async function advanceEnrollments(db: Queryable, enrollmentIds: readonly number[], now: Date): Promise<Advanced> {
  const empty: Advanced = { next: 0, completed: [], exited: 0, rewritten: 0, firstDue: null };
  if (enrollmentIds.length === 0) return empty;
  const step = { days: 'k.delay_days', minutes: 'k.delay_minutes', sendMinute: 'k.send_minute', tz: 'k.time_zone' };
  // Shape: the planned time is worked out per distinct (base, step, zone) in `p`, not per lead;
  // in a drip most leads of a batch share their base (yesterday's 10:00). Measured on PGlite in a
  // 21-day drip simulation: the per-lead form spent about 130 us a lead on time zone arithmetic.
  // The batch is driven from its ids (unnest, then primary key): without statistics (PGlite never
  // analyzes by itself) `e.id = any(...)` was planned as a bitmap AND with a whole partial index.
  const res = await db.query<{ id: number; action: string; next_due_at: Date | null }>(
    `with d as materialized (
       select e.id, e.status, e.message_id, ${rhythmBase('e.planned_at', 'coalesce(m.sent_at, m.finished_at, $2)')} as base,
              coalesce(m.sent_at, m.finished_at, $2) as done_at, u.time_zone,
              nx.delay_days, nx.delay_minutes, nx.send_minute,
              case when m.status = 'cancelled' then 'rewrite'
                   when m.status = 'skipped' then 'exit:not_on_whatsapp'
                   when m.status = 'failed' and s.on_failure = 'stop' then 'exit:step_failed'
                   when nx.id is null then 'complete'
                   else 'next' end as action
         from unnest($1::bigint[]) as x(id)
         join enrollments e on e.id = x.id
         join messages m on m.id = e.message_id
         join sequences s on s.id = e.sequence_id
         join users u on u.id = e.user_id
         left join sequence_steps nx on nx.sequence_id = e.sequence_id and nx.position = e.current_step + 1
        where m.status in ${FINISHED_MESSAGE}
          and (e.status = 'active' or (e.status = 'paused' and m.status = 'cancelled'))),
     p as materialized (
       select k.*, ${plannedFrom('k.base', step)} as planned
         from (select distinct base, delay_days, delay_minutes, send_minute, time_zone from d where action = 'next') as k),
     w as (
     update enrollments e set
        status = case when d.action = 'complete' then 'completed' when d.action like 'exit:%' then 'exited' else e.status end,
        exit_reason = case when d.action like 'exit:%' then substr(d.action, 6) else e.exit_reason end,
        current_step = case when d.action = 'next' then e.current_step + 1 else e.current_step end,
        message_id = case when d.action in ('next', 'rewrite') then null else e.message_id end,
        planned_at = case when d.action = 'next' then p.planned else e.planned_at end,
        next_due_at = case when d.action = 'next' then ${dueFrom('p.planned', { done: 'd.done_at', days: 'd.delay_days', minutes: 'd.delay_minutes', tz: 'd.time_zone' })}
                           when d.action = 'rewrite' then $2 else e.next_due_at end,
        completed_at = case when d.action = 'complete' then $2 else e.completed_at end,
        updated_at = $2
       from d
       left join p on d.action = 'next' and p.base = d.base and p.delay_days = d.delay_days and p.delay_minutes = d.delay_minutes
                  and p.send_minute is not distinct from d.send_minute and p.time_zone = d.time_zone
      where e.id = d.id and e.status = d.status and e.message_id = d.message_id
     returning e.id, e.user_id, e.sequence_id, e.lead_id, e.current_step, e.enrolled_at, e.completed_at, d.action, e.next_due_at),
     ${SEQUENCE_COMPLETED}
     select id, action, next_due_at from w`,
    [enrollmentIds, now],
  );
  const out: Advanced = { ...empty, completed: [] };
  for (const r of res.rows) {
    if (r.action === 'next') out.next++;
    else if (r.action === 'complete') out.completed.push(r.id);
    else if (r.action === 'rewrite') out.rewritten++;
    else out.exited++;
    if ((r.action === 'next' || r.action === 'rewrite') && r.next_due_at && (!out.firstDue || r.next_due_at < out.firstDue)) out.firstDue = r.next_due_at;
  }
  return out;
}

/**
 * Enrolls the leads of just-completed enrollments into the sequence each one's sequence names next
 * (COLD -> WARM -> HOT). A chain never enters a sequence it already passed through (whatever edits
 * to next_sequence_id happen while leads are on the way) and stops after MAX_CHAIN_DEPTH sequences;
 * the next sequence's own re-entry rule and opt-outs apply as for any enrollment.
 */
export async function chainCompleted(db: Queryable, completedIds: readonly number[], now: Date): Promise<EnrollResult> {
  if (completedIds.length === 0) return { enrolled: 0, firstDue: null };
  const t = firstStepTimes('$2::timestamptz');
  // Step one's times are worked out once per next sequence (`first`), as in enrollCandidates.
  const res = await db.query<{ n: number; first_due: Date | null }>(
    `with done as materialized (
       select p.id, p.lead_id, p.user_id, p.chain_root, p.chain_depth, ps.next_sequence_id
         from unnest($1::bigint[]) as x(id)
         join enrollments p on p.id = x.id
         join sequences ps on ps.id = p.sequence_id
        where p.status = 'completed' and p.chain_depth + 1 < $3 and ps.next_sequence_id is not null),
     first as materialized (
       select s.id, s.user_id, s.reentry, ${t.planned} as planned, ${t.due} as due
         from sequences s
         join sequence_steps st on st.sequence_id = s.id and st.position = 1
         join users u on u.id = s.user_id
        where s.id in (select next_sequence_id from done)),
     ins as (
       insert into enrollments (${INSERT_COLUMNS})
       select s.user_id, s.id, p.lead_id, 1, s.planned, s.due, 'active', $2, $2, 'chain',
              coalesce(p.chain_root, p.id), p.chain_depth + 1
         from done p
         join first s on s.id = p.next_sequence_id and s.user_id = p.user_id
         join leads l on l.id = p.lead_id and l.opted_out_at is null
        where true
          and not exists (
            select 1 from enrollments e
             where e.lead_id = p.lead_id and e.sequence_id = s.id
               and (e.status in ${LIVE} or s.reentry = 'never'
                    or e.id = coalesce(p.chain_root, p.id) or e.chain_root = coalesce(p.chain_root, p.id)))
       on conflict (sequence_id, lead_id) where status in ${LIVE} do nothing
       returning next_due_at)
     select count(*)::int as n, min(next_due_at) as first_due from ins`,
    [completedIds, now, MAX_CHAIN_DEPTH],
  );
  const r = res.rows[0]!;
  return { enrolled: r.n, firstDue: r.first_due };
}

/**
 * Active enrollments whose message finished but which were never moved on (a process stopped
 * between the two): found once when the planner starts.
 */
export async function stalledEnrollments(db: Queryable, limit: number): Promise<number[]> {
  const res = await db.query<{ id: number }>(
    `select e.id from enrollments e join messages m on m.id = e.message_id
      where e.status = 'active' and m.status in ${FINISHED_MESSAGE}
      limit $1`,
    [limit],
  );
  return res.rows.map((r) => r.id);
}

// ---- Exits, pauses ---------------------------------------------------------------------------

export interface Exited {
  exited: number;
  cancelled: number;
}

/**
 * Ends the live enrollments `where` selects (over enrollments aliased e, sequences aliased s):
 * their waiting message is cancelled first (messages before enrollments: the lock order), then
 * they are marked exited with `reason`.
 */
async function exitWhere(db: Queryable, where: string, params: unknown[], reason: ExitReason, now: Date): Promise<Exited> {
  const p = binder(params);
  const reasonP = `${p(reason)}::text`;
  const nowP = `${p(now)}::timestamptz`;
  const cancelled = await db.query(
    `update messages m set status = 'cancelled', error_code = ${reasonP}, finished_at = ${nowP}
      where m.id in (select e.message_id from enrollments e join sequences s on s.id = e.sequence_id
                      where e.status in ${LIVE} and e.message_id is not null and ${where})
        and m.status in ('pending', 'held')`,
    params,
  );
  const exited = await db.query(
    `update enrollments e set status = 'exited', exit_reason = ${reasonP}, updated_at = ${nowP}
       from sequences s
      where s.id = e.sequence_id and e.status in ${LIVE} and ${where}`,
    params,
  );
  return { exited: exited.rowCount, cancelled: cancelled.rowCount };
}

/** A lead wrote back: it leaves every sequence that ends on a reply. */
export function exitOnReply(db: Queryable, leadIds: readonly number[], now: Date): Promise<Exited> {
  if (leadIds.length === 0) return Promise.resolve({ exited: 0, cancelled: 0 });
  return exitWhere(db, `e.lead_id = any($1::bigint[]) and s.exit_on_reply`, [leadIds], 'replied', now);
}

/** Leads opted out (or are about to be deleted): they leave every sequence. */
export function exitLeads(db: Queryable, leadIds: readonly number[], reason: 'opted_out' | 'lead_deleted', now: Date): Promise<Exited> {
  if (leadIds.length === 0) return Promise.resolve({ exited: 0, cancelled: 0 });
  return exitWhere(db, `e.lead_id = any($1::bigint[])`, [leadIds], reason, now);
}

/** As exitLeads, for every lead a lead filter selects (over leads aliased l). */
export function exitLeadsWhere(db: Queryable, leadWhere: string, whereParams: readonly unknown[], reason: 'opted_out' | 'lead_deleted', now: Date): Promise<Exited> {
  return exitWhere(db, `e.lead_id in (select l.id from leads l where ${leadWhere})`, [...whereParams], reason, now);
}

/** One enrollment removed by hand. */
export function exitEnrollment(db: Queryable, enrollmentId: number, now: Date): Promise<Exited> {
  return exitWhere(db, `e.id = $1::bigint`, [enrollmentId], 'removed', now);
}

/**
 * Pauses a live enrollment: its waiting message is held (out of the dispatcher's reach) and no
 * later step is planned. Returns false when it was not active.
 */
export async function pauseEnrollment(db: Queryable, enrollmentId: number, now: Date): Promise<boolean> {
  const res = await db.query(`update enrollments set status = 'paused', updated_at = $2 where id = $1 and status = 'active'`, [enrollmentId, now]);
  if (res.rowCount === 0) return false;
  await holdEnrollmentMessages(db, `e.id = $1::bigint`, [enrollmentId]);
  return true;
}

/** Resumes a paused enrollment; its held message waits for the sequence too if that is paused. */
export async function resumeEnrollment(db: Queryable, enrollmentId: number, now: Date): Promise<number[] | null> {
  const res = await db.query(`update enrollments set status = 'active', updated_at = $2 where id = $1 and status = 'paused'`, [enrollmentId, now]);
  if (res.rowCount === 0) return null;
  return releaseEnrollmentMessages(db, `e.id = $1::bigint`, [enrollmentId], now);
}

/** Holds the waiting messages of the enrollments `where` selects (over enrollments aliased e). */
export async function holdEnrollmentMessages(db: Queryable, where: string, params: readonly unknown[]): Promise<number> {
  const res = await db.query(
    `update messages m set status = 'held'
      where m.id in (select e.message_id from enrollments e where e.message_id is not null and ${where})
        and m.status = 'pending'`,
    params,
  );
  return res.rowCount;
}

/**
 * Releases the held messages of the enrollments `where` selects, unless their enrollment or
 * sequence is still paused. A message whose time passed meanwhile becomes due now; device pacing
 * spreads them, so a release never bursts. Returns the devices that got work.
 */
export async function releaseEnrollmentMessages(db: Queryable, where: string, whereParams: readonly unknown[], now: Date): Promise<number[]> {
  const params = [...whereParams];
  const nowP = `${binder(params)(now)}::timestamptz`;
  const res = await db.query<{ device_id: number }>(
    `with r as (
       update messages m set status = 'pending', not_before = greatest(m.not_before, ${nowP})
        where m.id in (select e.message_id from enrollments e join sequences s on s.id = e.sequence_id
                        where e.message_id is not null and e.status = 'active' and s.status = 'active' and ${where})
          and m.status = 'held'
       returning m.device_id)
     select distinct device_id from r`,
    params,
  );
  return res.rows.map((r) => r.device_id);
}

// ---- Reading -------------------------------------------------------------------------------

export interface EnrollmentRow {
  id: number;
  sequence_id: number;
  lead_id: number;
  lead_name: string | null;
  lead_phone: string | null;
  status: EnrollmentStatus;
  current_step: number;
  next_due_at: Date | null;
  message_id: number | null;
  message_status: string | null;
  exit_reason: string | null;
  source: string;
  chain_depth: number;
  last_error: string | null;
  enrolled_at: Date;
  updated_at: Date;
  completed_at: Date | null;
}

const enrollmentColumns = `e.id, e.sequence_id, e.lead_id, l.name as lead_name, l.phone as lead_phone, e.status, e.current_step,
  e.next_due_at, e.message_id, m.status as message_status, e.exit_reason, e.source, e.chain_depth, e.last_error,
  e.enrolled_at, e.updated_at, e.completed_at`;
const enrollmentFrom = `enrollments e left join leads l on l.id = e.lead_id left join messages m on m.id = e.message_id`;

/** One enrollment of a sequence (the caller checked the sequence is the tenant's). */
export async function getEnrollment(db: Queryable, sequenceId: number, id: number): Promise<EnrollmentRow | null> {
  const res = await db.query<EnrollmentRow>(`select ${enrollmentColumns} from ${enrollmentFrom} where e.sequence_id = $1 and e.id = $2`, [sequenceId, id]);
  return res.rows[0] ?? null;
}

/** A page of a sequence's enrollments, newest first (keyset on id), optionally by status, step or lead. */
export async function listEnrollments(
  db: Queryable,
  sequenceId: number,
  page: { before?: number | undefined; limit: number; status?: EnrollmentStatus | undefined; step?: number | undefined; leadId?: number | undefined },
): Promise<EnrollmentRow[]> {
  const params: unknown[] = [sequenceId];
  const p = binder(params);
  let filter = '';
  if (page.before !== undefined) filter += ` and e.id < ${p(page.before)}`;
  if (page.status !== undefined) filter += ` and e.status = ${p(page.status)}`;
  if (page.step !== undefined) filter += ` and e.current_step = ${p(page.step)}`;
  if (page.leadId !== undefined) filter += ` and e.lead_id = ${p(page.leadId)}`;
  const res = await db.query<EnrollmentRow>(
    `select ${enrollmentColumns} from ${enrollmentFrom} where e.sequence_id = $1${filter} order by e.id desc limit ${p(page.limit)}`,
    params,
  );
  return res.rows;
}

/** Every enrollment of one lead in the tenant's sequences, newest first. */
export async function leadEnrollments(db: Queryable, tenantId: number, leadId: number): Promise<EnrollmentRow[]> {
  const res = await db.query<EnrollmentRow>(
    `select ${enrollmentColumns} from ${enrollmentFrom} where e.user_id = $1 and e.lead_id = $2 order by e.id desc limit 500`,
    [tenantId, leadId],
  );
  return res.rows;
}
