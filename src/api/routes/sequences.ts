/** /api/v1/sequences: drip sequences a lead tag starts, and their ordered steps. */
import { z } from 'zod';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { cursorOf, emptyReply, id, idParams, page, pageOf, pageQuery, security, tag, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';
import { localTime, mediaInput, mediaView, messageBody, windowInput, windowView } from './campaigns.js';
import { bodyFilter, bodyFilterOf } from './leads.js';

const sequence = z
  .object({
    id: z.number().int(),
    name: z.string(),
    trigger: z.string(),
    window: windowView.nullable(),
    next_sequence_id: z.number().int().nullable(),
    status: z.enum(['active', 'paused']),
    reentry: z.enum(['never', 'after_completion']),
    on_failure: z.enum(['continue', 'stop']),
    exit_on_reply: z.boolean(),
    created_at: timestamp,
    updated_at: timestamp,
    steps: z.number().int().describe('how many steps it has'),
    enrollments: z
      .object({ active: z.number().int(), paused: z.number().int(), completed: z.number().int(), exited: z.number().int() })
      .optional()
      .describe('enrollments by status; on single-sequence answers only'),
  })
  .meta({ id: 'Sequence' });

const sequenceInput = z.strictObject({
  name: z.string().trim().min(1).max(200),
  trigger: tag.describe('the lead trigger tag that enrolls a lead'),
  window: windowInput.nullable().optional(),
  next_sequence_id: id.nullable().optional().describe('where a lead goes on completing this one; another of your sequences'),
  reentry: z.enum(['never', 'after_completion']).optional().describe('whether a lead that finished may enroll again'),
  on_failure: z.enum(['continue', 'stop']).optional().describe('after a step fails to send: go on with the next one, or end'),
  exit_on_reply: z.boolean().optional().describe('a reply from the lead ends its enrollment (default true)'),
});

const delayInput = z
  .strictObject({
    days: z.number().int().min(0).max(365).optional().describe('calendar days in the account zone: 1 day after 10:00 is 10:00 the next day, DST or not'),
    hours: z.number().int().min(0).max(24 * 365).optional(),
    minutes: z.number().int().min(0).max(60 * 24 * 365).optional(),
  })
  .refine((d) => (d.days ?? 0) * 1440 + (d.hours ?? 0) * 60 + (d.minutes ?? 0) <= 365 * 1440, { message: 'at most 365 days in all' });

const step = z
  .object({
    id: z.number().int(),
    sequence_id: z.number().int(),
    position: z.number().int(),
    delay: z.object({ days: z.number().int(), hours: z.number().int(), minutes: z.number().int() }),
    send_time: z.string().nullable(),
    body: z.string(),
    media: mediaView.nullable(),
  })
  .meta({ id: 'SequenceStep' });

const stepInput = z.strictObject({
  position: z.number().int().min(1).max(100_000).optional().describe('1-based; later steps move down. Default: last'),
  delay: delayInput.optional().describe('wait after the previous step went out (after enrolling, for the first); default none'),
  send_time: localTime.nullable().optional().describe("then wait for this wall time \"HH:MM\" in the account's zone; null: send when the delay is over"),
  body: messageBody,
  media: mediaInput.nullable().optional(),
});

const stepParams = z.strictObject({ id, stepId: id });
const enrollmentParams = z.strictObject({ id, enrollmentId: id });

const enrollmentStatus = z.enum(['active', 'paused', 'completed', 'exited']);

const enrollment = z
  .object({
    id: z.number().int(),
    sequence_id: z.number().int(),
    lead_id: z.number().int(),
    lead_name: z.string().nullable(),
    lead_phone: z.string().nullable(),
    status: enrollmentStatus,
    current_step: z.number().int().describe('the step the lead is on: waiting for it, or its message waiting or in flight'),
    next_due_at: timestamp.nullable().describe('when the current step falls due; its message may still wait for the window or the device'),
    message_id: z.number().int().nullable().describe("the current step's message, once written"),
    message_status: z.string().nullable(),
    exit_reason: z.string().nullable().describe('replied, opted_out, removed, step_failed or not_on_whatsapp'),
    source: z.string().describe('api, trigger, import or chain'),
    chain_depth: z.number().int().describe('0 unless it came from a previous sequence of a chain'),
    last_error: z.string().nullable().describe('no_device: the account has no device to send with; tried again hourly'),
    enrolled_at: timestamp,
    updated_at: timestamp,
    completed_at: timestamp.nullable(),
  })
  .meta({ id: 'Enrollment' });

const enrollInput = z
  .strictObject({
    lead_ids: z.array(id).min(1).max(10_000).optional(),
    filter: bodyFilter.optional().describe('every lead matching it, as the leads list filters (`{}`: all of them)'),
  })
  .refine((b) => b.lead_ids !== undefined || b.filter !== undefined, { message: 'give lead_ids or a filter', path: ['lead_ids'] });

const counts = {
  pending: z.number().int(),
  sent: z.number().int().describe('went out (including those delivered or read since)'),
  delivered: z.number().int(),
  read: z.number().int(),
  failed: z.number().int(),
  other: z.number().int().describe('skipped (not on WhatsApp) or unknown (stopped mid-send)'),
};

const progress = z
  .object({
    sequence_id: z.number().int(),
    status: z.enum(['active', 'paused']),
    enrollments: z.object({ total: z.number().int(), active: z.number().int(), paused: z.number().int(), completed: z.number().int(), exited: z.number().int() }),
    exit_reasons: z.record(z.string(), z.number().int()),
    messages: z.object(counts),
    percent_complete: z.number().describe('steps done over steps planned, for every enrollment; exited ones count as done'),
    estimated_completion: timestamp.nullable().describe('when the last live enrollment should send its last step if each goes out when due; null when none is live or the sequence is paused'),
    steps: z.array(
      z.object({
        step_id: z.number().int(),
        position: z.number().int(),
        reached: z.number().int(),
        active: z.number().int(),
        paused: z.number().int(),
        exited: z.number().int(),
        ...counts,
      }),
    ),
  })
  .meta({ id: 'SequenceProgress' });

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema, 409: errorSchema, 422: errorSchema };

export function sequenceRoutes(app: Api, s: Services): void {
  app.get('/api/v1/sequences', {
    schema: {
      tags: ['sequences'],
      summary: 'List sequences',
      security,
      querystring: z.strictObject({ ...pageQuery, status: z.enum(['active', 'paused']).optional(), trigger: tag.optional() }),
      response: { 200: page(sequence), ...errors },
    },
    handler: async (req) => {
      const q = req.query;
      return pageOf(await s.sequences.list(actorOf(req), { after: cursorOf(q.cursor), limit: q.limit, status: q.status, trigger: q.trigger }), q.limit);
    },
  });
  app.post('/api/v1/sequences', {
    schema: { tags: ['sequences'], summary: 'Create a sequence', security, body: sequenceInput, response: { 201: sequence, ...errors } },
    handler: async (req, reply) => reply.status(201).send(await s.sequences.create(actorOf(req), req.body)),
  });
  app.get('/api/v1/sequences/:id', {
    schema: { tags: ['sequences'], summary: 'Get a sequence', security, params: idParams, response: { 200: sequence, ...errors } },
    handler: async (req) => s.sequences.get(actorOf(req), req.params.id),
  });
  app.patch('/api/v1/sequences/:id', {
    schema: { tags: ['sequences'], summary: 'Change a sequence', security, params: idParams, body: sequenceInput.partial(), response: { 200: sequence, ...errors } },
    handler: async (req) => s.sequences.update(actorOf(req), req.params.id, req.body),
  });
  app.delete('/api/v1/sequences/:id', {
    schema: {
      tags: ['sequences'],
      summary: 'Delete a sequence',
      description: "With its steps and enrollments; the enrollments' waiting messages are cancelled.",
      security,
      params: idParams,
      response: { 204: emptyReply, ...errors },
    },
    handler: async (req, reply) => {
      await s.sequences.delete(actorOf(req), req.params.id);
      return reply.status(204).send(null);
    },
  });
  app.post('/api/v1/sequences/:id/pause', {
    schema: {
      tags: ['sequences'],
      summary: 'Pause a sequence',
      description: "active -> paused. Its enrollments' waiting messages are held and no further step is planned.",
      security,
      params: idParams,
      response: { 200: sequence, ...errors },
    },
    handler: async (req) => s.sequences.pause(actorOf(req), req.params.id),
  });
  app.post('/api/v1/sequences/:id/resume', {
    schema: {
      tags: ['sequences'],
      summary: 'Resume a sequence',
      description: 'paused -> active. Held messages go out again, paced by each device as always; steps that fell due meanwhile are planned.',
      security,
      params: idParams,
      response: { 200: sequence, ...errors },
    },
    handler: async (req) => s.sequences.resume(actorOf(req), req.params.id),
  });

  app.get('/api/v1/sequences/:id/steps', {
    schema: {
      tags: ['sequences'],
      summary: "A sequence's steps",
      description: 'All of them, in order (a sequence has at most 500).',
      security,
      params: idParams,
      response: { 200: z.object({ data: z.array(step) }), ...errors },
    },
    handler: async (req) => ({ data: await s.sequences.steps(actorOf(req), req.params.id) }),
  });
  app.post('/api/v1/sequences/:id/steps', {
    schema: { tags: ['sequences'], summary: 'Add a step', security, params: idParams, body: stepInput, response: { 201: step, ...errors } },
    handler: async (req, reply) => reply.status(201).send(await s.sequences.addStep(actorOf(req), req.params.id, req.body)),
  });
  app.get('/api/v1/sequences/:id/steps/:stepId', {
    schema: { tags: ['sequences'], summary: 'Get a step', security, params: stepParams, response: { 200: step, ...errors } },
    handler: async (req) => s.sequences.step(actorOf(req), req.params.id, req.params.stepId),
  });
  app.patch('/api/v1/sequences/:id/steps/:stepId', {
    schema: {
      tags: ['sequences'],
      summary: 'Change a step',
      description: 'A new `position` moves the step there; the steps in between shift by one.',
      security,
      params: stepParams,
      body: stepInput.partial(),
      response: { 200: step, ...errors },
    },
    handler: async (req) => s.sequences.updateStep(actorOf(req), req.params.id, req.params.stepId, req.body),
  });
  app.delete('/api/v1/sequences/:id/steps/:stepId', {
    schema: {
      tags: ['sequences'],
      summary: 'Delete a step',
      description: 'The steps after it move up one.',
      security,
      params: stepParams,
      response: { 204: emptyReply, ...errors },
    },
    handler: async (req, reply) => {
      await s.sequences.deleteStep(actorOf(req), req.params.id, req.params.stepId);
      return reply.status(204).send(null);
    },
  });

  app.get('/api/v1/sequences/:id/progress', {
    schema: {
      tags: ['sequences'],
      summary: "A sequence's progress",
      description: 'Enrollments by state, each step reached and its messages by outcome, percentage complete and estimated completion.',
      security,
      params: idParams,
      response: { 200: progress, ...errors },
    },
    handler: async (req) => s.sequences.progress(actorOf(req), req.params.id),
  });
  app.post('/api/v1/sequences/:id/enrollments', {
    schema: {
      tags: ['sequences'],
      summary: 'Enroll leads',
      description:
        'Enrolls leads named by `lead_ids` and/or matched by `filter`, in one statement. Leads already in the sequence, opted out, or ' +
        '(re-entry "never") in it before are skipped. Leads also enroll by themselves when they gain the trigger tag.',
      security,
      params: idParams,
      body: enrollInput,
      response: { 200: z.object({ matched: z.number().int(), enrolled: z.number().int(), skipped: z.number().int() }), ...errors },
    },
    handler: async (req) => {
      const f = req.body.filter;
      return s.sequences.enroll(actorOf(req), req.params.id, { lead_ids: req.body.lead_ids, filter: f && bodyFilterOf(f) });
    },
  });
  app.get('/api/v1/sequences/:id/enrollments', {
    schema: {
      tags: ['sequences'],
      summary: "A sequence's enrollments",
      description: 'Newest first.',
      security,
      params: idParams,
      querystring: z.strictObject({ ...pageQuery, status: enrollmentStatus.optional(), step: z.coerce.number().int().min(1).optional(), lead_id: id.optional() }),
      response: { 200: page(enrollment), ...errors },
    },
    handler: async (req) => {
      const q = req.query;
      const rows = await s.sequences.enrollments(actorOf(req), req.params.id, { before: cursorOf(q.cursor), limit: q.limit, status: q.status, step: q.step, lead_id: q.lead_id });
      return pageOf(rows, q.limit);
    },
  });
  app.get('/api/v1/sequences/:id/enrollments/:enrollmentId', {
    schema: { tags: ['sequences'], summary: 'Get an enrollment', security, params: enrollmentParams, response: { 200: enrollment, ...errors } },
    handler: async (req) => s.sequences.enrollment(actorOf(req), req.params.id, req.params.enrollmentId),
  });
  app.post('/api/v1/sequences/:id/enrollments/:enrollmentId/pause', {
    schema: {
      tags: ['sequences'],
      summary: 'Pause an enrollment',
      description: 'active -> paused: its waiting message is held and no later step is planned.',
      security,
      params: enrollmentParams,
      response: { 200: enrollment, ...errors },
    },
    handler: async (req) => s.sequences.pauseEnrollment(actorOf(req), req.params.id, req.params.enrollmentId),
  });
  app.post('/api/v1/sequences/:id/enrollments/:enrollmentId/resume', {
    schema: { tags: ['sequences'], summary: 'Resume an enrollment', description: 'paused -> active.', security, params: enrollmentParams, response: { 200: enrollment, ...errors } },
    handler: async (req) => s.sequences.resumeEnrollment(actorOf(req), req.params.id, req.params.enrollmentId),
  });
  app.delete('/api/v1/sequences/:id/enrollments/:enrollmentId', {
    schema: {
      tags: ['sequences'],
      summary: 'Remove a lead from the sequence',
      description: 'The enrollment ends (exit reason `removed`) and its waiting message is cancelled; it stays listed.',
      security,
      params: enrollmentParams,
      response: { 200: enrollment, ...errors },
    },
    handler: async (req) => s.sequences.removeEnrollment(actorOf(req), req.params.id, req.params.enrollmentId),
  });
  app.get('/api/v1/leads/:id/enrollments', {
    schema: {
      tags: ['sequences'],
      summary: "A lead's sequences",
      description: 'Every enrollment of the lead, newest first (at most 500).',
      security,
      params: idParams,
      response: { 200: z.object({ data: z.array(enrollment) }), ...errors },
    },
    handler: async (req) => ({ data: await s.sequences.leadEnrollments(actorOf(req), req.params.id) }),
  });
}
