/**
 * The scenario's timed events, played against the simulator on the virtual clock. Each fires at
 * its instant (events at one instant fire in scenario order) on every device its reference names.
 * The run is not over while any is still to come.
 */
import type { Clock } from '../../engine/clock.js';
import type { SimulatorTransport } from '../../transports/simulator.js';
import type { ScenarioEvent } from './scenario.js';
import type { World } from './world.js';

export interface ScheduledEvents {
  /** Events that have not fired yet. */
  readonly pending: number;
}

export function scheduleEvents(clock: Clock, sim: SimulatorTransport, world: World, events: readonly ScenarioEvent[]): ScheduledEvents {
  let pending = events.length;
  for (const event of events) {
    void clock.sleepUntil(Date.parse(event.at)).then(() => {
      pending--;
      for (const device of world.devices.resolve(event.device)!) fire(clock, sim, event, device.id);
    });
  }
  return {
    get pending() {
      return pending;
    },
  };
}

function fire(clock: Clock, sim: SimulatorTransport, event: ScenarioEvent, deviceId: number): void {
  switch (event.type) {
    case 'disconnect':
      sim.dropFor(deviceId, Math.round(event.minutes * 60_000), 'scenario event: disconnect');
      break;
    case 'online':
      sim.bringOnline(deviceId);
      break;
    case 'restrict':
      sim.restrict(deviceId, clock.now() + Math.round(event.hours * 3_600_000), 'scenario event: restrict');
      break;
    case 'reply':
      sim.receive(deviceId, event.from, event.text);
      break;
  }
}
