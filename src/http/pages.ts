import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Labels } from '../ingest/envelope';
import { DECISIONS, type Actor, type DecisionInput } from '../review/decisions';
import { ReviewError } from '../review/service';
import { AuthError } from './auth';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { loginPage, REVIEW_SCRIPT_PATH } from './html';
import { parseQueueQuery, queuePage } from './queue-page';
import { taskPage } from './task-page';
import { dashboardPage } from './dashboard-page';
import { cookieActor, csrfToken, describeError, SESSION_COOKIE, type ServerDeps } from './session';

type Form = Record<string, string | undefined>;

const REVIEW_SCRIPT = readFileSync(path.join(__dirname, 'assets', 'review.js'), 'utf8');

/** Only same-site paths after sign-in: an open redirect would let a link send a reviewer anywhere. */
function safeNext(next: string | undefined): string {
  return next && /^\/(?!\/)[\w\-/?=&.%]*$/.test(next) ? next : '/queue';
}

/** Server-rendered reviewer pages. Sign-in puts the token in an HttpOnly SameSite cookie; every form carries a CSRF token. */
export function registerPages(app: FastifyInstance, deps: ServerDeps): void {
  const { reviews } = deps;
  const html = (reply: FastifyReply, body: string, status = 200): FastifyReply => reply.status(status).type('text/html; charset=utf-8').send(body);
  const hidden = { schema: { hide: true } };

  /** The signed-in user, or a redirect to sign-in (GET) / 401 (POST). */
  const requireUser = (req: FastifyRequest, reply: FastifyReply): Actor | undefined => {
    const actor = cookieActor(deps, req, reply);
    if (actor) return actor;
    if (req.method === 'GET') void reply.redirect(`/login?next=${encodeURIComponent(req.url)}`, 303);
    else {
      // A form sent after the session ended: nothing was done. Sign-in leads back to the task, where the
      // page's script offers the decision kept in the browser again.
      const task = /^\/tasks\/(\d+)\//.exec(req.url)?.[1];
      const error = task
        ? 'Your session has ended, so your decision was NOT recorded. Sign in again: you will be back on the task with your decision, labels and note kept, ready to send.'
        : 'Your session has ended; sign in again.';
      void html(reply, loginPage({ csrf: csrfToken(req, reply, true), error, next: task ? `/tasks/${task}` : undefined, passwords }), 401);
    }
    return undefined;
  };
  const csrf = { preHandler: app.csrfProtection };
  const passwords = deps.signIn !== undefined;
  /** What every page shows beside its content: the decision just made while it can be undone, and the reviewer's recent decisions. */
  const beside = async (actor: Actor, done: string | undefined) => ({
    undo: done && /^\d{1,18}$/.test(done) ? await reviews.undoable(actor, done) : undefined,
    history: await reviews.history(actor),
  });

  app.get('/', hidden, async (_req, reply) => reply.redirect('/queue', 303));
  app.get(REVIEW_SCRIPT_PATH, hidden, async (_req, reply) => reply.type('text/javascript; charset=utf-8').header('Cache-Control', 'no-cache').send(REVIEW_SCRIPT));

  app.get<{ Querystring: { next?: string } }>('/login', hidden, async (req, reply) => html(reply, loginPage({ csrf: csrfToken(req, reply), next: safeNext(req.query.next), passwords })));

  app.post<{ Body: Form }>('/login', { ...hidden, ...csrf, config: { rateLimit: { max: 20, timeWindow: '1 minute' } } }, async (req, reply) => {
    let token = (req.body.token ?? '').trim();
    const refuse = (error: string) => html(reply, loginPage({ csrf: csrfToken(req, reply), error, next: req.body.next, passwords, user: req.body.username }), 401);
    if (req.body.username !== undefined && deps.signIn && deps.issue) {
      const actor = await deps.signIn(req.body.username.trim(), req.body.password ?? '');
      if (!actor) {
        req.log.warn({ user: req.body.username.slice(0, 128) }, 'password sign-in refused');
        return refuse('That name and password do not match an active account. Try again, or ask an operator to set your password (qcflow user set).');
      }
      token = deps.issue(actor);
    } else {
      try {
        deps.verify(token);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        return refuse(err.message);
      }
    }
    void reply.setCookie(SESSION_COOKIE, token, { path: '/', httpOnly: true, sameSite: 'strict', secure: deps.secureCookies ?? false });
    return reply.redirect(safeNext(req.body.next), 303);
  });

  app.post('/logout', { ...hidden, ...csrf }, async (_req, reply) => {
    void reply.clearCookie(SESSION_COOKIE, { path: '/' });
    return reply.redirect('/login', 303);
  });

  app.get<{ Querystring: Form }>('/queue', hidden, async (req, reply) => {
    const actor = requireUser(req, reply);
    if (!actor) return reply;
    const query = parseQueueQuery(req.query);
    return html(reply, queuePage({ user: actor.user, csrf: csrfToken(req, reply), ...(await reviews.queue(actor, query)), query, note: req.query.note, ...(await beside(actor, req.query.done)) }));
  });

  /** Opens the next task (claiming one if needed), or the queue with a note when there is none. */
  /** `done`: the task just decided, whose drafts the page's script forgets. */
  const openNext = async (actor: Actor, reply: FastifyReply, note?: string, done?: string): Promise<FastifyReply> => {
    const next = actor.role === 'reviewer' ? await reviews.next(actor) : undefined;
    const d = done ? `&done=${done}` : '';
    return reply.redirect(next ? `/tasks/${next.id}?note=${encodeURIComponent(note ?? '')}${d}` : `/queue?note=${encodeURIComponent(`${note ? `${note}. ` : ''}No more tasks for you right now.`)}${d}`, 303);
  };

  app.post('/next', { ...hidden, ...csrf }, async (req, reply) => {
    const actor = requireUser(req, reply);
    if (!actor) return reply;
    return openNext(actor, reply);
  });

  app.get<{ Params: { id: string }; Querystring: { note?: string; done?: string } }>('/tasks/:id', hidden, async (req, reply) => {
    const actor = requireUser(req, reply);
    if (!actor) return reply;
    return html(reply, taskPage({ user: actor.user, csrf: csrfToken(req, reply), detail: await reviews.detail(actor, req.params.id), note: req.query.note, ...(await beside(actor, req.query.done)) }));
  });

  app.get<{ Params: { project: string } }>('/projects/:project/dashboard', hidden, async (req, reply) => {
    const actor = requireUser(req, reply);
    if (!actor) return reply;
    return html(reply, dashboardPage({ user: actor.user, csrf: csrfToken(req, reply), dashboard: await reviews.dashboard(actor, req.params.project) }));
  });

  app.post<{ Params: { id: string } }>('/tasks/:id/undo', { ...hidden, ...csrf }, async (req, reply) => {
    const actor = requireUser(req, reply);
    if (!actor) return reply;
    try {
      const r = await reviews.undo(actor, req.params.id);
      return reply.redirect(r.next ? `/tasks/${r.next.id}?note=${encodeURIComponent(r.message)}` : `/queue?note=${encodeURIComponent(r.message)}`, 303);
    } catch (err) {
      if (!(err instanceof ReviewError) || ![403, 404, 409].includes(err.status)) throw err;
      return reply.redirect(`/queue?note=${encodeURIComponent(err.message)}`, 303);
    }
  });

  app.post<{ Params: { id: string } }>('/tasks/:id/claim', { ...hidden, ...csrf }, async (req, reply) => {
    const actor = requireUser(req, reply);
    if (!actor) return reply;
    await reviews.claim(actor, req.params.id);
    return reply.redirect(`/tasks/${req.params.id}`, 303);
  });

  app.post<{ Params: { id: string }; Body: Form }>('/tasks/:id/decide', { ...hidden, ...csrf }, async (req, reply) => {
    const actor = requireUser(req, reply);
    if (!actor) return reply;
    const decision = req.body.decision;
    const comment = req.body.comment?.trim() || undefined;
    let labels: Labels | undefined;
    try {
      if (!decision || !(DECISIONS as readonly string[]).includes(decision)) throw new ReviewError(400, `decision must be one of ${DECISIONS.join(', ')}`);
      if (decision === 'correct') {
        try {
          labels = JSON.parse(req.body.labels ?? '') as Labels;
        } catch (err) {
          throw new ReviewError(422, `/labels is not valid JSON: ${(err as Error).message}`);
        }
      }
      const result = await reviews.decide(actor, req.params.id, { decision: decision as DecisionInput['decision'], labels, comment });
      return openNext(actor, reply, result.result === 'already_decided' ? result.message : `Task ${req.params.id}: ${decision} recorded`, req.params.id);
    } catch (err) {
      if (!(err instanceof ReviewError) || ![400, 409, 422].includes(err.status)) throw err;
      // Stay on the task with the reason and what the reviewer typed, so nothing is lost.
      const detail = await reviews.detail(actor, req.params.id);
      return html(reply, taskPage({ user: actor.user, csrf: csrfToken(req, reply), detail, error: { message: describeError(err).message, findings: err.findings }, labelsDraft: decision === 'correct' ? req.body.labels : undefined, commentDraft: comment }), err.status);
    }
  });
}
