/**
 * The audit log: one entry per action a user took (who, through which credential, what, on which
 * resource, from where, when). Entries are written by one hook on the HTTP server (api/audit-trail.ts),
 * not by each service; they never hold secrets or bodies. Admins read them.
 */
import type { Clock } from '../../engine/clock.js';
import type { Db } from '../../store/db.js';
import { insertAuditEntry, listAudit, type AuditEntry, type AuditFilter, type AuditRow } from '../../store/sql/audit.js';
import type { Actor } from '../actor.js';
import { forbidden } from '../errors.js';

export interface AuditView {
  id: number;
  at: string;
  tenant_id: number | null;
  actor: { id: number | null; email: string | null; via: 'session' | 'token' | 'anonymous'; credential_id: number | null };
  action: string;
  target: { type: string; id: number | null } | null;
  method: string;
  route: string;
  status_code: number;
  request_id: string | null;
  ip: string | null;
}

function view(r: AuditRow): AuditView {
  return {
    id: r.id,
    at: r.at.toISOString(),
    tenant_id: r.tenant_id,
    actor: { id: r.actor_id, email: r.actor_email, via: r.via as AuditView['actor']['via'], credential_id: r.credential_id },
    action: r.action,
    target: r.target_type === null ? null : { type: r.target_type, id: r.target_id },
    method: r.method,
    route: r.route,
    status_code: r.status_code,
    request_id: r.request_id,
    ip: r.ip,
  };
}

export class AuditService {
  constructor(
    private readonly db: Db,
    readonly clock: Clock,
  ) {}

  async record(e: Omit<AuditEntry, 'at'>): Promise<void> {
    await insertAuditEntry(this.db, { ...e, at: new Date(this.clock.now()) });
  }

  async list(actor: Actor, f: AuditFilter): Promise<AuditView[]> {
    if (actor.role !== 'admin' || actor.teamMember) throw forbidden('ADMIN_REQUIRED', 'only an admin may read the audit log');
    return (await listAudit(this.db, f)).map(view);
  }
}
