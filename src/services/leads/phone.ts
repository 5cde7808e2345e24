/**
 * Phone numbers in, E.164 out. libphonenumber-js does the parsing; the user's default country
 * reads national numbers ("012-345 6789" for MY). The reason a number is refused is a stable code
 * a user can act on.
 */
import { parsePhoneNumberWithError, ParseError, validatePhoneNumberLength, type CountryCode } from 'libphonenumber-js/max';

export type PhoneResult = { ok: true; e164: string } | { ok: false; code: PhoneErrorCode; message: string };

export type PhoneErrorCode =
  | 'PHONE_MISSING'
  | 'PHONE_NOT_A_NUMBER'
  | 'PHONE_INVALID_COUNTRY'
  | 'PHONE_TOO_SHORT'
  | 'PHONE_TOO_LONG'
  | 'PHONE_INVALID_LENGTH'
  | 'PHONE_INVALID';

const reasons: Record<string, { code: PhoneErrorCode; message: string }> = {
  NOT_A_NUMBER: { code: 'PHONE_NOT_A_NUMBER', message: 'not a phone number' },
  INVALID_COUNTRY: {
    code: 'PHONE_INVALID_COUNTRY',
    message: 'no country: write the number with its +country code or set a default country',
  },
  TOO_SHORT: { code: 'PHONE_TOO_SHORT', message: 'too short for a phone number' },
  TOO_LONG: { code: 'PHONE_TOO_LONG', message: 'too long for a phone number' },
  INVALID_LENGTH: { code: 'PHONE_INVALID_LENGTH', message: 'wrong number of digits for its country' },
};

function failure(reason: string): PhoneResult {
  const r = reasons[reason] ?? { code: 'PHONE_INVALID' as const, message: 'not a valid phone number' };
  return { ok: false, code: r.code, message: r.message };
}

/** Spreadsheets turn "60123456789" into "6.0123456789E10" or "60123456789.0"; undo the harmless cases. */
function tidy(raw: string): string {
  const s = raw.trim();
  if (/^\d+\.0+$/.test(s)) return s.slice(0, s.indexOf('.'));
  // "00" is the international prefix in most of the world; "0060..." means "+60...".
  if (/^00[1-9]/.test(s.replace(/[\s\-().]/g, ''))) return `+${s.replace(/[\s\-().]/g, '').slice(2)}`;
  return s;
}

export function normalisePhone(raw: string | null | undefined, defaultCountry: string | null | undefined): PhoneResult {
  if (raw === null || raw === undefined || raw.trim() === '') return { ok: false, code: 'PHONE_MISSING', message: 'phone is missing' };
  const text = tidy(raw);
  const country = (defaultCountry ?? undefined) as CountryCode | undefined;
  try {
    const n = parsePhoneNumberWithError(text, country ? { defaultCountry: country } : undefined);
    if (n.isValid()) return { ok: true, e164: n.number };
    const length = validatePhoneNumberLength(text, country ? { defaultCountry: country } : undefined);
    return failure(length ?? 'INVALID');
  } catch (err) {
    if (err instanceof ParseError) return failure(err.message);
    throw err;
  }
}

/** ISO 3166-1 alpha-2 codes libphonenumber-js knows, for validating a user's default country. */
export { isSupportedCountry } from 'libphonenumber-js/max';
