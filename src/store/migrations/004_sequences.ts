/**
 * Sequences planned lazily.
 *
 * - An enrollment holds its lead's place: `current_step`, the step's message once it exists
 *   (`message_id`), and two times. `planned_at` is when the current step falls due by the
 *   sequence's own clock (delays and send times counted from the previous step's planned time);
 *   `next_due_at` is when it may really go out: never before its delay has passed since the
 *   previous message actually went out. Keeping both lets a step that went out a few seconds late
 *   (device pacing) leave the next one at its send time instead of pushing it a day on.
 * - The planner finds due enrollments of each active sequence through enrollments_plan_idx, which
 *   holds only enrollments waiting for their next message to be written: an enrollment whose
 *   message exists leaves the index, so a million leads half-way through a step cost nothing.
 * - `chain_root`/`chain_depth` follow a lead from sequence to next sequence; a chain never enters
 *   a sequence twice, whatever edits happen while leads are on the way.
 * - A step's delay is calendar days plus minutes: a day after 10:00 is 10:00 the next day in the
 *   owner's zone, 23 or 25 hours across a DST change.
 * - Enrollments keep no foreign keys, as the outbox keeps none: three lookups per inserted row
 *   were 60% of enrolling 200,000 leads on PostgreSQL (4.6 s against 1.8 s) and half of it on
 *   PGlite. Deleting a lead, a sequence or a user deletes their enrollments explicitly.
 * - A cancelled step message (its device was deleted) may be written again for another device, so
 *   the (enrollment, step) key now leaves cancelled rows out; a sent one can still never repeat.
 */
export const sql = `
alter table sequence_steps add column delay_days integer not null default 0 check (delay_days >= 0);

alter table enrollments drop constraint enrollments_user_id_fkey;
alter table enrollments drop constraint enrollments_sequence_id_fkey;
alter table enrollments drop constraint enrollments_lead_id_fkey;
alter table enrollments add column message_id bigint;
alter table enrollments add column planned_at timestamptz;
alter table enrollments add column chain_root bigint;
alter table enrollments add column chain_depth integer not null default 0;
alter table enrollments add column source text not null default 'api';
alter table enrollments add column last_error text;

drop index enrollments_due_idx;
create index enrollments_plan_idx on enrollments (sequence_id, next_due_at) where status = 'active' and message_id is null;
-- Progress counts (by status and step) and listings of one sequence read this index alone.
create index enrollments_sequence_idx on enrollments (sequence_id, status, current_step);
-- A reply or an opt-out ends a lead's live enrollments; "never again" asks whether a lead was ever
-- in a sequence.
create index enrollments_lead_idx on enrollments (lead_id, sequence_id);

drop index messages_enrollment_step_key;
create unique index messages_enrollment_step_key on messages (enrollment_id, step)
  where enrollment_id is not null and status <> 'cancelled';
`;
