/**
 * The scenario format of `fleetcast simulate`: a declarative JSON world (users, devices, leads,
 * campaigns, drip sequences, timed events) and the simulator's behaviour. Every object is strict so a misspelt
 * field is an error rather than a silently ignored setting; the field-by-field reference with
 * defaults is docs/simulate.md. Rules that span fields (device keys, references, the timeline)
 * are checked after parsing, in validate.ts.
 */
import { IANAZone } from 'luxon';
import { z } from 'zod';
import { parseTemplate, TemplateError } from '../../engine/content/template.js';

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

const isoUtc = z.iso.datetime({ error: 'expected an ISO-8601 UTC date-time such as 2026-03-02T08:00:00Z' });

const e164 = z.string().regex(/^\+[1-9]\d{6,14}$/, 'expected an E.164 phone number such as +15550100001');

const timeZone = z.string().refine((v) => IANAZone.isValidZone(v), {
  error: (iss) => `unknown IANA time zone ${JSON.stringify(iss.input)}`,
});

/** Device keys name devices in leads, audiences and events, and key the per-device report. */
const deviceKey = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, "expected 1-64 letters, digits, '-' or '_' (starting with a letter or digit)");

const deviceRef = z.string().min(1);

const clockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM');
/** A window may end at 24:00 (midnight at the end of the day). */
const clockTimeEnd = z.string().regex(/^(([01]\d|2[0-3]):[0-5]\d|24:00)$/, 'expected HH:MM');

const rate = z.number().min(0).max(1);

/** A non-empty filter list: an empty one would match nothing, which is never what was meant. */
const filterList = (item: z.ZodType<string>) => z.array(item).min(1, 'must not be empty (leave it out to match every lead)');

const labels = z.array(z.string().min(1));

const msRange = z
  .object({ min: z.number().int().min(0), max: z.number().int().min(0) })
  .strict()
  .refine((r) => r.max >= r.min, { path: ['max'], error: 'must be >= min' });

const simulator = z
  .object({
    latencyMs: msRange.optional(),
    transientFailureRate: rate.default(0),
    permanentFailureRate: rate.default(0),
    connectDelayMs: z.number().int().min(0).default(0),
    receipts: z.object({ deliveredAfterMs: msRange, readRate: rate, readAfterMs: msRange }).strict().optional(),
    replies: z.object({ rate, afterMs: msRange, text: z.string().min(1).default('thanks!') }).strict().optional(),
    disconnects: z.object({ perHour: z.number().min(0), downtimeMs: msRange }).strict().optional(),
  })
  .strict()
  .refine((s) => s.transientFailureRate + s.permanentFailureRate <= 1, {
    path: ['permanentFailureRate'],
    error: 'transientFailureRate + permanentFailureRate must not exceed 1',
  });

const device = z
  .object({
    key: deviceKey,
    count: z.number().int().min(1).max(10_000).optional(),
    minDelaySeconds: z.number().min(0).max(86_400).default(5),
    maxDelaySeconds: z.number().min(0).max(86_400).default(15),
    hourlyLimit: z.number().int().min(1).optional(),
    dailyLimit: z.number().int().min(1).optional(),
    online: z.boolean().default(true),
  })
  .strict()
  .refine((d) => d.maxDelaySeconds >= d.minDelaySeconds, {
    path: ['maxDelaySeconds'],
    error: 'must be >= minDelaySeconds',
  });

/**
 * A lead's attributes: what `{company}` in a message template reads. Values are scalars; anything
 * else would render as missing, which in a scenario is almost certainly a typing mistake.
 */
const attributes = z.record(
  z.string().min(1),
  z.union([z.string(), z.number(), z.boolean(), z.null()], { error: 'expected a string, number, boolean or null' }),
  { error: 'expected an object of strings, numbers, booleans or nulls' },
);

const lead = z
  .object({
    name: z.string().default(''),
    phone: e164,
    /** Absent: a lead of the shared pool, reached only by pool campaigns. */
    device: deviceRef.optional(),
    niches: labels.default([]),
    status: z.string().min(1).default('prospect'),
    triggers: labels.default([]),
    attributes: attributes.optional(),
  })
  .strict();

const leadGenerator = z
  .object({
    count: z.number().int().min(1).max(10_000_000),
    // Generated phones are the prefix and an 8-digit number: at most 7 prefix digits keep them E.164.
    phonePrefix: z.string().regex(/^\+[1-9]\d{0,6}$/, "expected '+' and 1-7 digits, such as +34600"),
    niches: labels.default([]),
    status: z.string().min(1).default('prospect'),
    devices: filterList(deviceRef).optional(),
    /** Device-less leads (the shared pool) instead of leads spread over devices. */
    pool: z.boolean().default(false),
    /** Names given in turn (lead N gets names[(N - 1) mod length]); absent: `Lead N`. */
    names: z.array(z.string()).min(1, 'must not be empty (leave it out to name leads "Lead N")').optional(),
    attributes: attributes.optional(),
    /** Trigger tags carried from the start by leads 1..triggerCount (every lead by default). */
    triggers: labels.default([]),
    triggerCount: z.number().int().min(0).optional(),
  })
  .strict()
  .refine((g) => !(g.pool && g.devices), {
    path: ['devices'],
    error: 'a pool of leads has no devices: leave devices out, or pool false',
  })
  .refine((g) => g.triggerCount === undefined || g.triggerCount <= g.count, {
    path: ['triggerCount'],
    error: 'must not exceed count',
  })
  .refine((g) => g.triggerCount === undefined || g.triggers.length > 0, {
    path: ['triggerCount'],
    error: 'has no effect without triggers',
  });

const window = z
  .object({
    start: clockTime,
    end: clockTimeEnd,
    timeZone: timeZone.optional(),
    days: z.array(z.enum(WEEKDAYS)).min(1).optional(),
  })
  .strict()
  .refine((w) => w.start !== w.end, {
    path: ['end'],
    error: 'must differ from start (leave the window out to send at any time)',
  });

const media = z
  .object({
    type: z.enum(['image', 'video', 'document']),
    url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
  })
  .strict();

const delaySeconds = z.number().min(0).max(86_400);

const campaign = z
  .object({
    name: z.string().min(1),
    /** A template: {name}, {first_name:there}, attributes such as {company}, spintax {Hi|Hello}. */
    message: z.string().min(1),
    mode: z.enum(['owned', 'pool']).default('owned'),
    media: media.optional(),
    startAt: isoUtc,
    window: window.optional(),
    audience: z
      .object({
        niches: filterList(z.string().min(1)).optional(),
        statuses: filterList(z.string().min(1)).optional(),
        triggers: filterList(z.string().min(1)).optional(),
        devices: filterList(deviceRef).optional(),
      })
      .strict()
      .default({}),
    delivery: z.enum(['at_most_once', 'at_least_once']).default('at_most_once'),
    /** The campaign's own gap between two sends of a device, instead of the device's. */
    minDelaySeconds: delaySeconds.optional(),
    maxDelaySeconds: delaySeconds.optional(),
    deviceHourlyQuota: z.number().int().min(1).optional(),
    deviceDailyQuota: z.number().int().min(1).optional(),
    dailyLimit: z.number().int().min(1).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    // The engine renders the template when the campaign starts; a broken one is caught here, not mid-run.
    checkTemplate(c.message, (message) => issue('message', message));
    // The override replaces the device's range as a whole: half of one would be ambiguous.
    if (c.minDelaySeconds !== undefined && c.maxDelaySeconds === undefined) issue('maxDelaySeconds', 'required with minDelaySeconds');
    if (c.maxDelaySeconds !== undefined && c.minDelaySeconds === undefined) issue('minDelaySeconds', 'required with maxDelaySeconds');
    if (c.minDelaySeconds !== undefined && c.maxDelaySeconds !== undefined && c.maxDelaySeconds < c.minDelaySeconds) {
      issue('maxDelaySeconds', 'must be >= minDelaySeconds');
    }
    // As in the API: per-device quotas pace a pool campaign over borrowed devices; an owned one has none.
    if (c.mode !== 'pool') {
      if (c.deviceHourlyQuota !== undefined) issue('deviceHourlyQuota', 'only a pool campaign (mode "pool") has per-device quotas');
      if (c.deviceDailyQuota !== undefined) issue('deviceDailyQuota', 'only a pool campaign (mode "pool") has per-device quotas');
    }
  });

/** Validates a message template as the engine will render it; a broken one is caught here, not mid-run. */
function checkTemplate(message: string, issue: (message: string) => void): void {
  try {
    parseTemplate(message);
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err;
    issue(err.message);
  }
}

/**
 * A step's delay: calendar days in the owner's zone (a day after 10:00 is 10:00 the next day,
 * whatever DST does), then hours and minutes. The first step's counts from the enrollment.
 */
const stepDelay = z
  .object({
    days: z.number().int().min(0).max(3650).optional(),
    hours: z.number().int().min(0).max(87_600).optional(),
    minutes: z.number().int().min(0).max(5_256_000).optional(),
  })
  .strict();

const sequenceStep = z
  .object({
    /** A template, as a campaign's message. */
    message: z.string().min(1),
    media: media.optional(),
    delay: stepDelay.default({}),
    /** The local time (owner's zone) the step waits for once its delay has passed. */
    sendTime: clockTime.optional(),
  })
  .strict()
  .superRefine((st, ctx) => checkTemplate(st.message, (message) => ctx.addIssue({ code: 'custom', path: ['message'], message })));

const sequence = z
  .object({
    name: z.string().min(1),
    /** The exact tag that enrolls a lead when it gains it (or carries it at the start). */
    trigger: z.string().min(1),
    window: window.optional(),
    /** The sequence of the same user its finishers move on to. */
    next: z.string().min(1).optional(),
    reentry: z.enum(['never', 'after_completion']).default('never'),
    onFailure: z.enum(['continue', 'stop']).default('continue'),
    exitOnReply: z.boolean().default(true),
    /** Starts paused: leads are enrolled, nothing is sent until a resumeSequence event. */
    paused: z.boolean().default(false),
    steps: z.array(sequenceStep).min(1, 'a sequence needs at least one step'),
  })
  .strict();

const user = z
  .object({
    name: z.string().optional(),
    email: z.email().optional(),
    timeZone,
    devices: z.array(device).min(1),
    leads: z.union([z.array(lead), leadGenerator], { error: 'expected a list of leads or a lead generator object' }).default([]),
    campaigns: z.array(campaign).default([]),
    /** Optional rather than defaulted, so worlds built in code (forecasts) need not mention it. */
    sequences: z.array(sequence).optional(),
  })
  .strict();

const eventBase = { at: isoUtc, device: deviceRef };
/** Campaign events name a campaign by its name, as the user would in the dashboard. */
const campaignEventBase = { at: isoUtc, campaign: z.string().min(1) };

/** Sequence events name a sequence by its name, as campaign events name a campaign. */
const sequenceEventBase = { at: isoUtc, sequence: z.string().min(1) };

/**
 * The leads a tag event tags: one phone, a list of phones, or `{ device?, count? }` (the user's
 * leads, of that device or group if given, that do not carry the tag yet, lowest first, at most
 * `count` of them).
 */
const leadSelector = z.union(
  [
    e164,
    z.array(e164).min(1, 'must not be empty'),
    z.object({ device: deviceRef.optional(), count: z.number().int().min(1).optional() }).strict(),
  ],
  { error: 'expected a phone, a list of phones or an object { device?, count? }' },
);

const event = z.discriminatedUnion('type', [
  z.object({ type: z.literal('disconnect'), ...eventBase, minutes: z.number().positive() }).strict(),
  z.object({ type: z.literal('online'), ...eventBase }).strict(),
  z.object({ type: z.literal('restrict'), ...eventBase, hours: z.number().positive() }).strict(),
  z.object({ type: z.literal('reply'), ...eventBase, from: e164, text: z.string().min(1).default('hello') }).strict(),
  z.object({ type: z.literal('pause'), ...campaignEventBase }).strict(),
  z.object({ type: z.literal('resume'), ...campaignEventBase }).strict(),
  z.object({ type: z.literal('cancel'), ...campaignEventBase }).strict(),
  z.object({ type: z.literal('pauseSequence'), ...sequenceEventBase }).strict(),
  z.object({ type: z.literal('resumeSequence'), ...sequenceEventBase }).strict(),
  z
    .object({
      type: z.literal('tag'),
      at: isoUtc,
      /** The user whose leads are tagged; default: the owner of `leads.device`, else the first user. */
      user: z.number().int().min(0).optional(),
      leads: leadSelector,
      tag: z.string().min(1),
    })
    .strict(),
]);

export const scenarioSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    seed: z.number().int().min(0).max(0xffff_ffff).default(1),
    start: isoUtc,
    until: isoUtc.optional(),
    simulator: simulator.prefault({}),
    users: z.array(user).min(1),
    events: z.array(event).default([]),
  })
  .strict();

export type Scenario = z.output<typeof scenarioSchema>;
export type ScenarioUser = Scenario['users'][number];
export type DeviceSpec = ScenarioUser['devices'][number];
export type CampaignSpec = ScenarioUser['campaigns'][number];
export type WindowSpec = NonNullable<CampaignSpec['window']>;
export type ScenarioEvent = Scenario['events'][number];
export type CampaignEvent = Extract<ScenarioEvent, { campaign: string }>;
export type SequenceEvent = Extract<ScenarioEvent, { sequence: string }>;
export type TagEvent = Extract<ScenarioEvent, { type: 'tag' }>;
export type LeadSelector = TagEvent['leads'];
export type DeviceEvent = Exclude<ScenarioEvent, CampaignEvent | SequenceEvent | TagEvent>;
export type SequenceSpec = NonNullable<ScenarioUser['sequences']>[number];
export type StepSpec = SequenceSpec['steps'][number];
export type LeadSpec = Extract<ScenarioUser['leads'], unknown[]>[number];
export type LeadGeneratorSpec = Exclude<ScenarioUser['leads'], unknown[]>;

export const isCampaignEvent = (e: ScenarioEvent): e is CampaignEvent => 'campaign' in e;
export const isSequenceEvent = (e: ScenarioEvent): e is SequenceEvent => 'sequence' in e;
export const isTagEvent = (e: ScenarioEvent): e is TagEvent => e.type === 'tag';
export const isDeviceEvent = (e: ScenarioEvent): e is DeviceEvent => 'device' in e;
export type SimulatorSpec = Scenario['simulator'];

export const DAY_MS = 86_400_000;

/** A user's sequences (none when the field is left out). */
export const sequencesOf = (user: ScenarioUser): SequenceSpec[] => user.sequences ?? [];

/** A step's delay in whole minutes besides its days. */
export const delayMinutesOf = (st: StepSpec): number => (st.delay.hours ?? 0) * 60 + (st.delay.minutes ?? 0);

/**
 * The index of the user whose leads a tag event tags: its `user`, else the owner of the device it
 * names (`ownerOf` resolves a device reference), else the first user.
 */
export function tagEventUser(e: TagEvent, ownerOf: (ref: string) => number | undefined): number {
  if (e.user !== undefined) return e.user;
  const l = e.leads;
  const device = typeof l === 'object' && !Array.isArray(l) ? l.device : undefined;
  return (device === undefined ? undefined : ownerOf(device)) ?? 0;
}

/** The horizon: `until`, or 30 days after the start. */
export function horizonOf(s: Scenario): number {
  return s.until === undefined ? Date.parse(s.start) + 30 * DAY_MS : Date.parse(s.until);
}

/** A user's login in the simulated world; the schema makes emails unique, so defaults are numbered. */
export function emailOf(user: ScenarioUser, index: number): string {
  return user.email ?? `user-${index + 1}@simulation.fleetcast.invalid`;
}
