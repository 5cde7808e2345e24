/**
 * What a recipient's message to one of the owner's devices does: it is remembered on the lead
 * (last_reply_at); an opt-out word ("STOP") opts the lead out at once, which cancels everything
 * waiting for it and ends every sequence it is in; any other reply ends the sequences that are set
 * to end on a reply. One transaction, so a reply is never half applied.
 */
import type { Queryable } from '../store/db.js';
import { exitLeads, exitOnReply } from '../store/sql/enrollments.js';
import { cancelPendingForLeads, leadsByDevicePhone, markOptedOut, recordReply } from '../store/sql/leads.js';
import { optOutWordsOfDevice } from '../store/sql/opt-out-words.js';

/** Words that opt a lead out when a reply consists of one of them (case and punctuation aside). */
export const DEFAULT_OPT_OUT_WORDS: readonly string[] = ['stop', 'stop all', 'unsubscribe', 'cancel', 'end', 'quit', 'opt out', 'optout', 'berhenti'];

/** A reply as compared with opt-out words: lower case, punctuation and extra spaces dropped. */
export function normaliseReply(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

export function isOptOut(text: string, words: readonly string[]): boolean {
  const t = normaliseReply(text);
  return t.length > 0 && words.some((w) => normaliseReply(w) === t);
}

export interface ReplyOutcome {
  leadIds: number[];
  optedOut: boolean;
  cancelled: number;
  exited: number;
}

export async function applyReply(
  db: Queryable,
  reply: { deviceId: number; from: string; text: string; at: Date },
  optOutWords: readonly string[],
): Promise<ReplyOutcome> {
  const leadIds = await leadsByDevicePhone(db, reply.deviceId, reply.from);
  if (leadIds.length === 0) return { leadIds, optedOut: false, cancelled: 0, exited: 0 };
  // The device owner's own words, when it set any, replace the deployment's.
  const words = (await optOutWordsOfDevice(db, reply.deviceId)) ?? optOutWords;
  // Messages, then enrollments, then the lead: the order every other writer locks them in.
  if (isOptOut(reply.text, words)) {
    const cancelled = await cancelPendingForLeads(db, leadIds, 'opted_out', reply.at);
    const e = await exitLeads(db, leadIds, 'opted_out', reply.at);
    await markOptedOut(db, leadIds, reply.at, reply.deviceId);
    await recordReply(db, reply.deviceId, reply.from, reply.at);
    return { leadIds, optedOut: true, cancelled: cancelled + e.cancelled, exited: e.exited };
  }
  const e = await exitOnReply(db, leadIds, reply.at);
  await recordReply(db, reply.deviceId, reply.from, reply.at);
  return { leadIds, optedOut: false, cancelled: e.cancelled, exited: e.exited };
}
