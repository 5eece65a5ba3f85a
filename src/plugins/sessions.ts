/**
 * Browser binding, sessions and CSRF.
 *
 * - Every browser gets a random binding cookie when a page, a ceremony or a CSRF
 *   check first needs it; WebAuthn challenges and the CSRF token are tied to it,
 *   so a ceremony started in one browser can't be finished in another.
 * - Sessions are server-side: the cookie holds a random 256-bit token, the
 *   database its SHA-256. Idle and absolute timeouts follow NIST SP 800-63B rev 4.
 * - State-changing requests need the CSRF token (form field `_csrf` or header
 *   `x-csrf-token`) and, when the browser sends one, an Origin equal to ours.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { hashToken, hmac, randomToken, randomTokens, safeEqual } from '../crypto.js';
import type { Authenticator, User } from '../db/schema.js';
import type { KindRegistry } from '../strategies/kindRegistry.js';
import type { Store } from '../db/store.js';
import { appError } from '../errors.js';
import type { RequestContext } from '../webauthn/ceremonies.js';

export function cookieNames(secure: boolean) {
  return secure ? { session: '__Host-latchkey_session', binding: '__Host-latchkey_binding' } : { session: 'latchkey_session', binding: 'latchkey_binding' };
}

/**
 * Where a request came from, as it was when it arrived. `request.ip` reads the socket each time, and a socket the
 * browser has closed (it navigated away during a sign-in) has no address any more: read it before any `await`.
 */
function readRequestContext(request: FastifyRequest): RequestContext {
  return { ip: request.ip ?? 'unknown', userAgent: String(request.headers['user-agent'] ?? '').slice(0, 512) };
}

/** Where a request came from (IP and user agent), captured when it arrived (see readRequestContext). */
export function requestContext(request: FastifyRequest): RequestContext {
  return request.client ?? readRequestContext(request);
}

const NO_BINDING = Object.freeze({ hash: '', csrf: '' });
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
// Only write last_seen_at once a minute per session: reads stay reads.
const TOUCH_INTERVAL_MS = 60_000;

/** A request's binding cookie as its hash and CSRF token ('' until a route first reads them), and the reply that would set it. */
interface Binding {
  reply: FastifyReply;
  hash: string;
  csrf: string;
}
/** Where a request keeps its Binding: this plugin's alone (a symbol, so no other code reads or replaces it). */
const BINDING = Symbol('latchkey.binding');
type WithBinding = FastifyRequest & { [BINDING]: Binding | null };

export interface SessionOptions {
  /** Path prefixes with their own CSRF scheme (the FIDO conformance API is JSON-only and cookie-linked by the profile). */
  csrfExempt?: string[];
}

export const sessionsPlugin = fp(
  async (app: FastifyInstance, opts: SessionOptions) => {
    const { config, store, secret, now } = app.latchkey;
    const names = cookieNames(config.secureCookies);
    const cookieBase = { path: '/', httpOnly: true, sameSite: 'lax' as const, secure: config.secureCookies };
    const exempt = opts.csrfExempt ?? [];

    /**
     * The browser's binding, worked out the first time a route reads `bindingHash` or `csrfToken`: any HTML page (the
     * layout carries the CSRF token), a ceremony, a CSRF check. Answers that use neither (health checks, assets, API
     * and token requests, 404s to someone signed out) set no binding cookie, so shared caches may keep them, and pay for no hash. A
     * route reads them before it answers, so the cookie goes out with that answer.
     */
    const bindingOf = (request: FastifyRequest): Pick<Binding, 'hash' | 'csrf'> => {
      const state = (request as WithBinding)[BINDING];
      // Refused before this plugin's hook ran (a body over the limit): no binding, and no form to post back.
      if (!state) return NO_BINDING;
      if (state.hash) return state;
      let binding = request.cookies[names.binding];
      if (!binding || !/^[A-Za-z0-9_-]{43}$/.test(binding)) {
        binding = randomToken(32);
        state.reply.setCookie(names.binding, binding, cookieBase);
      }
      state.hash = hashToken(binding);
      state.csrf = hmac(secret, `csrf:${binding}`);
      return state;
    };

    app.decorateRequest(BINDING, null);
    app.decorateRequest('bindingHash', {
      getter(this: FastifyRequest) {
        return bindingOf(this).hash;
      },
    });
    app.decorateRequest('csrfToken', {
      getter(this: FastifyRequest) {
        return bindingOf(this).csrf;
      },
    });
    app.decorateRequest('auth', null);
    app.decorateRequest('client', null);

    app.addHook('onRequest', async (request, reply) => {
      request.client = readRequestContext(request);
      (request as WithBinding)[BINDING] = { reply, hash: '', csrf: '' };

      const token = request.cookies[names.session];
      if (token && token.length <= 64) {
        const idHash = hashToken(token);
        const found = await store.sessions.findWithUser(idHash);
        const t = now();
        if (found && found.session.expires_at > t && found.session.last_seen_at > t - config.sessionIdleSeconds * 1000) {
          if (found.user.status !== 'suspended') {
            if (t - found.session.last_seen_at > TOUCH_INTERVAL_MS) {
              await store.sessions.touch(idHash, t);
              found.session.last_seen_at = t;
            }
            request.auth = found;
          }
        } else if (found) {
          await store.sessions.delete(idHash);
        }
        if (!request.auth) reply.clearCookie(names.session, cookieBase);
      }
    });

    app.addHook('preValidation', async (request) => {
      // Unknown paths answer 404 whatever the method; there is nothing to protect.
      if (SAFE_METHODS.has(request.method) || request.is404) return;
      const path = request.url.split('?')[0]!;
      if (exempt.some((p) => path === p || path.startsWith(p + '/'))) return;
      // Browsers send "Origin: null" for some same-origin posts (privacy settings); Fetch metadata says whether it was ours.
      const origin = request.headers.origin;
      const sameOriginNull = origin === 'null' && request.headers['sec-fetch-site'] === 'same-origin';
      if (origin && origin !== config.origin && !sameOriginNull) throw appError('csrf_failed');
      const body = request.body as { _csrf?: unknown } | undefined;
      const sent = request.headers['x-csrf-token'] ?? (body && typeof body === 'object' ? body._csrf : undefined);
      const expected = request.csrfToken;
      if (typeof sent !== 'string' || !expected || !safeEqual(sent, expected)) throw appError('csrf_failed');
    });
  },
  { name: 'sessions', dependencies: ['@fastify/cookie'] },
);

/** Start a new session for `user` (a new random id every time: no fixation) and set its cookie. */
export async function startSession(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  user: User,
  store: Store = app.latchkey.store,
  /** The authenticator used (passkey, app, linked account): removing it ends this session. */
  authenticatorId: string | null = null,
  /** Authentication assurance level reached (NIST SP 800-63B): 2 for a passkey with user verification. */
  aal = 2,
): Promise<void> {
  const { config, now } = app.latchkey;
  const names = cookieNames(config.secureCookies);
  const previous = request.cookies[names.session];
  if (previous) await store.sessions.delete(hashToken(previous));
  const [token, publicId] = randomTokens(32, 12) as [string, string];
  const t = now();
  const ctx = requestContext(request);
  await store.sessions.insert({
    id_hash: hashToken(token),
    public_id: publicId,
    user_id: user.id,
    created_at: t,
    last_seen_at: t,
    authenticated_at: t,
    expires_at: t + config.sessionMaxSeconds * 1000,
    aal,
    ip: ctx.ip,
    user_agent: ctx.userAgent,
    authenticator_id: authenticatorId,
  });
  // Only for a session that exists: in a transaction, once it has committed.
  store.afterCommit(() => reply.setCookie(names.session, token, { path: '/', httpOnly: true, sameSite: 'lax', secure: config.secureCookies }));
}

export async function endSession(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { config, store } = app.latchkey;
  const names = cookieNames(config.secureCookies);
  if (request.auth) await store.sessions.delete(request.auth.session.id_hash);
  reply.clearCookie(names.session, { path: '/', httpOnly: true, sameSite: 'lax', secure: config.secureCookies });
}

export function requireAuth(request: FastifyRequest) {
  if (!request.auth) throw appError('not_signed_in');
  return request.auth;
}

/** True when the session's last passkey check is recent enough to change passkeys. */
export function isRecentlyAuthenticated(app: FastifyInstance, request: FastifyRequest): boolean {
  const auth = request.auth;
  return !!auth && app.latchkey.now() - auth.session.authenticated_at <= app.latchkey.config.reauthSeconds * 1000;
}

/**
 * Whether this session may change how the person signs in (add or remove an authenticator, set or change a
 * password): a check within LATCHKEY_REAUTH_MINUTES, and at the level the person's own ways in reach, up to AAL2.
 * Binding asks for the strongest check the person has (NIST SP 800-63B §6.1.2.1): a password alone (AAL1) from
 * someone who also has an app or a passkey must not add a passkey or take the app away, or one phished password
 * would own the rest. Someone whose only way in is AAL1 adds a passkey with it: that is how they move up.
 */
export async function hasFreshCheck(app: FastifyInstance, request: FastifyRequest): Promise<boolean> {
  if (!isRecentlyAuthenticated(app, request)) return false;
  const { user, session } = request.auth!;
  if (session.aal >= 2) return true;
  return reachesBindingLevel(app.latchkey.kinds, user, await app.latchkey.store.authenticators.listForUser(user.id), session.aal);
}

/** The level rule of hasFreshCheck: a check at `aal` may change this person's ways in when it reaches what their own ways reach, up to AAL2. */
export function reachesBindingLevel(kinds: KindRegistry, user: User, authenticators: Authenticator[], aal: number): boolean {
  return aal >= Math.min(kinds.reachableAal(user, authenticators), 2);
}
