/**
 * Records the audit log centrally: every successful write under /api/v1 (POST, PUT, PATCH,
 * DELETE), a lead export, every sign-in and sign-out, and every failed sign-in. The action and
 * target come from the route pattern and its parameters (`POST /api/v1/campaigns/:id/pause` is
 * `campaign.pause` on campaign :id; a create names the id it answered with), so a new route is
 * audited without a line of its own. Only ids, the attempted e-mail of a failed sign-in, the
 * address and the request id are kept: never a body, a password or a token.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AuditService } from '../services/audit/service.js';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Reads worth an entry: data leaving in bulk. */
const AUDITED_READS = new Set(['GET /api/v1/leads/export']);

const SINGULAR: Record<string, string> = {
  me: 'account',
  auth: 'auth',
  tokens: 'token',
  members: 'member',
  users: 'user',
  devices: 'device',
  leads: 'lead',
  campaigns: 'campaign',
  sequences: 'sequence',
  steps: 'step',
  enrollments: 'enrollment',
  imports: 'import',
  media: 'media',
  webhooks: 'webhook',
  deliveries: 'delivery',
  audit: 'audit',
};
/** Path segments that name a collection under a resource (the rest are actions on it). */
const COLLECTIONS = new Set(['steps', 'enrollments', 'imports', 'devices', 'deliveries']);
const METHOD_VERBS: Record<string, string> = { POST: 'create', PUT: 'set', PATCH: 'update', DELETE: 'delete', GET: 'read' };

export interface DerivedAction {
  action: string;
  targetType: string | null;
  targetId: number | null;
  /** A create: the target is the id in the answer, when there is one. */
  creates: boolean;
}

/** `POST /api/v1/sequences/:id/steps` -> sequence.step.create on the new step; see the tests. */
export function actionOf(method: string, route: string, params: Record<string, unknown>): DerivedAction {
  const parts = route.replace(/^\/api\/v1\//, '').split('/').filter((p) => p !== '');
  const names: string[] = [];
  let targetType: string | null = null;
  let targetId: number | null = null;
  let verb: string | null = null;
  for (const [i, p] of parts.entries()) {
    if (p.startsWith(':')) {
      const v = Number(params[p.slice(1)]);
      targetId = Number.isSafeInteger(v) ? v : null;
      continue;
    }
    const next = parts[i + 1];
    if (i === 0 || next?.startsWith(':') || COLLECTIONS.has(p)) {
      const name = SINGULAR[p] ?? p;
      names.push(name);
      // A collection named without an id (PUT /members/:id/devices) leaves the target its parent.
      if (i === 0 || next?.startsWith(':')) {
        targetType = name;
        targetId = null;
      }
      continue;
    }
    verb = p;
  }
  const creates = verb === null && method === 'POST' && !parts[parts.length - 1]!.startsWith(':');
  const action = [...names, verb ?? METHOD_VERBS[method] ?? method.toLowerCase()].join('.');
  if (creates) targetType = names[names.length - 1] ?? null;
  if (targetType === 'account' || targetType === 'auth') targetType = targetType === 'account' ? 'user' : null;
  return { action, targetType, targetId: creates ? null : targetId, creates };
}

interface Captured {
  id?: number;
  user?: { id: number; email: string; parent_id: number | null };
}

export function installAuditTrail(app: FastifyInstance, audit: AuditService, log: Logger | undefined): void {
  const captured = new WeakMap<FastifyRequest, Captured>();
  app.addHook('preSerialization', async (req, _reply, payload: unknown) => {
    if (WRITES.has(req.method) && payload && typeof payload === 'object') {
      const p = payload as { id?: unknown; user?: Captured['user'] };
      captured.set(req, { ...(typeof p.id === 'number' ? { id: p.id } : {}), ...(p.user && typeof p.user.id === 'number' ? { user: p.user } : {}) });
    }
    return payload;
  });
  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload) => {
    const route = req.routeOptions.url;
    if (route === undefined || !route.startsWith('/api/')) return payload;
    const key = `${req.method} ${route}`;
    const status = reply.statusCode;
    const login = key === 'POST /api/v1/auth/login';
    if (!(WRITES.has(req.method) || AUDITED_READS.has(key))) return payload;
    if (status >= 400 && !(login && (status === 401 || status === 403 || status === 429))) return payload;
    const d = actionOf(req.method, route, (req.params ?? {}) as Record<string, unknown>);
    const got = captured.get(req) ?? {};
    const actor = req.actor;
    const credential = req.credential;
    let entry = {
      tenantId: actor?.tenantId ?? null,
      actorId: actor?.userId ?? null,
      actorEmail: actor?.email ?? null,
      via: (credential?.kind ?? 'anonymous') as 'session' | 'token' | 'anonymous',
      credentialId: credential?.id ?? null,
      action: d.action,
      targetType: d.targetType,
      targetId: d.creates ? (got.id ?? null) : d.targetId,
      method: req.method,
      route,
      statusCode: status,
      requestId: req.id,
      ip: req.ip,
    };
    if (login) {
      const email = (req.body as { email?: unknown } | undefined)?.email;
      entry =
        status < 400 && got.user
          ? { ...entry, action: 'auth.login', tenantId: got.user.parent_id ?? got.user.id, actorId: got.user.id, actorEmail: got.user.email, via: 'session', targetType: 'user', targetId: got.user.id }
          : { ...entry, action: 'auth.login_failed', actorEmail: typeof email === 'string' ? email.slice(0, 254) : null, targetType: null, targetId: null };
    }
    if (d.targetType === 'user' && d.action.startsWith('account.')) entry = { ...entry, targetId: actor?.userId ?? null };
    try {
      await audit.record(entry);
    } catch (err) {
      // The action happened; losing its entry is logged loudly rather than failing the answer.
      (log ?? req.log).error({ err, action: entry.action, request: req.id }, 'could not write the audit log');
    }
    return payload;
  });
}
