/**
 * Message templates: personalisation and spintax. A campaign's body is parsed once into a small
 * tree; the tree is rendered here (previews, tests) and compiled to one SQL expression by
 * store/sql/template-expression.ts, which renders it for a whole audience in one statement. Both
 * renderers follow the rules below to the character, so whatever the database writes is one of the
 * texts `expansions` lists for that lead.
 *
 * Syntax (every index is a 0-based offset into the source, counted in UTF-16 code units as
 * JavaScript strings count):
 *
 * - Text outside braces is literal. `{{` is a literal `{` and `}}` a literal `}`. These two escapes
 *   exist outside braces only: inside a group every `{` opens a nested group and every `}` closes
 *   the innermost one, so `{Hi|Hey {name}}` is unambiguous. A spintax option or a fallback
 *   therefore cannot contain a literal brace, and a group in the text cannot start with a nested
 *   group (`{{a|b} c|d}` begins with the escape `{{`; `{d|{a|b} c}` says the same).
 * - `{ident}` is a field and `{ident:fallback}` a field with a fallback, where ident matches
 *   /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/ and the fallback is any text without braces or `|`, kept
 *   verbatim (spaces included). `name`, `first_name`, `last_name` and `phone` (in any letter case)
 *   are the lead's own fields; any other ident is the key of the lead's `attributes`, case
 *   sensitive (`{company}` reads attributes->>'company'; `{a.b}` reads the key "a.b", not a path).
 * - A group with a `|` at its own top level is spintax: `{Hi|Hello|Hey}` renders one option per
 *   lead. Options are templates themselves (fields and nested spintax, but no escapes) and may be
 *   empty (`{Hi|}`). Fields inside options are always substituted: spintax never turns `{name}`
 *   into the word "name". Note that `{name:there|friend}` is spintax of two texts, not a fallback.
 * - Anything else in braces (`{Hello world}`, `{}`), a brace never closed, a `}` never opened,
 *   groups nested more than MAX_DEPTH deep, a source over MAX_LENGTH characters or more than
 *   MAX_PARTS parts (nodes plus spintax options) throws TemplateError with the index of the problem.
 *
 * Values (the same on both renderers):
 * - WHITESPACE below (Unicode White_Space plus U+FEFF) is what name, phone and attribute values are
 *   trimmed of, at both ends. A value that is then empty, or missing, is blank: the fallback renders
 *   instead, or the empty string without one.
 * - name is the lead's trimmed name. first_name is the trimmed name up to its first WORD_BREAKS
 *   character (space, tab, line feed, carriage return, no-break space, ideographic space); last_name
 *   is what follows it, with the whitespace at its start removed (inner whitespace kept as written).
 *   "  Mary  Ann\tSmith " -> "Mary" / "Ann\tSmith"; "Ana" -> "Ana" / "". Breaks are these six, not
 *   all of WHITESPACE, because SQL cuts at each with one cheap split_part (see template-expression.ts);
 *   other whitespace stays inside a word ("Ana\u2009Maria" is one word).
 * - An attribute that is a string renders as is; a boolean as true/false; a number as PostgreSQL
 *   prints a jsonb number, which is String(n) except that exponents are written out in full
 *   (1e21 -> "1000000000000000000000"); null, objects, arrays and absent keys are missing.
 */

export type TemplateNode =
  | { kind: 'text'; text: string }
  | { kind: 'field'; name: string; fallback: string | null }
  | { kind: 'spin'; options: TemplateNode[][] };

export interface Template {
  source: string;
  nodes: TemplateNode[];
  /** Distinct field names used, in first-use order (the lead's own fields lower-cased). */
  fields: string[];
  /** Spintax groups in total, nested ones included. */
  spins: number;
}

export class TemplateError extends Error {
  readonly code = 'TEMPLATE_INVALID';
  constructor(
    message: string,
    readonly index: number,
  ) {
    super(message);
    this.name = 'TemplateError';
  }
}

export interface TemplateLead {
  name: string;
  phone: string;
  attributes: Record<string, unknown>;
}

export const MAX_LENGTH = 4096;
export const MAX_DEPTH = 8;
export const MAX_PARTS = 512;

/** Unicode White_Space and the byte order mark: what a spreadsheet cell may be padded with. */
export const WHITESPACE =
  '\t\n\u000b\f\r \u0085\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff';

/** Where first_name ends: the separators names are actually written with. */
export const WORD_BREAKS = ' \t\n\r\u00a0\u3000';

/** The lead's own fields; every other name is an attribute key. */
export const LEAD_FIELDS = ['name', 'first_name', 'last_name', 'phone'] as const;
export type LeadField = (typeof LEAD_FIELDS)[number];

const IDENT = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

export function isLeadField(name: string): name is LeadField {
  return (LEAD_FIELDS as readonly string[]).includes(name);
}

class Parser {
  private parts = 0;
  readonly fields: string[] = [];
  spins = 0;

  constructor(readonly src: string) {}

  /** Counts one part (node or option) starting at `index`; too many is an error there. */
  private part(index: number): void {
    if (++this.parts > MAX_PARTS) {
      throw new TemplateError(
        `Too many parts at index ${index}: a template may have at most ${MAX_PARTS} texts, fields, spintax groups ` +
          `and options together; use fewer options or split the message.`,
        index,
      );
    }
  }

  private pushText(out: TemplateNode[], text: string, index: number): void {
    if (text === '') return;
    const last = out[out.length - 1];
    if (last?.kind === 'text') last.text += text;
    else {
      this.part(index);
      out.push({ kind: 'text', text });
    }
  }

  /** The whole source: the only level where `{{` and `}}` are escapes. */
  top(): TemplateNode[] {
    const s = this.src;
    const out: TemplateNode[] = [];
    let i = 0;
    while (i < s.length) {
      const next = nextBrace(s, i, s.length);
      this.pushText(out, s.slice(i, next), i);
      if (next === s.length) break;
      if (s[next] === s[next + 1]) {
        this.pushText(out, s[next]!, next);
        i = next + 2;
      } else if (s[next] === '}') {
        // "{{Hi|Hello} there|Hey}" meant a group starting with a group; '{{' read it as a brace.
        const hint = s.lastIndexOf('{{', next) >= 0 ? ` ('{{' before it is a literal '{': a group cannot start with another group, so put text or another option first.)` : '';
        throw new TemplateError(`Unmatched '}' at index ${next}: write '}}' for a literal '}', or add the '{' it closes.${hint}`, next);
      } else {
        i = this.group(out, next, 1);
      }
    }
    return out;
  }

  /** An option's text in [from, to): braces there always open and close groups. */
  private sequence(from: number, to: number, depth: number): TemplateNode[] {
    const out: TemplateNode[] = [];
    let i = from;
    while (i < to) {
      const next = nextBrace(this.src, i, to);
      this.pushText(out, this.src.slice(i, next), i);
      if (next === to) break;
      // The group scan that delimited this option balanced its braces: this is a '{'.
      i = this.group(out, next, depth);
    }
    return out;
  }

  /** The group opening at `open`; returns the index after its '}'. */
  private group(out: TemplateNode[], open: number, depth: number): number {
    if (depth > MAX_DEPTH) {
      throw new TemplateError(`Braces are nested more than ${MAX_DEPTH} levels deep at index ${open}; flatten the spintax.`, open);
    }
    const { close, pipes } = this.scan(open);
    if (pipes.length > 0) {
      this.part(open);
      this.spins++;
      const node: TemplateNode = { kind: 'spin', options: [] };
      out.push(node);
      let from = open + 1;
      for (const end of [...pipes, close]) {
        this.part(from);
        node.options.push(this.sequence(from, end, depth + 1));
        from = end + 1;
      }
      return close + 1;
    }
    const body = this.src.slice(open + 1, close);
    const colon = body.indexOf(':');
    const ident = colon < 0 ? body : body.slice(0, colon);
    const shown = body.length > 40 ? `{${body.slice(0, 40)}...}` : `{${body}}`;
    if (body === '') {
      throw new TemplateError(
        `Empty braces at index ${open}: write a field such as {name}, spintax such as {Hi|Hello}, or {{}} for literal braces.`,
        open,
      );
    }
    if (!IDENT.test(ident)) {
      throw new TemplateError(
        `${shown} at index ${open} is neither a field nor spintax: a field is {name} or {name:fallback}, its name made of ` +
          `letters, digits, _ . - (starting with a letter or _, at most 64), and spintax separates options with | as in {Hi|Hello}. ` +
          `Write {{ and }} for literal braces.`,
        open,
      );
    }
    const fallback = colon < 0 ? null : body.slice(colon + 1);
    if (fallback !== null && /[{}]/.test(fallback)) {
      throw new TemplateError(
        `The fallback of {${ident}} at index ${open} contains braces; a fallback is plain text without { } or |.`,
        open,
      );
    }
    const lower = ident.toLowerCase();
    const name = isLeadField(lower) ? lower : ident;
    this.part(open);
    out.push({ kind: 'field', name, fallback });
    if (!this.fields.includes(name)) this.fields.push(name);
    return close + 1;
  }

  /** Finds the '}' closing the group at `open` and the '|' at that group's own level. */
  private scan(open: number): { close: number; pipes: number[] } {
    const s = this.src;
    const opens: number[] = [open];
    const pipes: number[] = [];
    for (let i = open + 1; i < s.length; i++) {
      const c = s[i];
      if (c === '{') opens.push(i);
      else if (c === '}') {
        opens.pop();
        if (opens.length === 0) return { close: i, pipes };
      } else if (c === '|' && opens.length === 1) pipes.push(i);
    }
    // The innermost unclosed brace is the likeliest typo: "{Hi {name|Hey}" forgot the one after name.
    const at = opens[opens.length - 1]!;
    throw new TemplateError(`Unclosed '{' at index ${at}: close it with '}', or write '{{' for a literal '{'.`, at);
  }
}

function nextBrace(s: string, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const c = s[i];
    if (c === '{' || c === '}') return i;
  }
  return to;
}

export function parseTemplate(source: string): Template {
  if (source.length > MAX_LENGTH) {
    throw new TemplateError(
      `The template has ${source.length} characters; at most ${MAX_LENGTH} are allowed (the excess starts at index ${MAX_LENGTH}).`,
      MAX_LENGTH,
    );
  }
  const p = new Parser(source);
  const nodes = p.top();
  return { source, nodes, fields: p.fields, spins: p.spins };
}

/** No fields and no spintax: the same text for every lead (escaped braces are plain text). */
export function isPlainText(t: Template): boolean {
  return t.fields.length === 0 && t.spins === 0;
}

/** The source's literal text, for a plain template (every lead gets exactly this). */
export function plainText(t: Template): string {
  return t.nodes.map((n) => (n.kind === 'text' ? n.text : '')).join('');
}

const WS = new Set(WHITESPACE);

export function trimWhitespace(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && WS.has(s[a]!)) a++;
  while (b > a && WS.has(s[b - 1]!)) b--;
  return s.slice(a, b);
}

/** The trimmed name split at its first word break; the rest loses its leading whitespace. */
export function splitName(name: string): { first: string; last: string } {
  const t = trimWhitespace(name);
  let i = 0;
  while (i < t.length && !WORD_BREAKS.includes(t[i]!)) i++;
  return { first: t.slice(0, i), last: trimWhitespace(t.slice(i)) };
}

/** A JS number as PostgreSQL prints the jsonb number JSON.stringify writes for it: no exponent. */
export function jsonNumberText(n: number): string {
  const s = String(n);
  const m = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const digits = m[2]! + (m[3] ?? '');
  const point = m[2]!.length + Number(m[4]);
  let body: string;
  if (point >= digits.length) body = digits + '0'.repeat(point - digits.length);
  else if (point <= 0) body = `0.${'0'.repeat(-point)}${digits}`;
  else body = `${digits.slice(0, point)}.${digits.slice(point)}`;
  return m[1]! + body;
}

/** An attribute's text, or null when it counts as missing. */
function attributeText(v: unknown): string | null {
  switch (typeof v) {
    case 'string':
      return v;
    case 'boolean':
      return String(v);
    case 'bigint':
      return String(v);
    case 'number':
      // JSON has no NaN or Infinity: such a value could never reach the database.
      return Number.isFinite(v) ? jsonNumberText(v) : null;
    default:
      return null;
  }
}

/** The field's value for this lead: trimmed, or null when missing. */
export function fieldValue(name: string, lead: TemplateLead): string | null {
  switch (name) {
    case 'name':
      return trimWhitespace(lead.name);
    case 'first_name':
      return splitName(lead.name).first;
    case 'last_name':
      return splitName(lead.name).last;
    case 'phone':
      return trimWhitespace(lead.phone);
    default: {
      // Own keys only: {constructor} must not find Object.prototype's.
      const v = Object.hasOwn(lead.attributes, name) ? attributeText(lead.attributes[name]) : null;
      return v === null ? null : trimWhitespace(v);
    }
  }
}

function fieldText(node: { name: string; fallback: string | null }, lead: TemplateLead): string {
  const v = fieldValue(node.name, lead);
  return v === null || v === '' ? (node.fallback ?? '') : v;
}

/** Renders for one lead; `random` (values in [0, 1)) picks each spintax option. */
export function renderTemplate(t: Template, lead: TemplateLead, random: () => number): string {
  const render = (nodes: readonly TemplateNode[]): string => {
    let out = '';
    for (const n of nodes) {
      if (n.kind === 'text') out += n.text;
      else if (n.kind === 'field') out += fieldText(n, lead);
      else if (n.options.length > 0) {
        const k = Math.min(n.options.length - 1, Math.floor(random() * n.options.length));
        out += render(n.options[k]!);
      }
    }
    return out;
  };
  return render(t.nodes);
}

/**
 * Every distinct text the template renders to for this lead, or null when there are more than
 * `limit` (or enumerating them would hold more than `limit` partial texts at once).
 */
export function expansions(t: Template, lead: TemplateLead, limit = 10_000): string[] | null {
  const expand = (nodes: readonly TemplateNode[]): Set<string> | null => {
    let acc = new Set<string>(['']);
    for (const n of nodes) {
      let parts: Set<string>;
      if (n.kind === 'text') parts = new Set([n.text]);
      else if (n.kind === 'field') parts = new Set([fieldText(n, lead)]);
      else {
        parts = new Set();
        if (n.options.length === 0) parts.add('');
        for (const o of n.options) {
          const e = expand(o);
          if (e === null) return null;
          for (const x of e) parts.add(x);
          if (parts.size > limit) return null;
        }
      }
      const next = new Set<string>();
      for (const a of acc) {
        for (const b of parts) {
          next.add(a + b);
          if (next.size > limit) return null;
        }
      }
      acc = next;
    }
    return acc;
  };
  const all = expand(t.nodes);
  return all === null ? null : [...all];
}
