/**
 * One simulated WhatsApp shared by several engines (processes), each seeing it through its own
 * transport that tags every send with the engine's name: tests can then say who served which
 * device and when, and whether two engines ever sent on one device at once.
 */
import type { Clock } from '../../src/engine/clock.js';
import type { SimulatorTransport } from '../../src/transports/simulator.js';
import type { Transport } from '../../src/transports/transport.js';

export interface Send {
  engine: string;
  device: number;
  message: number;
  ok: boolean;
  /** Clock time the send was handed over and answered. */
  startAt: number;
  endAt: number;
  /** Positions in one global sequence of send events: exact order even within one millisecond. */
  startSeq: number;
  endSeq: number;
}

/** The shared simulator as one engine sees it: same phones, every send recorded with the engine's name. */
export class SendLog {
  readonly sends: Send[] = [];
  private seq = 0;

  constructor(
    private readonly sim: SimulatorTransport,
    private readonly clock: Clock,
  ) {}

  transportFor(engine: string): Transport {
    const { sim, clock } = this;
    return {
      kind: sim.kind,
      connect: (d) => sim.connect(d),
      disconnect: (id) => sim.disconnect(id),
      proveSends: (ids) => sim.proveSends(ids),
      onEvent: (l) => sim.onEvent(l),
      send: async (m) => {
        const startAt = clock.now();
        const startSeq = ++this.seq;
        const result = await sim.send(m);
        this.sends.push({ engine, device: m.deviceId, message: m.id, ok: result.ok, startAt, endAt: clock.now(), startSeq, endSeq: ++this.seq });
        return result;
      },
    };
  }

  byDevice(): Map<number, Send[]> {
    const out = new Map<number, Send[]>();
    for (const s of [...this.sends].sort((a, b) => a.startSeq - b.startSeq)) out.set(s.device, [...(out.get(s.device) ?? []), s]);
    return out;
  }

  /** Pairs of sends on one device by two different engines whose intervals overlap. */
  crossEngineOverlaps(): [Send, Send][] {
    const out: [Send, Send][] = [];
    for (const list of this.byDevice().values()) {
      for (let i = 0; i < list.length; i++) {
        for (let j = i + 1; j < list.length; j++) {
          const a = list[i]!;
          const b = list[j]!;
          if (a.engine !== b.engine && a.startSeq < b.endSeq && b.startSeq < a.endSeq) out.push([a, b]);
        }
      }
    }
    return out;
  }
}
