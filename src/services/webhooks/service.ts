/**
 * Webhook subscriptions of a tenant: create, list, change, delete, rotate the secret, send a test
 * event, and read the delivery log. The account owner manages them; team members cannot (403):
 * a subscription sees every event of the tenant, beyond a member's devices.
 */
import type { Clock } from '../../engine/clock.js';
import { WEBHOOKS_CHANNEL } from '../../engine/webhook-deliverer.js';
import type { Db } from '../../store/db.js';
import {
  deleteSubscription,
  deliveryAttempts,
  failWaitingDeliveries,
  getDelivery,
  getSubscription,
  insertSubscription,
  listDeliveries,
  listSubscriptions,
  queueTestDelivery,
  setSubscriptionSecret,
  updateSubscription,
  type AttemptRow,
  type DeliveryRow,
  type DeliveryStatus,
  type SubscriptionRow,
} from '../../store/sql/webhooks.js';
import type { Actor } from '../actor.js';
import { forbidden, notFound } from '../errors.js';
import { newSigningSecret, WebhookSecrets } from './secrets.js';
import { checkWebhookUrl } from './url.js';

export interface SubscriptionView {
  id: number;
  url: string;
  events: string[];
  description: string;
  active: boolean;
  created_at: string;
  updated_at: string;
  secret_rotated_at: string | null;
}

export interface DeliveryView {
  id: number;
  subscription_id: number;
  event_id: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  occurred_at: string;
  created_at: string;
  finished_at: string | null;
}

export interface AttemptView {
  attempt: number;
  started_at: string;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_excerpt: string | null;
}

export interface WebhookOptions {
  secrets: WebhookSecrets;
  allowPrivateAddresses: boolean;
}

function subscriptionView(r: SubscriptionRow): SubscriptionView {
  return {
    id: r.id,
    url: r.url,
    events: r.events,
    description: r.description,
    active: r.active,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
    secret_rotated_at: r.secret_rotated_at?.toISOString() ?? null,
  };
}

function deliveryView(r: DeliveryRow): DeliveryView {
  return {
    id: r.id,
    subscription_id: r.subscription_id,
    event_id: r.event_id,
    event_type: r.event_type,
    status: r.status,
    attempts: r.attempts,
    next_attempt_at: r.status === 'pending' ? r.next_attempt_at.toISOString() : null,
    last_status_code: r.last_status_code,
    last_error: r.last_error,
    occurred_at: r.occurred_at.toISOString(),
    created_at: r.created_at.toISOString(),
    finished_at: r.finished_at?.toISOString() ?? null,
  };
}

function attemptView(a: AttemptRow): AttemptView {
  return {
    attempt: a.attempt,
    started_at: a.started_at.toISOString(),
    duration_ms: a.duration_ms,
    status_code: a.status_code,
    error: a.error,
    response_excerpt: a.response_excerpt,
  };
}

export class WebhookService {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly o: WebhookOptions,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  private owner(actor: Actor): number {
    if (actor.teamMember) throw forbidden('TEAM_MEMBER_FORBIDDEN', 'team members cannot manage webhooks');
    return actor.tenantId;
  }

  private async subscription(tenantId: number, id: number): Promise<SubscriptionRow> {
    const row = await getSubscription(this.db, tenantId, id);
    if (!row) throw notFound('webhook');
    return row;
  }

  /** The new subscription with its secret: the only time the secret is shown (with rotation). */
  async create(actor: Actor, input: { url: string; events: string[]; description?: string | undefined; active?: boolean | undefined }): Promise<SubscriptionView & { secret: string }> {
    const tenantId = this.owner(actor);
    const url = await checkWebhookUrl(input.url, this.o.allowPrivateAddresses);
    const secret = newSigningSecret();
    const row = await insertSubscription(
      this.db,
      tenantId,
      { url, events: [...new Set(input.events)], description: input.description ?? '', active: input.active ?? true, secret: this.o.secrets.seal(secret), createdBy: actor.userId },
      this.now(),
    );
    return { ...subscriptionView(row), secret };
  }

  async list(actor: Actor, page: { after?: number | undefined; limit: number }): Promise<SubscriptionView[]> {
    return (await listSubscriptions(this.db, this.owner(actor), page)).map(subscriptionView);
  }

  async get(actor: Actor, id: number): Promise<SubscriptionView> {
    return subscriptionView(await this.subscription(this.owner(actor), id));
  }

  async update(
    actor: Actor,
    id: number,
    input: { url?: string | undefined; events?: string[] | undefined; description?: string | undefined; active?: boolean | undefined },
  ): Promise<SubscriptionView> {
    const tenantId = this.owner(actor);
    await this.subscription(tenantId, id);
    const url = input.url === undefined ? undefined : await checkWebhookUrl(input.url, this.o.allowPrivateAddresses);
    const now = this.now();
    const row = await this.db.transaction(async (tx) => {
      const r = await updateSubscription(tx, tenantId, id, { ...input, url, events: input.events ? [...new Set(input.events)] : undefined }, now);
      if (r && input.active === false) await failWaitingDeliveries(tx, id, now);
      return r;
    });
    if (!row) throw notFound('webhook');
    return subscriptionView(row);
  }

  async remove(actor: Actor, id: number): Promise<void> {
    if (!(await deleteSubscription(this.db, this.owner(actor), id))) throw notFound('webhook');
  }

  /** A new secret at once: deliveries from now on are signed with it (receivers switch over). */
  async rotateSecret(actor: Actor, id: number): Promise<SubscriptionView & { secret: string }> {
    const secret = newSigningSecret();
    const row = await setSubscriptionSecret(this.db, this.owner(actor), id, this.o.secrets.seal(secret), this.now());
    if (!row) throw notFound('webhook');
    return { ...subscriptionView(row), secret };
  }

  /** Queues a `webhook.test` event for this subscription (even an inactive one), due now. */
  async test(actor: Actor, id: number): Promise<DeliveryView> {
    const tenantId = this.owner(actor);
    const now = this.now();
    const row = await queueTestDelivery(this.db, tenantId, id, { webhook_id: id, message: 'a test event from Fleetcast' }, now);
    if (!row) throw notFound('webhook');
    await this.db.notify(WEBHOOKS_CHANNEL, '{}');
    return deliveryView(row);
  }

  async deliveries(
    actor: Actor,
    id: number,
    f: { status?: DeliveryStatus | undefined; event?: string | undefined; before?: number | undefined; limit: number },
  ): Promise<DeliveryView[]> {
    const tenantId = this.owner(actor);
    await this.subscription(tenantId, id);
    return (await listDeliveries(this.db, tenantId, id, { status: f.status, eventType: f.event, before: f.before, limit: f.limit })).map(deliveryView);
  }

  async delivery(actor: Actor, id: number, deliveryId: number): Promise<DeliveryView & { payload: Record<string, unknown>; attempt_log: AttemptView[] }> {
    const tenantId = this.owner(actor);
    const d = await getDelivery(this.db, tenantId, id, deliveryId);
    if (!d) throw notFound('delivery');
    return { ...deliveryView(d), payload: d.payload, attempt_log: (await deliveryAttempts(this.db, d.id)).map(attemptView) };
  }
}
