/** /api/v1/sequences: drip sequences a lead tag starts, and their ordered steps. */
import { z } from 'zod';
import { actorOf } from '../auth.js';
import { errorSchema } from '../errors.js';
import { cursorOf, emptyReply, id, idParams, page, pageOf, pageQuery, security, tag, timestamp } from '../schemas.js';
import type { Api, Services } from '../types.js';
import { localTime, mediaInput, mediaView, messageBody, windowInput, windowView } from './campaigns.js';

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

const step = z
  .object({
    id: z.number().int(),
    sequence_id: z.number().int(),
    position: z.number().int(),
    delay_minutes: z.number().int(),
    send_time: z.string().nullable(),
    body: z.string(),
    media: mediaView.nullable(),
  })
  .meta({ id: 'SequenceStep' });

const stepInput = z.strictObject({
  position: z.number().int().min(1).max(100_000).optional().describe('1-based; later steps move down. Default: last'),
  delay_minutes: z
    .number()
    .int()
    .min(0)
    .max(365 * 24 * 60)
    .optional()
    .describe('wait after the previous step (after enrolling, for the first)'),
  send_time: localTime.nullable().optional().describe("then wait for this wall time \"HH:MM\" in the account's zone; null: send when the delay is over"),
  body: messageBody,
  media: mediaInput.nullable().optional(),
});

const stepParams = z.strictObject({ id, stepId: id });

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
    schema: { tags: ['sequences'], summary: 'Pause a sequence', description: 'active -> paused.', security, params: idParams, response: { 200: sequence, ...errors } },
    handler: async (req) => s.sequences.pause(actorOf(req), req.params.id),
  });
  app.post('/api/v1/sequences/:id/resume', {
    schema: { tags: ['sequences'], summary: 'Resume a sequence', description: 'paused -> active.', security, params: idParams, response: { 200: sequence, ...errors } },
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
}
