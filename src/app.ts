/**
 * buildApp(config): registers the infrastructure plugins and the feature
 * folders, nothing else. Tests call it with an in-memory or test database and
 * drive it through `app.inject`.
 */
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance } from 'fastify';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { Config } from './config/index.js';
import type { Latchkey } from './context.js';
import { openDatabase, type Db } from './db/connect.js';
import { Store } from './db/store.js';
import { randomToken } from './crypto.js';
import { WebAuthn } from './webauthn/ceremonies.js';
import { errorHandlerPlugin } from './plugins/errorHandler.js';
import { sessionsPlugin } from './plugins/sessions.js';
import { assetsPlugin } from './plugins/assets.js';
import { signInRoutes } from './flows/signin/routes.js';
import { signUpRoutes } from './flows/signup/routes.js';
import { enrolmentRoutes } from './flows/enrolment/routes.js';
import { settingsRoutes } from './flows/settings/routes.js';
import { reauthRoutes } from './flows/reauth/routes.js';
import { fido2Routes } from './fido2/routes.js';
import './context.js';

export interface BuildOptions {
  /** An open database; when absent the app opens `config.databaseUrl` and closes it on shutdown. */
  db?: Db;
  /** Clock, for tests of expiry. */
  now?: () => number;
  /** Overrides config.rateLimitPerMinute (benchmarks turn it off with 0). */
  rateLimitPerMinute?: number;
  logger?: boolean | object;
}

export const BODY_LIMIT = 64 * 1024;

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? { level: config.logLevel, redact: ['req.headers.cookie', 'req.headers["x-csrf-token"]', 'res.headers["set-cookie"]'] },
    bodyLimit: BODY_LIMIT,
    // Trust X-Forwarded-For from the configured number of proxy hops only.
    trustProxy: (_address: string, hop: number) => hop < config.trustProxyHops,
  }).setValidatorCompiler(TypeBoxValidatorCompiler);

  const ownsDb = !options.db;
  const db = options.db ?? openDatabase(config.databaseUrl);
  if (ownsDb) await db.migrate();
  const store = new Store(db.kysely);
  const now = options.now ?? Date.now;
  const secret = await store.settings.getOrInsert('server_secret', randomToken(32));
  const perMinute = options.rateLimitPerMinute ?? config.rateLimitPerMinute;
  const latchkey: Latchkey = { config, store, webauthn: new WebAuthn(config, store, now), secret, now, rateLimitPerMinute: perMinute };
  app.decorate('latchkey', latchkey);
  if (ownsDb) app.addHook('onClose', () => db.close());

  await app.register(errorHandlerPlugin);
  await app.register(helmet, {
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
  await app.register(formbody, { bodyLimit: BODY_LIMIT });
  if (perMinute > 0) await app.register(rateLimit, { global: false, max: perMinute, timeWindow: 60_000 });
  await app.register(sessionsPlugin, { csrfExempt: ['/fido2'] });
  await app.register(assetsPlugin);

  app.get('/', async (request, reply) => reply.redirect(request.auth ? '/settings' : '/signin'));
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(signInRoutes);
  await app.register(signUpRoutes);
  await app.register(enrolmentRoutes);
  await app.register(settingsRoutes);
  await app.register(reauthRoutes);
  if (config.fidoConformance) await app.register(fido2Routes, { prefix: '/fido2', metadataDir: config.fidoMetadataDir });
  return app;
}

/** Route options that rate-limit an unauthenticated endpoint per IP; empty when limiting is off. */
export function rateLimited(app: FastifyInstance): { config?: { rateLimit: { max: number; timeWindow: number } } } {
  const max = app.latchkey.rateLimitPerMinute;
  return max > 0 ? { config: { rateLimit: { max, timeWindow: 60_000 } } } : {};
}
