/**
 * buildApp(config): registers the infrastructure plugins and the feature
 * folders, nothing else. Tests call it with an in-memory or test database and
 * drive it through `app.inject`.
 */
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import rateLimit from '@fastify/rate-limit';
import type { Duplex } from 'node:stream';
import { canonicalRequestUrl } from './plugins/canonicalUrl.js';
import { AccessLog } from './http/accessLog.js';
import { RATE_LIMIT_WINDOW_SECONDS, rateLimitStore } from './plugins/rateLimited.js';
import { closeRedis, openRedis } from './redis/openRedis.js';
import { createChallengeStore } from './webauthn/challengeStore.js';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { Config } from './config/index.js';
import type { Latchkey } from './context.js';
import { openDatabase, type Db } from './db/connect.js';
import { createStore } from './db/store.js';
import { randomToken } from './crypto.js';
import { WebAuthn } from './webauthn/ceremonies.js';
import { createMailer } from './mail/createMailer.js';
import type { Mailer } from './mail/mailer.js';
import { devOutboxRoutes } from './mail/devOutboxRoutes.js';
import { ensureDefaultTemplate } from './admin/emailTemplates.js';
import { SecretBox } from './secretBox.js';
import { AltchaCaptcha, type Captcha } from './captcha/captcha.js';
import type { AnyKind } from './strategies/authenticatorKind.js';
import { Trust } from './webauthn/trust.js';
import { auditPolicyRefusals } from './webauthn/auditPolicyRefusals.js';
import { leaveCertificatePathsToLatchkey } from './webauthn/attestation.js';
import { KindRegistry } from './strategies/kindRegistry.js';
import { defaultKinds } from './strategies/defaultKinds.js';
import { adminRoutes } from './admin/routes.js';
import { servicesRoutes } from './oidc/servicesRoutes.js';
import { selfServiceRoutes } from './flows/selfService/routes.js';
import { otherMethodsRoutes } from './flows/settings/otherMethods.js';
import { errorHandlerPlugin, sendError, toAppError } from './plugins/errorHandler.js';
import { sessionsPlugin } from './plugins/sessions.js';
import { refuseNulCharactersPlugin } from './plugins/refuseNulCharacters.js';
import { securityHeadersPlugin } from './plugins/securityHeaders.js';
import { assetsPlugin } from './plugins/assets.js';
import { trustRefreshPlugin } from './plugins/trustRefresh.js';
import { webhookDeliveryPlugin } from './webhooks/deliverWebhooks.js';
import { signInRoutes } from './flows/signin/routes.js';
import { signUpRoutes } from './flows/signup/routes.js';
import { enrolmentRoutes } from './flows/enrolment/routes.js';
import { settingsRoutes } from './flows/settings/routes.js';
import { reauthRoutes } from './flows/reauth/routes.js';
import { passkeyUpgradeRoutes } from './flows/passkeyUpgrade/routes.js';
import { fido2Routes } from './fido2/routes.js';
import { LinkedAccounts } from './strategies/linkedAccount/linkedAccounts.js';
import { oidcRoutes } from './oidc/routes.js';
import './context.js';
import { relatedOriginsRoutes } from './webauthn/relatedOriginsRoutes.js';
import { apiRoutes } from './api/routes.js';
import { scimRoutes } from './scim/routes.js';
import { openApiDocsRoutes, openApiPlugin } from './api/openApi.js';
import { NO_METRICS, PrometheusMetrics } from './metrics/metrics.js';
import { metricsPlugin } from './metrics/metricsPlugin.js';

export interface BuildOptions {
  /** An open database; when absent the app opens `config.databaseUrl` and closes it on shutdown. */
  db?: Db;
  /** Clock, for tests of expiry. */
  now?: () => number;
  /** Overrides config.rateLimitPerMinute (benchmarks turn it off with 0). */
  rateLimitPerMinute?: number;
  /** Fastify's logger option, in place of the app's (its level, serializers and redaction go with it). */
  logger?: boolean | object;
  /** Where the app's own logger writes, instead of standard output (tests read the lines as the app writes them). */
  logStream?: { write(line: string): void };
  /** Outgoing mail; by default made from the configuration (SMTP, development outbox, or none). */
  mailer?: Mailer;
  /** The CAPTCHA for self-service (default: ALTCHA proof of work). */
  captcha?: Captcha;
  /** The kinds of authenticator (default: src/strategies/defaultKinds.ts); tests add their own. */
  kinds?: readonly AnyKind[];
}

export const BODY_LIMIT = 64 * 1024;

/**
 * Query parameters whose values the log keeps: OAuth and OpenID Connect request parameters that are not secrets.
 * Every other value is replaced, so an upstream's `code` and `state`, an `id_token_hint`, a `login_hint` or a
 * console search for a person never reach the log, and neither does a parameter added later.
 */
const LOGGED_QUERY_PARAMETERS = new Set(['client_id', 'response_type', 'response_mode', 'scope', 'redirect_uri', 'post_logout_redirect_uri', 'prompt', 'acr_values', 'max_age', 'ui_locales', 'display', 'error', 'error_description']);

/** A request's URL as the log shows it: an invitation's token (a bearer secret) and query values other than those above redacted. */
export function redactUrl(url: string): string {
  const path = url.replace(/^\/enrol\/[^/?#]+/, '/enrol/[redacted]');
  const q = path.indexOf('?');
  if (q < 0) return path;
  const query = path
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      if (LOGGED_QUERY_PARAMETERS.has(name)) return pair;
      return eq < 0 ? '[redacted]' : `${name}=[redacted]`;
    })
    .join('&');
  return `${path.slice(0, q)}?${query}`;
}

/** Security headers for answers that bypass the plugins (framework errors before routing). */
function applyBaselineHeaders(reply: FastifyReply): void {
  reply
    .header('content-security-policy', "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'")
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'same-origin')
    .header('x-frame-options', 'DENY');
}

/** Malformed HTTP or oversized headers never reach Fastify's router: answer in the registry's JSON shape. */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable) return void socket.destroy();
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? 431 : 400;
  const body = JSON.stringify({
    error: tooLarge
      ? { code: 'headers_too_large', message: 'The request headers are too large.' }
      : { code: 'bad_request', message: 'The request could not be understood.' },
  });
  socket.end(
    `HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? {
      level: config.logLevel,
      redact: ['req.headers.cookie', 'req.headers["x-csrf-token"]', 'res.headers["set-cookie"]'],
      serializers: { req: (req: { method: string; url: string }) => ({ method: req.method, url: redactUrl(req.url) }) },
      ...(options.logStream ? { stream: options.logStream } : {}),
    },
    // One access-log line per request, when it is answered (src/http/accessLog.ts).
    logController: new AccessLog(config.accessLog),
    // Errors Fastify raises before routing (bad URL encoding, over-long parameters) still go through the registry.
    frameworkErrors: (error, request, reply) => {
      applyBaselineHeaders(reply);
      const appErr = toAppError(error);
      // Refused before routing, so the access log never sees the answer: said here, as the error handler says its own.
      request.log.info({ req: request, code: appErr.code }, 'request refused');
      return sendError(request, reply, appErr);
    },
    clientErrorHandler: answerClientError,
    bodyLimit: BODY_LIMIT,
    // One spelling per path before routing (plugins/canonicalUrl.ts): /admin//users, /admin%2Fusers and
    // /admin/users. are /admin/users, so access and answers never depend on how a path was spelled.
    rewriteUrl: (req) => canonicalRequestUrl(req.url ?? '/'),
    // No time limit on a plugin's start (Fastify's default is 10 s): some do real work once (the OpenID Connect
    // provider generates its first RSA signing key, the assets plugin bundles the browser script), and how long that
    // takes depends on the machine and its load. A start that fails at random on a busy host is worse than a slow one.
    pluginTimeout: 0,
    // Trust X-Forwarded-For from the configured number of proxy hops only.
    trustProxy: (_address: string, hop: number) => hop < config.trustProxyHops,
  }).setValidatorCompiler(TypeBoxValidatorCompiler);

  const ownsDb = !options.db;
  const db = options.db ?? openDatabase(config.databaseUrl, { backgroundCheckpoints: true, cacheMiB: config.sqliteCacheMiB });
  if (ownsDb) await db.migrate();
  const store = createStore(db);
  const now = options.now ?? Date.now;
  const secret = await store.settings.getOrInsert('server_secret', randomToken(32));
  await ensureDefaultTemplate(store, Date.now());
  const perMinute = options.rateLimitPerMinute ?? config.rateLimitPerMinute;
  const ownsMailer = !options.mailer;
  const mailer = options.mailer ?? createMailer(config);
  if (!config.fidoConformance) leaveCertificatePathsToLatchkey();
  const trust = new Trust();
  await trust.reload(store);
  // Shared by every instance (LATCHKEY_REDIS_URL): the per-IP limits and, when chosen, the WebAuthn challenges.
  const redis = config.redisUrl ? await openRedis(config, app.log) : undefined;
  if (redis) app.addHook('onClose', () => closeRedis(redis));
  const latchkey: Latchkey = {
    config,
    store,
    webauthn: new WebAuthn(config, store, now, createChallengeStore(config, store, redis), trust),
    mailer,
    secret,
    now,
    rateLimitPerMinute: perMinute,
    secretBox: new SecretBox(config),
    captcha: options.captcha ?? new AltchaCaptcha(secret, store, config.captchaMaxNumber),
    trust,
    kinds: new KindRegistry(options.kinds ?? defaultKinds, config, trust),
    linkedAccounts: new LinkedAccounts(config.upstreamProviders, store, { origin: config.origin, now }),
    // Off unless LATCHKEY_METRICS_PORT is set: then nothing is recorded either.
    metrics: config.metricsPort === undefined ? NO_METRICS : new PrometheusMetrics(),
  };
  app.decorate('latchkey', latchkey);
  if (ownsMailer) app.addHook('onClose', () => mailer.close());
  if (ownsDb) app.addHook('onClose', () => db.close());

  await app.register(errorHandlerPlugin, { bodyLimit: BODY_LIMIT });
  // Before the routes: its onResponse hook times every answer. /metrics itself is served on a listener of its own.
  await app.register(metricsPlugin, { db });
  auditPolicyRefusals(app);
  // FIDO metadata and the authenticator policy: reloaded from the database, and downloaded from the metadata URL.
  await app.register(trustRefreshPlugin);
  // The webhook outbox: sent from here whichever instance wrote it, after a restart too.
  await app.register(webhookDeliveryPlugin);
  await app.register(securityHeadersPlugin, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    // same-origin: no referrer leaves for other sites, and our own form posts still carry a real Origin header.
    referrerPolicy: { policy: 'same-origin' },
    frameguard: { action: 'deny' },
    strictTransportSecurity: config.secureCookies ? { maxAge: 31536000, includeSubDomains: true } : false,
    crossOriginEmbedderPolicy: false,
  });
  await app.register(cookie);
  await app.register(refuseNulCharactersPlugin);
  await app.register(formbody, { bodyLimit: BODY_LIMIT });
  if (perMinute > 0) await app.register(rateLimit, { global: false, max: perMinute, timeWindow: RATE_LIMIT_WINDOW_SECONDS * 1000, ...rateLimitStore(redis) });
  // OAuth clients post to the provider's endpoints; oidc-provider has its own checks (client authentication, PKCE, xsrf on its forms).
  // The admin API and SCIM take bearer tokens only (src/api/guard.ts): a cookie never authorises them, so no CSRF.
  await app.register(sessionsPlugin, { csrfExempt: ['/fido2', '/oidc', '/api', '/scim'] });
  await app.register(assetsPlugin);
  // Before any route: it collects the admin API's routes into the OpenAPI document as they register.
  await app.register(openApiPlugin);

  app.get('/', async (request, reply) => reply.redirect(request.auth ? '/settings' : '/signin'));
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(relatedOriginsRoutes);
  for (const feature of [signInRoutes, signUpRoutes, enrolmentRoutes, settingsRoutes, reauthRoutes, passkeyUpgradeRoutes, adminRoutes, servicesRoutes]) await app.register(feature);
  // Each kind's own endpoints (sign-in, step-up or enrolment pages it serves
  // itself), registered where the linked-account routes were, before oidcRoutes.
  for (const kind of latchkey.kinds.all()) if (kind.routes) await app.register(kind.routes);
  await app.register(selfServiceRoutes);
  await app.register(otherMethodsRoutes);
  await app.register(oidcRoutes);
  await app.register(apiRoutes);
  await app.register(scimRoutes);
  await app.register(openApiDocsRoutes);
  if (mailer.kind === 'outbox') await app.register(devOutboxRoutes);
  if (config.fidoConformance) await app.register(fido2Routes, { prefix: '/fido2', metadataDir: config.fidoMetadataDir });
  return app;
}
