/**
 * Drip sequences: a trigger (a lead tag) enrolls a lead, which then receives the steps in order,
 * each after its delay (and, if set, at a local wall time), inside the sequence's send window.
 * A sequence may hand its finishers on to a next sequence; the chain never loops back.
 */
import type { Clock } from '../engine/clock.js';
import { SEQUENCES_CHANNEL, WORK_CHANNEL, workPayload } from '../engine/events.js';
import type { Db, Queryable } from '../store/db.js';
import {
  enrollLeadsWhere,
  isEnrollmentRace,
  type EnrollRace,
  exitEnrollment,
  getEnrollment,
  holdEnrollmentMessages,
  leadEnrollments,
  listEnrollments,
  pauseEnrollment,
  releaseEnrollmentMessages,
  resumeEnrollment,
  type EnrollmentRow,
  type EnrollmentStatus,
} from '../store/sql/enrollments.js';
import { leadWhere, type LeadFilter } from '../store/sql/lead-filter.js';
import {
  appendStep,
  chainReaches,
  deleteSequenceRow,
  deleteStep,
  getSequenceRow,
  getStep,
  insertSequenceRow,
  listSequenceRows,
  listSteps,
  lockSequence,
  lockSequenceChains,
  renumberSteps,
  sequenceCounts,
  setSequenceStatus,
  stepCounts,
  updateSequenceRow,
  updateStep,
  type EnrollmentCounts,
  type OnFailure,
  type Reentry,
  type SequenceRow,
  type SequenceStatus,
  type StepRow,
} from '../store/sql/sequences.js';
import { leadScopeOf, type Actor } from './actor.js';
import { iso } from './accounts/views.js';
import {
  hhmmOf,
  mediaView,
  minuteOf,
  storedMedia,
  windowIdFor,
  windowView,
  type MediaInput,
  type MediaPreparer,
  type StoredMedia,
  type WindowInput,
  type WindowView,
} from './campaigns.js';
import { AppError, conflict, forbidden, notFound, unprocessable } from './errors.js';
import { sequenceProgress, type SequenceProgress } from './sequence-progress.js';

export interface SequenceInput {
  name: string;
  trigger: string;
  window?: WindowInput | null | undefined;
  next_sequence_id?: number | null | undefined;
  reentry?: Reentry | undefined;
  on_failure?: OnFailure | undefined;
  exit_on_reply?: boolean | undefined;
}

export type SequencePatch = Partial<SequenceInput>;

export interface SequenceView {
  id: number;
  name: string;
  trigger: string;
  window: WindowView | null;
  next_sequence_id: number | null;
  status: SequenceStatus;
  reentry: Reentry;
  on_failure: OnFailure;
  exit_on_reply: boolean;
  created_at: string;
  updated_at: string;
  steps: number;
  /** Enrollments by status; on single-sequence answers only. */
  enrollments?: EnrollmentCounts;
}

/** A wait as a user writes it; days are calendar days in the account's zone. */
export interface DelayInput {
  days?: number | undefined;
  hours?: number | undefined;
  minutes?: number | undefined;
}

export interface DelayView {
  days: number;
  hours: number;
  minutes: number;
}

export interface StepInput {
  position?: number | undefined;
  delay?: DelayInput | undefined;
  send_time?: string | null | undefined;
  body: string;
  media?: MediaInput | null | undefined;
}

export type StepPatch = Partial<StepInput>;

export interface StepView {
  id: number;
  sequence_id: number;
  position: number;
  delay: DelayView;
  send_time: string | null;
  body: string;
  media: ReturnType<typeof mediaView>;
}

/** Bounds a sequence so its step list is one page and renumbering stays a small statement. */
export const MAX_STEPS = 500;

export function sequenceView(s: SequenceRow, steps: number, enrollments?: EnrollmentCounts): SequenceView {
  return {
    id: s.id,
    name: s.name,
    trigger: s.trigger,
    window: windowView({ time_zone: s.window_time_zone, start_minute: s.window_start_minute, end_minute: s.window_end_minute, days: s.window_days }),
    next_sequence_id: s.next_sequence_id,
    status: s.status,
    reentry: s.reentry,
    on_failure: s.on_failure,
    exit_on_reply: s.exit_on_reply,
    created_at: s.created_at.toISOString(),
    updated_at: s.updated_at.toISOString(),
    steps,
    ...(enrollments ? { enrollments } : {}),
  };
}

export function stepView(s: StepRow): StepView {
  return {
    id: s.id,
    sequence_id: s.sequence_id,
    position: s.position,
    delay: { days: s.delay_days, hours: Math.floor(s.delay_minutes / 60), minutes: s.delay_minutes % 60 },
    send_time: s.send_minute === null ? null : hhmmOf(s.send_minute),
    body: s.body,
    media: mediaView(s.media),
  };
}

/** Stored as calendar days plus minutes: hours are exact durations, days follow the local calendar. */
function delayOf(d: DelayInput | undefined): { delayDays: number | undefined; delayMinutes: number | undefined } {
  if (d === undefined) return { delayDays: undefined, delayMinutes: undefined };
  return { delayDays: d.days ?? 0, delayMinutes: (d.hours ?? 0) * 60 + (d.minutes ?? 0) };
}

export interface EnrollInput {
  lead_ids?: number[] | undefined;
  filter?: LeadFilter | undefined;
}

export interface EnrollmentView {
  id: number;
  sequence_id: number;
  lead_id: number;
  lead_name: string | null;
  lead_phone: string | null;
  status: EnrollmentStatus;
  current_step: number;
  /** When the current step is due (its message may wait longer for the window or the device). */
  next_due_at: string | null;
  message_id: number | null;
  message_status: string | null;
  exit_reason: string | null;
  source: string;
  chain_depth: number;
  last_error: string | null;
  enrolled_at: string;
  updated_at: string;
  completed_at: string | null;
}

export function enrollmentView(e: EnrollmentRow): EnrollmentView {
  return {
    id: e.id,
    sequence_id: e.sequence_id,
    lead_id: e.lead_id,
    lead_name: e.lead_name,
    lead_phone: e.lead_phone,
    status: e.status,
    current_step: e.current_step,
    next_due_at: iso(e.next_due_at),
    message_id: e.message_id,
    message_status: e.message_status,
    exit_reason: e.exit_reason,
    source: e.source,
    chain_depth: e.chain_depth,
    last_error: e.last_error,
    enrolled_at: e.enrolled_at.toISOString(),
    updated_at: e.updated_at.toISOString(),
    completed_at: iso(e.completed_at),
  };
}

/** The most leads one enroll call names by id (a filter has no limit). */
export const MAX_ENROLL_IDS = 10_000;

function sendMinute(t: string | null | undefined): number | null | undefined {
  return t === undefined || t === null ? t : minuteOf(t);
}

function badPosition(position: number, max: number): AppError {
  return unprocessable('INVALID_POSITION', `position must be between 1 and ${max}`, [{ path: 'position', message: `${position} is past the end (at most ${max})` }]);
}

export class SequenceService {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly media?: MediaPreparer,
  ) {}

  /**
   * A step's media is fetched, checked and stored when the step is saved (outside any
   * transaction), so a link that does not answer fails the edit with its reason instead of every
   * lead's message days later.
   */
  private async prepareMedia(actor: Actor, m: MediaInput | null | undefined): Promise<StoredMedia | null | undefined> {
    const stored = storedMedia(m);
    if (stored === undefined || stored === null) return stored;
    if (!this.media) throw new AppError('MEDIA_UNAVAILABLE', 422, 'this server cannot prepare media', [{ path: 'media', message: 'no media service' }]);
    return this.media.prepareForCampaign(actor, {
      type: stored.kind,
      ...(stored.url !== undefined ? { url: stored.url } : {}),
      ...(stored.mediaId !== undefined ? { media_id: stored.mediaId } : {}),
      ...(stored.fileName !== undefined ? { filename: stored.fileName } : {}),
      ...(stored.caption !== undefined ? { caption: stored.caption } : {}),
    });
  }

  /** Wakes the planner (here and in other processes): new enrollments, a resumed sequence. */
  private async announce(due: Date | null = null): Promise<void> {
    await this.db.notify(SEQUENCES_CHANNEL, JSON.stringify(due === null ? {} : { due: due.getTime() }));
  }

  private now(): Date {
    return new Date(this.clock.now());
  }

  /** Sequences enroll any of the tenant's leads, beyond one member's devices: owners only. */
  private guard(actor: Actor): void {
    if (actor.teamMember) throw forbidden('TEAM_MEMBER_FORBIDDEN', 'team members cannot manage sequences');
  }

  private async own(db: Queryable, actor: Actor, id: number): Promise<SequenceRow> {
    const s = await getSequenceRow(db, actor.tenantId, id);
    if (!s) throw notFound('sequence');
    return s;
  }

  private async view(db: Queryable, actor: Actor, id: number): Promise<SequenceView> {
    const s = await this.own(db, actor, id);
    const c = await sequenceCounts(db, id);
    return sequenceView(s, c.steps, c.enrollments);
  }

  /**
   * The next sequence must be another of the tenant's own (another tenant's answers as a missing
   * one would), and following the chain from it must never come back to `self`: a loop would
   * pass a lead around for ever.
   */
  private async checkNext(tx: Queryable, actor: Actor, next: number | null | undefined, self: number | null): Promise<void> {
    if (next === undefined || next === null) return;
    if (next === self) {
      throw unprocessable('INVALID_NEXT_SEQUENCE', 'a sequence cannot be its own next sequence', [{ path: 'next_sequence_id', message: 'names this sequence' }]);
    }
    if (!(await getSequenceRow(tx, actor.tenantId, next))) {
      throw new AppError('SEQUENCE_NOT_FOUND', 404, 'next sequence not found', [{ path: 'next_sequence_id', message: `no sequence ${next}` }]);
    }
    if (self !== null) {
      await lockSequenceChains(tx, actor.tenantId);
      if (await chainReaches(tx, actor.tenantId, next, self)) {
        throw unprocessable('SEQUENCE_CYCLE', 'the chain of next sequences would loop back to this one', [
          { path: 'next_sequence_id', message: `sequence ${next} leads back to ${self}` },
        ]);
      }
    }
  }

  async list(
    actor: Actor,
    page: { after?: number | undefined; limit: number; status?: SequenceStatus | undefined; trigger?: string | undefined },
  ): Promise<SequenceView[]> {
    this.guard(actor);
    const rows = await listSequenceRows(this.db, actor.tenantId, page);
    const steps = await stepCounts(
      this.db,
      rows.map((r) => r.id),
    );
    return rows.map((r) => sequenceView(r, steps.get(r.id) ?? 0));
  }

  async get(actor: Actor, id: number): Promise<SequenceView> {
    this.guard(actor);
    return this.view(this.db, actor, id);
  }

  async create(actor: Actor, input: SequenceInput): Promise<SequenceView> {
    this.guard(actor);
    const now = this.now();
    const id = await this.db.transaction(async (tx) => {
      await this.checkNext(tx, actor, input.next_sequence_id, null);
      return insertSequenceRow(
        tx,
        actor.tenantId,
        {
          name: input.name,
          trigger: input.trigger,
          windowId: (await windowIdFor(tx, actor, input.window)) ?? null,
          nextSequenceId: input.next_sequence_id ?? null,
          reentry: input.reentry ?? 'never',
          onFailure: input.on_failure ?? 'continue',
          exitOnReply: input.exit_on_reply ?? true,
        },
        now,
      );
    });
    return this.view(this.db, actor, id);
  }

  async update(actor: Actor, id: number, patch: SequencePatch): Promise<SequenceView> {
    this.guard(actor);
    const now = this.now();
    await this.db.transaction(async (tx) => {
      if (!(await lockSequence(tx, actor.tenantId, id))) throw notFound('sequence');
      await this.checkNext(tx, actor, patch.next_sequence_id, id);
      await updateSequenceRow(
        tx,
        actor.tenantId,
        id,
        {
          name: patch.name,
          trigger: patch.trigger,
          windowId: await windowIdFor(tx, actor, patch.window),
          nextSequenceId: patch.next_sequence_id,
          reentry: patch.reentry,
          onFailure: patch.on_failure,
          exitOnReply: patch.exit_on_reply,
        },
        now,
      );
    });
    return this.view(this.db, actor, id);
  }

  private async move(actor: Actor, id: number, from: SequenceStatus, to: SequenceStatus, then: (tx: Queryable, now: Date) => Promise<void>): Promise<SequenceView> {
    this.guard(actor);
    const now = this.now();
    await this.db.transaction(async (tx) => {
      if (await setSequenceStatus(tx, actor.tenantId, id, from, to, now)) return then(tx, now);
      const cur = await this.own(tx, actor, id);
      throw conflict('SEQUENCE_STATE', `the sequence is already ${cur.status}`, [{ path: 'status', message: `the sequence is ${cur.status}`, status: cur.status }]);
    });
    return this.view(this.db, actor, id);
  }

  /**
   * Pauses the sequence: its enrollments' waiting messages are held (out of the dispatcher's
   * reach) in the same transaction, and no further step is planned until it resumes.
   */
  async pause(actor: Actor, id: number): Promise<SequenceView> {
    return this.move(actor, id, 'active', 'paused', (tx) => holdEnrollmentMessages(tx, `e.sequence_id = $1::bigint`, [id]).then(() => undefined));
  }

  /**
   * Resumes it: held messages are released (due now if their time passed; each device's pacing
   * still spaces them, so nothing bursts) and the planner picks up steps that fell due meanwhile.
   */
  async resume(actor: Actor, id: number): Promise<SequenceView> {
    let devices: number[] = [];
    const view = await this.move(actor, id, 'paused', 'active', async (tx, now) => {
      devices = await releaseEnrollmentMessages(tx, `e.sequence_id = $1::bigint`, [id], now);
    });
    if (devices.length > 0) await this.db.notify(WORK_CHANNEL, workPayload(devices));
    await this.announce();
    return view;
  }

  /** Deletes the sequence, its steps and enrollments; their waiting messages are cancelled first. */
  async delete(actor: Actor, id: number): Promise<void> {
    this.guard(actor);
    const ok = await this.db.transaction((tx) => deleteSequenceRow(tx, actor.tenantId, id, this.now()));
    if (!ok) throw notFound('sequence');
  }

  // ---- Steps --------------------------------------------------------------------------------

  async steps(actor: Actor, id: number): Promise<StepView[]> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    return (await listSteps(this.db, id)).map(stepView);
  }

  async step(actor: Actor, id: number, stepId: number): Promise<StepView> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    const st = await getStep(this.db, id, stepId);
    if (!st) throw notFound('step');
    return stepView(st);
  }

  /** Adds a step at `position` (default: last); the steps from there on move down one. */
  async addStep(actor: Actor, id: number, input: StepInput): Promise<StepView> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    const media = await this.prepareMedia(actor, input.media);
    const delay = delayOf(input.delay);
    const stepId = await this.db.transaction(async (tx) => {
      if (!(await lockSequence(tx, actor.tenantId, id))) throw notFound('sequence');
      const before = await listSteps(tx, id);
      if (before.length >= MAX_STEPS) {
        throw unprocessable('TOO_MANY_STEPS', `a sequence has at most ${MAX_STEPS} steps`, [{ path: 'position', message: `already ${before.length} steps` }]);
      }
      const position = input.position ?? before.length + 1;
      if (position > before.length + 1) throw badPosition(position, before.length + 1);
      const created = await appendStep(tx, id, {
        delayDays: delay.delayDays ?? 0,
        delayMinutes: delay.delayMinutes ?? 0,
        sendMinute: sendMinute(input.send_time) ?? null,
        body: input.body,
        media: media ?? null,
      });
      if (position <= before.length) {
        const order = before.map((s) => s.id);
        order.splice(position - 1, 0, created);
        await renumberSteps(tx, id, await listSteps(tx, id), order);
      }
      return created;
    });
    return stepView((await getStep(this.db, id, stepId))!);
  }

  /** Changes a step; a new position moves it there and shifts the steps in between. */
  async updateStep(actor: Actor, id: number, stepId: number, patch: StepPatch): Promise<StepView> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    if (!(await getStep(this.db, id, stepId))) throw notFound('step');
    const media = await this.prepareMedia(actor, patch.media);
    const delay = delayOf(patch.delay);
    await this.db.transaction(async (tx) => {
      if (!(await lockSequence(tx, actor.tenantId, id))) throw notFound('sequence');
      const steps = await listSteps(tx, id);
      if (!steps.some((s) => s.id === stepId)) throw notFound('step');
      if (patch.position !== undefined) {
        if (patch.position > steps.length) throw badPosition(patch.position, steps.length);
        const order = steps.map((s) => s.id).filter((x) => x !== stepId);
        order.splice(patch.position - 1, 0, stepId);
        await renumberSteps(tx, id, steps, order);
      }
      await updateStep(tx, id, stepId, {
        delayDays: delay.delayDays,
        delayMinutes: delay.delayMinutes,
        sendMinute: sendMinute(patch.send_time),
        body: patch.body,
        media,
      });
    });
    return stepView((await getStep(this.db, id, stepId))!);
  }

  /** Removes a step; the ones after it move up, so positions stay 1..n. */
  async deleteStep(actor: Actor, id: number, stepId: number): Promise<void> {
    this.guard(actor);
    await this.db.transaction(async (tx) => {
      if (!(await lockSequence(tx, actor.tenantId, id))) throw notFound('sequence');
      const steps = await listSteps(tx, id);
      if (!steps.some((s) => s.id === stepId)) throw notFound('step');
      await deleteStep(tx, id, stepId);
      const rest = steps.filter((s) => s.id !== stepId);
      await renumberSteps(
        tx,
        id,
        rest,
        rest.map((s) => s.id),
      );
    });
  }

  // ---- Enrollments ----------------------------------------------------------------------------

  /**
   * Enrolls the tenant's leads named by id and/or matched by a lead filter (as the leads list
   * filters), in one statement. Leads already in the sequence, opted out, or (re-entry "never")
   * ever in it before are left out and counted as skipped.
   */
  async enroll(actor: Actor, id: number, input: EnrollInput): Promise<{ matched: number; enrolled: number; skipped: number }> {
    this.guard(actor);
    if (input.lead_ids === undefined && input.filter === undefined) {
      throw new AppError('VALIDATION_FAILED', 400, 'name the leads: lead_ids, filter, or both', [{ path: 'lead_ids', message: 'give lead_ids or filter' }]);
    }
    if (input.lead_ids !== undefined && input.lead_ids.length > MAX_ENROLL_IDS) {
      throw new AppError('VALIDATION_FAILED', 400, `at most ${MAX_ENROLL_IDS} lead ids at once (use a filter for more)`, [{ path: 'lead_ids', message: `${input.lead_ids.length} ids` }]);
    }
    const params: unknown[] = [];
    let where = leadWhere(leadScopeOf(actor), input.filter ?? {}, params);
    if (input.lead_ids !== undefined) where += ` and l.id = any($${params.push(input.lead_ids)}::bigint[])`;
    const now = this.now();
    const attempt = (race: EnrollRace) =>
      this.db.transaction(async (tx) => {
        if (!(await lockSequence(tx, actor.tenantId, id))) throw notFound('sequence');
        if ((await listSteps(tx, id)).length === 0) {
          throw unprocessable('SEQUENCE_HAS_NO_STEPS', 'add a step before enrolling leads', [{ path: 'steps', message: 'the sequence has no steps' }]);
        }
        const matched = await tx.query<{ n: number }>(`select count(*)::int as n from leads l where ${where}`, params);
        const made = await enrollLeadsWhere(tx, id, where, params, 'api', now, race);
        return { matched: matched.rows[0]!.n, ...made };
      });
    // The fast form fails if a lead entered this sequence by trigger while the statement ran (rare);
    // the whole enrollment is then made again, skipping such leads.
    const r = await attempt('fail').catch((err: unknown) => {
      if (isEnrollmentRace(err)) return attempt('skip');
      throw err;
    });
    if (r.enrolled > 0) await this.announce(r.firstDue);
    return { matched: r.matched, enrolled: r.enrolled, skipped: r.matched - r.enrolled };
  }

  async enrollments(
    actor: Actor,
    id: number,
    page: { before?: number | undefined; limit: number; status?: EnrollmentStatus | undefined; step?: number | undefined; lead_id?: number | undefined },
  ): Promise<EnrollmentView[]> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    const rows = await listEnrollments(this.db, id, { before: page.before, limit: page.limit, status: page.status, step: page.step, leadId: page.lead_id });
    return rows.map(enrollmentView);
  }

  async enrollment(actor: Actor, id: number, enrollmentId: number): Promise<EnrollmentView> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    const e = await getEnrollment(this.db, id, enrollmentId);
    if (!e) throw notFound('enrollment');
    return enrollmentView(e);
  }

  /** Every sequence one lead is or was in (the lead must be the tenant's). */
  async leadEnrollments(actor: Actor, leadId: number): Promise<EnrollmentView[]> {
    this.guard(actor);
    const rows = await leadEnrollments(this.db, actor.tenantId, leadId);
    if (rows.length === 0) {
      const params: unknown[] = [];
      const where = `${leadWhere(leadScopeOf(actor), {}, params)} and l.id = $${params.push(leadId)}`;
      const found = await this.db.query(`select 1 from leads l where ${where}`, params);
      if (found.rows.length === 0) throw notFound('lead');
    }
    return rows.map(enrollmentView);
  }

  private async enrollmentState(actor: Actor, id: number, enrollmentId: number, want: string): Promise<never> {
    const e = await getEnrollment(this.db, id, enrollmentId);
    if (!e) throw notFound('enrollment');
    throw conflict('ENROLLMENT_STATE', `the enrollment is ${e.status}, not ${want}`, [{ path: 'status', message: `the enrollment is ${e.status}`, status: e.status }]);
  }

  /** Pauses one enrollment: its waiting message is held and no later step is planned. */
  async pauseEnrollment(actor: Actor, id: number, enrollmentId: number): Promise<EnrollmentView> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    const now = this.now();
    const ok = await this.db.transaction(async (tx) => (await getEnrollment(tx, id, enrollmentId)) !== null && pauseEnrollment(tx, enrollmentId, now));
    if (!ok) await this.enrollmentState(actor, id, enrollmentId, 'active');
    return this.enrollment(actor, id, enrollmentId);
  }

  async resumeEnrollment(actor: Actor, id: number, enrollmentId: number): Promise<EnrollmentView> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    const now = this.now();
    const devices = await this.db.transaction(async (tx) => ((await getEnrollment(tx, id, enrollmentId)) === null ? null : resumeEnrollment(tx, enrollmentId, now)));
    if (devices === null) await this.enrollmentState(actor, id, enrollmentId, 'paused');
    if (devices && devices.length > 0) await this.db.notify(WORK_CHANNEL, workPayload(devices));
    await this.announce();
    return this.enrollment(actor, id, enrollmentId);
  }

  /** Takes a lead out of the sequence by hand (exit reason `removed`); its waiting message is cancelled. */
  async removeEnrollment(actor: Actor, id: number, enrollmentId: number): Promise<EnrollmentView> {
    this.guard(actor);
    await this.own(this.db, actor, id);
    const now = this.now();
    const r = await this.db.transaction(async (tx) => ((await getEnrollment(tx, id, enrollmentId)) === null ? null : exitEnrollment(tx, enrollmentId, now)));
    if (r === null || r.exited === 0) await this.enrollmentState(actor, id, enrollmentId, 'active or paused');
    return this.enrollment(actor, id, enrollmentId);
  }

  async progress(actor: Actor, id: number): Promise<SequenceProgress> {
    this.guard(actor);
    const s = await this.own(this.db, actor, id);
    return sequenceProgress(this.db, s, await listSteps(this.db, id), actor.timeZone);
  }
}
