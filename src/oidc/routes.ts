/**
 * Mounts oidc-provider in the Fastify app: its endpoints under /oidc and
 * discovery at /.well-known/openid-configuration are handed the raw Node
 * request and response (reply.hijack). The body is left unread so the provider
 * parses it itself; Latchkey's CSRF check does not apply to /oidc (OAuth
 * clients post to it; the provider has its own protections).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type Provider from 'oidc-provider';
import { rateLimited } from '../app.js';
import { createProvider, OIDC_PREFIX } from './provider.js';
import { ensureSigningKey } from './signingKeys.js';
import { interactionRoutes } from './interactions.js';

declare module '../context.js' {
  interface Latchkey {
    /** The OpenID Connect provider; set when oidcRoutes is registered. */
    oidc?: Provider;
  }
}

export async function oidcRoutes(app: FastifyInstance) {
  const { config, store, secretBox, now } = app.latchkey;
  const origin = new URL(config.origin);
  await ensureSigningKey(store, secretBox, now());
  const provider = await createProvider(app.latchkey);
  app.latchkey.oidc = provider;
  const callback = provider.callback();

  await app.register(async (scope) => {
    // Leave the body stream to the provider.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    const handoff = async (request: FastifyRequest, reply: FastifyReply) => {
      // Endpoint URLs and cookie security follow the configured origin, never a client's Host or X-Forwarded-*
      // (the provider trusts these headers: provider.proxy = true).
      const headers = request.raw.headers;
      headers.host = origin.host;
      headers['x-forwarded-proto'] = origin.protocol.slice(0, -1);
      headers['x-forwarded-for'] = request.ip;
      delete headers['x-forwarded-host'];
      reply.hijack();
      await callback(request.raw, reply.raw);
    };
    // Per-IP limits like the sign-in endpoints: the token endpoint checks client secrets and PKCE verifiers.
    scope.all(`${OIDC_PREFIX}/*`, { ...rateLimited(app) }, handoff);
    scope.get('/.well-known/openid-configuration', { ...rateLimited(app) }, handoff);
  });
  await app.register(interactionRoutes, { provider });
}
