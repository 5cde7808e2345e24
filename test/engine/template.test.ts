/**
 * Templates without a database: the parser's rules and errors, and the JS renderer the SQL one is
 * checked against.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_DEPTH,
  MAX_LENGTH,
  MAX_PARTS,
  TemplateError,
  expansions,
  isPlainText,
  jsonNumberText,
  parseTemplate,
  renderTemplate,
  splitName,
  type TemplateLead,
  type TemplateNode,
} from '../../src/engine/content/template.js';
import { seededRandom } from '../../src/engine/pacing.js';

const lead = (over: Partial<TemplateLead> = {}): TemplateLead => ({
  name: 'Mary Ann Smith',
  phone: '+60123456789',
  attributes: {},
  ...over,
});

const first = () => 0;
const render = (src: string, l: TemplateLead = lead(), random: () => number = first): string =>
  renderTemplate(parseTemplate(src), l, random);
const all = (src: string, l: TemplateLead = lead()): string[] => [...(expansions(parseTemplate(src), l) ?? [])].sort();

/** Expects parseTemplate to reject `src` at `index`, with a message matching `message`. */
function rejects(src: string, index: number, message: RegExp): void {
  assert.throws(
    () => parseTemplate(src),
    (err: unknown) => {
      assert.ok(err instanceof TemplateError, String(err));
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'TEMPLATE_INVALID');
      assert.equal(err.index, index, `index of ${JSON.stringify(src)}: ${err.message}`);
      assert.match(err.message, message);
      return true;
    },
  );
}

describe('parseTemplate', () => {
  it('reads text, fields, fallbacks and spintax into nodes', () => {
    const t = parseTemplate('Hi {first_name:there}, {Hello|Hey {name}|}!');
    const expected: TemplateNode[] = [
      { kind: 'text', text: 'Hi ' },
      { kind: 'field', name: 'first_name', fallback: 'there' },
      { kind: 'text', text: ', ' },
      {
        kind: 'spin',
        options: [[{ kind: 'text', text: 'Hello' }], [{ kind: 'text', text: 'Hey ' }, { kind: 'field', name: 'name', fallback: null }], []],
      },
      { kind: 'text', text: '!' },
    ];
    assert.deepEqual(t.nodes, expected);
    assert.deepEqual(t.fields, ['first_name', 'name']);
    assert.equal(t.spins, 1);
    assert.equal(t.source, 'Hi {first_name:there}, {Hello|Hey {name}|}!');
  });

  it('lists distinct fields in first-use order, nested ones included, and counts every spin group', () => {
    const t = parseTemplate('{company} {a|{b|{phone}}} {company} {x|{name}|{NAME}} {First_Name}');
    assert.deepEqual(t.fields, ['company', 'phone', 'name', 'first_name']);
    assert.equal(t.spins, 3);
  });

  it("matches the lead's own fields in any case; attribute keys are case-sensitive", () => {
    assert.deepEqual(parseTemplate('{Name}{PHONE}{Last_Name}').fields, ['name', 'phone', 'last_name']);
    assert.deepEqual(parseTemplate('{Company}{company}').fields, ['Company', 'company']);
  });

  it('accepts identifiers with digits, _ . - up to 64 characters', () => {
    const long = `a${'b'.repeat(63)}`;
    assert.deepEqual(parseTemplate(`{_x}{a1}{company.name}{zip-code}{${long}}`).fields, ['_x', 'a1', 'company.name', 'zip-code', long]);
  });

  it('keeps a fallback verbatim: spaces, colons, quotes', () => {
    const t = parseTemplate(`{name: dear friend }{phone:a:b}{city:}{x:it's "here"}`);
    assert.deepEqual(
      t.nodes.map((n) => (n.kind === 'field' ? n.fallback : null)),
      [' dear friend ', 'a:b', '', `it's "here"`],
    );
  });

  it('reads {{ and }} as literal braces outside groups', () => {
    const t = parseTemplate('a {{name}} b }}{{ {name}}} {{{name}');
    assert.deepEqual(t.nodes, [
      { kind: 'text', text: 'a {name} b }{ ' },
      { kind: 'field', name: 'name', fallback: null },
      { kind: 'text', text: '} {' },
      { kind: 'field', name: 'name', fallback: null },
    ]);
    assert.deepEqual(t.fields, ['name']);
    assert.ok(isPlainText(parseTemplate('{{not a field}} and }}')));
    assert.equal(render('{{not a field}} and }}'), '{not a field} and }');
  });

  it('treats every group with a top-level | as spintax, even one that looks like a fallback', () => {
    assert.deepEqual(all('{name:there|friend}'), ['friend', 'name:there']);
    assert.deepEqual(all('{|}'), ['']);
    assert.deepEqual(all('{a||b}'), ['', 'a', 'b']);
    // A | inside a nested group belongs to that group: the outer one needs its own.
    assert.deepEqual(all('{x{a|b}y|z}'), ['xay', 'xby', 'z']);
    rejects('{x{a|b}y}', 0, /neither a field nor spintax/);
  });

  it('merges adjacent text and leaves no empty text nodes', () => {
    assert.deepEqual(parseTemplate('').nodes, []);
    assert.deepEqual(parseTemplate('a{{b}}c').nodes, [{ kind: 'text', text: 'a{b}c' }]);
    assert.deepEqual(parseTemplate('{a|}').nodes, [{ kind: 'spin', options: [[{ kind: 'text', text: 'a' }], []] }]);
  });

  it('knows a plain template', () => {
    assert.ok(isPlainText(parseTemplate('')));
    assert.ok(isPlainText(parseTemplate('Hello | world: 100% $1')));
    assert.ok(!isPlainText(parseTemplate('{name}')));
    assert.ok(!isPlainText(parseTemplate('{a|b}')));
  });

  describe('errors', () => {
    it('rejects a group that is neither a field nor spintax, at its brace', () => {
      rejects('Hi {Hello world}!', 3, /\{Hello world\} at index 3 is neither a field nor spintax/);
      rejects('{ name }', 0, /neither a field nor spintax/);
      rejects('{1st}', 0, /starting with a letter or _/);
      rejects('{:there}', 0, /neither a field nor spintax/);
      rejects(`{a${'b'.repeat(64)}}`, 0, /at most 64/);
      rejects('ok {a|{bad key}}', 6, /\{bad key\} at index 6/);
    });

    it('rejects empty braces', () => {
      rejects('x{}', 1, /Empty braces at index 1/);
      rejects('{a|{}}', 3, /Empty braces/);
    });

    it('rejects braces in a fallback', () => {
      rejects('{name:{x}}', 0, /fallback of \{name\} at index 0 contains braces/);
    });

    it('rejects an unclosed {, naming the innermost one', () => {
      rejects('Hi {name', 3, /Unclosed '\{' at index 3.*'\{\{'/);
      rejects('{Hi {name|Hey}', 0, /Unclosed/);
      rejects('{Hi|{name}', 0, /Unclosed/);
      rejects('{a|{b|{c', 6, /Unclosed '\{' at index 6/);
    });

    it('rejects a } that closes nothing', () => {
      rejects('Hi}', 2, /Unmatched '\}' at index 2.*'\}\}'/);
      rejects('{name}}', 6, /Unmatched/);
      rejects('}}}', 2, /Unmatched/);
      // A group in the text cannot start with a group: '{{' is the escape.
      rejects('{{great|big} news|an offer}', 11, /Unmatched '\}' at index 11.*'\{\{' before it is a literal '\{'/);
      assert.deepEqual(all('{an offer|{great|big} news}'), ['an offer', 'big news', 'great news']);
      assert.deepEqual(all('{Hi|{{Good|Nice} day|Hey}}'), ['Good day', 'Hey', 'Hi', 'Nice day']);
    });

    it(`rejects nesting deeper than ${MAX_DEPTH}`, () => {
      const nest = (levels: number): string => (levels === 0 ? 'x' : `{a|${nest(levels - 1)}}`);
      assert.equal(parseTemplate(nest(MAX_DEPTH)).spins, MAX_DEPTH);
      // The ninth '{' opens at 3 * 8.
      rejects(nest(MAX_DEPTH + 1), 3 * MAX_DEPTH, /nested more than 8 levels deep at index 24/);
      // A field counts as a level too.
      rejects(`${'{a|'.repeat(MAX_DEPTH)}{name}${'}'.repeat(MAX_DEPTH)}`, 3 * MAX_DEPTH, /nested more than 8/);
    });

    it(`rejects a template over ${MAX_LENGTH} characters`, () => {
      assert.equal(parseTemplate('x'.repeat(MAX_LENGTH)).source.length, MAX_LENGTH);
      rejects('x'.repeat(MAX_LENGTH + 1), MAX_LENGTH, /4097 characters; at most 4096/);
    });

    it(`rejects more than ${MAX_PARTS} parts`, () => {
      // A spin node with n empty options is 1 + n parts.
      const spin = (n: number): string => `{${'|'.repeat(n - 1)}}`;
      assert.equal(parseTemplate(spin(MAX_PARTS - 1)).nodes.length, 1);
      // The 513th part is the 512th option, which starts at 1 + 511.
      rejects(spin(MAX_PARTS), MAX_PARTS, /Too many parts at index 512: a template may have at most 512/);
      // Options' text counts too: {a|a|...} is 1 + 2n parts.
      rejects(`{${Array.from({ length: 256 }, () => 'a').join('|')}}`, 1 + 2 * 255, /at most 512 texts/);
      // Fields and text count as well: "{name}." is 2 parts.
      assert.equal(parseTemplate('{name}.'.repeat(MAX_PARTS / 2)).nodes.length, MAX_PARTS);
      rejects('{name}.'.repeat(MAX_PARTS / 2) + '{name}', 7 * (MAX_PARTS / 2), /at most 512 texts/);
    });

    it('is an Error with a stable code', () => {
      const err = new TemplateError('bad', 4);
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'TEMPLATE_INVALID');
      assert.equal(err.index, 4);
      assert.equal(err.name, 'TemplateError');
    });
  });
});

describe('renderTemplate', () => {
  it("substitutes the lead's fields", () => {
    const l = lead({ name: '  Mary  Ann\tSmith ', phone: '+60123456789' });
    assert.equal(render('{name}|{first_name}|{last_name}|{phone}', l), 'Mary  Ann\tSmith|Mary|Ann\tSmith|+60123456789');
  });

  it('splits names at the first word break and trims every value of any whitespace', () => {
    assert.deepEqual(splitName('Ana'), { first: 'Ana', last: '' });
    assert.deepEqual(splitName('  Ana\u00a0\u3000Maria  Luz\t'), { first: 'Ana', last: 'Maria  Luz' });
    assert.deepEqual(splitName('\ufeff李 小龙'), { first: '李', last: '小龙' });
    assert.deepEqual(splitName('😀 Smile'), { first: '😀', last: 'Smile' });
    assert.deepEqual(splitName(' \t '), { first: '', last: '' });
    assert.deepEqual(splitName('Ana\nMaria\r\nLuz'), { first: 'Ana', last: 'Maria\r\nLuz' });
    // A thin space trims but does not break a word.
    assert.deepEqual(splitName('\u2009Ana\u2009Maria Luz\u2009'), { first: 'Ana\u2009Maria', last: 'Luz' });
    assert.equal(render('[{phone}]', lead({ phone: ' +1 ' })), '[+1]');
  });

  it('uses the fallback for a missing or blank value, and the empty string without one', () => {
    const blank = lead({ name: ' \u00a0\t', attributes: { city: '  ', zip: '' } });
    assert.equal(render('Hi {name:there}, {first_name:friend}{last_name: ?}', blank), 'Hi there, friend ?');
    assert.equal(render('[{name}][{city}][{zip}][{nope}][{nope:-}][{city:}]', blank), '[][][][][-][]');
    assert.equal(render('Hi {first_name:there}', lead({ name: 'Ana' })), 'Hi Ana');
    assert.equal(render('{last_name:(none)}', lead({ name: 'Ana' })), '(none)');
  });

  it('reads attributes of every JSON type', () => {
    const l = lead({
      attributes: {
        s: '  Acme Sdn Bhd ',
        n: 12.5,
        i: -3,
        z: 0,
        big: 1e21,
        tiny: 1.5e-7,
        t: true,
        f: false,
        nul: null,
        obj: { a: 1 },
        arr: [1, 2],
        empty: '',
      },
    });
    const src = '{s}|{n}|{i}|{z}|{big}|{tiny}|{t}|{f}|{nul:-}|{obj:-}|{arr:-}|{empty:-}|{missing:-}';
    assert.equal(render(src, l), 'Acme Sdn Bhd|12.5|-3|0|1000000000000000000000|0.00000015|true|false|-|-|-|-|-');
  });

  it("never reads an attribute from Object.prototype", () => {
    assert.equal(render('[{constructor}][{toString:x}][{__proto__:y}]'), '[][x][y]');
  });

  it('writes numbers as PostgreSQL prints jsonb numbers', () => {
    assert.equal(jsonNumberText(42), '42');
    assert.equal(jsonNumberText(-0), '0');
    assert.equal(jsonNumberText(0.1 + 0.2), '0.30000000000000004');
    assert.equal(jsonNumberText(1e21), '1000000000000000000000');
    assert.equal(jsonNumberText(-1.2345e25), '-12345000000000000000000000');
    assert.equal(jsonNumberText(1e-7), '0.0000001');
    assert.equal(jsonNumberText(-2.5e-9), '-0.0000000025');
  });

  it('never breaks a placeholder inside spintax', () => {
    const l = lead({ name: 'Mary Ann', attributes: { company: 'Acme' } });
    const src = '{Hi {name}|Hello {first_name:friend}|Hey {company}, {name:you}}!';
    assert.deepEqual(all(src, l), ['Hello Mary!', 'Hey Acme, Mary Ann!', 'Hi Mary Ann!']);
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const out = render(src, l, seededRandom(seed));
      assert.doesNotMatch(out, /name|company|\{|\}/);
    }
    assert.deepEqual(all('{Hi {name}|Hello {first_name:friend}}', lead({ name: '' })), ['Hello friend', 'Hi ']);
  });

  it('renders nested spintax with fields', () => {
    const l = lead({ name: 'Ana Luz' });
    assert.deepEqual(all('{a {x|{first_name}|{last_name:?}}|b}', l), ['a Ana', 'a Luz', 'a x', 'b']);
  });

  it('picks each option of a group about equally often', () => {
    const t = parseTemplate('{a|b|c|d}{1|2|3}');
    const random = seededRandom(42);
    const counts = new Map<string, number>();
    const N = 12_000;
    for (let i = 0; i < N; i++) {
      const out = renderTemplate(t, lead(), random);
      for (const c of out) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    for (const c of 'abcd') assert.ok(Math.abs(counts.get(c)! - N / 4) < N * 0.03, `${c}: ${counts.get(c)}`);
    for (const c of '123') assert.ok(Math.abs(counts.get(c)! - N / 3) < N * 0.03, `${c}: ${counts.get(c)}`);
  });

  it('picks the last option even if random returns 1', () => {
    assert.equal(render('{a|b}', lead(), () => 1), 'b');
  });

  it('is plain text for a plain template', () => {
    assert.equal(render('Hello | world'), 'Hello | world');
    assert.equal(render(''), '');
  });
});

describe('expansions', () => {
  it('lists each distinct text once', () => {
    assert.deepEqual(all('{a|a|b}{c|}'), ['a', 'ac', 'b', 'bc']);
    assert.deepEqual(all('plain'), ['plain']);
    assert.deepEqual(all(''), ['']);
  });

  it('answers null past the limit', () => {
    const t = parseTemplate('{0|1}'.repeat(11));
    assert.equal(expansions(t, lead())!.length, 2048);
    assert.equal(expansions(t, lead(), 2047), null);
    assert.equal(expansions(parseTemplate('{0|1|2|3|4|5|6|7|8|9}'.repeat(5)), lead()), null);
  });
});
