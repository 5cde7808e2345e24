/**
 * Campaigns end to end: chunked materialisation, pause that holds the outbox, per-campaign delay
 * override, media, and pool campaigns.
 *
 * - `held`: a paused campaign's waiting rows leave `pending` (and so the dispatcher's claim index)
 *   and come back on resume; cancel and opt-out reach them too, so those two partial indexes now
 *   cover both states.
 * - Materialisation runs in chunks of lead ids, each its own transaction, so PGlite's single
 *   connection is never held for seconds and PostgreSQL can write several chunks at once.
 *   `audience_until` freezes the audience (no lead created after the start joins); the start plans
 *   every chunk as a `campaign_chunks` row, and a chunk's row goes in the transaction that writes
 *   it, so a restarted process simply takes the rows left; `materialised_at` says it is finished: a
 *   campaign is never completed before that. A running campaign without `audience_until` was not
 *   started in chunks (rows written directly).
 * - Pool campaigns: `pool_queue` freezes the audience of device-less leads at start; the allocator
 *   hands them out, and `campaign_devices` keeps each device's lane (how many it has been given,
 *   plus any catch-up: the even-spread counter). pool_queue has no foreign key: a million inserted rows would each pay
 *   a lookup; it is emptied by cancel and by the campaign's deletion instead.
 * - `media`: files a tenant uploaded or a campaign fetched, already re-encoded; messages refer to
 *   them by id.
 */
export const sql = `
alter table messages drop constraint messages_status_check;
alter table messages add constraint messages_status_check
  check (status in ('pending', 'held', 'sending', 'sent', 'delivered', 'read', 'failed', 'cancelled', 'skipped', 'unknown'));

drop index messages_pending_campaign_idx;
create index messages_pending_campaign_idx on messages (campaign_id)
  where status in ('pending', 'held') and campaign_id is not null;
drop index messages_lead_pending_idx;
create index messages_lead_pending_idx on messages (lead_id) where status in ('pending', 'held');

-- No start time means "as soon as it is scheduled": scheduling fills it in.
alter table campaigns alter column starts_at drop not null;
alter table campaigns add column min_delay_ms integer check (min_delay_ms >= 0);
alter table campaigns add column max_delay_ms integer;
alter table campaigns add constraint campaigns_delay_check
  check ((min_delay_ms is null) = (max_delay_ms is null) and (max_delay_ms is null or max_delay_ms >= min_delay_ms));
alter table campaigns add column audience_until bigint;
alter table campaigns add column materialised_at timestamptz;
alter table campaigns add column audience_size integer;
-- Campaigns already running when this migration ran were materialised whole.
update campaigns set materialised_at = started_at where started_at is not null;
create index campaigns_materialising_idx on campaigns (id)
  where status in ('running', 'paused') and materialised_at is null and audience_until is not null;
create index campaigns_pool_running_idx on campaigns (id) where status = 'running' and mode = 'pool';

create table campaign_chunks (
  campaign_id bigint not null references campaigns (id) on delete cascade,
  -- Lead ids in (lo, hi].
  lo bigint not null,
  hi bigint not null,
  primary key (campaign_id, lo)
);

create table pool_queue (
  campaign_id bigint not null,
  lead_id bigint not null,
  primary key (campaign_id, lead_id)
);

create table campaign_devices (
  campaign_id bigint not null references campaigns (id) on delete cascade,
  device_id bigint not null,
  lane integer not null default 0,
  allocated integer not null default 0,
  -- Whether the device was usable at the last allocation: a device that comes back starts level
  -- with the others instead of holding them all back until it has caught up.
  active boolean not null default true,
  primary key (campaign_id, device_id)
);

create table media (
  id bigint generated always as identity primary key,
  user_id bigint not null references users (id) on delete cascade,
  kind text not null check (kind in ('image', 'video', 'document')),
  mime_type text not null,
  file_name text,
  bytes integer not null check (bytes > 0),
  sha256 text not null,
  width integer,
  height integer,
  source_url text,
  storage_key text not null,
  created_at timestamptz not null
);
create index media_user_idx on media (user_id, id);
`;
