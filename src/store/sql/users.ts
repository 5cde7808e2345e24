import type { Queryable } from '../db.js';

export interface NewUser {
  email: string;
  name?: string;
  role?: 'admin' | 'member';
  timeZone: string;
  defaultCountry?: string | null;
}

export async function insertUser(db: Queryable, u: NewUser, now: Date): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into users (email, name, role, time_zone, default_country, created_at)
     values ($1, $2, $3, $4, $5, $6) returning id`,
    [u.email, u.name ?? '', u.role ?? 'member', u.timeZone, u.defaultCountry ?? null, now],
  );
  return res.rows[0]!.id;
}
