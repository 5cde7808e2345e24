/**
 * The SQL renderer against the JS one, on a real database: every body the database writes must be
 * one of the texts the template can render to for that lead, spintax must reach every option, and
 * nothing in a template may ever be read as SQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expansions, parseTemplate, renderTemplate, type Template, type TemplateLead } from '../../src/engine/content/template.js';
import type { Queryable } from '../../src/store/db.js';
import { templateExpression } from '../../src/store/sql/template-expression.js';
import { insertUser } from '../../src/store/sql/users.js';
import { backends, openTestDb, type TestDb } from '../helpers/db.js';

const NOW = new Date('2026-03-06T12:00:00Z');
const LEADS = 300;

const NAMES = [
  'Mary Ann Smith',
  '  Mary  Ann\tSmith ',
  'Ana',
  '',
  ' \t\u00a0',
  'José\u00a0Luis Pérez',
  '李 小龙',
  '😀 Smile',
  'A\u3000B  C',
  '\ufeffBom Name',
  "O'Brien",
  'Back\\slash $1 --',
  '\u2009Ana\u2009Maria Luz\u2009',
  'Ana\nMaria\r\nLuz',
];

/** Every attribute shape: strings (blank too), numbers, booleans, null, objects, arrays, absent. */
function attributesOf(i: number): Record<string, unknown> {
  const a: Record<string, unknown> = {};
  switch (i % 7) {
    case 0: a.company = 'Acme Sdn Bhd'; break;
    case 1: a.company = '   '; break;
    case 2: a.company = { name: 'Nested' }; break;
    case 3: a.company = ['x']; break;
    case 4: a.company = null; break;
    case 5: a.company = "  Joe's 50% $1 -- \\ 🚀 "; break;
    default: break;
  }
  const numbers = [0, -3, 12.5, 1e21, 1.5e-7, 0.1 + 0.2, 123456789012];
  a.n = numbers[i % numbers.length];
  a.flag = i % 3 === 0;
  if (i % 5 === 0) a['zip-code'] = `  ${10000 + i}  `;
  if (i % 4 === 0) a['a.b'] = 'dotted';
  return a;
}

async function insertLeads(db: Queryable, userId: number): Promise<void> {
  const names: string[] = [];
  const phones: string[] = [];
  const attributes: string[] = [];
  for (let i = 0; i < LEADS; i++) {
    names.push(NAMES[i % NAMES.length]!);
    phones.push(`+6012${String(i).padStart(7, '0')}`);
    attributes.push(JSON.stringify(attributesOf(i)));
  }
  await db.query(
    `insert into leads (user_id, name, phone, attributes, created_at, updated_at)
     select $1, u.name, u.phone, u.attributes, $5, $5
       from unnest($2::text[], $3::text[], $4::jsonb[]) as u(name, phone, attributes)`,
    [userId, names, phones, attributes, NOW],
  );
}

interface Rendered {
  id: number;
  lead: TemplateLead;
  body: string;
}

for (const backend of backends) {
  describe(`template expression on ${backend}`, () => {
    let t: TestDb;
    let userId: number;

    before(async () => {
      t = await openTestDb(backend);
      userId = await insertUser(t.db, { email: 'owner@example.com', timeZone: 'UTC' }, NOW);
      await insertLeads(t.db, userId);
    });
    after(async () => {
      await t.dispose();
    });

    async function renderAll(template: Template, seed: string | number = 7, seedSql?: string): Promise<Rendered[]> {
      const params: unknown[] = [userId, String(seed)];
      const expr = templateExpression(template, params, { lead: 'l', seed: seedSql ?? '$2::bigint' });
      const res = await t.db.query<{ id: number; name: string; phone: string; attributes: Record<string, unknown>; body: string }>(
        // The seed only appears in the expression when there is spintax; naming it here types it always.
        `select l.id, l.name, l.phone, l.attributes, $2::bigint as seed, ${expr} as body from leads l where l.user_id = $1 order by l.id`,
        params,
      );
      assert.equal(res.rows.length, LEADS);
      return res.rows.map((r) => ({ id: Number(r.id), lead: { name: r.name, phone: r.phone, attributes: r.attributes }, body: r.body }));
    }

    /** Each body is one of the texts the JS renderer could have written for that lead. */
    function assertRenderable(template: Template, rows: Rendered[]): void {
      for (const r of rows) {
        const options = expansions(template, r.lead);
        assert.ok(options, 'too many expansions to check');
        assert.ok(options.includes(r.body), `lead ${r.id} ${JSON.stringify(r.lead)}: ${JSON.stringify(r.body)} not in ${JSON.stringify(options.slice(0, 20))}`);
      }
    }

    it("substitutes the lead's fields, attributes and fallbacks exactly as the JS renderer", async () => {
      const template = parseTemplate(
        '[{name}][{name:anon}][{first_name:there}][{last_name:-}][{phone}][{company:business}][{company}]' +
          '[{n}][{flag}][{zip-code:none}][{a.b:}][{missing:?}][{Name}]',
      );
      const rows = await renderAll(template);
      for (const r of rows) assert.equal(r.body, renderTemplate(template, r.lead, () => 0), `lead ${r.id}`);
      const bodies = new Set(rows.map((r) => r.body));
      // The shapes above all occur: blank names fall back, nested attributes count as missing, numbers keep no exponent.
      const joined = [...bodies].join('\n');
      const needles = [
        '[anon][there][-]', '[business][]', '[Acme Sdn Bhd]', `[Joe's 50% $1 -- \\ 🚀]`,
        '[1000000000000000000000]', '[0.00000015]', '[0.30000000000000004]', '[true]', '[false]', '[none]', '[dotted]',
        '[李][小龙]', '[Mary][Ann\tSmith]', '[José][Luis Pérez]', '[Ana\u2009Maria][Luz]', '[Ana][Maria\r\nLuz]',
      ];
      for (const needle of needles) {
        assert.ok(joined.includes(needle), `no body has ${needle}`);
      }
    });

    it('renders spintax to one of its expansions, with fields inside options substituted', async () => {
      const template = parseTemplate('{Hi {name}|Hello {first_name:friend}|Hey {company:there}}, {a {x|{last_name:y}}|b}!');
      const rows = await renderAll(template);
      assertRenderable(template, rows);
      for (const r of rows) assert.doesNotMatch(r.body, /\{|\}|first_name|company/);
    });

    it('reaches every option of every group, about evenly', async () => {
      const template = parseTemplate('{A|B|C}-{x|y|{z|w}}-{1|2|}');
      const rows = await renderAll(template, 12345);
      assertRenderable(template, rows);
      const counts = new Map<string, number>();
      for (const r of rows) {
        for (const part of r.body.split('-').map((p, i) => `${i}:${p}`)) counts.set(part, (counts.get(part) ?? 0) + 1);
      }
      const expected: Record<string, number> = { '0:A': 100, '0:B': 100, '0:C': 100, '1:x': 100, '1:y': 100, '1:z': 50, '1:w': 50, '2:1': 100, '2:2': 100, '2:': 100 };
      for (const [k, n] of Object.entries(expected)) {
        const got = counts.get(k) ?? 0;
        assert.ok(got > n / 2 && got < n * 1.5, `${k}: ${got} of ${LEADS}, expected about ${n}`);
      }
    });

    it('draws each group independently', async () => {
      const template = parseTemplate('{a|b}{a|b}');
      const bodies = new Set((await renderAll(template)).map((r) => r.body));
      assert.deepEqual([...bodies].sort(), ['aa', 'ab', 'ba', 'bb']);
    });

    it('gives the same texts for the same seed and others for another seed', async () => {
      const template = parseTemplate('{Hi|Hello|Hey|Yo} {first_name:there} {1|2|3|4|5}');
      const a = await renderAll(template, 99);
      const b = await renderAll(template, 99);
      const c = await renderAll(template, 100);
      assert.deepEqual(b, a);
      const changed = a.filter((r, i) => r.body !== c[i]!.body).length;
      assert.ok(changed > LEADS / 2, `only ${changed} bodies changed with another seed`);
      assertRenderable(template, c);
    });

    it('takes any bigint seed, the extremes and a column included', async () => {
      const template = parseTemplate('{a|b|c}{d|e}');
      for (const seed of ['9223372036854775807', '-9223372036854775808', '0']) assertRenderable(template, await renderAll(template, seed));
      assertRenderable(template, await renderAll(template, 0, 'l.user_id'));
    });

    it('writes quotes, placeholders, backslashes, emoji and comments literally', async () => {
      const nasty = `It's $1 %s %% \\ \\' 😀 -- '; drop table leads; -- */ /* $$ E'\\n' ?`;
      const src = `${nasty} {name:O'Brien $2 \\ --} {'x|$1::int|--|\\|%s} {{$3}}`;
      const template = parseTemplate(src);
      const rows = await renderAll(template);
      assertRenderable(template, rows);
      for (const r of rows) assert.ok(r.body.startsWith(`${nasty} `), r.body);
      const bodies = new Set(rows.map((r) => r.body.slice(nasty.length)));
      assert.ok([...bodies].some((b) => b.includes(" O'Brien $2 \\ -- ")), 'the fallback with quotes renders');
      for (const o of [" 'x ", ' $1::int ', ' -- ', ' \\ ', ' %s ']) assert.ok([...bodies].some((b) => b.includes(o)), `option ${o}`);
      assert.ok(rows.every((r) => r.body.endsWith(' {$3}')));
      const still = await t.db.query<{ n: number }>(`select count(*)::int as n from leads`);
      assert.equal(still.rows[0]!.n, LEADS);
    });

    it('never writes a literal into the SQL text', () => {
      const params: unknown[] = [];
      const expr = templateExpression(parseTemplate(`Hi {first_name:O'Brien}, {zip-code} {a|b'c}`), params, { lead: 'l', seed: '$1::bigint' });
      for (const literal of ["O'Brien", 'zip-code', "b'c", 'Hi ']) assert.ok(!expr.includes(literal), `${literal} in ${expr}`);
      assert.ok(params.includes("O'Brien") && params.includes('zip-code') && params.includes("b'c"));
      // Each distinct value travels once.
      assert.equal(new Set(params).size, params.length);
    });

    it('renders a plain template as one parameter', async () => {
      const params: unknown[] = [];
      assert.equal(templateExpression(parseTemplate('Hello {{everyone}} | 100%'), params, { lead: 'l', seed: '0' }), '$1::text');
      assert.deepEqual(params, ['Hello {everyone} | 100%']);
      for (const src of ['Hello {{everyone}} | 100%', '']) {
        const rows = await renderAll(parseTemplate(src));
        assert.ok(rows.every((r) => r.body === src.replace('{{', '{').replace('}}', '}')));
      }
    });

    it('renders a group of one option, or none, without drawing', async () => {
      const one: Template = {
        source: '',
        nodes: [
          { kind: 'text', text: '<' },
          { kind: 'spin', options: [[{ kind: 'text', text: 'only ' }, { kind: 'field', name: 'name', fallback: 'x' }]] },
          { kind: 'spin', options: [] },
          { kind: 'text', text: '>' },
        ],
        fields: ['name'],
        spins: 2,
      };
      const rows = await renderAll(one);
      assertRenderable(one, rows);
      assert.ok(rows.some((r) => r.body === '<only Mary Ann Smith>'));
      assertRenderable(parseTemplate('{same|same} {|}'), await renderAll(parseTemplate('{same|same} {|}')));
    });

    it('renders the deepest nesting allowed', async () => {
      const nest = (levels: number): string => (levels === 0 ? '{first_name:x}' : `{${levels}|${nest(levels - 1)}}`);
      const template = parseTemplate(nest(7));
      assert.equal(template.spins, 7);
      const rows = await renderAll(template);
      assertRenderable(template, rows);
      assert.ok(new Set(rows.map((r) => r.body)).size >= 6);
    });
  });
}
