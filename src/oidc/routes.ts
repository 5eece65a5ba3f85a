/**
 * Mounts oidc-provider in the Fastify app: its endpoints under /oidc and
 * discovery at /.well-known/openid-configuration are handed the raw Node
 * request and response (reply.hijack). The body is left unread so the provider
 * parses it itself; Latchkey's CSRF check does not apply to /oidc (OAuth
 * clients post to it; the provider has its own protections).
 */
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type Provider from 'oidc-provider';
import { rateLimited } from '../plugins/rateLimited.js';
import { CLIENT_CORS_PATHS, createProvider, OIDC_PREFIX } from './provider.js';
import { isServiceCorsOrigin } from './services.js';
import { checkSecretKeyOpensSigningKeys, ensureSigningKey } from './signingKeys.js';
import { interactionRoutes } from './interactions.js';
import { requestContext } from '../plugins/sessions.js';

declare module '../context.js' {
  interface Latchkey {
    /** The OpenID Connect provider; set when oidcRoutes is registered (replaced when the signing keys change). */
    oidc?: Provider;
    /** Look at the signing keys now; rebuild the provider if `keys rotate` added one or a retired one expired. */
    reloadOidcKeys?: () => Promise<boolean>;
  }
}

/** How often a running server looks for rotated or expired signing keys. */
export const KEY_CHECK_INTERVAL_MS = 60_000;

export async function oidcRoutes(app: FastifyInstance) {
  const { config, store, secretBox, now } = app.latchkey;
  const origin = new URL(config.origin);
  await ensureSigningKey(store, secretBox, now());
  // An instance started with another secret key than the one that sealed these stops here, naming the variable.
  await checkSecretKeyOpensSigningKeys(store, secretBox, now());
  // oidc-provider fixes its keys when it is built: a change of keys builds a new one. Everything else it keeps is
  // in the database (the adapter), so requests in flight carry on with whichever instance they reach.
  const published = async () => (await store.signingKeys.listPublished(now())).map((k) => `${k.kid}:${k.retires_at ?? ''}`).join(',');
  // oidc-provider answers its own failures (500, server_error) and writes them only to its debug channel: here they
  // are logged as the error handler logs Latchkey's own ("request failed"), with the cause, by the request's logger
  // (its reqId is the access log's).
  const requestLoggers = new WeakMap<IncomingMessage, FastifyBaseLogger>();
  const providerFor = async () => {
    const provider = await createProvider(app.latchkey);
    const failed = (ctx: { req: IncomingMessage; path?: string } | undefined, err: unknown) =>
      ((ctx && requestLoggers.get(ctx.req)) ?? app.log).error({ err, path: ctx?.path }, 'OpenID Connect request failed');
    provider.on('server_error', failed);
    // What fails outside oidc-provider's own error handlers (saving its session after the answer is built) reaches Koa,
    // which answers 500 and, with no listener, prints to stderr. Koa's own filter: not what it tells the client.
    // (Provider is a Koa application; its typings list only oidc-provider's own events.)
    (provider as unknown as EventEmitter).on('error', (err: { expose?: boolean; status?: number }, ctx?: { req: IncomingMessage; path?: string }) => {
      if (err?.expose || err?.status === 404) return;
      failed(ctx, err);
    });
    return provider;
  };
  let current = { provider: await providerFor(), keys: await published() };
  let callback = current.provider.callback();
  app.latchkey.oidc = current.provider;
  app.latchkey.reloadOidcKeys = async () => {
    const keys = await published();
    if (keys === current.keys) return false;
    current = { provider: await providerFor(), keys };
    callback = current.provider.callback();
    app.latchkey.oidc = current.provider;
    return true;
  };
  const timer = setInterval(() => {
    app.latchkey.reloadOidcKeys!().catch((err: unknown) => app.log.error({ err }, 'reloading OpenID Connect signing keys failed'));
  }, KEY_CHECK_INTERVAL_MS);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));

  await app.register(async (scope) => {
    // Leave the body stream to the provider.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    const clientCorsPaths = new Set(CLIENT_CORS_PATHS);
    const handoff = async (request: FastifyRequest, reply: FastifyReply) => {
      // oidc-provider answers every CORS preflight, whatever the origin, and checks the client only on the request
      // that follows. Here a preflight for the token, userinfo or revocation endpoints gets no Access-Control-*
      // headers unless a public service lives at that origin, so the browser never sends the request at all.
      if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] && clientCorsPaths.has(request.url.split('?')[0]!)) {
        const corsOrigin = request.headers.origin;
        if (!corsOrigin || !(await isServiceCorsOrigin(store, corsOrigin))) return reply.code(204).header('vary', 'Origin').send();
      }
      // Endpoint URLs and cookie security follow the configured origin, never a client's Host or X-Forwarded-*
      // (the provider trusts these headers: provider.proxy = true).
      const headers = request.raw.headers;
      headers.host = origin.host;
      headers['x-forwarded-proto'] = origin.protocol.slice(0, -1);
      headers['x-forwarded-for'] = requestContext(request).ip;
      delete headers['x-forwarded-host'];
      reply.hijack();
      requestLoggers.set(request.raw, request.log);
      await callback(request.raw, reply.raw);
    };
    // Per-IP limits like the sign-in endpoints: the token endpoint checks client secrets and PKCE verifiers.
    scope.all(`${OIDC_PREFIX}/*`, { ...rateLimited(app) }, handoff);
    // OPTIONS too: a browser preflights discovery when a client library adds a header to its fetch.
    scope.route({ method: ['GET', 'OPTIONS'], url: '/.well-known/openid-configuration', ...rateLimited(app), handler: handoff });
  });
  await app.register(interactionRoutes, { provider: () => current.provider });
}
