/**
 * The one WHERE clause for "these leads of this tenant": listing, export and bulk actions filter
 * through it, so a filter means the same in each. (A campaign's audience is matched inside the
 * engine's materialising statement, with the same semantics: any-of niches, statuses, triggers.) Values always travel as
 * parameters; only clauses whose filter is set are emitted, which lets the planner use the
 * matching index (a catch-all "$n is null or ..." makes a generic plan that uses none).
 */
import type { LeadScope } from '../../services/actor.js';

export interface LeadFilter {
  /** Part of the name (any case) or of the phone's digits. */
  q?: string | undefined;
  /** Leads with any of these niches. */
  niches?: string[] | undefined;
  statuses?: string[] | undefined;
  /** Leads carrying any of these triggers. */
  triggers?: string[] | undefined;
  deviceIds?: number[] | undefined;
  /** true: only leads in the shared pool (no device); false: only leads with a device. */
  pool?: boolean | undefined;
  /** true: only opted-out leads; false: only leads that may be messaged. */
  optedOut?: boolean | undefined;
  source?: string | undefined;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
}

/** Escapes LIKE's wildcards so a search for "50%" finds "50%". */
export function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/**
 * Appends the filter's values to `params` and returns the clause (without "where"). The tenant is
 * always the first condition; a team member's device scope always follows.
 */
export function leadWhere(scope: LeadScope, f: LeadFilter, params: unknown[], alias = 'l'): string {
  const p = (v: unknown): string => {
    params.push(v);
    return `$${params.length}`;
  };
  const c: string[] = [`${alias}.user_id = ${p(scope.tenantId)}`];
  if (scope.deviceIds !== null) c.push(`${alias}.device_id = any(${p(scope.deviceIds)}::bigint[])`);
  if (f.q !== undefined && f.q.trim() !== '') {
    const q = f.q.trim();
    const digits = q.replace(/\D/g, '');
    const byName = `${alias}.name ilike ${p(`%${likeEscape(q)}%`)}`;
    c.push(digits.length >= 3 ? `(${byName} or ${alias}.phone like ${p(`%${digits}%`)})` : byName);
  }
  if (f.niches?.length) c.push(`${alias}.niches && ${p(f.niches)}::text[]`);
  if (f.statuses?.length) c.push(`${alias}.status = any(${p(f.statuses)}::text[])`);
  if (f.triggers?.length) c.push(`${alias}.triggers && ${p(f.triggers)}::text[]`);
  if (f.deviceIds?.length) c.push(`${alias}.device_id = any(${p(f.deviceIds)}::bigint[])`);
  if (f.pool === true) c.push(`${alias}.device_id is null`);
  if (f.pool === false) c.push(`${alias}.device_id is not null`);
  if (f.optedOut === true) c.push(`${alias}.opted_out_at is not null`);
  if (f.optedOut === false) c.push(`${alias}.opted_out_at is null`);
  if (f.source !== undefined) c.push(`${alias}.source = ${p(f.source)}`);
  if (f.createdAfter) c.push(`${alias}.created_at >= ${p(f.createdAfter)}`);
  if (f.createdBefore) c.push(`${alias}.created_at < ${p(f.createdBefore)}`);
  return c.join(' and ');
}
