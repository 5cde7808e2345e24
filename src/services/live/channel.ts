/**
 * Live events for the people watching a tenant: a device's QR code or pairing code, a device going
 * online, progress figures. They are published on one notification channel, so a browser connected
 * to any API process hears what the process holding the device's lease saw (PostgreSQL NOTIFY), and
 * on PGlite they stay in the one process.
 *
 * Every event names its tenant, and the device when it is about one: a subscriber sees only its own
 * tenant's events, and a team member only those of its assigned devices (or none about a device).
 * NOTIFY payloads stop at 8,000 bytes: an event carries references and small figures, never a lead
 * list or a message body.
 */

import type { Db } from '../../store/db.js';

export const LIVE_CHANNEL = 'fleetcast_live';

/** The largest payload NOTIFY takes is 8,000 bytes; leave room for the store's envelope. */
export const LIVE_PAYLOAD_MAX_BYTES = 7_000;

export interface LiveEvent {
  tenantId: number;
  /** The device the event is about, if any: team members only see their devices' events. */
  deviceId?: number | undefined;
  /** A dotted name, e.g. `device.link`, `device.status`, `campaign.progress`. */
  type: string;
  at: number;
  data: Record<string, unknown>;
}

export class LivePayloadTooLarge extends Error {
  readonly code = 'LIVE_PAYLOAD_TOO_LARGE';
}

export function encodeLiveEvent(e: LiveEvent): string {
  const payload = JSON.stringify({ u: e.tenantId, d: e.deviceId ?? null, t: e.type, a: e.at, p: e.data });
  if (Buffer.byteLength(payload) > LIVE_PAYLOAD_MAX_BYTES) {
    throw new LivePayloadTooLarge(`live event ${e.type} is ${Buffer.byteLength(payload)} bytes, over ${LIVE_PAYLOAD_MAX_BYTES}`);
  }
  return payload;
}

/** The event a payload carries, or null for one that is not ours (it is dropped, never thrown). */
export function decodeLiveEvent(payload: string): LiveEvent | null {
  try {
    const v = JSON.parse(payload) as { u?: unknown; d?: unknown; t?: unknown; a?: unknown; p?: unknown };
    if (typeof v.u !== 'number' || typeof v.t !== 'string' || typeof v.a !== 'number') return null;
    if (v.p === null || typeof v.p !== 'object' || Array.isArray(v.p)) return null;
    return {
      tenantId: v.u,
      ...(typeof v.d === 'number' ? { deviceId: v.d } : {}),
      type: v.t,
      at: v.a,
      data: v.p as Record<string, unknown>,
    };
  } catch {
    return null;
  }
}

/** Publishes one event to every subscriber of its tenant, in this process and (PostgreSQL) others. */
export async function publishLive(db: Pick<Db, 'notify'>, e: LiveEvent): Promise<void> {
  await db.notify(LIVE_CHANNEL, encodeLiveEvent(e));
}

/** Subscribes to every live event this store carries; the caller filters by who is watching. */
export async function listenLive(db: Pick<Db, 'listen'>, handler: (e: LiveEvent) => void): Promise<() => Promise<void>> {
  return db.listen(LIVE_CHANNEL, (payload) => {
    const e = decodeLiveEvent(payload);
    if (e) handler(e);
  });
}

/** Whether a viewer (its tenant and device scope: null = every device) may see an event. */
export function visibleTo(e: LiveEvent, viewer: { tenantId: number; deviceScope: readonly number[] | null }): boolean {
  if (e.tenantId !== viewer.tenantId) return false;
  if (viewer.deviceScope === null) return true;
  return e.deviceId !== undefined && viewer.deviceScope.includes(e.deviceId);
}

