/** User rows: tenant owners, admins and team members. Password hashes never leave this module's callers' services. */
import type { Queryable } from '../db.js';

export interface NewUser {
  email: string;
  name?: string;
  role?: 'admin' | 'member';
  timeZone: string;
  defaultCountry?: string | null;
  passwordHash?: string | null;
  /** Makes the user a team member of this tenant owner. */
  parentId?: number | null;
}

export interface UserRow {
  id: number;
  email: string;
  name: string;
  role: 'admin' | 'member';
  time_zone: string;
  default_country: string | null;
  parent_id: number | null;
  created_at: Date;
  updated_at: Date;
  disabled_at: Date | null;
}

const columns = `u.id, u.email, u.name, u.role, u.time_zone, u.default_country, u.parent_id, u.created_at, u.updated_at, u.disabled_at`;

export async function insertUser(db: Queryable, u: NewUser, now: Date): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into users (email, name, role, time_zone, default_country, password_hash, parent_id, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $8) returning id`,
    [u.email, u.name ?? '', u.role ?? 'member', u.timeZone, u.defaultCountry ?? null, u.passwordHash ?? null, u.parentId ?? null, now],
  );
  return res.rows[0]!.id;
}

export async function countUsers(db: Queryable): Promise<number> {
  const res = await db.query<{ n: number }>(`select count(*)::int as n from users`);
  return res.rows[0]!.n;
}

export async function getUser(db: Queryable, id: number): Promise<UserRow | null> {
  const res = await db.query<UserRow>(`select ${columns} from users u where u.id = $1`, [id]);
  return res.rows[0] ?? null;
}

/** A login candidate: the account, its hash, and whether it (or its tenant owner) is disabled. */
export interface LoginUser {
  id: number;
  password_hash: string | null;
  disabled: boolean;
}

export async function findLoginUser(db: Queryable, email: string): Promise<LoginUser | null> {
  const res = await db.query<LoginUser>(
    `select u.id, u.password_hash, (u.disabled_at is not null or p.disabled_at is not null) as disabled
       from users u left join users p on p.id = u.parent_id
      where lower(u.email) = lower($1)`,
    [email],
  );
  return res.rows[0] ?? null;
}

export async function getPasswordHash(db: Queryable, id: number): Promise<string | null> {
  const res = await db.query<{ password_hash: string | null }>(`select password_hash from users where id = $1`, [id]);
  return res.rows[0]?.password_hash ?? null;
}

export async function setPasswordHash(db: Queryable, id: number, hash: string, now: Date): Promise<void> {
  await db.query(`update users set password_hash = $2, updated_at = $3 where id = $1`, [id, hash, now]);
}

export interface UserPage {
  /** Only users after this id (keyset pagination, ascending). */
  after?: number | undefined;
  limit: number;
  /** Only team members of this owner. */
  parentId?: number | undefined;
  /** Only tenant owners and admins (no team members). */
  ownersOnly?: boolean | undefined;
  q?: string | undefined;
}

export async function listUsers(db: Queryable, page: UserPage): Promise<UserRow[]> {
  const params: unknown[] = [page.after ?? 0, page.limit];
  const where = ['u.id > $1'];
  if (page.parentId !== undefined) {
    params.push(page.parentId);
    where.push(`u.parent_id = $${params.length}`);
  }
  if (page.ownersOnly) where.push('u.parent_id is null');
  if (page.q) {
    params.push(`%${page.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`(u.email ilike $${params.length} or u.name ilike $${params.length})`);
  }
  const res = await db.query<UserRow>(
    `select ${columns} from users u where ${where.join(' and ')} order by u.id limit $2`,
    params,
  );
  return res.rows;
}

export interface UserChanges {
  email?: string | undefined;
  name?: string | undefined;
  role?: 'admin' | 'member' | undefined;
  timeZone?: string | undefined;
  defaultCountry?: string | null | undefined;
  disabled?: boolean | undefined;
}

/** Applies the given changes; returns the row, or null if there is no such user (in that scope). */
export async function updateUser(
  db: Queryable,
  id: number,
  c: UserChanges,
  now: Date,
  parentId?: number,
): Promise<UserRow | null> {
  const res = await db.query<UserRow>(
    `update users u set
        email = coalesce($2, u.email),
        name = coalesce($3, u.name),
        role = coalesce($4, u.role),
        time_zone = coalesce($5, u.time_zone),
        default_country = case when $6 then $7 else u.default_country end,
        disabled_at = case when $8::boolean is null then u.disabled_at
                           when $8 then coalesce(u.disabled_at, $9) else null end,
        updated_at = $9
      where u.id = $1 and ($10::bigint is null or u.parent_id = $10)
      returning ${columns}`,
    [
      id,
      c.email ?? null,
      c.name ?? null,
      c.role ?? null,
      c.timeZone ?? null,
      c.defaultCountry !== undefined,
      c.defaultCountry ?? null,
      c.disabled ?? null,
      now,
      parentId ?? null,
    ],
  );
  return res.rows[0] ?? null;
}

/**
 * Deletes a user with everything it owns (devices, leads, campaigns, sequences cascade). The outbox
 * keeps no foreign keys, so its waiting rows are cancelled first, in the same transaction.
 */
export async function deleteUser(db: Queryable, id: number, now: Date, parentId?: number): Promise<number[] | null> {
  const found = await db.query<{ id: number }>(
    `select id from users where id = $1 and ($2::bigint is null or parent_id = $2) for update`,
    [id, parentId ?? null],
  );
  if (found.rows.length === 0) return null;
  const devices = await db.query<{ id: number }>(`select id from devices where user_id = $1`, [id]);
  await db.query(
    `update messages set status = 'cancelled', error_code = 'user_deleted', finished_at = $2
      where user_id = $1 and status in ('pending', 'held')`,
    [id, now],
  );
  // Enrollments keep no foreign key: they go with their leads here, the rest cascades.
  await db.query(`delete from enrollments where lead_id in (select id from leads where user_id = $1)`, [id]);
  await db.query(`delete from users where id = $1`, [id]);
  return devices.rows.map((r) => r.id);
}
