/**
 * Drip sequences in `fleetcast simulate` scenarios, on small worlds run through the same entry the
 * CLI uses: each test states what the scenario says must happen (step times read with luxon in the
 * owner's zone, which lead gets which step) and checks the sends and the report against it. Step
 * bodies start with a token naming the sequence and step ("C1", "W2"), so the sends file alone
 * tells which step each send was.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { DateTime } from 'luxon';
import { pino } from 'pino';
import { simulateCommand, type Io } from '../src/cli/simulate.js';
import type { SendLine, SequenceReport, SimulationReport } from '../src/services/simulation/report.js';
import { runSimulation } from '../src/services/simulation/run.js';
import type { Scenario } from '../src/services/simulation/scenario.js';
import { loadScenario, validateScenario, type ScenarioIssue } from '../src/services/simulation/validate.js';

const KL = 'Asia/Kuala_Lumpur';
const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'fleetcast-simulation-sequences-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function scenarioOf(json: unknown): Scenario {
  const v = validateScenario(json);
  if (!v.ok) throw new Error(v.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return v.scenario;
}

interface Run {
  report: SimulationReport;
  sends: SendLine[];
}

async function runScenario(scenario: Scenario): Promise<Run> {
  const outDir = join(scratch, scenario.name);
  await runSimulation(scenario, { outDir, store: 'memory', log: pino({ level: 'silent' }) });
  const sends = (await readFile(join(outDir, 'sends.jsonl'), 'utf8'))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as SendLine);
  const report = JSON.parse(await readFile(join(outDir, 'report.json'), 'utf8')) as SimulationReport;
  assert.equal(report.engineErrors, 0, 'engine errors');
  return { report, sends };
}

const simulate = (json: unknown) => runScenario(scenarioOf(json));

const sent = (r: Run) => r.sends.filter((l) => l.outcome === 'sent');
/** The step token a body starts with ("C1 Hi Ana" -> "C1"). */
const tokenOf = (l: SendLine) => l.body.split(' ')[0]!;
const sequence = (r: Run, name: string): SequenceReport => r.report.sequences.find((q) => q.name === name)!;
const local = (at: string) => DateTime.fromISO(at, { zone: KL });

/** Each phone's sent step tokens, in send order. */
function tokensByPhone(r: Run): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of [...sent(r)].sort((a, b) => a.at.localeCompare(b.at))) out.set(l.to, [...(out.get(l.to) ?? []), tokenOf(l)]);
  return out;
}

const phone = (n: number) => `+60110000${String(n).padStart(4, '0')}`;

function issuesOf(json: unknown): ScenarioIssue[] {
  const v = validateScenario(json);
  assert.equal(v.ok, false, 'the scenario should be invalid');
  return v.ok ? [] : v.issues;
}

function hasIssue(issues: readonly ScenarioIssue[], path: string, message: RegExp): void {
  assert.ok(
    issues.some((i) => i.path === path && message.test(i.message)),
    `expected ${path}: ${message}; got\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}`,
  );
}

/** One Kuala Lumpur user with quick devices; the start is Monday 2026-03-02 08:00 local. */
function world(name: string, user: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    seed: 5,
    start: '2026-03-02T00:00:00Z',
    until: '2026-03-12T00:00:00Z',
    users: [{ timeZone: KL, devices: [{ key: 'kl', count: 2, minDelaySeconds: 1, maxDelaySeconds: 2 }], ...user }],
    ...extra,
  };
}

describe('daily steps at their send times in the owner\'s zone', () => {
  let run: Run;
  before(async () => {
    run = await simulate(
      world(
        'daily-steps',
        {
        leads: { count: 10, phonePrefix: '+6012', names: ['Aisyah Rahman', 'Tan Wei Ling'], triggers: ['drip'] },
        sequences: [
          {
            name: 'Drip',
            trigger: 'drip',
            steps: [
              { message: 'D1 Hi {first_name}', sendTime: '10:00' },
              { message: 'D2', delay: { days: 1 }, sendTime: '10:00' },
              { message: 'D3', delay: { days: 2 }, sendTime: '18:30' },
              { message: 'D4', delay: { hours: 2 } },
            ],
          },
        ],
        },
        { simulator: { receipts: { deliveredAfterMs: { min: 1000, max: 5000 }, readRate: 0.5, readAfterMs: { min: 60_000, max: 600_000 } } } },
      ),
    );
  });

  test('every lead gets each step exactly once, in order', () => {
    const byPhone = tokensByPhone(run);
    assert.equal(byPhone.size, 10);
    for (const [to, tokens] of byPhone) assert.deepEqual(tokens, ['D1', 'D2', 'D3', 'D4'], to);
    for (const l of sent(run).filter((x) => tokenOf(x) === 'D1')) assert.match(l.body, /^D1 Hi (Aisyah|Tan)$/);
  });

  test('each step goes out at its send time, on the day its delay gives', () => {
    const expect: Record<string, string> = { D1: '2026-03-02T10:00', D2: '2026-03-03T10:00', D3: '2026-03-05T18:30', D4: '2026-03-05T20:30' };
    for (const l of sent(run)) {
      const t = local(l.at);
      const due = DateTime.fromISO(expect[tokenOf(l)]!, { zone: KL });
      // Five leads per device, one to two seconds apart: within a minute of the time, never before it.
      const late = t.toMillis() - due.toMillis();
      assert.ok(late >= 0 && late < 60_000, `${tokenOf(l)} to ${l.to} at ${t.toISO()}, due ${due.toISO()}`);
    }
  });

  test('the report counts enrollments and each step', () => {
    const q = sequence(run, 'Drip');
    assert.deepEqual([q.enrolled, q.chainedIn, q.active, q.completed, q.exited.total], [10, 0, 0, 10, 0]);
    assert.equal(q.trigger, 'drip');
    assert.equal(q.next, null);
    assert.deepEqual(q.steps.map((s) => s.step), [1, 2, 3, 4]);
    assert.deepEqual(q.steps.map((s) => s.sent), [10, 10, 10, 10]);
    assert.equal(q.steps[0]!.firstSend, '2026-03-02T02:00:00.000Z');
    for (const s of q.steps) {
      const mine = sent(run).filter((l) => tokenOf(l) === `D${s.step}`).map((l) => l.at).sort();
      assert.equal(s.firstSend, mine[0]);
      assert.equal(s.lastSend, mine.at(-1));
    }
    // Every message was delivered; about half were read.
    assert.deepEqual(q.steps.map((s) => s.delivered), [10, 10, 10, 10]);
    const read = q.steps.reduce((n, s) => n + s.read, 0);
    assert.equal(read, run.report.messages.byStatus.read);
    assert.ok(read > 5 && read < 35, `${read} read`);
    assert.deepEqual(q.messages, { total: 40, byStatus: { delivered: 40 - read, read } });
  });
});

describe('a chain COLD -> WARM -> HOT', () => {
  let run: Run;
  before(async () => {
    run = await simulate(
      world('chain', {
        leads: { count: 6, phonePrefix: '+6013', triggers: ['cold'] },
        sequences: [
          { name: 'HOT', trigger: 'hot', window: { start: '16:00', end: '20:00' }, steps: [{ message: 'H1', delay: { days: 1 }, sendTime: '15:00' }] },
          { name: 'COLD', trigger: 'cold', next: 'WARM', steps: [{ message: 'C1', sendTime: '10:00' }, { message: 'C2', delay: { days: 1 }, sendTime: '10:00' }] },
          { name: 'WARM', trigger: 'warm', next: 'HOT', steps: [{ message: 'W1', delay: { days: 1 }, sendTime: '11:00' }] },
        ],
      }),
    );
  });

  test('each lead passes through the three sequences in order, a day apart', () => {
    const byPhone = tokensByPhone(run);
    assert.equal(byPhone.size, 6);
    for (const [to, tokens] of byPhone) assert.deepEqual(tokens, ['C1', 'C2', 'W1', 'H1'], to);
    const days = new Map<string, Set<string>>();
    for (const l of sent(run)) days.set(tokenOf(l), new Set([...(days.get(tokenOf(l)) ?? []), local(l.at).toISODate()!]));
    assert.deepEqual(Object.fromEntries([...days].map(([k, v]) => [k, [...v]])), {
      C1: ['2026-03-02'],
      C2: ['2026-03-03'],
      W1: ['2026-03-04'],
      H1: ['2026-03-05'],
    });
  });

  test('the last sequence\'s window holds its 15:00 step until the window opens at 16:00', () => {
    for (const l of sent(run).filter((x) => tokenOf(x) === 'H1')) {
      const t = local(l.at);
      assert.equal(t.hour, 16, `H1 at ${t.toISO()}`);
      assert.ok(t.minute < 1);
    }
  });

  test('the report shows who was chained in', () => {
    const [cold, warm, hot] = ['COLD', 'WARM', 'HOT'].map((n) => sequence(run, n));
    assert.deepEqual([cold!.enrolled, cold!.chainedIn, cold!.completed, cold!.next], [6, 0, 6, 'WARM']);
    assert.deepEqual([warm!.enrolled, warm!.chainedIn, warm!.completed, warm!.next], [6, 6, 6, 'HOT']);
    assert.deepEqual([hot!.enrolled, hot!.chainedIn, hot!.completed, hot!.next], [6, 6, 6, null]);
    // Ids follow the scenario's order, not the chain's.
    assert.deepEqual(run.report.sequences.map((q) => q.name), ['HOT', 'COLD', 'WARM']);
  });
});

describe('replies', () => {
  test('a reply ends the sequences that exit on a reply and no other; STOP opts the lead out of all', async () => {
    const leads = [1, 2, 3, 4].map((n) => ({ name: `Lead ${n}`, phone: phone(n), device: 'kl-1', triggers: ['a', 'b'] }));
    const run = await simulate(
      world(
        'replies',
        {
          leads,
          sequences: [
            { name: 'A', trigger: 'a', steps: [{ message: 'A1', sendTime: '10:00' }, { message: 'A2', delay: { days: 1 }, sendTime: '10:00' }, { message: 'A3', delay: { days: 1 }, sendTime: '10:00' }] },
            {
              name: 'B',
              trigger: 'b',
              exitOnReply: false,
              steps: [{ message: 'B1', sendTime: '12:00' }, { message: 'B2', delay: { days: 1 }, sendTime: '12:00' }, { message: 'B3', delay: { days: 1 }, sendTime: '12:00' }],
            },
          ],
        },
        {
          events: [
            // 11:00 in Kuala Lumpur on the first day: after A1, before B1.
            { type: 'reply', at: '2026-03-02T03:00:00Z', device: 'kl-1', from: phone(1), text: 'sounds good' },
            { type: 'reply', at: '2026-03-02T03:00:00Z', device: 'kl-1', from: phone(2), text: 'STOP' },
          ],
        },
      ),
    );
    const byPhone = tokensByPhone(run);
    assert.deepEqual(byPhone.get(phone(1)), ['A1', 'B1', 'B2', 'B3']);
    assert.deepEqual(byPhone.get(phone(2)), ['A1']);
    for (const n of [3, 4]) assert.deepEqual(byPhone.get(phone(n)), ['A1', 'B1', 'A2', 'B2', 'A3', 'B3']);
    const a = sequence(run, 'A');
    const b = sequence(run, 'B');
    assert.deepEqual([a.completed, a.exited], [2, { total: 2, byReason: { replied: 1, opted_out: 1 } }]);
    assert.deepEqual([b.completed, b.exited], [3, { total: 1, byReason: { opted_out: 1 } }]);
    assert.equal(run.report.repliedLeads, 2);
  });

  test('simulated replies (simulator.replies) end sequences too', async () => {
    const run = await simulate(
      world(
        'simulated-replies',
        {
          leads: { count: 8, phonePrefix: '+6014', triggers: ['a'] },
          sequences: [{ name: 'A', trigger: 'a', steps: [{ message: 'A1', sendTime: '10:00' }, { message: 'A2', delay: { days: 1 }, sendTime: '10:00' }] }],
        },
        { simulator: { replies: { rate: 1, afterMs: { min: 60_000, max: 600_000 } } } },
      ),
    );
    assert.deepEqual([...tokensByPhone(run).values()].map((t) => t.join()), Array(8).fill('A1'));
    const a = sequence(run, 'A');
    assert.deepEqual([a.enrolled, a.completed, a.exited], [8, 0, { total: 8, byReason: { replied: 8 } }]);
    assert.deepEqual(a.steps.map((s) => s.sent), [8, 0]);
  });
});

describe('tag events', () => {
  let run: Run;
  before(async () => {
    const leads = [
      { phone: phone(1), device: 'kl-1', triggers: ['x'] },
      ...[2, 3, 4, 5].map((n) => ({ phone: phone(n), device: 'kl-1' })),
      { phone: phone(6), device: 'kl-2' },
    ];
    run = await simulate(
      world(
        'tags',
        {
          leads,
          sequences: [
            { name: 'Never', trigger: 'x', steps: [{ message: 'N1', sendTime: '10:00' }] },
            { name: 'Again', trigger: 'x', reentry: 'after_completion', steps: [{ message: 'G1', sendTime: '10:00' }] },
          ],
        },
        {
          events: [
            // Day 2, 12:00 local: lead 1 carries x already (and finished both sequences), lead 2 gains it.
            { type: 'tag', at: '2026-03-03T04:00:00Z', leads: [phone(1), phone(2)], tag: 'x' },
            { type: 'tag', at: '2026-03-04T04:00:00Z', leads: { device: 'kl-2' }, tag: 'x' },
            // The first two leads without x, lowest first: leads 3 and 4.
            { type: 'tag', at: '2026-03-04T05:00:00Z', leads: { count: 2 }, tag: 'x' },
            { type: 'tag', at: '2026-03-05T04:00:00Z', leads: phone(1), tag: 'x' },
            // A tag no sequence triggers: leads carry it, nobody is enrolled.
            { type: 'tag', at: '2026-03-05T04:00:00Z', leads: {}, tag: 'vip' },
          ],
        },
      ),
    );
  });

  test('only leads that gained the tag are enrolled; a lead already carrying it is not, whatever its re-entry rule', () => {
    const byPhone = tokensByPhone(run);
    assert.deepEqual(byPhone.get(phone(1)), ['N1', 'G1']);
    for (const n of [2, 3, 4, 6]) assert.deepEqual(byPhone.get(phone(n))?.sort(), ['G1', 'N1'], phone(n));
    assert.equal(byPhone.get(phone(5)), undefined);
    // Tagged at 12:00, sent at the next 10:00.
    const firstOf = (n: number) => local(sent(run).find((l) => l.to === phone(n))!.at).toISODate();
    assert.deepEqual([1, 2, 6, 3].map(firstOf), ['2026-03-02', '2026-03-04', '2026-03-05', '2026-03-05']);
  });

  test('the report lists each tag event with the leads it tagged and the enrollments it made', () => {
    assert.deepEqual(
      run.report.tagEvents.map((t) => [t.event, t.tag, t.gained, t.enrolled]),
      [
        [0, 'x', 1, 2],
        [1, 'x', 1, 2],
        [2, 'x', 2, 4],
        [3, 'x', 0, 0],
        [4, 'vip', 6, 0],
      ],
    );
    for (const name of ['Never', 'Again']) {
      const q = sequence(run, name);
      assert.deepEqual([q.enrolled, q.completed, q.steps[0]!.sent], [5, 5, 5], name);
    }
  });
});

describe('pausing a sequence', () => {
  let run: Run;
  before(async () => {
    run = await simulate({
      name: 'pause-sequence',
      seed: 9,
      start: '2026-03-02T00:00:00Z',
      until: '2026-03-06T00:00:00Z',
      users: [
        {
          timeZone: KL,
          devices: [{ key: 'slow', minDelaySeconds: 60, maxDelaySeconds: 60 }],
          leads: { count: 30, phonePrefix: '+6015', triggers: ['p', 'q'] },
          sequences: [
            { name: 'P', trigger: 'p', steps: [{ message: 'P1', sendTime: '10:00' }] },
            { name: 'Q', trigger: 'q', paused: true, steps: [{ message: 'Q1', sendTime: '09:00' }] },
          ],
        },
      ],
      events: [
        // P's 30 messages wait from 10:00, one a minute: paused at 10:10, resumed at 12:00.
        { type: 'pauseSequence', at: '2026-03-02T02:10:00Z', sequence: 'P' },
        { type: 'resumeSequence', at: '2026-03-02T04:00:00Z', sequence: 'P' },
        // Q starts paused; its 09:00 steps have long fallen due when it resumes at 14:00 on day 2.
        { type: 'resumeSequence', at: '2026-03-03T06:00:00Z', sequence: 'Q' },
      ],
    });
  });

  test('nothing of a paused sequence goes out until it resumes; then every held message does', () => {
    const p = sent(run).filter((l) => tokenOf(l) === 'P1');
    const before = p.filter((l) => l.at <= '2026-03-02T02:10:00.000Z');
    const during = p.filter((l) => l.at > '2026-03-02T02:10:00.000Z' && l.at < '2026-03-02T04:00:00.000Z');
    assert.equal(during.length, 0, `sent while paused: ${during.map((l) => l.at).join(', ')}`);
    assert.ok(before.length >= 10 && before.length <= 11, `${before.length} sent before the pause`);
    assert.equal(p.length, 30);
    assert.equal(new Set(p.map((l) => l.to)).size, 30);
    assert.equal(p.filter((l) => l.at >= '2026-03-02T04:00:00.000Z')[0]?.at, '2026-03-02T04:00:00.000Z');
  });

  test('a sequence paused from the start sends nothing before its resume', () => {
    const q = sent(run).filter((l) => tokenOf(l) === 'Q1');
    assert.equal(q.length, 30);
    assert.ok(q.every((l) => l.at >= '2026-03-03T06:00:00.000Z'), q[0]?.at);
  });

  test('the report shows the events and the final status', () => {
    const p = sequence(run, 'P');
    assert.equal(p.status, 'active');
    assert.deepEqual(
      p.events.map((e) => [e.type, e.outcome, e.status]),
      [
        ['pauseSequence', 'applied', 'paused'],
        ['resumeSequence', 'applied', 'active'],
      ],
    );
    assert.deepEqual([p.completed, p.steps[0]!.sent, p.steps[0]!.pending], [30, 30, 0]);
    assert.deepEqual(sequence(run, 'Q').events.map((e) => [e.type, e.outcome, e.status]), [['resumeSequence', 'applied', 'active']]);
  });
});

describe('invalid sequences', () => {
  const base = (sequences: unknown[], events: unknown[] = [], leads: unknown = { count: 5, phonePrefix: '+6016' }) =>
    world('invalid', { leads, sequences }, { events });
  const step = { message: 'hi' };

  test('a chain that loops is refused, naming the loop', () => {
    const issues = issuesOf(
      base([
        { name: 'A', trigger: 'a', next: 'B', steps: [step] },
        { name: 'B', trigger: 'b', next: 'C', steps: [step] },
        { name: 'C', trigger: 'c', next: 'A', steps: [step] },
        { name: 'D', trigger: 'd', next: 'D', steps: [step] },
        { name: 'E', trigger: 'e', next: 'A', steps: [step] },
      ]),
    );
    hasIssue(issues, 'users[0].sequences[0].next', /loops: "A" -> "B" -> "C" -> "A"/);
    hasIssue(issues, 'users[0].sequences[3].next', /loops: "D" -> "D"/);
    // A chain that leads into a loop is told once, at the loop.
    assert.equal(issues.length, 2, JSON.stringify(issues));
  });

  test('unknown next, duplicate names, bad templates, missing or empty steps', () => {
    const issues = issuesOf(
      base([
        { name: 'A', trigger: 'a', next: 'Z', steps: [step] },
        { name: 'A', trigger: 'a', steps: [step] },
        { name: 'T', trigger: 't', steps: [{ message: 'Hi {name' }, { message: 'ok', delay: { weeks: 1 } }, { message: 'ok', sendTime: '25:00' }] },
        { name: 'E', trigger: 'e', steps: [] },
        { name: 'M', trigger: 'm' },
      ]),
    );
    // Structure first: the cross-field rules (unknown next, duplicates) wait for it to be valid.
    hasIssue(issues, 'users[0].sequences[2].steps[0].message', /Unclosed '\{' at index 3/);
    hasIssue(issues, 'users[0].sequences[2].steps[1].delay.weeks', /unknown field/);
    hasIssue(issues, 'users[0].sequences[2].steps[2].sendTime', /expected HH:MM/);
    hasIssue(issues, 'users[0].sequences[3].steps', /at least one step/);
    hasIssue(issues, 'users[0].sequences[4].steps', /^required$/);
    const cross = issuesOf(
      base([
        { name: 'A', trigger: 'a', next: 'Z', steps: [step] },
        { name: 'A', trigger: 'a', steps: [step] },
      ]),
    );
    hasIssue(cross, 'users[0].sequences[0].next', /unknown sequence "Z" \(this user's sequences: "A"\)/);
    hasIssue(cross, 'users[0].sequences[1].name', /duplicate of users\[0\]\.sequences\[0\]\.name/);
  });

  test('sequence and tag events must name what exists and make sense in order', () => {
    const issues = issuesOf(
      base(
        [
          { name: 'A', trigger: 'a', steps: [step] },
          { name: 'P', trigger: 'p', paused: true, steps: [step] },
        ],
        [
          { type: 'pauseSequence', at: '2026-03-02T01:00:00Z', sequence: 'Nope' },
          { type: 'resumeSequence', at: '2026-03-02T01:00:00Z', sequence: 'A' },
          { type: 'pauseSequence', at: '2026-03-02T01:00:00Z', sequence: 'P' },
          { type: 'tag', at: '2026-03-02T01:00:00Z', leads: ['+601600000001', '+601600000009'], tag: 'a' },
          { type: 'tag', at: '2026-03-02T01:00:00Z', leads: { device: 'nowhere' }, tag: 'a' },
          { type: 'tag', at: '2026-03-02T01:00:00Z', user: 3, leads: { count: 1 }, tag: 'a' },
          { type: 'tag', at: '2026-03-02T01:00:00Z', leads: 'nobody', tag: 'a' },
        ],
      ),
    );
    // The generator's leads are +6016 then 00000001..00000005; a malformed phone is a format error first.
    hasIssue(issues, 'events[6].leads', /E\.164/);
    const cross = issuesOf(
      base(
        [
          { name: 'A', trigger: 'a', steps: [step] },
          { name: 'P', trigger: 'p', paused: true, steps: [step] },
        ],
        [
          { type: 'pauseSequence', at: '2026-03-02T01:00:00Z', sequence: 'Nope' },
          { type: 'resumeSequence', at: '2026-03-02T01:00:00Z', sequence: 'A' },
          { type: 'pauseSequence', at: '2026-03-02T01:00:00Z', sequence: 'P' },
          { type: 'tag', at: '2026-03-02T01:00:00Z', leads: ['+601600000001', '+601600000009'], tag: 'a' },
          { type: 'tag', at: '2026-03-02T01:00:00Z', leads: { device: 'nowhere' }, tag: 'a' },
          { type: 'tag', at: '2026-03-02T01:00:00Z', user: 3, leads: { count: 1 }, tag: 'a' },
        ],
      ),
    );
    hasIssue(cross, 'events[0].sequence', /unknown sequence "Nope" \(sequences: "A", "P"\)/);
    hasIssue(cross, 'events[1].type', /"A" is not paused at that time/);
    hasIssue(cross, 'events[2].type', /"P" is already paused from the start/);
    hasIssue(cross, 'events[3].leads[1]', /no lead of users\[0\] has the phone \+601600000009/);
    hasIssue(cross, 'events[4].leads.device', /unknown device "nowhere"/);
    hasIssue(cross, 'events[5].user', /no such user \(the scenario has 1 user\)/);
    assert.equal(cross.length, 6, JSON.stringify(cross));
  });

  test('generated triggers: triggerCount within count, and only with triggers', () => {
    hasIssue(issuesOf(base([], [], { count: 5, phonePrefix: '+6016', triggers: ['a'], triggerCount: 6 })), 'users[0].leads.triggerCount', /must not exceed count/);
    hasIssue(issuesOf(base([], [], { count: 5, phonePrefix: '+6016', triggerCount: 2 })), 'users[0].leads.triggerCount', /no effect without triggers/);
  });

  test('the CLI exits 2 and names the field', async () => {
    const file = join(scratch, 'loop.json');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, JSON.stringify(base([{ name: 'A', trigger: 'a', next: 'A', steps: [step] }])));
    const io: Io & { err: string } = { err: '', stdout: () => {}, stderr: (t) => void (io.err += t) };
    assert.equal(await simulateCommand([file, '--out', join(scratch, 'never')], io), 2);
    assert.match(io.err, /loop\.json: users\[0\]\.sequences\[0\]\.next: the chain of sequences loops: "A" -> "A"/);
  });
});

/**
 * Names the example's sends "C1", "W2", ... from the scenario itself: each step is known by the
 * longest literal part of its template, which every rendering of it contains.
 */
function exampleTokens(scenario: Scenario): (l: SendLine) => string {
  const parts = (scenario.users[0]!.sequences ?? []).flatMap((q) =>
    q.steps.map((st, i) => {
      const literal = st.message.split(/\{[^}]*\}/).sort((a, b) => b.length - a.length)[0]!;
      return { token: `${q.name[0]}${i + 1}`, literal };
    }),
  );
  return (l) => {
    const found = parts.filter((p) => l.body.includes(p.literal));
    assert.equal(found.length, 1, `one step for ${JSON.stringify(l.body)}`);
    return found[0]!.token;
  };
}

describe('drip-chain example', () => {
  let scenario: Scenario;
  let run: Run;
  let token: (l: SendLine) => string;
  before(async () => {
    const loaded = await loadScenario(join(EXAMPLES, 'drip-chain.json'));
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
    scenario = loaded.scenario;
    token = exampleTokens(scenario);
    run = await runScenario(scenario);
  });

  test('no lead gets a step twice, and each passes through COLD, WARM and HOT in order', () => {
    const byPhone = new Map<string, string[]>();
    for (const l of [...sent(run)].sort((a, b) => a.at.localeCompare(b.at))) byPhone.set(l.to, [...(byPhone.get(l.to) ?? []), token(l)]);
    assert.equal(byPhone.size, 200);
    for (const [to, tokens] of byPhone) {
      assert.equal(new Set(tokens).size, tokens.length, `${to}: ${tokens.join(' ')}`);
      assert.deepEqual(tokens, [...tokens].sort((a, b) => 'CWH'.indexOf(a[0]!) - 'CWH'.indexOf(b[0]!) || a.localeCompare(b)), `${to}: ${tokens.join(' ')}`);
    }
  });

  test('steps go out at their send times, inside the window', () => {
    const hour: Record<string, number> = { C: 10, W: 11, H: 15 };
    const resumed = sequence(run, 'WARM').events[1]!.at;
    for (const l of sent(run)) {
      const t = local(l.at);
      const tk = token(l);
      assert.ok(t.hour >= 9 && t.hour < 20, `${tk} at ${t.toISO()}`);
      // WARM's first step, held by the pause, goes out when WARM resumes.
      if (tk === 'W1' && l.at >= resumed && t.hasSame(local(resumed), 'hour')) continue;
      assert.equal(t.hour, hour[tk[0]!], `${tk} at ${t.toISO()}`);
    }
    const hot = sent(run).filter((l) => token(l) === 'H1');
    assert.ok(hot.length > 0 && hot.every((l) => l.media === 'image'));
  });

  test('the tag event on day 2 enrolls the leads without the tag; the chain hands finishers on', () => {
    const leads = scenario.users[0]!.leads;
    assert.ok(!Array.isArray(leads));
    const untagged = leads.count - leads.triggerCount!;
    assert.deepEqual(run.report.tagEvents.map((t) => [t.gained, t.enrolled]), [[untagged, untagged]]);
    const [cold, warm, hot] = ['COLD', 'WARM', 'HOT'].map((n) => sequence(run, n));
    assert.equal(cold!.enrolled, leads.count);
    assert.equal(warm!.chainedIn, cold!.completed);
    assert.equal(hot!.chainedIn, warm!.completed);
    assert.ok((cold!.exited.byReason.replied ?? 0) > 0, 'some leads replied');
    for (const q of [cold!, warm!, hot!]) {
      assert.equal(q.active, 0, q.name);
      assert.equal(q.enrolled, q.completed + q.exited.total, q.name);
      assert.deepEqual(q.steps.map((st) => st.sent), q.steps.map((st) => sent(run).filter((l) => token(l) === `${q.name[0]}${st.step}`).length), q.name);
    }
  });

  test('WARM sends nothing while paused; what it held goes out at the resume', () => {
    const ev = sequence(run, 'WARM').events;
    assert.deepEqual(ev.map((e) => [e.type, e.outcome]), [
      ['pauseSequence', 'applied'],
      ['resumeSequence', 'applied'],
    ]);
    const warm = sent(run).filter((l) => token(l)[0] === 'W');
    assert.equal(warm.filter((l) => l.at > ev[0]!.at && l.at < ev[1]!.at).length, 0);
    assert.ok(warm.some((l) => l.at === ev[1]!.at), 'held steps go out at the resume');
  });
});
