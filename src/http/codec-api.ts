import type { FastifyInstance } from 'fastify';
import type { PayloadCodec } from '@temporalio/common';
import { payloadFromJson, payloadToJson, type JsonPayload } from '../clients/payload-codec';
import { ReviewError } from '../review/service';
import { AuthError } from './auth';
import { bearerActor, cookieActor, type ServerDeps } from './session';

/**
 * Temporal's remote codec endpoint (/codec/encode, /codec/decode): the Temporal UI and `temporal workflow
 * show --codec-endpoint` send sealed payloads here to show them in clear. Operators and admins only —
 * decoded payloads are sample data — and only from the browser origins configured for the UI.
 */
export function registerCodecApi(app: FastifyInstance, deps: ServerDeps, codec: PayloadCodec, origins: string[]): void {
  const cors = (origin: string | undefined): Record<string, string> =>
    origin && origins.includes(origin)
      ? { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Methods': 'POST, OPTIONS', 'Access-Control-Allow-Headers': 'Authorization, Content-Type, X-Namespace', 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' }
      : {};
  const body = {
    type: 'object', required: ['payloads'], additionalProperties: false,
    properties: { payloads: { type: 'array', maxItems: 1000, items: { type: 'object', properties: { metadata: { type: 'object', additionalProperties: { type: 'string' } }, data: { type: 'string' } } } } },
  };
  for (const op of ['encode', 'decode'] as const) {
    app.options(`/codec/${op}`, { schema: { hide: true } }, async (req, reply) => reply.headers(cors(req.headers.origin)).status(204).send());
    app.post<{ Body: { payloads: JsonPayload[] } }>(`/codec/${op}`, {
      schema: { tags: ['codec'], summary: `Temporal remote codec: ${op} payloads (operators and admins)`, body },
    }, async (req, reply) => {
      void reply.headers(cors(req.headers.origin));
      // The UI calls with the operator's review-server session cookie (includeCredentials); scripts with a bearer token.
      const actor = req.headers.authorization ? bearerActor(deps, req) : cookieActor(deps, req, reply);
      if (!actor) throw new AuthError('sign in to the review server as an operator (its session cookie), or send `Authorization: Bearer <token>`');
      if (actor.role !== 'operator' && actor.role !== 'admin') throw new ReviewError(403, `${op} of workflow payloads is for operators and admins; ${actor.user} is a ${actor.role}`);
      const payloads = req.body.payloads.map(payloadFromJson);
      const out = op === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
      return { payloads: out.map(payloadToJson) };
    });
  }
}
