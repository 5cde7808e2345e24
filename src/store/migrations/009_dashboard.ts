/**
 * The dashboard's figures, kept cheap on a tenant with a million leads and millions of messages
 * (measured plans in docs/dashboard.md):
 * - `devices.restricted_until`: when WhatsApp's restriction of the device ends. A restriction also
 *   pauses the device (paused_until), but so does its owner; the dashboard tells the two apart.
 * - `leads_reply_idx`: today's replies walk only the leads that replied since midnight. A lead row
 *   changes on a reply and on edits, never on the send path, so the index costs the outbox nothing.
 * - `messages_failed_idx`: a tenant's latest failures, newest first per device, without visiting the
 *   sent history. Only failed rows have an entry, so the dispatcher pays one index insertion per
 *   failure and none per success.
 * - `messages_held_idx`: a tenant's held rows by device. Rows enter and leave `held` only when a
 *   campaign or sequence is paused and resumed, never on the send path; without it the count
 *   visited every tenant's waiting rows (messages_lead_pending_idx covers pending and held).
 * Today's sends and the throughput chart need no new index: messages_device_attempt_idx already
 * orders each device's rows by their last attempt.
 */
export const sql = `
alter table devices add column restricted_until timestamptz;
create index leads_reply_idx on leads (user_id, last_reply_at) where last_reply_at is not null;
create index messages_failed_idx on messages (device_id, finished_at) where status = 'failed';
create index messages_held_idx on messages (device_id) where status = 'held';
`;
