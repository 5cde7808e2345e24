/**
 * The engine's tables: tenants, devices, leads, campaigns, sequences, enrollments, the outbox and
 * device leases. Invariants carried by constraints rather than code:
 * - one outbox row per (campaign, lead) and per (enrollment, step): a duplicate send is impossible;
 * - one live enrollment per (sequence, lead);
 * - one lease row per device, so one owner at a time.
 *
 * The outbox has no foreign keys on purpose: its history must outlive deleted devices and leads,
 * and each FK is a lookup per inserted row when a campaign materialises a million of them.
 */
export const sql = `
create table users (
  id bigint generated always as identity primary key,
  email text not null,
  name text not null default '',
  role text not null default 'member' check (role in ('admin', 'member')),
  time_zone text not null default 'UTC',
  default_country text,
  created_at timestamptz not null,
  disabled_at timestamptz
);
create unique index users_email_key on users (lower(email));

create table devices (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  name text not null,
  phone text,
  transport text not null default 'simulator',
  status text not null default 'offline'
    check (status in ('offline', 'connecting', 'online', 'logged_out', 'replaced')),
  min_delay_ms integer not null default 5000 check (min_delay_ms >= 0),
  max_delay_ms integer not null default 15000,
  hourly_limit integer check (hourly_limit > 0),
  daily_limit integer check (daily_limit > 0),
  paused_until timestamptz,
  pause_reason text,
  last_seen_at timestamptz,
  created_at timestamptz not null,
  deleted_at timestamptz,
  check (max_delay_ms >= min_delay_ms)
);
create index devices_user_idx on devices (user_id);

create table leads (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  device_id bigint references devices (id) on delete set null,
  name text not null default '',
  phone text not null,
  niches text[] not null default '{}',
  status text not null default 'prospect',
  triggers text[] not null default '{}',
  source text,
  attributes jsonb not null default '{}',
  opted_out_at timestamptz,
  last_reply_at timestamptz,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  unique (user_id, phone)
);
create index leads_device_idx on leads (device_id) where device_id is not null;
create index leads_triggers_idx on leads using gin (triggers);

-- Daily send windows are immutable and shared: a message points at one, and the dispatcher caches
-- them by id forever. Editing a window means pointing at another row.
create table send_windows (
  id bigint generated always as identity primary key,
  time_zone text not null,
  start_minute smallint not null check (start_minute between 0 and 1439),
  end_minute smallint not null check (end_minute between 1 and 1440),
  -- ISO weekdays allowed, bit (weekday - 1): 127 = every day.
  days smallint not null default 127 check (days between 1 and 127),
  check (start_minute <> end_minute),
  unique (time_zone, start_minute, end_minute, days)
);

create table campaigns (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  name text not null,
  body text not null,
  media jsonb,
  audience jsonb not null default '{}',
  mode text not null default 'owned' check (mode in ('owned', 'pool')),
  starts_at timestamptz not null,
  window_id bigint references send_windows (id),
  delivery text not null default 'at_most_once' check (delivery in ('at_most_once', 'at_least_once')),
  device_hourly_quota integer check (device_hourly_quota > 0),
  device_daily_quota integer check (device_daily_quota > 0),
  daily_limit integer check (daily_limit > 0),
  status text not null default 'draft'
    check (status in ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled')),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  started_at timestamptz,
  completed_at timestamptz
);
create index campaigns_user_idx on campaigns (user_id);
create index campaigns_due_idx on campaigns (starts_at) where status = 'scheduled';
create index campaigns_running_idx on campaigns (id) where status = 'running';

create table sequences (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  name text not null,
  trigger text not null,
  window_id bigint references send_windows (id),
  next_sequence_id bigint references sequences (id) on delete set null,
  status text not null default 'active' check (status in ('active', 'paused')),
  reentry text not null default 'never' check (reentry in ('never', 'after_completion')),
  on_failure text not null default 'continue' check (on_failure in ('continue', 'stop')),
  exit_on_reply boolean not null default true,
  created_at timestamptz not null,
  updated_at timestamptz not null
);
create index sequences_user_trigger_idx on sequences (user_id, trigger);

create table sequence_steps (
  id bigint generated always as identity primary key,
  sequence_id bigint not null references sequences (id) on delete cascade,
  position integer not null check (position >= 1),
  delay_minutes integer not null default 0 check (delay_minutes >= 0),
  -- Local wall time (minutes after midnight in the owner's zone) the step waits for, if any.
  send_minute smallint check (send_minute between 0 and 1439),
  body text not null,
  media jsonb,
  unique (sequence_id, position)
);

create table enrollments (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  sequence_id bigint not null references sequences (id) on delete cascade,
  lead_id bigint not null references leads (id) on delete cascade,
  current_step integer not null default 1,
  next_due_at timestamptz,
  status text not null default 'active' check (status in ('active', 'paused', 'completed', 'exited')),
  exit_reason text,
  enrolled_at timestamptz not null,
  updated_at timestamptz not null,
  completed_at timestamptz
);
create unique index enrollments_live_key on enrollments (sequence_id, lead_id) where status in ('active', 'paused');
create index enrollments_due_idx on enrollments (next_due_at) where status = 'active';

create table messages (
  id bigint generated always as identity primary key,
  user_id bigint not null,
  device_id bigint not null,
  lead_id bigint not null,
  phone text not null,
  campaign_id bigint,
  enrollment_id bigint,
  step integer,
  body text not null,
  media jsonb,
  window_id bigint,
  status text not null default 'pending'
    check (status in ('pending', 'sending', 'sent', 'delivered', 'read', 'failed', 'cancelled', 'skipped', 'unknown')),
  not_before timestamptz not null,
  attempts smallint not null default 0,
  last_attempt_at timestamptz,
  transport_id text,
  sent_at timestamptz,
  delivered_at timestamptz,
  read_at timestamptz,
  finished_at timestamptz,
  error_code text,
  error text,
  created_at timestamptz not null,
  check (num_nonnulls(campaign_id, enrollment_id) = 1),
  check ((enrollment_id is null) = (step is null))
);
create unique index messages_campaign_lead_key on messages (campaign_id, lead_id) where campaign_id is not null;
create unique index messages_enrollment_step_key on messages (enrollment_id, step) where enrollment_id is not null;
-- The dispatcher's claim walks this per device, in (not_before, id) order.
create index messages_pending_idx on messages (device_id, not_before, id) where status = 'pending';
-- Crash recovery finds a dead owner's in-flight rows here; it holds only what is being sent.
create index messages_sending_idx on messages (device_id) where status = 'sending';
-- Pacing history (gap, rolling hour, local day) is rebuilt from here when a device changes owner.
create index messages_device_attempt_idx on messages (device_id, last_attempt_at) where last_attempt_at is not null;
-- Campaign completion asks "anything still waiting?" without visiting finished rows. Rows in flight
-- are found through messages_sending_idx instead: keeping 'sending' out of this index spares the
-- claim one index insertion per message.
create index messages_pending_campaign_idx on messages (campaign_id) where status = 'pending' and campaign_id is not null;
-- Opt-outs and exits cancel a lead's waiting messages; finished rows need no entry here (every
-- entry is written again on each status change, so a full index would cost the hot path).
create index messages_lead_pending_idx on messages (lead_id) where status = 'pending';

-- Each message row is rewritten several times; vacuum the outbox long before the default 20%.
alter table messages set (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

create table device_leases (
  device_id bigint primary key references devices (id) on delete cascade,
  owner text not null,
  acquired_at timestamptz not null,
  expires_at timestamptz not null
);
create index device_leases_owner_idx on device_leases (owner);
`;
