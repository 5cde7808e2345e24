/** The shapes accounts take on the way out: never a hash, never a secret that was not just made. */
import type { UserRow } from '../../store/sql/users.js';
import type { TokenRow } from '../../store/sql/sessions.js';

export interface UserView {
  id: number;
  email: string;
  name: string;
  role: 'admin' | 'member';
  time_zone: string;
  default_country: string | null;
  /** The tenant owner of a team member; null for an account that owns its data. */
  parent_id: number | null;
  disabled_at: string | null;
  created_at: string;
  updated_at: string;
}

export const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

export function userView(u: UserRow): UserView {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    role: u.role,
    time_zone: u.time_zone,
    default_country: u.default_country,
    parent_id: u.parent_id,
    disabled_at: iso(u.disabled_at),
    created_at: u.created_at.toISOString(),
    updated_at: u.updated_at.toISOString(),
  };
}

export interface TokenView {
  id: number;
  name: string;
  prefix: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export function tokenView(t: TokenRow): TokenView {
  return {
    id: t.id,
    name: t.name,
    prefix: t.prefix,
    created_at: t.created_at.toISOString(),
    expires_at: iso(t.expires_at),
    last_used_at: iso(t.last_used_at),
    revoked_at: iso(t.revoked_at),
  };
}
