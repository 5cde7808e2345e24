/**
 * Loads and validates a scenario. Two passes: the zod schema (shapes, formats, unknown fields),
 * then the rules that span fields (unique device keys and emails, references to devices, leads
 * and sequences, chains of sequences, the timeline). Every problem is reported with the path of the field it is about, all at once, so a
 * scenario can be fixed in one go.
 */
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { DeviceDirectory, expandDevices, type ScenarioDevice } from './devices.js';
import {
  emailOf,
  horizonOf,
  isCampaignEvent,
  isDeviceEvent,
  isSequenceEvent,
  isTagEvent,
  scenarioSchema,
  sequencesOf,
  tagEventUser,
  type CampaignEvent,
  type Scenario,
  type ScenarioUser,
  type SequenceEvent,
  type TagEvent,
} from './scenario.js';

export interface ScenarioIssue {
  /** Like `users[0].campaigns[1].window.start`; empty for the file or the document as a whole. */
  path: string;
  message: string;
}

export type ValidationResult = { ok: true; scenario: Scenario } | { ok: false; issues: ScenarioIssue[] };

type Path = readonly PropertyKey[];
type ZodIssue = z.core.$ZodIssue;

function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][\w$]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

export async function loadScenario(file: string): Promise<ValidationResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    return { ok: false, issues: [{ path: '', message: `cannot read the scenario: ${reason}` }] };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, issues: [{ path: '', message: `invalid JSON: ${(err as Error).message}` }] };
  }
  return validateScenario(json);
}

export function validateScenario(input: unknown): ValidationResult {
  const parsed = scenarioSchema.safeParse(input, {
    error: (iss) => (iss.code === 'invalid_type' && iss.input === undefined ? 'required' : undefined),
  });
  if (!parsed.success) return { ok: false, issues: fromZod(parsed.error.issues, []) };
  const issues = checkScenario(parsed.data);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, scenario: parsed.data };
}

function fromZod(issues: readonly ZodIssue[], prefix: Path): ScenarioIssue[] {
  const out: ScenarioIssue[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: formatPath([...path, key]), message: 'unknown field' });
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      // A union reports every branch; only the branch whose shape (list or object) the input has is
      // worth reading. No such branch: the input has neither shape, and the union's message says so.
      const branch = issue.errors.find((errors) => !errors.some((e) => e.code === 'invalid_type' && e.path.length === 0));
      if (branch) out.push(...fromZod(branch, path));
      else out.push({ path: formatPath(path), message: issue.message });
    } else {
      out.push({ path: formatPath(path), message: issue.message });
    }
  }
  return out;
}

/** The rules zod cannot see: they span fields. Assumes the schema passed. */
function checkScenario(s: Scenario): ScenarioIssue[] {
  const issues: ScenarioIssue[] = [];
  const add = (path: Path, message: string) => issues.push({ path: formatPath(path), message });
  const start = Date.parse(s.start);
  const until = horizonOf(s);
  if (until <= start) add(['until'], `must be after start (${s.start})`);
  const inTimeline = (path: Path, iso: string) => {
    const t = Date.parse(iso);
    if (t < start) add(path, `is before the scenario start (${s.start})`);
    else if (t > until) add(path, `is after the scenario horizon (until ${new Date(until).toISOString()})`);
  };

  const emails = new Map<string, number>();
  s.users.forEach((user, ui) => {
    const email = emailOf(user, ui).toLowerCase();
    const first = emails.get(email);
    if (first === undefined) emails.set(email, ui);
    else add(['users', ui, 'email'], `duplicate of users[${first}].email`);
  });

  const devices = expandDevices(s.users);
  checkDeviceKeys(devices, add);
  const directory = new DeviceDirectory(devices);

  /** Resolves a reference to devices of user `ui` (or of anyone when `ui` is undefined). */
  const resolve = (path: Path, ref: string, ui: number | undefined): readonly ScenarioDevice[] | undefined => {
    const found = directory.resolve(ref);
    if (!found) {
      const hint = ui === undefined ? '' : ` (this user's devices: ${directory.describe(ui)})`;
      add(path, `unknown device "${ref}"${hint}`);
      return undefined;
    }
    const owner = found[0]!.userIndex;
    if (ui !== undefined && owner !== ui) {
      add(path, `device "${ref}" belongs to users[${owner}]; only this user's devices can be used here`);
      return undefined;
    }
    return found;
  };

  s.users.forEach((user, ui) => {
    const at: Path = ['users', ui];
    if (Array.isArray(user.leads)) {
      const phones = new Map<string, number>();
      user.leads.forEach((lead, li) => {
        // A lead without a device belongs to the user's shared pool.
        const found = lead.device === undefined ? undefined : resolve([...at, 'leads', li, 'device'], lead.device, ui);
        if (found && lead.device !== undefined && !(found.length === 1 && found[0]!.key === lead.device)) {
          const example = found[0]!.key;
          add([...at, 'leads', li, 'device'], `"${lead.device}" is a group of ${found.length} devices; a lead belongs to one, such as "${example}"`);
        }
        const first = phones.get(lead.phone);
        if (first === undefined) phones.set(lead.phone, li);
        else add([...at, 'leads', li, 'phone'], `duplicate of users[${ui}].leads[${first}].phone`);
      });
    } else {
      user.leads.devices?.forEach((ref, di) => resolve([...at, 'leads', 'devices', di], ref, ui));
    }
    user.campaigns.forEach((c, ci) => {
      inTimeline([...at, 'campaigns', ci, 'startAt'], c.startAt);
      c.audience.devices?.forEach((ref, di) => resolve([...at, 'campaigns', ci, 'audience', 'devices', di], ref, ui));
    });
    checkSequences(user, at, add);
  });

  s.events.forEach((e, ei) => {
    inTimeline(['events', ei, 'at'], e.at);
    if (isDeviceEvent(e)) resolve(['events', ei, 'device'], e.device, undefined);
    if (isTagEvent(e)) checkTagEvent(s, e, ['events', ei], directory, resolve, add);
  });
  checkCampaignEvents(s, add);
  checkSequenceEvents(s, add);
  return issues;
}

const quoted = (names: readonly string[]) => names.slice(0, 10).map((n) => JSON.stringify(n)).join(', ') + (names.length > 10 ? ', ...' : '');

/**
 * A user's sequences: unique names, a `next` naming another sequence of the same user, and no
 * chain that comes back to a sequence it passed (the API refuses such a `next` too).
 */
function checkSequences(user: ScenarioUser, at: Path, add: (path: Path, message: string) => void): void {
  const seqs = sequencesOf(user);
  const byName = new Map<string, number>();
  seqs.forEach((q, qi) => {
    const first = byName.get(q.name);
    if (first === undefined) byName.set(q.name, qi);
    else add([...at, 'sequences', qi, 'name'], `duplicate of ${formatPath([...at, 'sequences', first, 'name'])}`);
  });
  const names = [...byName.keys()];
  const nextOf = (qi: number): number | undefined => {
    const next = seqs[qi]!.next;
    return next === undefined ? undefined : byName.get(next);
  };
  seqs.forEach((q, qi) => {
    if (q.next !== undefined && !byName.has(q.next)) {
      add([...at, 'sequences', qi, 'next'], `unknown sequence ${JSON.stringify(q.next)} (this user's sequences: ${quoted(names)})`);
    }
  });
  // Each chain is walked once; a walk that meets its own path has found a loop.
  const done = new Set<number>();
  seqs.forEach((_, start) => {
    const path: number[] = [];
    const onPath = new Map<number, number>();
    let cur: number | undefined = start;
    while (cur !== undefined && !done.has(cur)) {
      if (onPath.has(cur)) {
        const loop = path.slice(onPath.get(cur));
        // Told once, from the loop's first sequence in file order, so the message does not depend on where the walk began.
        const first = loop.indexOf(Math.min(...loop));
        const ordered = [...loop.slice(first), ...loop.slice(0, first)];
        const chain = [...ordered, ordered[0]!].map((i) => JSON.stringify(seqs[i]!.name)).join(' -> ');
        add([...at, 'sequences', ordered[0]!, 'next'], `the chain of sequences loops: ${chain}`);
        break;
      }
      onPath.set(cur, path.length);
      path.push(cur);
      cur = nextOf(cur);
    }
    for (const i of path) done.add(i);
  });
}

/** Whether `phone` is one of the user's leads: listed, or generated (prefix and N in 1..count). */
function hasLead(user: ScenarioUser, phone: string): boolean {
  if (Array.isArray(user.leads)) return user.leads.some((l) => l.phone === phone);
  const g = user.leads;
  if (!phone.startsWith(g.phonePrefix)) return false;
  const rest = phone.slice(g.phonePrefix.length);
  return /^\d{8}$/.test(rest) && Number(rest) >= 1 && Number(rest) <= g.count;
}

/** A tag event names an existing user, that user's devices and that user's leads. */
function checkTagEvent(
  s: Scenario,
  e: TagEvent,
  at: Path,
  directory: DeviceDirectory,
  resolve: (path: Path, ref: string, ui: number | undefined) => readonly ScenarioDevice[] | undefined,
  add: (path: Path, message: string) => void,
): void {
  if (e.user !== undefined && e.user >= s.users.length) {
    add([...at, 'user'], `no such user (the scenario has ${s.users.length} user${s.users.length === 1 ? '' : 's'})`);
    return;
  }
  const leads = e.leads;
  if (typeof leads === 'object' && !Array.isArray(leads) && leads.device !== undefined) {
    if (!resolve([...at, 'leads', 'device'], leads.device, e.user)) return;
  }
  const ui = tagEventUser(e, (ref) => directory.resolve(ref)?.[0]?.userIndex);
  const user = s.users[ui]!;
  const phones = typeof leads === 'string' ? [leads] : Array.isArray(leads) ? leads : [];
  phones.forEach((phone, pi) => {
    if (!hasLead(user, phone)) add(typeof leads === 'string' ? [...at, 'leads'] : [...at, 'leads', pi], `no lead of users[${ui}] has the phone ${phone}`);
  });
}

/**
 * Sequence events name a sequence that exists (once across users), and alternate: a
 * pauseSequence acts on an active sequence (one that is not `paused` from the start or paused by
 * an earlier event), a resumeSequence on a paused one.
 */
function checkSequenceEvents(s: Scenario, add: (path: Path, message: string) => void): void {
  const byName = new Map<string, { path: string; paused: boolean }[]>();
  s.users.forEach((u, ui) =>
    sequencesOf(u).forEach((q, qi) => {
      const list = byName.get(q.name) ?? [];
      list.push({ path: `users[${ui}].sequences[${qi}]`, paused: q.paused });
      byName.set(q.name, list);
    }),
  );
  const known = [...byName.keys()];
  const hint = known.length === 0 ? 'the scenario has no sequences' : `sequences: ${quoted(known)}`;
  const timelines = new Map<string, { event: SequenceEvent; index: number }[]>();
  s.events.forEach((event, index) => {
    if (!isSequenceEvent(event)) return;
    const found = byName.get(event.sequence);
    if (!found) return add(['events', index, 'sequence'], `unknown sequence ${JSON.stringify(event.sequence)} (${hint})`);
    if (found.length > 1) {
      return add(['events', index, 'sequence'], `${JSON.stringify(event.sequence)} names ${found.length} sequences (${found.map((f) => f.path).join(', ')}); sequences named in events must have unique names`);
    }
    const list = timelines.get(event.sequence) ?? [];
    list.push({ event, index });
    timelines.set(event.sequence, list);
  });
  for (const [name, list] of timelines) {
    list.sort((a, b) => Date.parse(a.event.at) - Date.parse(b.event.at) || a.index - b.index);
    let paused = byName.get(name)![0]!.paused;
    let pausedBy: number | null = null;
    for (const { event, index } of list) {
      if (event.type === 'pauseSequence') {
        if (paused) add(['events', index, 'type'], `the sequence ${JSON.stringify(name)} is already paused ${pausedBy === null ? 'from the start (paused: true)' : `by events[${pausedBy}]`}`);
        paused = true;
        pausedBy = index;
      } else {
        if (!paused) add(['events', index, 'type'], `the sequence ${JSON.stringify(name)} is not paused at that time (no pauseSequence event before it)`);
        paused = false;
      }
    }
  }
}

/**
 * Campaign events name a campaign that exists (once), and make sense in the order they fire: a
 * pause acts on a started campaign, a resume needs a pause before it, nothing follows a cancel.
 * Whether the campaign has already completed by then is only known by running it; the report
 * tells when an event found it so.
 */
function checkCampaignEvents(s: Scenario, add: (path: Path, message: string) => void): void {
  const byName = new Map<string, { path: string; startAt: number }[]>();
  s.users.forEach((u, ui) =>
    u.campaigns.forEach((c, ci) => {
      const list = byName.get(c.name) ?? [];
      list.push({ path: `users[${ui}].campaigns[${ci}]`, startAt: Date.parse(c.startAt) });
      byName.set(c.name, list);
    }),
  );
  const known = [...byName.keys()];
  const hint = known.length === 0 ? 'the scenario has no campaigns' : `campaigns: ${known.slice(0, 10).map((n) => JSON.stringify(n)).join(', ')}`;

  const timelines = new Map<string, { event: CampaignEvent; index: number }[]>();
  s.events.forEach((event, index) => {
    if (!isCampaignEvent(event)) return;
    const found = byName.get(event.campaign);
    if (!found) return add(['events', index, 'campaign'], `unknown campaign ${JSON.stringify(event.campaign)} (${hint})`);
    if (found.length > 1) {
      return add(['events', index, 'campaign'], `${JSON.stringify(event.campaign)} names ${found.length} campaigns (${found.map((f) => f.path).join(', ')}); campaigns named in events must have unique names`);
    }
    const list = timelines.get(event.campaign) ?? [];
    list.push({ event, index });
    timelines.set(event.campaign, list);
  });

  for (const [name, list] of timelines) {
    const startAt = byName.get(name)![0]!.startAt;
    // Events at one instant fire in file order, so a stable sort by time is the firing order.
    list.sort((a, b) => Date.parse(a.event.at) - Date.parse(b.event.at) || a.index - b.index);
    let pausedBy: number | null = null;
    let cancelledBy: number | null = null;
    for (const { event, index } of list) {
      const at = Date.parse(event.at);
      if (cancelledBy !== null) {
        add(['events', index, 'type'], `the campaign ${JSON.stringify(name)} is already cancelled by events[${cancelledBy}]`);
        continue;
      }
      switch (event.type) {
        case 'pause':
          if (at < startAt) add(['events', index, 'at'], `is before the campaign ${JSON.stringify(name)} starts (startAt ${new Date(startAt).toISOString()}); a pause acts on a started campaign`);
          else if (pausedBy !== null) add(['events', index, 'type'], `the campaign ${JSON.stringify(name)} is already paused by events[${pausedBy}]`);
          else pausedBy = index;
          break;
        case 'resume':
          if (pausedBy === null) add(['events', index, 'type'], `the campaign ${JSON.stringify(name)} is not paused at that time (no pause event before it)`);
          pausedBy = null;
          break;
        case 'cancel':
          cancelledBy = index;
          break;
      }
    }
  }
}

/** Device keys and group keys share one namespace across all users: a reference must mean one thing. */
function checkDeviceKeys(devices: readonly ScenarioDevice[], add: (path: Path, message: string) => void): void {
  const owners = new Map<string, string>();
  const reported = new Set<string>();
  for (const d of devices) {
    const entry = `users[${d.userIndex}].devices[${d.entryIndex}]`;
    const names = d.spec.count === undefined ? [d.key] : [d.group, d.key];
    for (const name of names) {
      const owner = owners.get(name);
      if (owner === undefined) owners.set(name, entry);
      else if (owner !== entry && !reported.has(entry)) {
        // One error per clashing entry, not one per device of a large group.
        reported.add(entry);
        add(['users', d.userIndex, 'devices', d.entryIndex, 'key'], `"${name}" is already used by ${owner}`);
      }
    }
  }
}
