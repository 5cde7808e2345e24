import { EventEmitter } from 'node:events';
import type { Outcome } from '../store/sql/messages.js';

/** What the engine tells the rest of the process (dashboard, webhooks, metrics, logs). */
export interface EngineEventMap {
  'device.status': { deviceId: number; status: string; at: number; reason?: string | undefined };
  'device.restricted': { deviceId: number; until: number; reason: string; at: number };
  'device.acquired': { deviceIds: number[]; at: number };
  'device.released': { deviceIds: number[]; at: number };
  'message.recovered': { sent: number; pending: number; unknown: number; at: number };
  'message.reply': { deviceId: number; from: string; text: string; at: number };
  'campaign.started': { campaignId: number; messages: number; mode: 'owned' | 'pool'; at: number };
  'campaign.completed': { campaignId: number; at: number };
  /**
   * `devices`: the devices whose messages these outcomes were; `statuses`: device status changes
   * written with them; `outcomes`: the batch itself (metrics read it; listeners must not change it);
   * `campaigns`: the campaigns with a message settled in the batch (the dashboard's progress).
   */
  'outcomes.recorded': { count: number; at: number; devices: number[]; statuses: number; outcomes?: readonly Outcome[]; campaigns?: readonly number[] };
  'sequence.planned': { messages: number; at: number };
  'enrollments.progressed': { next: number; completed: number; exited: number; chained: number; at: number };
  'enrollments.exited': { leadIds: number[]; reason: string; exited: number; at: number };
  'lead.opted_out': { leadId: number; deviceId: number; at: number };
  error: { where: string; error: unknown };
}

export class EngineEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  emit<K extends keyof EngineEventMap>(name: K, payload: EngineEventMap[K]): void {
    this.emitter.emit(name, payload);
  }

  on<K extends keyof EngineEventMap>(name: K, listener: (payload: EngineEventMap[K]) => void): () => void {
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }
}

/** Channels the engine listens on; payloads are JSON. */
export const WORK_CHANNEL = 'fleetcast_work';
export const DEVICES_CHANNEL = 'fleetcast_devices';
export const CAMPAIGNS_CHANNEL = 'fleetcast_campaigns';
/** A dispatcher joined, left or shed devices: `{"owner", "change"}`; the others look at their shares. */
export const LEASES_CHANNEL = 'fleetcast_leases';
/** New or sooner sequence work: `{"due": ms}` names when, if known. */
export const SEQUENCES_CHANNEL = 'fleetcast_sequences';

/**
 * A WORK_CHANNEL payload naming the devices that got work. NOTIFY payloads stop at 8,000 bytes,
 * so past a few hundred devices the payload names none, which means "every device, look again".
 */
export function workPayload(devices: readonly number[]): string {
  return JSON.stringify(devices.length <= 500 ? { devices } : {});
}

/**
 * The device ids a notification names (`{"devices": [1, 2]}`), or null when it names none: the
 * listener then looks at everything it serves.
 */
export function deviceIdsOf(payload: string): number[] | null {
  try {
    const parsed = JSON.parse(payload) as { devices?: unknown };
    if (Array.isArray(parsed.devices)) return parsed.devices.filter((x): x is number => typeof x === 'number');
  } catch {
    // Not ours to validate: an unknown payload still means "look again".
  }
  return null;
}
