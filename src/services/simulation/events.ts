/**
 * The scenario's timed events, played on the virtual clock. Each fires at its instant (events at
 * one instant fire in scenario order). Device events act on the simulator, on every device their
 * reference names. Campaign events (pause, resume, cancel) go through CampaignService as the
 * campaign's owner, the very code the API runs, so a simulated pause is a real one. The run is not
 * over while any event is still to come, still being applied, or (a restriction) still in force.
 */
import type { Clock } from '../../engine/clock.js';
import type { SimulatorTransport } from '../../transports/simulator.js';
import type { Actor } from '../actor.js';
import { CampaignService } from '../campaigns.js';
import { AppError } from '../errors.js';
import type { Db } from '../../store/db.js';
import { emailOf, isCampaignEvent, type CampaignEvent, type DeviceEvent, type Scenario } from './scenario.js';
import type { World } from './world.js';

/** What a campaign event did: `applied` (status is the campaign's new one) or `refused` (status is what it found). */
export interface CampaignEventResult {
  /** The event's index in the scenario's `events`. */
  event: number;
  campaign: number;
  type: CampaignEvent['type'];
  at: string;
  outcome: 'applied' | 'refused';
  status: string;
}

export interface ScheduledEvents {
  /** Events that have not fired yet, are still being applied, or (a restriction) still in force. */
  readonly pending: number;
  readonly results: readonly CampaignEventResult[];
  /** Failures other than a refused state change (those are results); the run reports the first. */
  readonly errors: readonly unknown[];
}

/** The scenario user as the API would see it acting on its own campaigns. */
function actorOf(scenario: Scenario, world: World, userIndex: number): Actor {
  const user = scenario.users[userIndex]!;
  const id = world.userIds[userIndex]!;
  return {
    userId: id,
    tenantId: id,
    email: emailOf(user, userIndex),
    role: 'member',
    teamMember: false,
    deviceScope: null,
    timeZone: user.timeZone,
    defaultCountry: null,
  };
}

export function scheduleEvents(db: Db, clock: Clock, sim: SimulatorTransport, world: World, scenario: Scenario): ScheduledEvents {
  const campaigns = new CampaignService(db, clock);
  const results: CampaignEventResult[] = [];
  const errors: unknown[] = [];
  let pending = scenario.events.length;
  scenario.events.forEach((event, index) => {
    void clock.sleepUntil(Date.parse(event.at)).then(async () => {
      try {
        if (isCampaignEvent(event)) {
          const result = await clock.track(fireCampaignEvent(campaigns, scenario, world, event, index));
          results.push(result);
        } else {
          for (const device of world.devices.resolve(event.device)!) fireDeviceEvent(clock, sim, event, device.id);
          // Nothing announces the end of a restriction, and an engine waiting for one looks idle
          // (the pool allocator only finds the device usable again on its next look): the run
          // lasts at least until it ends.
          if (event.type === 'restrict') await clock.sleepUntil(clock.now() + Math.round(event.hours * 3_600_000));
        }
      } catch (error) {
        errors.push(error);
      } finally {
        pending--;
      }
    });
  });
  return {
    get pending() {
      return pending;
    },
    results,
    errors,
  };
}

async function fireCampaignEvent(
  service: CampaignService,
  scenario: Scenario,
  world: World,
  event: CampaignEvent,
  index: number,
): Promise<CampaignEventResult> {
  // Validation made the name unique among campaigns.
  const c = world.campaigns.find((x) => x.name === event.campaign)!;
  const actor = actorOf(scenario, world, c.userIndex);
  const base = { event: index, campaign: c.id, type: event.type, at: new Date(Date.parse(event.at)).toISOString() };
  try {
    const view =
      event.type === 'pause'
        ? await service.pause(actor, c.id)
        : event.type === 'resume'
          ? await service.resume(actor, c.id)
          : await service.cancel(actor, c.id);
    return { ...base, outcome: 'applied', status: view.status };
  } catch (error) {
    // A campaign that completed before its pause is refused as the API would refuse it (409).
    if (error instanceof AppError && error.status === 409) {
      const found = error.details.find((d) => typeof d.status === 'string')?.status;
      return { ...base, outcome: 'refused', status: typeof found === 'string' ? found : error.code };
    }
    throw error;
  }
}

function fireDeviceEvent(clock: Clock, sim: SimulatorTransport, event: DeviceEvent, deviceId: number): void {
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
