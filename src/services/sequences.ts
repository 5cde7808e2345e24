/**
 * Drip sequences: a trigger (a lead tag) enrolls a lead, which then receives the steps in order,
 * each after its delay (and, if set, at a local wall time), inside the sequence's send window.
 * A sequence may hand its finishers on to a next sequence; the chain never loops back.
 */
import type { Clock } from '../engine/clock.js';
import type { Db, Queryable } from '../store/db.js';
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
import type { Actor } from './actor.js';
import { hhmmOf, mediaView, minuteOf, storedMedia, windowIdFor, windowView, type MediaInput, type WindowInput, type WindowView } from './campaigns.js';
import { AppError, conflict, forbidden, notFound, unprocessable } from './errors.js';

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

export interface StepInput {
  position?: number | undefined;
  delay_minutes?: number | undefined;
  send_time?: string | null | undefined;
  body: string;
  media?: MediaInput | null | undefined;
}

export type StepPatch = Partial<StepInput>;

export interface StepView {
  id: number;
  sequence_id: number;
  position: number;
  delay_minutes: number;
  send_time: string | null;
  body: string;
  media: MediaInput | null;
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
    delay_minutes: s.delay_minutes,
    send_time: s.send_minute === null ? null : hhmmOf(s.send_minute),
    body: s.body,
    media: mediaView(s.media),
  };
}

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
  ) {}

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

  private async move(actor: Actor, id: number, from: SequenceStatus, to: SequenceStatus): Promise<SequenceView> {
    this.guard(actor);
    const now = this.now();
    await this.db.transaction(async (tx) => {
      if (await setSequenceStatus(tx, actor.tenantId, id, from, to, now)) return;
      const cur = await this.own(tx, actor, id);
      throw conflict('SEQUENCE_STATE', `the sequence is already ${cur.status}`, [{ path: 'status', message: `the sequence is ${cur.status}`, status: cur.status }]);
    });
    return this.view(this.db, actor, id);
  }

  pause(actor: Actor, id: number): Promise<SequenceView> {
    return this.move(actor, id, 'active', 'paused');
  }

  resume(actor: Actor, id: number): Promise<SequenceView> {
    return this.move(actor, id, 'paused', 'active');
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
    const stepId = await this.db.transaction(async (tx) => {
      if (!(await lockSequence(tx, actor.tenantId, id))) throw notFound('sequence');
      const before = await listSteps(tx, id);
      if (before.length >= MAX_STEPS) {
        throw unprocessable('TOO_MANY_STEPS', `a sequence has at most ${MAX_STEPS} steps`, [{ path: 'position', message: `already ${before.length} steps` }]);
      }
      const position = input.position ?? before.length + 1;
      if (position > before.length + 1) throw badPosition(position, before.length + 1);
      const created = await appendStep(tx, id, {
        delayMinutes: input.delay_minutes ?? 0,
        sendMinute: sendMinute(input.send_time) ?? null,
        body: input.body,
        media: storedMedia(input.media) ?? null,
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
        delayMinutes: patch.delay_minutes,
        sendMinute: sendMinute(patch.send_time),
        body: patch.body,
        media: storedMedia(patch.media),
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
}
