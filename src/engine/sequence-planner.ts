/**
 * The sequence planner: writes each enrollment's next message when it falls due, never earlier.
 *
 * An enrollment waits with message_id null and next_due_at set; only then is it in
 * enrollments_plan_idx. When next_due_at comes, and its sequence is active, the planner writes it
 * together with every step falling due in the next few minutes (PLAN_AHEAD_MS: steps spread by a
 * device's pacing are written in one statement, not one wake-up each; each message still waits
 * for its own due time). It writes
 * the step's message for a batch of such enrollments in one statement (the step's current body,
 * rendered per lead) and links it; the dispatcher sends it; recording its outcome moves the
 * enrollment on (sequence-progress.ts), and it waits again. So the outbox holds at most one
 * message per enrollment, and only for steps already due, and an edited step reaches every
 * message not written yet.
 *
 * States of the loop: sleeping (until the earliest due enrollment of an active sequence, or until
 * told: new enrollments, a resumed sequence, a step moved on sooner than expected) -> planning
 * (batch after batch, FOR UPDATE SKIP LOCKED so several processes may plan at once) -> sleeping.
 * On start it first moves on enrollments whose message finished while no process was recording.
 *
 * Trade-off: a step is written when due rather than ahead of time, so the dispatcher sees it only
 * then (plus one statement); in exchange a paused sequence, an exit or an edit never has a
 * future message to chase.
 */
import type { Logger } from 'pino';
import type { Db } from '../store/db.js';
import { chainCompleted, dueEnrollments, nextPlanningAt, settleUnplanned, stalledEnrollments, stepsOf, writeDueMessages } from '../store/sql/enrollments.js';
import type { Clock } from './clock.js';
import { EngineEvents, SEQUENCES_CHANNEL, WORK_CHANNEL, workPayload } from './events.js';
import { progressEnrollments } from './sequence-progress.js';

export interface SequencePlannerOptions {
  /** Enrollments written per statement. */
  batchSize?: number;
  /** The longest the planner sleeps without looking (a missed notification costs at most this). */
  pollMs?: number;
  /**
   * How long before it falls due a step's message is written (its not_before is still the due
   * time). Steps due within this much of each other are written together instead of one wake-up
   * each; an edit made in this last stretch reaches only later messages.
   */
  aheadMs?: number;
}

/** Default of SequencePlannerOptions.aheadMs. */
export const PLAN_AHEAD_MS = 5 * 60_000;

export class SequencePlanner {
  private stopping = false;
  private wake = new AbortController();
  private done: Promise<void> | undefined;
  private off: (() => Promise<void>) | undefined;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly aheadMs: number;
  /** When the planner means to look next; undefined while it is working. */
  private sleepingUntil: number | undefined;
  /** The earliest waiting enrollment, once known (null: none waits). */
  nextAt: number | null | undefined = undefined;
  readonly stats = { written: 0, statements: 0, settled: 0 };

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly events: EngineEvents,
    private readonly log: Logger,
    opts: SequencePlannerOptions = {},
  ) {
    this.batchSize = opts.batchSize ?? 5000;
    this.pollMs = opts.pollMs ?? 60_000;
    this.aheadMs = opts.aheadMs ?? PLAN_AHEAD_MS;
  }

  /** No enrollment waits for a step, now or later. */
  get idle(): boolean {
    return this.nextAt === null;
  }

  async start(): Promise<void> {
    this.off = await this.db.listen(SEQUENCES_CHANNEL, (payload) => this.onNotice(payload));
    await this.recoverStalled();
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.poke();
    await this.done;
    await this.off?.();
  }

  poke(): void {
    this.nextAt = undefined;
    if (!this.wake.signal.aborted) this.wake.abort('poke');
  }

  /** `{"due": ms}` wakes the planner only if that is sooner than it meant to look anyway. */
  private onNotice(payload: string): void {
    let due: number | undefined;
    try {
      const parsed = JSON.parse(payload) as { due?: unknown };
      if (typeof parsed.due === 'number') due = parsed.due;
    } catch {
      // Any other payload means "look again".
    }
    if (due !== undefined && this.sleepingUntil !== undefined && due >= this.sleepingUntil) {
      // It will look by then anyway; it must only not believe that nothing waits.
      if (this.nextAt === null || (this.nextAt !== undefined && due < this.nextAt)) this.nextAt = due;
      return;
    }
    this.poke();
  }

  private async recoverStalled(): Promise<void> {
    const now = new Date(this.clock.now());
    for (;;) {
      const ids = await stalledEnrollments(this.db, this.batchSize);
      if (ids.length === 0) return;
      const p = await this.db.transaction((tx) => progressEnrollments(tx, ids, now));
      this.log.info({ enrollments: ids.length, ...p }, 'moved on enrollments whose step finished unrecorded');
      if (ids.length < this.batchSize) return;
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      try {
        this.sleepingUntil = undefined;
        await this.planDue();
        const next = await nextPlanningAt(this.db);
        this.nextAt = next === null ? null : next.getTime();
        const now = this.clock.now();
        // Wake when the first waiting step is due and write every step due within aheadMs of it:
        // waking aheadMs early instead would take the steps one at a time as they come into reach.
        const until = Math.min(this.nextAt ?? Infinity, now + this.pollMs);
        if (until <= now) continue;
        const signal = this.wake.signal;
        this.sleepingUntil = until;
        if (!signal.aborted && !this.stopping) await this.clock.sleepUntil(until, signal);
        this.wake = new AbortController();
      } catch (error) {
        this.events.emit('error', { where: 'sequence-planner', error });
        this.log.error({ err: error }, 'planning sequence steps failed; retrying in 5s');
        await this.clock.sleepUntil(this.clock.now() + 5000, this.wake.signal);
        this.wake = new AbortController();
      }
    }
  }

  /** Writes every due step's message, batch after batch; returns how many. */
  async planDue(): Promise<number> {
    let written = 0;
    for (;;) {
      if (this.stopping) return written;
      const n = await this.planBatch();
      if (n === null) return written;
      written += n;
      // Let the dispatcher and the API have the store between batches.
      await this.clock.track(new Promise<void>((r) => setImmediate(r)));
    }
  }

  /** Writes one batch of due messages; null when nothing was due. */
  private async planBatch(): Promise<number | null> {
    const now = new Date(this.clock.now());
    const due = await dueEnrollments(this.db, new Date(now.getTime() + this.aheadMs), this.batchSize);
    if (due.length === 0) return null;
    const wanted = new Set(due.map((d) => `${d.sequence_id}/${d.current_step}`));
    const steps = (await stepsOf(this.db, [...new Set(due.map((d) => d.sequence_id))])).filter((s) => wanted.has(`${s.sequence_id}/${s.position}`));
    const ids = due.map((d) => d.id);
    const written = await writeDueMessages(this.db, ids, steps, now);
    this.stats.statements++;
    this.stats.written += written.length;
    if (written.length < ids.length) {
      const got = new Set(written.map((w) => w.enrollment_id));
      const rest = ids.filter((id) => !got.has(id));
      const s = await this.db.transaction(async (tx) => {
        const settled = await settleUnplanned(tx, rest, now);
        // A step removed from under the lead leaves nothing to send: on to the next sequence.
        await chainCompleted(tx, settled.completed, now);
        return settled;
      });
      this.stats.settled += s.completed.length + s.exited + s.waiting;
    }
    if (written.length > 0) {
      const devices = [...new Set(written.map((w) => w.device_id))];
      await this.db.notify(WORK_CHANNEL, workPayload(devices));
      this.events.emit('sequence.planned', { messages: written.length, at: now.getTime() });
    }
    return written.length;
  }
}
