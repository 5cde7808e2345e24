/**
 * From a header row to "which column means what". Spreadsheets from CRMs, WhatsApp tools and
 * hand-made lists name the same thing many ways ("No HP", "WhatsApp Number", "phone_number"), so
 * headers are compared with case, spaces, underscores, dashes, dots and accents ignored, against a
 * list of synonyms. A column that is none of the lead's fields is kept as an attribute.
 */

export type LeadField = 'phone' | 'name' | 'firstName' | 'lastName' | 'niches' | 'status' | 'triggers' | 'source' | 'optedOutAt';

/** Synonyms per field, written compact (what `compact()` makes of a header). */
const SYNONYMS: Record<LeadField, readonly string[]> = {
  phone: [
    'phone', 'phones', 'phonenumber', 'phoneno', 'phonenum',
    'mobile', 'mobileno', 'mobilenumber', 'mobilephone', 'cell', 'cellphone', 'cellular',
    'whatsapp', 'whatsappnumber', 'whatsappno', 'wa', 'wano', 'wanumber', 'nowa', 'nomorwa',
    // Not 'no': "No." is the running-number column of many hand-made lists.
    'number', 'tel', 'telno', 'telephone', 'telephonenumber', 'telepon', 'telefon', 'telefono', 'telefone', 'notel',
    'msisdn', 'contactnumber', 'contactno', 'contactphone',
    'hp', 'nohp', 'nomorhp', 'nohandphone', 'handphone', 'handphoneno', 'nomortelepon', 'nombortelefon', 'celular',
  ],
  name: [
    'name', 'fullname', 'contact', 'contactname', 'nama', 'namalengkap', 'namapenuh',
    'customer', 'customername', 'client', 'clientname', 'leadname', 'displayname', 'nome', 'nombre',
  ],
  firstName: ['firstname', 'givenname', 'fname', 'first', 'namadepan'],
  lastName: ['lastname', 'surname', 'familyname', 'lname', 'last', 'namabelakang'],
  niches: ['niche', 'niches', 'tag', 'tags', 'category', 'categories', 'interest', 'interests', 'segment', 'segments', 'label', 'labels'],
  status: ['status', 'stage', 'leadstatus', 'leadstage'],
  triggers: ['trigger', 'triggers'],
  source: ['source', 'leadsource', 'sumber'],
  // Only the export's own column: a free-form "unsubscribed" column could mean anything.
  optedOutAt: ['optedoutat'],
};

/** Columns Fleetcast's export writes that an import does not take back (the database owns them). */
const IGNORED = new Set(['id', 'deviceid', 'createdat', 'updatedat', 'lastreplyat']);

const BY_COMPACT = new Map<string, LeadField>();
for (const [field, names] of Object.entries(SYNONYMS) as [LeadField, readonly string[]][]) {
  for (const n of names) BY_COMPACT.set(n, field);
}

/** Lower case, accents and everything but letters and digits removed: "No. HP" -> "nohp". */
export function compact(header: string): string {
  return header
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '');
}

/** The attribute key a header becomes: "Company Name" -> "company_name". */
export function attributeKey(header: string): string {
  return header
    .trim()
    .toLowerCase()
    .replace(/[\s\-_.]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/** The field a header names, 'ignored', or null for an attribute. */
export function fieldOf(header: string): LeadField | 'ignored' | null {
  const c = compact(header);
  if (IGNORED.has(c)) return 'ignored';
  return BY_COMPACT.get(c) ?? null;
}

/** Headers written "attributes.<key>" carry the key verbatim (the export writes such a column for
 * a key that would otherwise be read as a field or renamed). */
const ATTRIBUTE_PREFIX = /^\s*attributes\.(.+)$/i;

export const MAX_ATTRIBUTE_KEY = 64;
export const MAX_ATTRIBUTES = 100;

export interface ColumnMap {
  /** How many columns the header has: every row must have as many. */
  width: number;
  headers: string[];
  /** Columns per field in header order; the first non-empty cell of a row wins (tags: all). */
  phone: number[];
  name: number[];
  firstName: number[];
  lastName: number[];
  niches: number[];
  status: number[];
  triggers: number[];
  source: number[];
  optedOutAt: number[];
  attributes: { index: number; key: string }[];
}

/** How the export names an attribute column so that an import maps it back to the same key. */
export function exportedAttributeHeader(key: string): string {
  return attributeKey(key) === key && fieldOf(key) === null && !ATTRIBUTE_PREFIX.test(key) && key !== '' ? key : `attributes.${key}`;
}

export function mapHeader(headers: readonly string[]): ColumnMap {
  const m: ColumnMap = {
    width: headers.length,
    headers: [...headers],
    phone: [],
    name: [],
    firstName: [],
    lastName: [],
    niches: [],
    status: [],
    triggers: [],
    source: [],
    optedOutAt: [],
    attributes: [],
  };
  const keys = new Set<string>();
  headers.forEach((h, index) => {
    const prefixed = ATTRIBUTE_PREFIX.exec(h);
    const field = prefixed ? null : fieldOf(h);
    if (field === 'ignored') return;
    if (field !== null) {
      m[field].push(index);
      return;
    }
    let key = (prefixed ? prefixed[1]!.trim() : attributeKey(h)).slice(0, MAX_ATTRIBUTE_KEY);
    if (key === '') key = `column_${index + 1}`;
    // Two columns with one name both keep their values: the second becomes key_2.
    if (keys.has(key)) {
      let n = 2;
      while (keys.has(`${key.slice(0, MAX_ATTRIBUTE_KEY - 1 - String(n).length)}_${n}`)) n++;
      key = `${key.slice(0, MAX_ATTRIBUTE_KEY - 1 - String(n).length)}_${n}`;
    }
    keys.add(key);
    m.attributes.push({ index, key });
  });
  return m;
}
