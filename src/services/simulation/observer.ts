/**
 * What a run's report needs beyond the simulator's own record of attempts: the text and media each
 * message carried (templates are rendered by the engine, so the only place to see the result is
 * the send itself), and when each device could not send (offline, connecting, restricted), to tell
 * which devices were available throughout a campaign.
 */
import type { SimulatorTransport } from '../../transports/simulator.js';
import type { Transport } from '../../transports/transport.js';

export interface SentContent {
  body: string;
  /** The media kind, or null for text only. */
  media: string | null;
}

interface Outage {
  from: number;
  to: number;
}

export class RunObserver {
  /** By outbox message id; a retry carries the same content as the first attempt. */
  readonly contents = new Map<number, SentContent>();
  private readonly outages = new Map<number, Outage[]>();
  /** Devices down right now (after having been up), since when. */
  private readonly downSince = new Map<number, number>();
  /** When each device first came online; before that it was down. */
  private readonly firstUp = new Map<number, number>();
  private off: (() => void) | undefined;

  /** The simulator as the engine should see it: every send's content is noted first. */
  wrap(sim: SimulatorTransport): Transport {
    this.off = sim.onEvent((e) => {
      if (e.type === 'status') this.status(e.deviceId, e.status === 'online', e.at);
      else if (e.type === 'restricted') this.outage(e.deviceId, e.at, e.until);
    });
    return {
      kind: sim.kind,
      connect: (d) => sim.connect(d),
      disconnect: (id) => sim.disconnect(id),
      send: (m) => {
        this.contents.set(m.id, { body: m.body, media: m.media?.kind ?? null });
        return sim.send(m);
      },
      proveSends: (ids) => sim.proveSends(ids),
      onEvent: (l) => sim.onEvent(l),
    };
  }

  close(): void {
    this.off?.();
  }

  private status(deviceId: number, up: boolean, at: number): void {
    if (up) {
      const since = this.downSince.get(deviceId);
      if (since !== undefined) this.outage(deviceId, since, at);
      this.downSince.delete(deviceId);
      if (!this.firstUp.has(deviceId)) this.firstUp.set(deviceId, at);
    } else if (!this.downSince.has(deviceId)) {
      this.downSince.set(deviceId, at);
    }
  }

  private outage(deviceId: number, from: number, to: number): void {
    const list = this.outages.get(deviceId) ?? [];
    list.push({ from, to });
    this.outages.set(deviceId, list);
  }

  /**
   * Whether the device was online and unrestricted at every instant of [from, to]. A device that
   * never came online was not; one that came online before `from` and stayed up was.
   */
  availableThroughout(deviceId: number, from: number, to: number): boolean {
    const up = this.firstUp.get(deviceId);
    if (up === undefined || up > from) return false;
    const since = this.downSince.get(deviceId);
    if (since !== undefined && since <= to) return false;
    return !(this.outages.get(deviceId) ?? []).some((o) => o.from <= to && o.to > from);
  }
}
