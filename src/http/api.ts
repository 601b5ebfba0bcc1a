import type { FastifyInstance } from 'fastify';
import type { Labels } from '../ingest/envelope';
import { DECISIONS, type DecisionInput } from '../review/decisions';
import { bearerActor, type ServerDeps } from './session';
import type { QueueQuery } from '../review/service';
import { QUEUE_SORTS, type QueueSort } from '../store/review';

const taskId = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[0-9]{1,18}$' } } } as const;
const projectParam = { type: 'object', required: ['project'], properties: { project: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' } } } as const;
const errorResponse = { description: 'Refused: `{error: {status, message, findings?}}`; nothing changed', type: 'object', additionalProperties: true } as const;
const errors = { 400: errorResponse, 401: errorResponse, 403: errorResponse, 404: errorResponse, 409: errorResponse } as const;

/** The JSON API: the same operations as the pages, for scripts and the CLI. Route schemas generate the OpenAPI document. */
export function registerApi(app: FastifyInstance, deps: ServerDeps): void {
  const { reviews } = deps;
  const tags = ['review'];

  app.get('/api/me', { schema: { tags, summary: 'Who the token belongs to' } }, async (req) => bearerActor(deps, req));

  app.get<{ Querystring: QueueQuery['filter'] & { project?: string; sort?: QueueSort; limit?: number; offset?: number } }>('/api/tasks', {
    schema: {
      tags, summary: 'My queue: tasks I hold, then tasks I may claim (operators and admins: all active tasks), filtered and sorted (default priority: due within the hour first, then likeliest wrong), with `total` and progress `counts`',
      querystring: {
        type: 'object', additionalProperties: false,
        properties: {
          project: { type: 'string' }, reason: { type: 'string' }, annotator: { type: 'string' }, finding: { type: 'string', description: 'a finding rule, or its last part' },
          externalId: { type: 'string', description: 'external ids starting with this' }, minAgeMinutes: { type: 'integer', minimum: 1 }, overdue: { type: 'boolean' },
          sort: { type: 'string', enum: [...QUEUE_SORTS], default: 'priority' },
          limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, offset: { type: 'integer', minimum: 0, default: 0 },
        },
      },
      response: { ...errors },
    },
  }, async (req) => {
    const { project, sort, limit, offset, ...filter } = req.query;
    return reviews.queue(bearerActor(deps, req), { project, sort, limit, offset, filter });
  });

  app.get<{ Params: { id: string } }>('/api/tasks/:id', {
    schema: { tags, summary: 'A task with its sample, annotations, findings of every layer and presigned media URLs', params: taskId, response: { ...errors } },
  }, async (req) => reviews.detail(bearerActor(deps, req), req.params.id));

  app.post<{ Params: { id: string } }>('/api/tasks/:id/claim', {
    schema: { tags, summary: 'Claim a task from the queue (the claim expires after the project\'s claimTtlSeconds)', params: taskId, response: { ...errors } },
  }, async (req) => ({ task: await reviews.claim(bearerActor(deps, req), req.params.id) }));

  app.post<{ Body: { project?: string } | undefined }>('/api/tasks/next', {
    schema: { tags, summary: 'The next task to work on: one I hold, else the oldest claimable one, claimed now; `task: null` when there is none', body: { type: 'object', additionalProperties: false, properties: { project: { type: 'string' } } }, response: { ...errors } },
  }, async (req) => ({ task: (await reviews.next(bearerActor(deps, req), { project: req.body?.project })) ?? null }));

  app.post<{ Params: { id: string }; Body: { decision: DecisionInput['decision']; labels?: Labels; comment?: string } }>('/api/tasks/:id/decision', {
    schema: {
      tags, summary: 'Decide a task. A task decided before answers `result: already_decided` and changes nothing; a correction that breaks the project\'s rules is 422 with findings',
      params: taskId,
      body: {
        type: 'object', required: ['decision'], additionalProperties: false,
        properties: { decision: { type: 'string', enum: [...DECISIONS] }, labels: { type: 'object' }, comment: { type: 'string', maxLength: 2000 } },
      },
      response: { ...errors, 422: errorResponse },
    },
  }, async (req) => reviews.decide(bearerActor(deps, req), req.params.id, req.body));

  app.post<{ Params: { id: string } }>('/api/tasks/:id/undo', {
    schema: { tags, summary: 'Take back my latest decision while the project\'s undo window (review.undoSeconds) is open; the sample\'s next round comes back to me. Refused with 409 once the decision took effect, was undone, or I decided another task since', params: taskId, response: { ...errors } },
  }, async (req) => reviews.undo(bearerActor(deps, req), req.params.id));

  app.get('/api/history', {
    schema: { tags, summary: 'My latest decisions, newest first', response: { ...errors } },
  }, async (req) => ({ decisions: await reviews.history(bearerActor(deps, req), 50) }));

  app.get<{ Params: { project: string } }>('/api/projects/:project/members', {
    schema: { tags, summary: 'Reviewers and leads of a project (operator, admin)', params: projectParam, response: { ...errors } },
  }, async (req) => ({ members: await reviews.members(bearerActor(deps, req), req.params.project) }));

  app.put<{ Params: { project: string; user: string }; Body: { role: 'reviewer' | 'lead' } }>('/api/projects/:project/members/:user', {
    schema: {
      tags, summary: 'Add a reviewer or lead to a project, or change their role (operator, admin)',
      params: { type: 'object', required: ['project', 'user'], properties: { ...projectParam.properties, user: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$' } } },
      body: { type: 'object', required: ['role'], additionalProperties: false, properties: { role: { type: 'string', enum: ['reviewer', 'lead'] } } },
      response: { ...errors },
    },
  }, async (req) => {
    await reviews.setMember(bearerActor(deps, req), { project: req.params.project, user: req.params.user, role: req.body.role });
    return { ok: true };
  });

  app.delete<{ Params: { project: string; user: string } }>('/api/projects/:project/members/:user', {
    schema: { tags, summary: 'Remove a member (operator, admin)', params: { type: 'object', required: ['project', 'user'], properties: { ...projectParam.properties, user: { type: 'string' } } }, response: { ...errors } },
  }, async (req) => ({ removed: await reviews.removeMember(bearerActor(deps, req), { project: req.params.project, user: req.params.user }) }));

  app.get<{ Params: { project: string }; Querystring: { batch?: string; limit: number } }>('/api/projects/:project/malformed-lines', {
    schema: {
      tags, summary: 'Lines refused before they became samples (not JSON, bad envelope, bad UTF-8, no external id), with the field and rule, of one batch or the latest (operator, admin)',
      params: projectParam,
      querystring: { type: 'object', additionalProperties: false, properties: { batch: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } } },
      response: { ...errors },
    },
  }, async (req) => reviews.malformedLines(bearerActor(deps, req), req.params.project, { batchId: req.query.batch, limit: req.query.limit }));

  app.get<{ Params: { project: string } }>('/api/projects/:project/dashboard', {
    schema: { tags, summary: 'What the quality dashboard draws: annotator agreement and speed per data-time window, the stream, open decay alerts, review-queue age and throughput, QC precision (operators, admins, project members)', params: projectParam, response: { ...errors } },
  }, async (req) => reviews.dashboard(bearerActor(deps, req), req.params.project));

  app.get<{ Params: { project: string } }>('/api/projects/:project/qc-precision', {
    schema: { tags, summary: 'QC precision: how often reviewers uphold samples the machine would have accepted, overall, per model version and per reason (operator, admin)', params: projectParam, response: { ...errors } },
  }, async (req) => reviews.precision(bearerActor(deps, req), req.params.project));
}
