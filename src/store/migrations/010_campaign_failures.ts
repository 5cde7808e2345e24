/**
 * `messages_campaign_failed_idx`: one campaign's failed messages, newest first, with their reasons,
 * for its page and its failure report. Only failed rows have an entry, so the send path pays one
 * insertion per failure and none per success; without it the list walked every row of the
 * campaign (messages_campaign_lead_key), a million heap visits for a million-lead campaign.
 */
export const sql = `
create index messages_campaign_failed_idx on messages (campaign_id, id) where status = 'failed' and campaign_id is not null;
`;
