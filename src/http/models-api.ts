import type { FastifyInstance } from 'fastify';
import { STAGES, type Stage } from '../models/lifecycle';
import type { ModelRegistryService } from '../models/registry-service';
import { bearerActor, type ServerDeps } from './session';

const versionParams = {
  type: 'object', required: ['tenant', 'name', 'version'],
  properties: { tenant: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }, name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' }, version: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' } },
} as const;
const errorResponse = { description: 'Refused: `{error: {status, message}}`; nothing changed', type: 'object', additionalProperties: true } as const;
const errors = { 400: errorResponse, 401: errorResponse, 403: errorResponse, 404: errorResponse, 409: errorResponse } as const;
type VersionParams = { tenant: string; name: string; version: string };
const idOf = (p: VersionParams): string => `${p.tenant}/${p.name}/${p.version}`;

/** The model registry's API: tokens carry a tenant and a registry role; another tenant's models answer 404. */
export function registerModelsApi(app: FastifyInstance, deps: ServerDeps & { models: ModelRegistryService }): void {
  const { models } = deps;
  const tags = ['models'];

  app.get<{ Querystring: { tenant?: string; name?: string; stage?: Stage; alias?: string } }>('/api/models', {
    schema: {
      tags, summary: 'Model versions of my tenant (a registry admin without a tenant: all), by name, stage or alias',
      querystring: { type: 'object', additionalProperties: false, properties: { tenant: { type: 'string' }, name: { type: 'string' }, stage: { type: 'string', enum: [...STAGES] }, alias: { type: 'string' } } },
      response: { ...errors },
    },
  }, async (req) => ({ versions: await models.list(bearerActor(deps, req), req.query) }));

  app.get<{ Params: VersionParams }>('/api/models/:tenant/:name/:version', {
    schema: { tags, summary: 'A version with its stage, its model\'s aliases and its lifecycle events', params: versionParams, response: { ...errors } },
  }, async (req) => models.show(bearerActor(deps, req), idOf(req.params)));

  app.get<{ Params: VersionParams }>('/api/models/:tenant/:name/:version/lineage', {
    schema: { tags, summary: 'Ancestors, descendants and the projects and releases a version scored', params: versionParams, response: { ...errors } },
  }, async (req) => models.lineage(bearerActor(deps, req), idOf(req.params)));

  app.post<{ Params: VersionParams; Body: { to: Stage; reason: string } }>('/api/models/:tenant/:name/:version/stage', {
    schema: {
      tags, summary: 'Move a version along its lifecycle (publisher: validated, canary, back to validated; admin: also production and archived)', params: versionParams,
      body: { type: 'object', required: ['to', 'reason'], additionalProperties: false, properties: { to: { type: 'string', enum: [...STAGES] }, reason: { type: 'string', minLength: 1, maxLength: 2000 } } },
      response: { ...errors },
    },
  }, async (req) => models.moveStage(bearerActor(deps, req), idOf(req.params), req.body.to, req.body.reason));

  app.put<{ Params: VersionParams; Body: { metadata: Record<string, unknown>; reason: string } }>('/api/models/:tenant/:name/:version/metadata', {
    schema: {
      tags, summary: 'Replace a version\'s metadata; checked against its tenant\'s metadata schema (422 names each field and rule); publisher or admin',
      params: versionParams,
      body: { type: 'object', required: ['metadata', 'reason'], additionalProperties: false, properties: { metadata: { type: 'object' }, reason: { type: 'string', minLength: 1, maxLength: 2000 } } },
      response: { ...errors, 422: errorResponse },
    },
  }, async (req) => {
    await models.setMetadata(bearerActor(deps, req), idOf(req.params), req.body.metadata, req.body.reason);
    return { ok: true };
  });

  const tenantParams = { type: 'object', required: ['tenant'], properties: { tenant: versionParams.properties.tenant } } as const;
  app.get<{ Params: { tenant: string } }>('/api/tenants/:tenant/metadata-schema', {
    schema: { tags, summary: 'The JSON Schema a tenant requires of its versions\' metadata (null: any object)', params: tenantParams, response: { ...errors } },
  }, async (req) => models.metadataSchema(bearerActor(deps, req), req.params.tenant));

  app.put<{ Params: { tenant: string }; Body: { schema: Record<string, unknown> | null } }>('/api/tenants/:tenant/metadata-schema', {
    schema: {
      tags, summary: 'Set (null: remove) the tenant\'s metadata schema (admin); answers which registered versions do not fit it',
      params: tenantParams,
      body: { type: 'object', required: ['schema'], additionalProperties: false, properties: { schema: { type: ['object', 'null'] } } },
      response: { ...errors, 422: errorResponse },
    },
  }, async (req) => models.setMetadataSchema(bearerActor(deps, req), req.params.tenant, req.body.schema));

  app.put<{ Params: VersionParams & { alias: string }; Body: { reason: string } }>('/api/models/:tenant/:name/:version/aliases/:alias', {
    schema: {
      tags, summary: 'Point an alias of the model at this version, atomically (production: admin)',
      params: { ...versionParams, required: [...versionParams.required, 'alias'], properties: { ...versionParams.properties, alias: { type: 'string' } } },
      body: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 2000 } } },
      response: { ...errors },
    },
  }, async (req) => {
    await models.setAlias(bearerActor(deps, req), idOf(req.params), req.params.alias, req.body.reason);
    return { ok: true };
  });
}
