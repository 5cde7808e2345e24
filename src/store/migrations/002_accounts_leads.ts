/**
 * Accounts and what the HTTP API needs: password hashes, team members, server-side sessions, API
 * tokens (hashed), login throttling, idempotency keys, lead import jobs, and the lead indexes the
 * listing filters use.
 *
 * Tenancy: a row's user_id is its tenant, the account that owns it. A team member is a user with a
 * parent_id; it owns nothing itself and sees only the devices assigned to it in device_members
 * (and those devices' leads), inside its parent's tenant.
 */
export const sql = `
alter table users add column password_hash text;
alter table users add column parent_id bigint references users (id) on delete cascade;
alter table users add column updated_at timestamptz;
update users set updated_at = created_at;
alter table users alter column updated_at set not null;
-- A team member's parent is a tenant owner, never another team member.
create index users_parent_idx on users (parent_id) where parent_id is not null;

-- The cookie carries a random secret; only its SHA-256 is stored, so a leaked table opens nothing.
create table sessions (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  secret_hash text not null unique,
  csrf_token text not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  last_seen_at timestamptz not null,
  ip text,
  user_agent text
);
create index sessions_user_idx on sessions (user_id);
create index sessions_expiry_idx on sessions (expires_at);

create table api_tokens (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  name text not null,
  secret_hash text not null unique,
  -- The first characters of the token, so a user can tell tokens apart in a listing.
  prefix text not null,
  created_at timestamptz not null,
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz
);
create index api_tokens_user_idx on api_tokens (user_id, id);

-- Failed logins per key ('account:<email>' or 'ip:<address>') in the current window.
create table login_throttle (
  key text primary key,
  failures integer not null,
  window_started_at timestamptz not null,
  locked_until timestamptz
);

create table device_members (
  user_id bigint not null references users (id) on delete cascade,
  device_id bigint not null references devices (id) on delete cascade,
  primary key (user_id, device_id)
);
create index device_members_device_idx on device_members (device_id);

-- A replayed request with the same key gets the first answer; status_code is null while the first
-- request is still running.
create table idempotency_keys (
  user_id bigint not null references users (id) on delete cascade,
  key text not null,
  request_hash text not null,
  status_code integer,
  response jsonb,
  created_at timestamptz not null,
  primary key (user_id, key)
);
create index idempotency_keys_created_idx on idempotency_keys (created_at);

create table lead_imports (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  created_by bigint references users (id) on delete set null,
  file_name text,
  file_bytes bigint not null default 0,
  on_duplicate text not null default 'skip' check (on_duplicate in ('skip', 'update')),
  options jsonb not null default '{}',
  status text not null default 'queued' check (status in ('queued', 'running', 'completed', 'failed')),
  rows_total integer not null default 0,
  inserted integer not null default 0,
  updated integer not null default 0,
  skipped integer not null default 0,
  failed integer not null default 0,
  bytes_read bigint not null default 0,
  error_code text,
  error text,
  -- The process running the job; a job whose process is gone is marked failed at the next start.
  owner text,
  created_at timestamptz not null,
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null
);
create index lead_imports_user_idx on lead_imports (user_id, id);

create table lead_import_errors (
  import_id bigint not null references lead_imports (id) on delete cascade,
  line integer not null,
  code text not null,
  message text not null,
  -- The start of the offending record, cut short, so a user can find it.
  excerpt text
);
create index lead_import_errors_import_idx on lead_import_errors (import_id, line);

-- Lead listings walk a tenant's leads newest first (keyset on id) and filter on the way.
create index leads_user_id_idx on leads (user_id, id);
create index leads_user_status_idx on leads (user_id, status, id);
create index leads_niches_idx on leads using gin (niches);
-- The shared pool is a list of its own (pool campaigns draw from it): walk it without the rest.
create index leads_pool_idx on leads (user_id, id) where device_id is null;
`;
