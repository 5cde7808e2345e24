/** Signing in and out, the caller's own account, API tokens, team members, and (admins) all accounts. */
import { z } from 'zod';
import { actorOf, clearSessionCookie, credentialOf, setSessionCookie } from '../auth.js';
import { errorSchema } from '../errors.js';
import { cursorOf, emptyReply, id, idParams, nullableTimestamp, page, pageOf, pageQuery, security, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';
import { PASSWORD_MAX, PASSWORD_MIN } from '../../services/accounts/auth.js';

const user = z
  .object({
    id: z.number().int(),
    email: z.string(),
    name: z.string(),
    role: z.enum(['admin', 'member']),
    time_zone: z.string(),
    default_country: z.string().nullable(),
    parent_id: z.number().int().nullable(),
    disabled_at: nullableTimestamp,
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'User' });

const member = user.extend({ device_ids: z.array(z.number().int()) }).meta({ id: 'TeamMember' });

const me = user
  .extend({
    tenant_id: z.number().int(),
    team_member: z.boolean(),
    device_scope: z.array(z.number().int()).nullable().describe('a team member’s devices; null: all of the tenant’s'),
    csrf_token: z.string().nullable().describe('send as X-CSRF-Token on writes made with the session cookie'),
    opt_out_words: z.array(z.string()).nullable().describe("replies that opt a lead out (the tenant's); null: the defaults (STOP, UNSUBSCRIBE, BERHENTI, ...)"),
  })
  .meta({ id: 'Me' });

const token = z
  .object({
    id: z.number().int(),
    name: z.string(),
    prefix: z.string(),
    created_at: timestamp,
    expires_at: nullableTimestamp,
    last_used_at: nullableTimestamp,
    revoked_at: nullableTimestamp,
  })
  .meta({ id: 'ApiToken' });

const email = z.email().max(254);
const password = z.string().min(PASSWORD_MIN).max(PASSWORD_MAX);
const zone = z.string().min(1).max(64).describe('IANA time zone, e.g. Asia/Kuala_Lumpur');
const country = z.string().regex(/^[A-Z]{2}$/, 'ISO 3166-1 alpha-2 code, e.g. MY').nullable().describe('default country for phone numbers');

const newAccount = z.strictObject({
  email,
  password,
  name: z.string().max(200).optional(),
  time_zone: zone.optional(),
  default_country: country.optional(),
});

const e = (...codes: (400 | 401 | 403 | 404 | 409 | 422 | 429)[]) => Object.fromEntries(codes.map((c) => [c, errorSchema]));

export function accountRoutes(app: Api, s: Services): void {
  app.post('/api/v1/auth/login', {
    config: { auth: 'public' },
    schema: {
      tags: ['auth'],
      summary: 'Sign in',
      description: 'Sets an HttpOnly session cookie and returns the CSRF token that writes made with it must carry. Failed attempts are throttled per account and per address (429 with Retry-After).',
      security: [],
      body: z.strictObject({ email: z.string().max(254), password: z.string().max(PASSWORD_MAX) }),
      response: { 200: z.object({ user, csrf_token: z.string(), expires_at: timestamp }), ...e(400, 401, 403, 429) },
    },
    handler: async (req, reply) => {
      const r = await s.auth.login(req.body.email, req.body.password, req.ip, req.headers['user-agent'] ?? null);
      setSessionCookie(req, reply, r.sessionSecret, r.expiresAt);
      return { user: r.user, csrf_token: r.csrfToken, expires_at: r.expiresAt.toISOString() };
    },
  });
  app.post('/api/v1/auth/logout', {
    schema: { tags: ['auth'], summary: 'Sign out (ends this session)', security, response: { 204: emptyReply, ...e(401, 403) } },
    handler: async (req, reply) => {
      await s.auth.logout(credentialOf(req));
      clearSessionCookie(req, reply);
      return reply.status(204).send(null);
    },
  });

  app.get('/api/v1/me', {
    schema: { tags: ['me'], summary: 'The signed-in account', security, response: { 200: me, ...e(401) } },
    handler: async (req) => {
      const actor = actorOf(req);
      return {
        ...(await s.users.me(actor)),
        tenant_id: actor.tenantId,
        team_member: actor.teamMember,
        device_scope: actor.deviceScope,
        csrf_token: credentialOf(req).csrfToken,
        opt_out_words: await s.users.optOutWords(actor),
      };
    },
  });
  app.patch('/api/v1/me', {
    schema: {
      tags: ['me'],
      summary: 'Change your name, time zone, default country or opt-out words',
      security,
      body: z.strictObject({
        name: z.string().max(200).optional(),
        time_zone: zone.optional(),
        default_country: country.optional(),
        opt_out_words: z
          .array(z.string().trim().min(1).max(60))
          .min(1)
          .max(100)
          .nullable()
          .optional()
          .describe('whole replies that opt a lead out (case and punctuation ignored); null: back to the defaults'),
      }),
      response: { 200: user, ...e(400, 401, 403) },
    },
    handler: async (req) => {
      const { opt_out_words: words, ...profile } = req.body;
      if (words !== undefined) await s.users.setOptOutWords(actorOf(req), words);
      return s.users.updateMe(actorOf(req), profile);
    },
  });
  app.post('/api/v1/me/password', {
    schema: {
      tags: ['me'],
      summary: 'Change your password',
      description: 'Ends every other session of the account.',
      security,
      body: z.strictObject({ current_password: z.string().max(PASSWORD_MAX), new_password: password }),
      response: { 204: emptyReply, ...e(400, 401, 403) },
    },
    handler: async (req, reply) => {
      await s.auth.changePassword(actorOf(req), credentialOf(req), req.body.current_password, req.body.new_password);
      return reply.status(204).send(null);
    },
  });

  app.get('/api/v1/tokens', {
    schema: { tags: ['tokens'], summary: 'Your API tokens (never their secrets)', security, querystring: z.strictObject(pageQuery), response: { 200: page(token), ...e(400, 401) } },
    handler: async (req) => pageOf(await s.tokens.list(actorOf(req), { after: cursorOf(req.query.cursor), limit: req.query.limit }), req.query.limit),
  });
  app.post('/api/v1/tokens', {
    schema: {
      tags: ['tokens'],
      summary: 'Create an API token',
      description: 'The `token` is shown in this answer only; store it. Use it as `Authorization: Bearer <token>`.',
      security,
      body: z.strictObject({ name: z.string().trim().min(1).max(100), expires_at: timestamp.optional() }),
      response: { 201: token.extend({ token: z.string() }), ...e(400, 401, 403) },
    },
    handler: async (req, reply) => reply.status(201).send(await s.tokens.create(actorOf(req), req.body)),
  });
  app.get('/api/v1/tokens/:id', {
    schema: { tags: ['tokens'], summary: 'One of your API tokens', security, params: idParams, response: { 200: token, ...e(400, 401, 404) } },
    handler: async (req) => s.tokens.get(actorOf(req), req.params.id),
  });
  app.delete('/api/v1/tokens/:id', {
    schema: { tags: ['tokens'], summary: 'Revoke an API token (at once)', security, params: idParams, response: { 204: emptyReply, ...e(400, 401, 403, 404) } },
    handler: async (req, reply) => {
      await s.tokens.revoke(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });

  // Team members: accounts inside the caller's tenant that see only the devices assigned to them.
  app.get('/api/v1/members', {
    schema: { tags: ['members'], summary: 'Your team members', security, querystring: z.strictObject(pageQuery), response: { 200: page(member), ...e(400, 401, 403) } },
    handler: async (req) => pageOf(await s.users.listMembers(actorOf(req), { after: cursorOf(req.query.cursor), limit: req.query.limit }), req.query.limit),
  });
  app.post('/api/v1/members', {
    schema: {
      tags: ['members'],
      summary: 'Add a team member',
      security,
      body: newAccount.extend({ device_ids: z.array(id).max(1000).optional() }),
      response: { 201: member, ...e(400, 401, 403, 404, 409) },
    },
    handler: async (req, reply) => reply.status(201).send(await s.users.createMember(actorOf(req), req.body)),
  });
  app.get('/api/v1/members/:id', {
    schema: { tags: ['members'], summary: 'A team member', security, params: idParams, response: { 200: member, ...e(400, 401, 403, 404) } },
    handler: async (req) => s.users.getMember(actorOf(req), req.params.id),
  });
  app.patch('/api/v1/members/:id', {
    schema: {
      tags: ['members'],
      summary: 'Change or disable a team member',
      security,
      params: idParams,
      body: z.strictObject({ email: email.optional(), name: z.string().max(200).optional(), time_zone: zone.optional(), disabled: z.boolean().optional() }),
      response: { 200: member, ...e(400, 401, 403, 404, 409) },
    },
    handler: async (req) => s.users.updateMember(actorOf(req), req.params.id, req.body),
  });
  app.put('/api/v1/members/:id/devices', {
    schema: {
      tags: ['members'],
      summary: "Set a team member's devices",
      security,
      params: idParams,
      body: z.strictObject({ device_ids: z.array(id).max(1000) }),
      response: { 200: member, ...e(400, 401, 403, 404) },
    },
    handler: async (req) => s.users.setMemberDevices(actorOf(req), req.params.id, req.body.device_ids),
  });
  app.delete('/api/v1/members/:id', {
    schema: { tags: ['members'], summary: 'Remove a team member', security, params: idParams, response: { 204: emptyReply, ...e(400, 401, 403, 404) } },
    handler: async (req, reply) => {
      await s.users.deleteMember(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });

  // Accounts, for admins.
  app.get('/api/v1/users', {
    schema: {
      tags: ['users'],
      summary: 'All accounts (admin)',
      security,
      querystring: z.strictObject({ ...pageQuery, q: z.string().max(200).optional() }),
      response: { 200: page(user), ...e(400, 401, 403) },
    },
    handler: async (req) =>
      pageOf(await s.users.adminList(actorOf(req), { after: cursorOf(req.query.cursor), limit: req.query.limit, q: req.query.q }), req.query.limit),
  });
  app.post('/api/v1/users', {
    schema: {
      tags: ['users'],
      summary: 'Create an account (admin)',
      security,
      body: newAccount.extend({ role: z.enum(['admin', 'member']).optional() }),
      response: { 201: user, ...e(400, 401, 403, 409) },
    },
    handler: async (req, reply) => reply.status(201).send(await s.users.adminCreate(actorOf(req), req.body)),
  });
  app.get('/api/v1/users/:id', {
    schema: { tags: ['users'], summary: 'An account (admin)', security, params: idParams, response: { 200: user, ...e(400, 401, 403, 404) } },
    handler: async (req) => s.users.adminGet(actorOf(req), req.params.id),
  });
  app.patch('/api/v1/users/:id', {
    schema: {
      tags: ['users'],
      summary: 'Change, disable or enable an account (admin)',
      description: 'Disabling signs the account out everywhere and stops its tokens.',
      security,
      params: idParams,
      body: z.strictObject({
        email: email.optional(),
        name: z.string().max(200).optional(),
        role: z.enum(['admin', 'member']).optional(),
        time_zone: zone.optional(),
        default_country: country.optional(),
        disabled: z.boolean().optional(),
      }),
      response: { 200: user, ...e(400, 401, 403, 404, 409) },
    },
    handler: async (req) => s.users.adminUpdate(actorOf(req), req.params.id, req.body),
  });
  app.delete('/api/v1/users/:id', {
    schema: {
      tags: ['users'],
      summary: 'Delete an account and everything it owns (admin)',
      security,
      params: idParams,
      response: { 204: emptyReply, ...e(400, 401, 403, 404, 409) },
    },
    handler: async (req, reply) => {
      await s.users.adminDelete(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });
}
