/**
 * Real transports and device linking.
 *
 * - `devices.linked`: whether the device is paired with a WhatsApp account (Baileys), has its
 *   Cloud API credentials, or (simulator) counts as scanned. Existing devices are all simulated
 *   and keep sending: the column defaults to true, and new Baileys and Cloud API devices are
 *   created unlinked by the service.
 * - `device_links`: the one link attempt of a device at a time (QR or pairing code), written by the
 *   API (a request, a cancel) and by the process that holds the device's lease (each QR, the code,
 *   linked, failed, expired). `attempt` grows with every request, so an answer about an attempt
 *   that was replaced meanwhile changes nothing.
 * - `transport_auth`: a linked device's credentials and every Signal key, one row per
 *   (kind, key id), each value encrypted with AES-256-GCM (see src/services/secrets). No files.
 * - `wa_numbers`: whether a number is on WhatsApp, as a tenant's device last found it, until
 *   `expires_at`; kept per tenant like every other row.
 * - `cloud_api_numbers`: a Cloud API device's phone-number id (plain: the webhook routes by it)
 *   and its secrets (token, app secret, verify token) as one encrypted value; the verify token's
 *   hash lets the webhook handshake find its device without decrypting every row.
 * - `users.opt_out_words`: the tenant's own opt-out words; null keeps the deployment's defaults.
 */
export const sql = `
alter table devices add column linked boolean not null default true;

create table device_links (
  device_id bigint primary key references devices (id) on delete cascade,
  user_id bigint not null references users (id) on delete cascade,
  attempt bigint not null default 0,
  state text not null default 'idle'
    check (state in ('idle', 'starting', 'waiting_for_scan', 'waiting_for_code', 'linked', 'failed', 'expired')),
  method text check (method in ('qr', 'pairing_code')),
  phone text,
  qr text,
  pairing_code text,
  expires_at timestamptz,
  error_code text,
  error_message text,
  updated_at timestamptz not null
);

create table transport_auth (
  device_id bigint not null references devices (id) on delete cascade,
  kind text not null,
  key_id text not null,
  data bytea not null,
  updated_at timestamptz not null,
  primary key (device_id, kind, key_id)
);

create table wa_numbers (
  user_id bigint not null references users (id) on delete cascade,
  phone text not null,
  on_whatsapp boolean not null,
  jid text,
  checked_at timestamptz not null,
  expires_at timestamptz not null,
  primary key (user_id, phone)
);

create table cloud_api_numbers (
  device_id bigint primary key references devices (id) on delete cascade,
  user_id bigint not null references users (id) on delete cascade,
  phone_number_id text not null,
  verify_token_hash text,
  secrets bytea not null,
  updated_at timestamptz not null
);
create index cloud_api_numbers_phone_idx on cloud_api_numbers (phone_number_id);
create index cloud_api_numbers_verify_idx on cloud_api_numbers (verify_token_hash) where verify_token_hash is not null;

alter table users add column opt_out_words text[];
`;
