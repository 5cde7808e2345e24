/**
 * Operations: outbound webhooks (subscriptions, their delivery outbox and every attempt) and the
 * audit log.
 *
 * - A delivery row is written in the same statement as the state change it reports (see
 *   store/sql/webhooks.ts), one per event and subscription that wants it; the deliverer claims due
 *   rows with FOR UPDATE SKIP LOCKED. `next_attempt_at` is when a pending row is due and, while a
 *   row is `delivering`, when its claim lapses: a process that dies mid-attempt leaves a row that
 *   falls due again by itself, so one partial index serves both.
 * - Deliveries keep a foreign key to their subscription (deleting one deletes its log); the
 *   lookup per inserted row is a primary-key probe of a table with a handful of rows per tenant.
 * - The audit log keeps no foreign keys: it must outlive the accounts and resources it names.
 */
export const sql = `
create table webhook_subscriptions (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  url text not null,
  events text[] not null,
  description text not null default '',
  -- The signing secret, encrypted when FLEETCAST_SECRET_KEY is set (services/webhooks/secrets.ts).
  secret text not null,
  active boolean not null default true,
  created_by bigint references users (id) on delete set null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  secret_rotated_at timestamptz
);
-- The queuing join looks subscriptions up by tenant; inactive ones never queue anything.
create index webhook_subscriptions_user_idx on webhook_subscriptions (user_id) where active;
create index webhook_subscriptions_list_idx on webhook_subscriptions (user_id, id);

create table webhook_deliveries (
  id bigint generated always as identity primary key,
  subscription_id bigint not null references webhook_subscriptions (id) on delete cascade,
  user_id bigint not null,
  event_id uuid not null default gen_random_uuid(),
  event_type text not null,
  payload jsonb not null,
  occurred_at timestamptz not null,
  status text not null default 'pending' check (status in ('pending', 'delivering', 'delivered', 'failed')),
  attempts smallint not null default 0,
  next_attempt_at timestamptz not null,
  last_status_code integer,
  last_error text,
  created_at timestamptz not null,
  finished_at timestamptz
);
create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at) where status in ('pending', 'delivering');
create index webhook_deliveries_subscription_idx on webhook_deliveries (subscription_id, id);
create index webhook_deliveries_finished_idx on webhook_deliveries (finished_at) where finished_at is not null;

create table webhook_attempts (
  delivery_id bigint not null references webhook_deliveries (id) on delete cascade,
  attempt smallint not null,
  started_at timestamptz not null,
  duration_ms integer not null,
  status_code integer,
  error text,
  -- The start of the receiver's answer, cut short.
  response_excerpt text,
  primary key (delivery_id, attempt)
);

create table audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null,
  tenant_id bigint,
  actor_id bigint,
  actor_email text,
  via text not null check (via in ('session', 'token', 'anonymous')),
  credential_id bigint,
  action text not null,
  target_type text,
  target_id bigint,
  method text not null,
  route text not null,
  status_code integer not null,
  request_id text,
  ip text
);
create index audit_log_tenant_idx on audit_log (tenant_id, id);
create index audit_log_actor_idx on audit_log (actor_id, id);
create index audit_log_at_idx on audit_log (at);
`;
