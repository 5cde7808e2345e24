/** The audit log: who did what, when. Written once per action, read by admins, trimmed by age. */
import type { Queryable } from '../db.js';

export interface AuditEntry {
  at: Date;
  tenantId: number | null;
  actorId: number | null;
  actorEmail: string | null;
  via: 'session' | 'token' | 'anonymous';
  credentialId: number | null;
  action: string;
  targetType: string | null;
  targetId: number | null;
  method: string;
  route: string;
  statusCode: number;
  requestId: string | null;
  ip: string | null;
}

export async function insertAuditEntry(db: Queryable, e: AuditEntry): Promise<void> {
  await db.query(
    `insert into audit_log (at, tenant_id, actor_id, actor_email, via, credential_id, action, target_type, target_id, method, route, status_code, request_id, ip)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    [e.at, e.tenantId, e.actorId, e.actorEmail, e.via, e.credentialId, e.action, e.targetType, e.targetId, e.method, e.route, e.statusCode, e.requestId, e.ip],
  );
}

export interface AuditRow {
  id: number;
  at: Date;
  tenant_id: number | null;
  actor_id: number | null;
  actor_email: string | null;
  via: string;
  credential_id: number | null;
  action: string;
  target_type: string | null;
  target_id: number | null;
  method: string;
  route: string;
  status_code: number;
  request_id: string | null;
  ip: string | null;
}

export interface AuditFilter {
  tenantId?: number | undefined;
  actorId?: number | undefined;
  /** An action, or a prefix ending in a dot (`campaign.`). */
  action?: string | undefined;
  targetType?: string | undefined;
  targetId?: number | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** Keyset: entries with a smaller id (newest first). */
  before?: number | undefined;
  limit: number;
}

export async function listAudit(db: Queryable, f: AuditFilter): Promise<AuditRow[]> {
  const res = await db.query<AuditRow>(
    `select id, at, tenant_id, actor_id, actor_email, via, credential_id, action, target_type, target_id, method, route, status_code, request_id, ip
       from audit_log
      where id < $1
        and ($2::bigint is null or tenant_id = $2)
        and ($3::bigint is null or actor_id = $3)
        and ($4::text is null or action = $4 or (right($4, 1) = '.' and starts_with(action, $4)))
        and ($5::text is null or target_type = $5)
        and ($6::bigint is null or target_id = $6)
        and ($7::timestamptz is null or at >= $7)
        and ($8::timestamptz is null or at < $8)
      order by id desc
      limit $9`,
    [f.before ?? Number.MAX_SAFE_INTEGER, f.tenantId ?? null, f.actorId ?? null, f.action ?? null, f.targetType ?? null, f.targetId ?? null, f.since ?? null, f.until ?? null, f.limit],
  );
  return res.rows;
}

/** Deletes entries older than `before`, a batch at a time. */
export async function deleteAuditBefore(db: Queryable, before: Date, batch: number): Promise<number> {
  const res = await db.query(`delete from audit_log where id = any(array(select id from audit_log where at < $1 limit $2))`, [before, batch]);
  return res.rowCount;
}
