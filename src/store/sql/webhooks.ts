/**
 * Webhooks: subscriptions, the delivery outbox and its attempts.
 *
 * Queuing. An event must never be lost between "the state changed" and "the webhook was queued",
 * so deliveries are written by the very statement that changes the state: the writers in
 * messages.ts, devices.ts, campaigns.ts, enrollments.ts and leads.ts turn their UPDATE into a
 * data-modifying CTE and add `queueDeliveries(...)` as a second one, an INSERT ... SELECT of the
 * changed rows joined to the subscriptions that want the event. Set-based: one statement per
 * batch, whatever its size. With no subscription the join is empty and the extra cost is the
 * RETURNING of the changed rows (measured in docs/operations.md: within the noise of the dispatch
 * benchmark on PGlite).
 *
 * Delivering. Due rows (pending, or delivering with a lapsed claim) are claimed in one statement
 * with FOR UPDATE SKIP LOCKED, so any number of processes share the work; see
 * engine/webhook-deliverer.ts for the state machine.
 */
import type { Queryable } from '../db.js';

export const WEBHOOK_EVENTS = [
  'message.sent',
  'message.delivered',
  'message.read',
  'message.failed',
  'lead.replied',
  'lead.opted_out',
  'device.connected',
  'device.disconnected',
  'device.restricted',
  'device.logged_out',
  'campaign.started',
  'campaign.completed',
  'sequence.completed',
] as const;

export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** The event a test call queues; a subscription never asks for it, every subscription gets it on demand. */
export const TEST_EVENT = 'webhook.test';

export interface EventSource {
  /** A relation (CTE name or subquery) holding the changed rows, aliased `e`. */
  from: string;
  /** The tenant column of `e`. */
  userId: string;
  /** The event type: a constant or a CASE over `e` (a null type queues nothing). */
  type: string;
  /** A jsonb expression over `e`: the event's `data`. */
  data: string;
  /** When it happened (timestamptz over `e`, or the $now parameter). */
  at: string;
  /** The statement's $now parameter, e.g. `$3::timestamptz`. */
  now: string;
}

/**
 * A data-modifying CTE (`name as (insert ...)`) queuing one delivery per row of `src.from` and
 * per active subscription of its tenant that wants its event type. The CTE runs whether or not
 * the statement's result reads it. The data is computed in the projection after the join, so a
 * row nobody subscribed to costs no jsonb (and no subquery the data may hold).
 */
export function queueDeliveries(name: string, src: EventSource): string {
  // Subscriptions drive (the lateral makes them the outer side): with none active, the changed
  // rows are never read. Measured on PGlite dispatching 60,000 messages: a join driven by the
  // changed rows (a 17-column RETURNING) cost ~23 us a message with no subscription at all.
  return `${name} as (
       insert into webhook_deliveries (subscription_id, user_id, event_type, payload, occurred_at, next_attempt_at, created_at)
       select s.id, s.user_id, t.type, t.data, t.at, ${src.now}, ${src.now}
         from webhook_subscriptions s
         cross join lateral (
           select ${src.type} as type, ${src.data} as data, ${src.at} as at
             from ${src.from} as e
            where ${src.userId} = s.user_id and ${src.type} = any(s.events)) as t
        where s.active)`;
}

/** Columns a message writer returns so `messageEventData` can describe the row as it now is. */
export const MESSAGE_EVENT_COLUMNS = `m.id, m.user_id, m.lead_id, m.device_id, m.phone, m.campaign_id, m.enrollment_id, m.step,
       m.status, m.attempts, m.transport_id, m.error_code, m.error, m.sent_at, m.delivered_at, m.read_at, m.finished_at`;

/**
 * The columns of MESSAGE_EVENT_COLUMNS for rows a statement is changing, read as they were before
 * (`m`, a second reference to messages, sees the statement's snapshot) with the new values given:
 * the hot writers return only ids, which is most of their queuing cost gone.
 */
export function messageEventRows(changed: string, newValues: Partial<Record<'status' | 'attempts' | 'transport_id' | 'error_code' | 'error' | 'sent_at' | 'delivered_at' | 'read_at' | 'finished_at', string>>): string {
  const v = (col: keyof typeof newValues) => `${newValues[col] ?? `m.${col}`} as ${col}`;
  return `(select m.id, m.user_id, m.lead_id, m.device_id, m.phone, m.campaign_id, m.enrollment_id, m.step,
            ${v('status')}, ${v('attempts')}, ${v('transport_id')}, ${v('error_code')}, ${v('error')},
            ${v('sent_at')}, ${v('delivered_at')}, ${v('read_at')}, ${v('finished_at')}
       from ${changed} join messages m on m.id = w.id)`;
}

/** A message event's data: ids and figures, never the body. */
export const MESSAGE_EVENT_DATA = `jsonb_build_object(
       'message_id', e.id, 'lead_id', e.lead_id, 'device_id', e.device_id, 'phone', e.phone,
       'campaign_id', e.campaign_id, 'enrollment_id', e.enrollment_id,
       'sequence_id', (select en.sequence_id from enrollments en where en.id = e.enrollment_id), 'step', e.step,
       'status', e.status, 'attempts', e.attempts, 'transport_id', e.transport_id,
       'error_code', e.error_code, 'error', e.error,
       'sent_at', e.sent_at, 'delivered_at', e.delivered_at, 'read_at', e.read_at)`;

/** The event a recorded final status announces (sending outcomes and crash recovery). */
export const MESSAGE_OUTCOME_TYPE = `(case e.status when 'sent' then 'message.sent'
       when 'failed' then 'message.failed' when 'skipped' then 'message.failed' when 'unknown' then 'message.failed' end)`;

// ---- Subscriptions ------------------------------------------------------------------------

export interface SubscriptionRow {
  id: number;
  user_id: number;
  url: string;
  events: string[];
  description: string;
  active: boolean;
  created_at: Date;
  updated_at: Date;
  secret_rotated_at: Date | null;
}

const subscriptionColumns = `id, user_id, url, events, description, active, created_at, updated_at, secret_rotated_at`;

export interface NewSubscription {
  url: string;
  events: readonly string[];
  description: string;
  active: boolean;
  /** Stored as given: the service encrypts it. */
  secret: string;
  createdBy: number;
}

export async function insertSubscription(db: Queryable, tenantId: number, s: NewSubscription, now: Date): Promise<SubscriptionRow> {
  const res = await db.query<SubscriptionRow>(
    `insert into webhook_subscriptions (user_id, url, events, description, secret, active, created_by, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $8)
     returning ${subscriptionColumns}`,
    [tenantId, s.url, s.events, s.description, s.secret, s.active, s.createdBy, now],
  );
  return res.rows[0]!;
}

export async function getSubscription(db: Queryable, tenantId: number, id: number): Promise<SubscriptionRow | null> {
  const res = await db.query<SubscriptionRow>(`select ${subscriptionColumns} from webhook_subscriptions where user_id = $1 and id = $2`, [tenantId, id]);
  return res.rows[0] ?? null;
}

export async function listSubscriptions(db: Queryable, tenantId: number, page: { after?: number | undefined; limit: number }): Promise<SubscriptionRow[]> {
  const res = await db.query<SubscriptionRow>(
    `select ${subscriptionColumns} from webhook_subscriptions where user_id = $1 and id > $2 order by id limit $3`,
    [tenantId, page.after ?? 0, page.limit],
  );
  return res.rows;
}

export interface SubscriptionChanges {
  url?: string | undefined;
  events?: readonly string[] | undefined;
  description?: string | undefined;
  active?: boolean | undefined;
}

export async function updateSubscription(db: Queryable, tenantId: number, id: number, c: SubscriptionChanges, now: Date): Promise<SubscriptionRow | null> {
  const res = await db.query<SubscriptionRow>(
    `update webhook_subscriptions set
        url = coalesce($3, url), events = coalesce($4, events), description = coalesce($5, description),
        active = coalesce($6, active), updated_at = $7
      where user_id = $1 and id = $2
      returning ${subscriptionColumns}`,
    [tenantId, id, c.url ?? null, c.events ?? null, c.description ?? null, c.active ?? null, now],
  );
  return res.rows[0] ?? null;
}

export async function setSubscriptionSecret(db: Queryable, tenantId: number, id: number, secret: string, now: Date): Promise<SubscriptionRow | null> {
  const res = await db.query<SubscriptionRow>(
    `update webhook_subscriptions set secret = $3, secret_rotated_at = $4, updated_at = $4
      where user_id = $1 and id = $2 returning ${subscriptionColumns}`,
    [tenantId, id, secret, now],
  );
  return res.rows[0] ?? null;
}

/** Deletes a subscription and (by cascade) its deliveries and their attempts. */
export async function deleteSubscription(db: Queryable, tenantId: number, id: number): Promise<boolean> {
  const res = await db.query(`delete from webhook_subscriptions where user_id = $1 and id = $2`, [tenantId, id]);
  return res.rowCount > 0;
}

/**
 * A deactivated subscription's waiting deliveries fail at once (code SUBSCRIPTION_INACTIVE): left
 * pending they would sit at the head of the due index forever.
 */
export async function failWaitingDeliveries(db: Queryable, subscriptionId: number, now: Date): Promise<number> {
  const res = await db.query(
    `update webhook_deliveries set status = 'failed', last_error = 'SUBSCRIPTION_INACTIVE: the subscription was deactivated', finished_at = $2
      where subscription_id = $1 and status = 'pending'`,
    [subscriptionId, now],
  );
  return res.rowCount;
}

/** A test event for one subscription, due now. */
export async function queueTestDelivery(db: Queryable, tenantId: number, id: number, data: Record<string, unknown>, now: Date): Promise<DeliveryRow | null> {
  const res = await db.query<DeliveryRow>(
    `insert into webhook_deliveries (subscription_id, user_id, event_type, payload, occurred_at, next_attempt_at, created_at)
     select s.id, s.user_id, $3, $4::jsonb, $5, $5, $5 from webhook_subscriptions s where s.user_id = $1 and s.id = $2
     returning ${deliveryColumns}`,
    [tenantId, id, TEST_EVENT, JSON.stringify(data), now],
  );
  return res.rows[0] ?? null;
}

// ---- Deliveries -----------------------------------------------------------------------------

export type DeliveryStatus = 'pending' | 'delivering' | 'delivered' | 'failed';

export interface DeliveryRow {
  id: number;
  subscription_id: number;
  event_id: string;
  event_type: string;
  payload: Record<string, unknown>;
  occurred_at: Date;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: Date;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

const deliveryColumns = `id, subscription_id, event_id, event_type, payload, occurred_at, status, attempts, next_attempt_at,
  last_status_code, last_error, created_at, finished_at`;

export interface DeliveryFilter {
  status?: DeliveryStatus | undefined;
  eventType?: string | undefined;
  /** Keyset: deliveries with a smaller id (newest first). */
  before?: number | undefined;
  limit: number;
}

/** A subscription's deliveries, newest first. */
export async function listDeliveries(db: Queryable, tenantId: number, subscriptionId: number, f: DeliveryFilter): Promise<DeliveryRow[]> {
  const res = await db.query<DeliveryRow>(
    `select ${deliveryColumns} from webhook_deliveries
      where subscription_id = $2 and user_id = $1 and id < $3
        and ($4::text is null or status = $4) and ($5::text is null or event_type = $5)
      order by id desc limit $6`,
    [tenantId, subscriptionId, f.before ?? Number.MAX_SAFE_INTEGER, f.status ?? null, f.eventType ?? null, f.limit],
  );
  return res.rows;
}

export async function getDelivery(db: Queryable, tenantId: number, subscriptionId: number, id: number): Promise<DeliveryRow | null> {
  const res = await db.query<DeliveryRow>(
    `select ${deliveryColumns} from webhook_deliveries where user_id = $1 and subscription_id = $2 and id = $3`,
    [tenantId, subscriptionId, id],
  );
  return res.rows[0] ?? null;
}

export interface AttemptRow {
  attempt: number;
  started_at: Date;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_excerpt: string | null;
}

export async function deliveryAttempts(db: Queryable, deliveryId: number): Promise<AttemptRow[]> {
  const res = await db.query<AttemptRow>(
    `select attempt, started_at, duration_ms, status_code, error, response_excerpt from webhook_attempts where delivery_id = $1 order by attempt`,
    [deliveryId],
  );
  return res.rows;
}

export interface ClaimedDelivery {
  id: number;
  subscription_id: number;
  event_id: string;
  event_type: string;
  payload: Record<string, unknown>;
  occurred_at: Date;
  attempts: number;
  url: string;
  secret: string;
}

/**
 * Claims up to `limit` due deliveries (pending and due, or delivering with a lapsed claim) of
 * active subscriptions: they become `delivering` until `leaseUntil`, with the attempt counted.
 * FOR UPDATE SKIP LOCKED lets several processes claim side by side without waiting on each other.
 */
export async function claimDueDeliveries(db: Queryable, now: Date, leaseUntil: Date, limit: number): Promise<ClaimedDelivery[]> {
  const res = await db.query<ClaimedDelivery>(
    `with c as (
       update webhook_deliveries d set status = 'delivering', attempts = d.attempts + 1, next_attempt_at = $2
        where d.id = any(array(
          select x.id from webhook_deliveries x
           where x.status in ('pending', 'delivering') and x.next_attempt_at <= $1
           order by x.next_attempt_at, x.id
           limit $3
           for update skip locked))
       returning d.id, d.subscription_id, d.event_id, d.event_type, d.payload, d.occurred_at, d.attempts)
     select c.*, s.url, s.secret from c join webhook_subscriptions s on s.id = c.subscription_id`,
    [now, leaseUntil, limit],
  );
  return res.rows;
}

/** The earliest time a delivery falls due (a lapsed claim included), or null when none waits. */
export async function nextDeliveryAt(db: Queryable): Promise<Date | null> {
  const res = await db.query<{ at: Date | null }>(
    `select min(next_attempt_at) as at from webhook_deliveries where status in ('pending', 'delivering')`,
  );
  return res.rows[0]?.at ?? null;
}

export interface AttemptResult {
  deliveryId: number;
  attempt: number;
  startedAt: Date;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responseExcerpt: string | null;
  /** delivered, failed (final) or pending (retry at retryAt). */
  status: 'delivered' | 'failed' | 'pending';
  retryAt: Date | null;
  at: Date;
}

/**
 * Records an attempt and moves its delivery on, in one statement. Only a row still claimed by this
 * attempt changes (a claim that lapsed and was taken again by another process is left to it).
 */
export async function recordAttempt(db: Queryable, r: AttemptResult): Promise<boolean> {
  const res = await db.query(
    `with d as (
       update webhook_deliveries set status = $8, last_status_code = $5, last_error = $6,
              next_attempt_at = coalesce($9, next_attempt_at),
              finished_at = case when $8 in ('delivered', 'failed') then $10::timestamptz end
        where id = $1 and status = 'delivering' and attempts = $2
        returning id)
     insert into webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
     select d.id, $2, $3, $4, $5, $6, $7 from d
     on conflict (delivery_id, attempt) do nothing`,
    [r.deliveryId, r.attempt, r.startedAt, r.durationMs, r.statusCode, r.error, r.responseExcerpt, r.status, r.retryAt, r.at],
  );
  return res.rowCount > 0;
}

export async function webhookBacklog(db: Queryable): Promise<number> {
  const res = await db.query<{ n: number }>(`select count(*)::int as n from webhook_deliveries where status in ('pending', 'delivering')`);
  return res.rows[0]!.n;
}

/** Deletes finished deliveries (and their attempts) older than `before`, a batch at a time. */
export async function deleteFinishedDeliveries(db: Queryable, before: Date, batch: number): Promise<number> {
  const res = await db.query(
    `delete from webhook_deliveries where id = any(array(
       select id from webhook_deliveries where finished_at < $1 and status in ('delivered', 'failed') limit $2))`,
    [before, batch],
  );
  return res.rowCount;
}
