/**
 * Device names in a scenario. An entry with `count: n` stands for n alike devices keyed
 * `key-1..key-n`; its own key then names the whole group. A reference (a lead's device, an
 * audience, a generator, an event) names one device by its key or every device of a group.
 */
import type { DeviceSpec, ScenarioUser } from './scenario.js';

export interface ScenarioDevice {
  key: string;
  /** The entry's key: the device's own key unless the entry has a `count`. */
  group: string;
  userIndex: number;
  entryIndex: number;
  spec: DeviceSpec;
}

/** Every device of every user, in the order they are created (ids follow this order). */
export function expandDevices(users: readonly ScenarioUser[]): ScenarioDevice[] {
  const out: ScenarioDevice[] = [];
  users.forEach((user, userIndex) => {
    user.devices.forEach((spec, entryIndex) => {
      if (spec.count === undefined) {
        out.push({ key: spec.key, group: spec.key, userIndex, entryIndex, spec });
        return;
      }
      for (let i = 1; i <= spec.count; i++) {
        out.push({ key: `${spec.key}-${i}`, group: spec.key, userIndex, entryIndex, spec });
      }
    });
  });
  return out;
}

export class DeviceDirectory<D extends ScenarioDevice = ScenarioDevice> {
  private readonly names = new Map<string, D[]>();

  /** Where names clash (a validation error), the first device or group keeps the name. */
  constructor(readonly devices: readonly D[]) {
    const groups = new Map<string, D[]>();
    for (const d of devices) {
      if (d.spec.count === undefined) continue;
      const members = groups.get(d.group) ?? [];
      members.push(d);
      groups.set(d.group, members);
    }
    for (const d of devices) {
      const group = groups.get(d.group);
      if (group && !this.names.has(d.group)) this.names.set(d.group, group);
      if (!this.names.has(d.key)) this.names.set(d.key, [d]);
    }
  }

  /** The devices `ref` names, or undefined when it names none. */
  resolve(ref: string): readonly D[] | undefined {
    return this.names.get(ref);
  }

  /** The devices any of `refs` names, each once, in the order first named. */
  resolveAll(refs: readonly string[]): D[] {
    const out = new Set<D>();
    for (const ref of refs) for (const d of this.resolve(ref) ?? []) out.add(d);
    return [...out];
  }

  /** One user's device names for error hints, groups abbreviated: "a, b, bulk-1..bulk-50". */
  describe(userIndex: number): string {
    const entries = new Map<number, DeviceSpec>();
    for (const d of this.devices) if (d.userIndex === userIndex) entries.set(d.entryIndex, d.spec);
    const names = [...entries.values()].map((s) => (s.count === undefined ? s.key : `${s.key}-1..${s.key}-${s.count}`));
    return names.length > 10 ? `${names.slice(0, 10).join(', ')}, ...` : names.join(', ');
  }
}
