/** Schemas shared by many routes: ids, pages, lists in query strings, timestamps. */
import { z } from 'zod';

export const id = z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER);
export const idParams = z.strictObject({ id });

export const timestamp = z.iso.datetime({ offset: true });
export const nullableTimestamp = timestamp.nullable();

/** Keyset pagination: `cursor` is the last id of the previous page, `limit` at most 500. */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().regex(/^\d{1,16}$/, 'a cursor from a previous page').optional(),
};

export function cursorOf(cursor: string | undefined): number | undefined {
  return cursor === undefined ? undefined : Number(cursor);
}

export function page<T extends z.ZodType>(item: T) {
  return z.object({
    data: z.array(item),
    next_cursor: z.string().nullable().describe('pass as `cursor` for the next page; null on the last page'),
  });
}

/** A full page means there may be more: the last id is the next cursor. */
export function pageOf<T extends { id: number }>(rows: T[], limit: number): { data: T[]; next_cursor: string | null } {
  return { data: rows, next_cursor: rows.length === limit && rows.length > 0 ? String(rows[rows.length - 1]!.id) : null };
}

/** `?niche=a&niche=b` or `?niche=a,b`: both mean [a, b]. */
export const stringList = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== ''));

export const idList = z
  .union([z.string(), z.array(z.string())])
  .transform((v, ctx) => {
    const parts = (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
    const out: number[] = [];
    for (const p of parts) {
      const n = Number(p);
      if (!/^\d{1,16}$/.test(p) || !Number.isSafeInteger(n) || n < 1) {
        ctx.addIssue({ code: 'custom', message: `"${p}" is not an id` });
        return z.NEVER;
      }
      out.push(n);
    }
    return out;
  });

export const booleanQuery = z.enum(['true', 'false']).transform((v) => v === 'true');

/** A tag-like value: niches, statuses, triggers. */
export const tag = z.string().trim().min(1).max(100);

export const emptyReply = z.null().describe('no content');

export const security: { [scheme: string]: string[] }[] = [{ cookieAuth: [] }, { bearerAuth: [] }];
