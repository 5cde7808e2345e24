/** Server-side sessions and API tokens, and resolving either to the acting user. */
import type { Queryable } from '../db.js';

/**
 * Everything a request needs to know about who is acting, in one statement: every authenticated
 * request runs it, so it is one index lookup on the secret plus the user, its parent (a team
 * member's tenant owner, whose zone and country it works in) and its assigned live devices.
 */
export interface ActorRow {
  user_id: number;
  email: string;
  role: 'admin' | 'member';
  tenant_id: number;
  team_member: boolean;
  device_scope: number[] | null;
  time_zone: string;
  default_country: string | null;
  credential_id: number;
  csrf_token: string | null;
  last_seen_at: Date | null;
  expires_at: Date | null;
}

const actorColumns = `u.id as user_id, u.email, u.role, coalesce(u.parent_id, u.id) as tenant_id,
       u.parent_id is not null as team_member,
       case when u.parent_id is null then null
            else array(select dm.device_id from device_members dm
                         join devices d on d.id = dm.device_id and d.deleted_at is null
                        where dm.user_id = u.id order by dm.device_id) end as device_scope,
       coalesce(p.time_zone, u.time_zone) as time_zone,
       coalesce(p.default_country, u.default_country) as default_country`;

const liveUser = `u.disabled_at is null and (p.id is null or p.disabled_at is null)`;

export async function actorBySession(db: Queryable, secretHash: string, now: Date): Promise<ActorRow | null> {
  const res = await db.query<ActorRow>(
    `select ${actorColumns}, s.id as credential_id, s.csrf_token, s.last_seen_at, s.expires_at
       from sessions s join users u on u.id = s.user_id left join users p on p.id = u.parent_id
      where s.secret_hash = $1 and s.expires_at > $2 and ${liveUser}`,
    [secretHash, now],
  );
  return res.rows[0] ?? null;
}

export async function actorByToken(db: Queryable, secretHash: string, now: Date): Promise<ActorRow | null> {
  const res = await db.query<ActorRow>(
    `select ${actorColumns}, t.id as credential_id, null as csrf_token, t.last_used_at as last_seen_at, t.expires_at
       from api_tokens t join users u on u.id = t.user_id left join users p on p.id = u.parent_id
      where t.secret_hash = $1 and t.revoked_at is null and (t.expires_at is null or t.expires_at > $2) and ${liveUser}`,
    [secretHash, now],
  );
  return res.rows[0] ?? null;
}

export async function insertSession(
  db: Queryable,
  s: { userId: number; secretHash: string; csrfToken: string; expiresAt: Date; ip: string | null; userAgent: string | null },
  now: Date,
): Promise<number> {
  const res = await db.query<{ id: number }>(
    `insert into sessions (user_id, secret_hash, csrf_token, created_at, expires_at, last_seen_at, ip, user_agent)
     values ($1, $2, $3, $4, $5, $4, $6, $7) returning id`,
    [s.userId, s.secretHash, s.csrfToken, now, s.expiresAt, s.ip, s.userAgent],
  );
  return res.rows[0]!.id;
}

export async function touchSession(db: Queryable, id: number, now: Date): Promise<void> {
  await db.query(`update sessions set last_seen_at = $2 where id = $1`, [id, now]);
}

export async function deleteSession(db: Queryable, id: number): Promise<void> {
  await db.query(`delete from sessions where id = $1`, [id]);
}

/** Ends every session of a user but `keep` (a password change keeps the session that made it). */
export async function deleteUserSessions(db: Queryable, userId: number, keep: number | null): Promise<number> {
  const res = await db.query(`delete from sessions where user_id = $1 and id is distinct from $2`, [userId, keep]);
  return res.rowCount;
}

export async function deleteExpiredSessions(db: Queryable, now: Date): Promise<number> {
  const res = await db.query(`delete from sessions where expires_at <= $1`, [now]);
  return res.rowCount;
}

export interface TokenRow {
  id: number;
  name: string;
  prefix: string;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const tokenColumns = `id, name, prefix, created_at, expires_at, last_used_at, revoked_at`;

export async function insertToken(
  db: Queryable,
  t: { userId: number; name: string; secretHash: string; prefix: string; expiresAt: Date | null },
  now: Date,
): Promise<TokenRow> {
  const res = await db.query<TokenRow>(
    `insert into api_tokens (user_id, name, secret_hash, prefix, created_at, expires_at)
     values ($1, $2, $3, $4, $5, $6) returning ${tokenColumns}`,
    [t.userId, t.name, t.secretHash, t.prefix, now, t.expiresAt],
  );
  return res.rows[0]!;
}

export async function listTokens(db: Queryable, userId: number, after: number | undefined, limit: number): Promise<TokenRow[]> {
  const res = await db.query<TokenRow>(
    `select ${tokenColumns} from api_tokens where user_id = $1 and id > $2 order by id limit $3`,
    [userId, after ?? 0, limit],
  );
  return res.rows;
}

export async function getToken(db: Queryable, userId: number, id: number): Promise<TokenRow | null> {
  const res = await db.query<TokenRow>(`select ${tokenColumns} from api_tokens where user_id = $1 and id = $2`, [userId, id]);
  return res.rows[0] ?? null;
}

export async function revokeToken(db: Queryable, userId: number, id: number, now: Date): Promise<TokenRow | null> {
  const res = await db.query<TokenRow>(
    `update api_tokens set revoked_at = coalesce(revoked_at, $3) where user_id = $1 and id = $2 returning ${tokenColumns}`,
    [userId, id, now],
  );
  return res.rows[0] ?? null;
}

export async function touchToken(db: Queryable, id: number, now: Date): Promise<void> {
  await db.query(`update api_tokens set last_used_at = $2 where id = $1`, [id, now]);
}
