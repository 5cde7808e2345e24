/**
 * The scenario's timed events, played on the virtual clock. Each fires at its instant (events at
 * one instant fire in scenario order). Device events act on the simulator, on every device their
 * reference names (a `reply` arrives as a recipient's message, which the engine handles as any
 * reply: exits from sequences, opt-outs). Campaign events (pause, resume, cancel) go through
 * CampaignService as the campaign's owner, the very code the API runs, so a simulated pause is a
 * real one. Sequence events (pauseSequence, resumeSequence) and tag events go through
 * sequence-controls.ts. The run is not over while any event is still to come, still being
 * applied, or (a restriction) still in force.
 */
import type { Clock } from '../../engine/clock.js';
import type { SimulatorTransport } from '../../transports/simulator.js';
import type { Actor } from '../actor.js';
import { CampaignService } from '../campaigns.js';
import { AppError } from '../errors.js';
import type { Db } from '../../store/db.js';
import {
  emailOf,
  isCampaignEvent,
  isSequenceEvent,
  isTagEvent,
  tagEventUser,
  type CampaignEvent,
  type DeviceEvent,
  type Scenario,
  type SequenceEvent,
  type TagEvent,
} from './scenario.js';
import { pauseSequence, resumeSequence, tagLeads, type LeadChoice } from './sequence-controls.js';
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

/** What a pauseSequence or resumeSequence event did, as CampaignEventResult. */
export interface SequenceEventResult {
  event: number;
  sequence: number;
  type: SequenceEvent['type'];
  at: string;
  outcome: 'applied' | 'refused';
  status: string;
}

/** What a tag event did. */
export interface TagEventResult {
  event: number;
  at: string;
  /** The index of the user whose leads were tagged. */
  user: number;
  tag: string;
  /** Leads that gained the tag (leads already carrying it do not count). */
  gained: number;
  /** Enrollments it made. */
  enrolled: number;
}

export interface ScheduledEvents {
  /** Events that have not fired yet, are still being applied, or (a restriction) still in force. */
  readonly pending: number;
  readonly results: readonly CampaignEventResult[];
  readonly sequenceResults: readonly SequenceEventResult[];
  readonly tagResults: readonly TagEventResult[];
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
  const sequenceResults: SequenceEventResult[] = [];
  const tagResults: TagEventResult[] = [];
  const errors: unknown[] = [];
  let pending = scenario.events.length;
  scenario.events.forEach((event, index) => {
    void clock.sleepUntil(Date.parse(event.at)).then(async () => {
      try {
        if (isCampaignEvent(event)) {
          const result = await clock.track(fireCampaignEvent(campaigns, scenario, world, event, index));
          results.push(result);
        } else if (isSequenceEvent(event)) {
          sequenceResults.push(await clock.track(fireSequenceEvent(db, world, event, index, clock.now())));
        } else if (isTagEvent(event)) {
          tagResults.push(await clock.track(fireTagEvent(db, world, event, index, clock.now())));
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
    sequenceResults,
    tagResults,
    errors,
  };
}

async function fireSequenceEvent(db: Db, world: World, event: SequenceEvent, index: number, now: number): Promise<SequenceEventResult> {
  // Validation made the name unique among sequences.
  const q = world.sequences.find((x) => x.name === event.sequence)!;
  const at = new Date(now);
  const r = event.type === 'pauseSequence' ? await pauseSequence(db, q.id, at) : await resumeSequence(db, q.id, at);
  return { event: index, sequence: q.id, type: event.type, at: at.toISOString(), outcome: r.applied ? 'applied' : 'refused', status: r.status };
}

async function fireTagEvent(db: Db, world: World, event: TagEvent, index: number, now: number): Promise<TagEventResult> {
  const ui = tagEventUser(event, (ref) => world.devices.resolve(ref)?.[0]?.userIndex);
  const l = event.leads;
  const choice: LeadChoice =
    typeof l === 'string'
      ? { phones: [l] }
      : Array.isArray(l)
        ? { phones: l }
        : {
            ...(l.device === undefined ? {} : { deviceIds: world.devices.resolve(l.device)!.map((d) => d.id) }),
            ...(l.count === undefined ? {} : { count: l.count }),
          };
  const at = new Date(now);
  const r = await tagLeads(db, world.userIds[ui]!, choice, event.tag, at);
  return { event: index, at: at.toISOString(), user: ui, tag: event.tag, gained: r.gained, enrolled: r.enrolled };
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
