import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyRateLimit from '@fastify/rate-limit';
import { randomBytes } from 'node:crypto';
import fastifyFormbody from '@fastify/formbody';
import fastifySwagger from '@fastify/swagger';
import type { Actor } from '../review/decisions';
import { registerApi } from './api';
import { registerCodecApi } from './codec-api';
import { registerModelsApi } from './models-api';
import { registerPages } from './pages';
import { csrfUser, describeError, sessionSubject, type ServerDeps } from './session';


declare module 'fastify' {
  interface FastifyRequest {
    actor?: Actor;
  }
}

/**
 * The qcflow HTTP server: reviewer web pages (cookie session, CSRF-protected forms), the JSON API
 * (bearer tokens, so no ambient credential and no CSRF), its OpenAPI document, and a health check.
 */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  // Typed as the default instance so route modules need no logger generics; it is still pino underneath.
  const app = Fastify({ loggerInstance: deps.log, bodyLimit: 4 * 1024 * 1024 }) as unknown as FastifyInstance;
  await app.register(fastifyCookie);
  await app.register(fastifyFormbody);
  // Per client (its bearer token, else its address): a script cannot hammer decisions or guess tokens.
  // Sign-in is limited harder (pages.ts), since each attempt is a token guess.
  await app.register(fastifyRateLimit, {
    max: 600, timeWindow: '1 minute',
    keyGenerator: (req) => req.headers.authorization ?? req.ip,
    errorResponseBuilder: (_req, ctx) => ({ statusCode: 429, message: `too many requests: at most ${ctx.max} per ${ctx.after}; retry in ${Math.ceil(ctx.ttl / 1000)} s` }),
  });
  // Tokens are bound to the signed-in user (sessionSubject): a token pair taken from another session, even
  // an anonymous /login page, does not validate with this user's cookie.
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/cookie', cookieOpts: { path: '/', sameSite: 'strict', httpOnly: true, secure: deps.secureCookies ?? false },
    csrfOpts: { hmacKey: randomBytes(32) }, getUserInfo: (req: FastifyRequest) => csrfUser(sessionSubject(req)),
  });
  // Pages may not be framed, sniffed or pointed elsewhere by injected markup; media stays images.
  app.addHook('onSend', async (req, reply) => {
    void reply.header('X-Content-Type-Options', 'nosniff').header('Referrer-Policy', 'no-referrer').header('X-Frame-Options', 'DENY');
    if (!req.url.startsWith('/api/')) {
      void reply.header('Content-Security-Policy', "default-src 'self'; img-src 'self' data: http: https:; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'");
    }
  });
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'qcflow review API', version: '1', description: 'Review tasks, decisions, project members and QC precision. Every route needs `Authorization: Bearer <token>` (`qcflow token issue`).' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
    hideUntagged: true,
  });

  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, req, reply) => {
    const { status, message, findings } = describeError(err);
    if (status >= 500) req.log.error({ err }, 'request failed');
    if (status === 401) void reply.header('WWW-Authenticate', 'Bearer');
    if (req.url.startsWith('/api/')) return reply.status(status).send({ error: { status, message, ...(findings ? { findings } : {}) } });
    return reply.status(status).type('text/plain; charset=utf-8').send(`${status}: ${message}`);
  });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  registerApi(app, deps);
  if (deps.models) registerModelsApi(app, { ...deps, models: deps.models });
  if (deps.codec) registerCodecApi(app, deps, deps.codec.codec, deps.codec.origins);
  registerPages(app, deps);
  return app;
}
