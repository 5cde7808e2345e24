/**
 * Leads: listing with filters, one-lead reads and writes, the intake upsert, and bulk actions on
 * a filtered selection. Every statement is scoped by the actor's tenant and, for a team member,
 * by its devices (see lead-filter.ts); a lead outside that scope does not exist for the caller.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../engine/clock.js';
import type { Db, Queryable } from '../../store/db.js';
import { claimIdempotencyKey, storeIdempotentResponse } from '../../store/sql/idempotency.js';
import { leadWhere, type LeadFilter } from '../../store/sql/lead-filter.js';
import {
  bulkUpdateLeads,
  cancelPendingForLeadFilter,
  cancelPendingForLeads,
  countLeads,
  queueOptOutsByUser,
  deleteLeads,
  getLead,
  listLeads,
  updateLead,
  upsertLead,
  type BulkLeadOp,
  type LeadChanges,
  type LeadRow,
} from '../../store/sql/leads.js';
import { liveDeviceIds } from '../../store/sql/members.js';
import { SEQUENCES_CHANNEL } from '../../engine/events.js';
import { enrollBeforeTagging, enrollGainedTags, exitLeads, exitLeadsWhere, triggersAmong, type EnrollResult } from '../../store/sql/enrollments.js';
import { leadScopeOf, type Actor } from '../actor.js';
import { AppError, conflict, forbidden, notFound } from '../errors.js';
import { iso } from '../accounts/views.js';
import { normalisePhone } from './phone.js';

export interface LeadView {
  id: number;
  name: string;
  phone: string;
  niches: string[];
  status: string;
  triggers: string[];
  source: string | null;
  attributes: Record<string, unknown>;
  device_id: number | null;
  opted_out_at: string | null;
  last_reply_at: string | null;
  created_at: string;
  updated_at: string;
}

export function leadView(l: LeadRow): LeadView {
  return {
    id: l.id,
    name: l.name,
    phone: l.phone,
    niches: l.niches,
    status: l.status,
    triggers: l.triggers,
    source: l.source,
    attributes: l.attributes,
    device_id: l.device_id,
    opted_out_at: iso(l.opted_out_at),
    last_reply_at: iso(l.last_reply_at),
    created_at: l.created_at.toISOString(),
    updated_at: l.updated_at.toISOString(),
  };
}

export interface LeadInputBody {
  name?: string | undefined;
  phone: string;
  device_id?: number | null | undefined;
  niches?: string[] | undefined;
  status?: string | undefined;
  triggers?: string[] | undefined;
  source?: string | null | undefined;
  attributes?: Record<string, unknown> | undefined;
}

export interface LeadPatchBody {
  name?: string | undefined;
  phone?: string | undefined;
  device_id?: number | null | undefined;
  niches?: string[] | undefined;
  status?: string | undefined;
  triggers?: string[] | undefined;
  source?: string | null | undefined;
  attributes?: Record<string, unknown> | undefined;
  opted_out?: boolean | undefined;
}

/** Which leads a bulk action touches: an explicit list of ids, or a filter. */
export interface LeadSelection {
  ids?: number[] | undefined;
  filter?: LeadFilter | undefined;
}

export type BulkAction = BulkLeadOp | { op: 'delete' };

export interface UpsertOutcome {
  lead: LeadView;
  created: boolean;
}

function phoneOrThrow(raw: string, actor: Actor, path = 'phone'): string {
  const r = normalisePhone(raw, actor.defaultCountry);
  if (!r.ok) throw new AppError('INVALID_PHONE', 422, `invalid phone number: ${r.message}`, [{ path, code: r.code, message: r.message }]);
  return r.e164;
}

export class LeadService {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  /**
   * Enrolls a lead in the sequences of the trigger tags it just gained (exact tags; `had` are the
   * ones it carried before). Opt-outs and re-entry rules are the enrollment statement's.
   */
  private async enrollGained(tx: Queryable, actor: Actor, leadId: number, had: readonly string[], now: readonly string[], at: Date): Promise<EnrollResult> {
    const fresh = now.filter((t) => !had.includes(t));
    const tags = await triggersAmong(tx, actor.tenantId, fresh);
    return enrollGainedTags(
      tx,
      actor.tenantId,
      [...tags].map((tag) => ({ leadId, tag })),
      'trigger',
      at,
    );
  }

  /** Wakes the sequence planner when leads were enrolled. */
  private async announce(r: EnrollResult | null): Promise<void> {
    if (r && r.enrolled > 0) await this.db.notify(SEQUENCES_CHANNEL, JSON.stringify(r.firstDue ? { due: r.firstDue.getTime() } : {}));
  }

  private where(actor: Actor, filter: LeadFilter = {}): { where: string; params: unknown[] } {
    const params: unknown[] = [];
    return { where: leadWhere(leadScopeOf(actor), filter, params), params };
  }

  /** A device a lead may be given: a live device of the tenant, within a team member's scope. */
  private async checkDevice(db: Queryable, actor: Actor, deviceId: number | null | undefined): Promise<void> {
    if (deviceId === undefined) return;
    if (deviceId === null) {
      if (actor.deviceScope !== null) throw forbidden('TEAM_MEMBER_FORBIDDEN', 'team members cannot move leads to the shared pool');
      return;
    }
    const live = await liveDeviceIds(db, actor.tenantId, [deviceId]);
    if (live.length === 0 || (actor.deviceScope !== null && !actor.deviceScope.includes(deviceId))) {
      throw new AppError('DEVICE_NOT_FOUND', 404, 'device not found', [{ path: 'device_id', message: `no device ${deviceId}` }]);
    }
  }

  async list(actor: Actor, filter: LeadFilter, page: { before?: number | undefined; limit: number }): Promise<LeadView[]> {
    const { where, params } = this.where(actor, filter);
    return (await listLeads(this.db, where, params, page.before, page.limit)).map(leadView);
  }

  async count(actor: Actor, filter: LeadFilter): Promise<number> {
    const { where, params } = this.where(actor, filter);
    return countLeads(this.db, where, params);
  }

  async get(actor: Actor, id: number): Promise<LeadView> {
    const { where, params } = this.where(actor);
    const row = await getLead(this.db, where, params, id);
    if (!row) throw notFound('lead');
    return leadView(row);
  }

  /**
   * Creates a lead or merges into the existing one with the same phone (see upsertLead). A team
   * member's lead must go to one of its devices; without one named, the first of them is used.
   */
  async upsert(actor: Actor, input: LeadInputBody): Promise<UpsertOutcome> {
    const phone = phoneOrThrow(input.phone, actor);
    let deviceId = input.device_id;
    if (actor.deviceScope !== null && (deviceId === undefined || deviceId === null)) {
      if (actor.deviceScope.length === 0) throw forbidden('TEAM_MEMBER_NO_DEVICES', 'no device is assigned to this team member');
      deviceId = actor.deviceScope[0]!;
    }
    let enrolled: EnrollResult | null = null;
    const out = await this.db.transaction(async (tx) => {
      await this.checkDevice(tx, actor, deviceId);
      const now = this.now();
      // The triggers it had, when the request might add a sequence's trigger to an existing lead.
      const watch = (await triggersAmong(tx, actor.tenantId, input.triggers ?? [])).size > 0;
      const had = watch ? ((await tx.query<{ triggers: string[] }>(`select triggers from leads where user_id = $1 and phone = $2`, [actor.tenantId, phone])).rows[0]?.triggers ?? []) : [];
      const row = await upsertLead(
        tx,
        actor.tenantId,
        {
          name: input.name,
          phone,
          deviceId,
          niches: input.niches,
          status: input.status,
          triggers: input.triggers,
          source: input.source,
          attributes: input.attributes,
        },
        now,
      );
      // A team member may not reach into a lead another device owns by naming its phone.
      if (actor.deviceScope !== null && (row.device_id === null || !actor.deviceScope.includes(row.device_id))) {
        throw conflict('LEAD_EXISTS_ELSEWHERE', 'this phone belongs to a lead outside your devices');
      }
      if (watch) enrolled = await this.enrollGained(tx, actor, row.id, had, row.triggers, now);
      return { lead: leadView(row), created: row.created };
    });
    await this.announce(enrolled);
    return out;
  }

  /**
   * Runs `fn` once per (actor's tenant, key): a retry with the same key and the same request gets
   * the first answer again; the same key with a different request is refused.
   */
  async idempotent<T>(actor: Actor, key: string, request: unknown, fn: () => Promise<{ status: number; body: T }>): Promise<{ status: number; body: T; replayed: boolean }> {
    const hash = createHash('sha256').update(JSON.stringify(request)).digest('hex');
    const now = this.now();
    const previous = await claimIdempotencyKey(this.db, actor.tenantId, key, hash, now);
    if (previous) {
      if (previous.request_hash !== hash) {
        throw new AppError('IDEMPOTENCY_KEY_REUSED', 422, 'this Idempotency-Key was used for a different request');
      }
      if (previous.status_code === null) throw conflict('IDEMPOTENCY_IN_PROGRESS', 'a request with this Idempotency-Key is still running');
      return { status: previous.status_code, body: previous.response as T, replayed: true };
    }
    try {
      const out = await fn();
      await storeIdempotentResponse(this.db, actor.tenantId, key, out.status, out.body);
      return { ...out, replayed: false };
    } catch (err) {
      // A refused request may be retried with the same key once it is fixed.
      await this.db.query(`delete from idempotency_keys where user_id = $1 and key = $2 and status_code is null`, [actor.tenantId, key]);
      throw err;
    }
  }

  async update(actor: Actor, id: number, body: LeadPatchBody): Promise<LeadView> {
    const changes: LeadChanges = {
      name: body.name,
      phone: body.phone === undefined ? undefined : phoneOrThrow(body.phone, actor),
      deviceId: body.device_id,
      niches: body.niches,
      status: body.status,
      triggers: body.triggers,
      source: body.source,
      attributes: body.attributes,
      optedOut: body.opted_out,
    };
    const { where, params } = this.where(actor);
    let enrolled: EnrollResult | null = null;
    try {
      const view = await this.db.transaction(async (tx) => {
        const before = await getLead(tx, where, params, id);
        if (before === null) throw notFound('lead');
        await this.checkDevice(tx, actor, body.device_id);
        const now = this.now();
        if (body.opted_out === true) {
          // What waits for it is cancelled and its sequences end, before the lead row itself.
          await cancelPendingForLeads(tx, [id], 'opted_out', now);
          await exitLeads(tx, [id], 'opted_out', now);
          await queueOptOutsByUser(tx, `${where} and l.id = $${params.length + 1}`, [...params, id], now);
        }
        const row = await updateLead(tx, where, params, id, changes, now);
        if (!row) throw notFound('lead');
        if (body.triggers !== undefined) enrolled = await this.enrollGained(tx, actor, id, before.triggers, row.triggers, now);
        return leadView(row);
      });
      await this.announce(enrolled);
      return view;
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw conflict('LEAD_PHONE_TAKEN', 'another lead has this phone', [{ path: 'phone', message: 'already in use' }]);
      throw err;
    }
  }

  async delete(actor: Actor, id: number): Promise<void> {
    const params: unknown[] = [];
    const where = `${leadWhere(leadScopeOf(actor), {}, params)} and l.id = $${params.push(id)}`;
    const n = await this.db.transaction(async (tx) => {
      await cancelPendingForLeadFilter(tx, where, params, 'lead_deleted', this.now());
      return deleteLeads(tx, where, params);
    });
    if (n === 0) throw notFound('lead');
  }

  /** One action over a selection, in one transaction; returns how many leads it touched. */
  async bulk(actor: Actor, selection: LeadSelection, action: BulkAction): Promise<{ affected: number; cancelled_messages: number }> {
    const params: unknown[] = [];
    let where = leadWhere(leadScopeOf(actor), selection.filter ?? {}, params);
    if (selection.ids !== undefined) where += ` and l.id = any($${params.push(selection.ids)}::bigint[])`;
    let enrolled: EnrollResult | null = null;
    const out = await this.db.transaction(async (tx) => {
      const now = this.now();
      if (action.op === 'assign_device') await this.checkDevice(tx, actor, action.device_id);
      if (action.op === 'delete') {
        const cancelled = await cancelPendingForLeadFilter(tx, where, params, 'lead_deleted', now);
        return { affected: await deleteLeads(tx, where, params), cancelled_messages: cancelled };
      }
      let cancelled = 0;
      if (action.op === 'opt_out') {
        // An opt-out takes effect at once: what waits for these leads is cancelled and their sequences end first.
        cancelled = await cancelPendingForLeadFilter(tx, where, params, 'opted_out', now);
        await exitLeadsWhere(tx, where, params, 'opted_out', now);
        await queueOptOutsByUser(tx, where, params, now);
      }
      if (action.op === 'add_triggers' || action.op === 'set_triggers') {
        // Exactly the leads that gain a sequence's trigger enroll: those not carrying it yet.
        const tags = [...(await triggersAmong(tx, actor.tenantId, action.values))];
        enrolled = await enrollBeforeTagging(tx, actor.tenantId, where, params, tags, now);
      }
      return { affected: await bulkUpdateLeads(tx, where, params, action, now), cancelled_messages: cancelled };
    });
    await this.announce(enrolled);
    return out;
  }
}
