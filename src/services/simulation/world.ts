/**
 * Builds a validated scenario's world in a fresh database, at the scenario's start: users, devices
 * and campaigns through the same statements the rest of Fleetcast uses, leads through leads.ts
 * (pool leads, names, attributes and triggers in bulk), sequences through sequences.ts, and the
 * leads that carry a sequence's trigger enrolled in it. Nothing runs yet; the engine finds the
 * campaigns scheduled and the enrollments waiting when it starts.
 */
import type { Queryable } from '../../store/db.js';
import { insertCampaign } from '../../store/sql/campaigns.js';
import { insertDevices } from '../../store/sql/devices.js';
import { insertUser } from '../../store/sql/users.js';
import { ensureWindow } from '../../store/sql/windows.js';
import { DeviceDirectory, expandDevices, type ScenarioDevice } from './devices.js';
import { generateScenarioLeads } from './leads.js';
import { insertLeads } from '../../store/sql/leads.js';
import { emailOf, type CampaignSpec, type Scenario, type ScenarioUser } from './scenario.js';
import { enrollTaggedAtStart, insertUserSequences, type WorldSequence } from './sequences.js';
import { sendWindowOf } from './windows.js';

export { sendWindowOf } from './windows.js';
export type { WorldSequence } from './sequences.js';

export interface WorldDevice extends ScenarioDevice {
  id: number;
}

export interface WorldCampaign {
  id: number;
  name: string;
  userIndex: number;
  spec: CampaignSpec;
}

export interface World {
  devices: DeviceDirectory<WorldDevice>;
  userIds: number[];
  /** Every campaign, in scenario order (ids follow this order). */
  campaigns: WorldCampaign[];
  /** Every sequence, in scenario order (ids follow this order). */
  sequences: WorldSequence[];
}

export async function buildWorld(db: Queryable, scenario: Scenario, now: Date): Promise<World> {
  const planned = expandDevices(scenario.users);
  const devices: WorldDevice[] = [];
  const userIds: number[] = [];
  for (const [ui, user] of scenario.users.entries()) {
    const userId = await insertUser(db, { email: emailOf(user, ui), name: user.name ?? '', timeZone: user.timeZone }, now);
    userIds.push(userId);
    const mine = planned.filter((d) => d.userIndex === ui);
    const ids = await insertDevices(
      db,
      userId,
      mine.map((d) => ({
        name: d.key,
        minDelayMs: Math.round(d.spec.minDelaySeconds * 1000),
        maxDelayMs: Math.round(d.spec.maxDelaySeconds * 1000),
        hourlyLimit: d.spec.hourlyLimit ?? null,
        dailyLimit: d.spec.dailyLimit ?? null,
      })),
      now,
    );
    mine.forEach((d, i) => devices.push({ ...d, id: ids[i]! }));
  }
  // Leads and audiences name devices by key, so every device exists (with its id) before them.
  const directory = new DeviceDirectory(devices);

  const campaigns: WorldCampaign[] = [];
  for (const [ui, user] of scenario.users.entries()) {
    const userId = userIds[ui]!;
    await insertUserLeads(db, userId, user, ui, directory, now);
    for (const c of user.campaigns) {
      const windowId = c.window ? await ensureWindow(db, sendWindowOf(c.window, user.timeZone)) : null;
      const a = c.audience;
      const ms = (seconds: number | undefined) => (seconds === undefined ? null : Math.round(seconds * 1000));
      const id = await insertCampaign(
        db,
        userId,
        {
          name: c.name,
          body: c.message,
          // Stored as the transport reads it; the simulator never fetches it.
          ...(c.media ? { media: { kind: c.media.type, url: c.media.url } } : {}),
          startsAt: new Date(c.startAt),
          windowId,
          delivery: c.delivery,
          mode: c.mode,
          deviceHourlyQuota: c.deviceHourlyQuota ?? null,
          deviceDailyQuota: c.deviceDailyQuota ?? null,
          dailyLimit: c.dailyLimit ?? null,
          minDelayMs: ms(c.minDelaySeconds),
          maxDelayMs: ms(c.maxDelaySeconds),
          audience: {
            ...(a.niches ? { niches: a.niches } : {}),
            ...(a.statuses ? { statuses: a.statuses } : {}),
            ...(a.triggers ? { triggers: a.triggers } : {}),
            ...(a.devices ? { deviceIds: directory.resolveAll(a.devices).map((d) => d.id) } : {}),
          },
        },
        now,
      );
      campaigns.push({ id, name: c.name, userIndex: ui, spec: c });
    }
  }
  // Sequences after every lead, so the leads carrying a trigger at the start are all there to enroll.
  const sequences: WorldSequence[] = [];
  for (const [ui, user] of scenario.users.entries()) {
    const mine = await insertUserSequences(db, userIds[ui]!, user, ui, now);
    await enrollTaggedAtStart(db, userIds[ui]!, mine, now);
    sequences.push(...mine);
  }
  return { devices: directory, userIds, campaigns, sequences };
}

async function insertUserLeads(
  db: Queryable,
  userId: number,
  user: ScenarioUser,
  userIndex: number,
  directory: DeviceDirectory<WorldDevice>,
  now: Date,
): Promise<void> {
  if (Array.isArray(user.leads)) {
    await insertLeads(
      db,
      userId,
      user.leads.map((l) => ({
        name: l.name,
        phone: l.phone,
        deviceId: l.device === undefined ? null : directory.resolve(l.device)![0]!.id,
        niches: l.niches,
        status: l.status,
        triggers: l.triggers,
        attributes: l.attributes ?? {},
      })),
      now,
    );
    return;
  }
  const g = user.leads;
  const targets = g.pool ? [] : g.devices ? directory.resolveAll(g.devices) : directory.devices.filter((d) => d.userIndex === userIndex);
  await generateScenarioLeads(
    db,
    userId,
    {
      count: g.count,
      phonePrefix: g.phonePrefix,
      deviceIds: targets.map((d) => d.id),
      names: g.names ?? null,
      niches: g.niches,
      status: g.status,
      attributes: g.attributes ?? {},
      triggers: g.triggers,
      ...(g.triggerCount === undefined ? {} : { triggerCount: g.triggerCount }),
    },
    now,
  );
}
