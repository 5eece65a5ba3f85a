/**
 * GET /.well-known/webauthn: WebAuthn L3 §5.11 related origin requests. A browser asked for a passkey ceremony
 * with RP ID config.rpId on a page from another origin fetches this document from https://<rpId> and goes ahead
 * only if that origin is listed. Registered only when LATCHKEY_RELATED_ORIGINS is set, so without it the path is
 * the app's ordinary 404.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { allowedOrigins } from './allowedOrigins.js';

const RelatedOriginsDocument = Type.Object({ origins: Type.Array(Type.String()) }, { additionalProperties: false });

export async function relatedOriginsRoutes(app: FastifyInstance): Promise<void> {
  const { config } = app.latchkey;
  if (config.relatedOrigins.length === 0) return;
  // The same list the ceremonies accept (allowedOrigins.ts): the service's own origin first, then the related ones.
  const document = { origins: [...allowedOrigins(config).list] };
  app.withTypeProvider<TypeBoxTypeProvider>().get('/.well-known/webauthn', { schema: { response: { 200: RelatedOriginsDocument } } }, async (_request, reply) => {
    // The list changes only with the configuration, i.e. at a restart; an hour's caching spares repeat fetches.
    reply.header('cache-control', 'public, max-age=3600').type('application/json');
    return document;
  });
}
