/**
 * The OpenID Connect provider: oidc-provider (panva), configured for Latchkey.
 * It owns the protocol — discovery, authorization (code flow, PKCE required),
 * token, userinfo, JWKS, revocation, RP-initiated logout; Latchkey supplies the
 * storage adapter, the accounts, the signing keys, the services (clients) and
 * the interaction pages (src/oidc/interactions.tsx).
 *
 * Endpoints live under /oidc; the issuer is the origin itself, so discovery is
 * at /.well-known/openid-configuration.
 */
import type { KoaContextWithOIDC, Configuration, JWK } from 'oidc-provider';
import Provider, { errors, interactionPolicy } from 'oidc-provider';
import type { Latchkey } from '../context.js';
import { hashToken, hmac } from '../crypto.js';
import { cookieNames } from '../plugins/sessions.js';
import { Layout } from '../views/layout.js';
import { renderPage } from '../views/render.js';
import { KyselyAdapter, SERVICE_AAL, SERVICE_FIRST_PARTY } from './adapter.js';
import { aalOfAcr, acrFor, assuranceOutcome, requiredAssurance, toAal } from './assurance.js';
import type { Session, User } from '../db/schema.js';
import { corsOriginsOf } from './services.js';
import { loadSigningJwks } from './signingKeys.js';

export const OIDC_PREFIX = '/oidc';

/** Token lifetimes in seconds; refresh tokens have an absolute lifetime from configuration. */
export const TOKEN_TTL = { AccessToken: 10 * 60, AuthorizationCode: 60, IdToken: 60 * 60, Interaction: 60 * 60 } as const;

export const OIDC_SCOPES = ['openid', 'offline_access', 'email', 'profile'];
/** The claims each scope releases; a service gets a claim only through a scope the person consented to. */
const SCOPE_CLAIMS: Record<string, string[]> = { openid: ['sub', 'acr', 'amr', 'auth_time'], email: ['email', 'email_verified'], profile: ['name'] };

/** The provider's endpoints, all under /oidc (discovery is at the origin's /.well-known). */
export const OIDC_ROUTES = {
  authorization: `${OIDC_PREFIX}/auth`,
  token: `${OIDC_PREFIX}/token`,
  userinfo: `${OIDC_PREFIX}/me`,
  jwks: `${OIDC_PREFIX}/jwks`,
  end_session: `${OIDC_PREFIX}/session/end`,
  revocation: `${OIDC_PREFIX}/token/revocation`,
  introspection: `${OIDC_PREFIX}/token/introspection`,
  pushed_authorization_request: `${OIDC_PREFIX}/request`,
  registration: `${OIDC_PREFIX}/reg`,
  code_verification: `${OIDC_PREFIX}/device`,
  device_authorization: `${OIDC_PREFIX}/device/auth`,
  backchannel_authentication: `${OIDC_PREFIX}/backchannel`,
  challenge: `${OIDC_PREFIX}/challenge`,
} as const;

/**
 * Endpoints a browser reaches with a service's credentials or tokens: CORS only from a public service's redirect
 * URI origins (see corsOriginsOf). oidc-provider checks the client on the request itself (clientBasedCORS);
 * oidcRoutes answers preflights for them (answered for any origin by oidc-provider).
 */
export const CLIENT_CORS_PATHS: readonly string[] = [OIDC_ROUTES.token, OIDC_ROUTES.userinfo, OIDC_ROUTES.revocation, OIDC_ROUTES.introspection, OIDC_ROUTES.pushed_authorization_request];

/** Replace the page's CSP form-action so a form may end at these origins (Chromium checks form-action on redirects). */
export function allowFormActionTo(ctx: { set(name: string, value: string): void }, origins: string[]): void {
  const extra = origins.filter((o) => /^https?:\/\/[^\s;,']+$/.test(o)).join(' ');
  ctx.set(
    'content-security-policy',
    `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self' ${extra}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'`,
  );
}

/** What the provider needs from the app's context (`latchkey doctor` builds one without the rest of the app). */
export type ProviderContext = Pick<Latchkey, 'config' | 'store' | 'secretBox' | 'secret' | 'now' | 'kinds'> & Partial<Pick<Latchkey, 'metrics'>>;

function page(latchkey: ProviderContext, title: string, body: preact.ComponentChildren): string {
  return renderPage(
    <Layout title={title} rpName={latchkey.config.rpName} csrfToken="" page="oidc">
      {body}
    </Layout>,
  );
}

/** What the provider records for a Latchkey sign-in: acr and amr from the method it used (assurance.ts), and when. */
export async function loginOf(
  { store, config, kinds }: Pick<ProviderContext, 'store' | 'config' | 'kinds'>,
  user: Pick<User, 'id' | 'password_hash'>,
  session: Pick<Session, 'aal' | 'authenticator_id' | 'authenticated_at'>,
) {
  const aal = toAal(session.aal);
  const authenticator = session.authenticator_id ? await store.authenticators.findForUser(user.id, session.authenticator_id) : undefined;
  const amr = authenticator ? (kinds.assuranceOf(authenticator, user)?.amr ?? []) : [];
  return { acr: acrFor(config, aal), amr, ts: Math.floor(session.authenticated_at / 1000) };
}

/**
 * Build the provider. Signing keys are read once here (oidcRoutes builds a new provider when they change);
 * `keys` replaces the stored ones, for `latchkey doctor`, which must not open or create any.
 */
export async function createProvider(latchkey: ProviderContext, options: { keys?: JWK[] } = {}): Promise<Provider> {
  const { config, store, secretBox, now } = latchkey;
  const keys = options.keys ?? ((await loadSigningJwks(store, secretBox, now())) as JWK[]);
  const sessionCookie = cookieNames(config.secureCookies).session;

  const policy = interactionPolicy.base();
  const login = policy.get('login')!;

  /**
   * The provider's session follows Latchkey's: it stands for one Latchkey sign-in in this browser (the same person,
   * at the same level, at the same time). bindToLatchkeySession brings it up to date on every authorization request
   * before oidc-provider loads the account and its grant, so every check, prompt=none included, answers from the
   * sign-in behind this browser's Latchkey session:
   * - signed in to Latchkey, and the provider has no session yet (signed in on /signin, not through a service): the
   *   provider's session becomes that sign-in, so prompt=none gets a code rather than login_required;
   * - signed in again or stepped up since (same person): acr, amr and auth_time follow;
   * - someone else signed in since: the earlier person's provider session (their grants and sids) is dropped and
   *   replaced, never carried over, and without oidc-provider's switch-account logout, which would end the new
   *   person's Latchkey session (RP-initiated logout ends it, below);
   * - signed out of Latchkey: the checks ask for a sign-in (prompt=none gets login_required, OpenID Connect Core
   *   §3.1.2.6); the same person signing in again keeps their consents, and someone else finishing the sign-in in
   *   the interaction empties the session first (interactions.tsx, forgetProviderSession).
   */
  const latchkeySessions = new WeakMap<object, Promise<{ signedIn: boolean; aal: number }>>();
  /** Bound once per request, and shared by the checks below (oidc-provider runs them concurrently). */
  const latchkeySessionOf = (ctx: KoaContextWithOIDC) => {
    let bound = latchkeySessions.get(ctx);
    if (!bound) latchkeySessions.set(ctx, (bound = bindToLatchkeySession(ctx)));
    return bound;
  };
  async function bindToLatchkeySession(ctx: KoaContextWithOIDC): Promise<{ signedIn: boolean; aal: number }> {
    const signedOut = { signedIn: false, aal: 0 };
    const opSession = ctx.oidc.session;
    // Only the authorization endpoint and its resume carry a browser's session here; PAR has none.
    if (!opSession) return signedOut;
    const found = await liveLatchkeySession(ctx.cookies.get(sessionCookie));
    // Signed out: the checks ask for a sign-in (prompt=none: login_required). The provider's session is kept as it
    // is: the same person signing in again keeps their consents; someone else empties it first (here when they
    // signed in on Latchkey's pages, in the interaction when they sign in there).
    if (!found) return signedOut;
    const { session, user } = found;
    if (opSession.accountId !== user.id) {
      if (opSession.accountId) forgetAccount(opSession);
      await loginToProvider(opSession, user, session);
    } else if (aalOfAcr(config, opSession.acr) !== session.aal || opSession.loginTs !== Math.floor(session.authenticated_at / 1000)) {
      await loginToProvider(opSession, user, session);
    }
    return { signedIn: true, aal: session.aal };
  }
  async function liveLatchkeySession(token: string | undefined) {
    if (!token || token.length > 64) return undefined;
    const found = await store.sessions.findWithUser(hashToken(token));
    const t = now();
    const live =
      found && found.user.status !== 'suspended' && found.session.expires_at > t && found.session.last_seen_at > t - config.sessionIdleSeconds * 1000;
    return live ? found : undefined;
  }
  async function loginToProvider(opSession: NonNullable<KoaContextWithOIDC['oidc']['session']>, user: User, session: Session) {
    const signIn = await loginOf(latchkey, user, session);
    opSession.loginAccount({ accountId: user.id, acr: signIn.acr, amr: signIn.amr, loginTs: signIn.ts, transient: opSession.transient });
  }
  /** Empty the provider's session of a person no longer signed in here: their account, sign-in, grants and sids. */
  function forgetAccount(opSession: NonNullable<KoaContextWithOIDC['oidc']['session']>) {
    for (const field of ['accountId', 'acr', 'amr', 'loginTs', 'authorizations']) delete (opSession as unknown as Record<string, unknown>)[field];
    // A new identifier, so the emptied session is not the one the earlier person's cookie named (and it is saved).
    opSession.resetIdentifier();
  }

  // A check added after the prompt is built gets oidc-provider's generic interaction_required; signed out is
  // login_required (OpenID Connect Core §3.1.2.6), as for a browser the provider has never seen.
  // The first check that fails names the error prompt=none gets: these come straight after no_session, so signed
  // out is login_required and a level nothing reaches is unmet_authentication_requirements, even when max_age or
  // an id_token_hint would also ask for a sign-in (one that could not help).
  const afterNoSession = () => login.checks.findIndex((c) => c.reason === 'no_session') + 1;
  login.checks.add(
    new interactionPolicy.Check('latchkey_session', 'End-User is not signed in to Latchkey', 'login_required', async (ctx) =>
      (await latchkeySessionOf(ctx)).signedIn ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT,
    ),
    afterNoSession(),
  );
  // What the request needs (the service's level, acr_values, an acr in the claims parameter) is decided by one
  // function, requiredAssurance, here and on the interaction page. oidc-provider's own essential-acr checks want
  // the session's acr to equal one of the requested values, so an AAL2 sign-in asked for AAL1 as essential would
  // be sent back to the interaction forever; ours accept a sign-in at or above what is needed.
  login.checks.remove('essential_acr');
  login.checks.remove('essential_acrs');
  const requirementOf = (ctx: KoaContextWithOIDC) => requiredAssurance(config, Number(ctx.oidc.client?.[SERVICE_AAL] ?? 1), ctx.oidc.params ?? {});
  // Nothing the person has reaches the level: with prompt=none that is unmet_authentication_requirements
  // (OpenID Connect Core §3.1.2.6); otherwise the interaction shows the page that says what the service needs.
  login.checks.add(
    new interactionPolicy.Check('aal_unreachable', 'None of the End-User\'s ways to sign in reaches the requested authentication assurance level', 'unmet_authentication_requirements', async (ctx) => {
      const { signedIn, aal } = await latchkeySessionOf(ctx);
      if (!signedIn) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const required = requirementOf(ctx);
      if (assuranceOutcome(required, aal, Infinity) === 'enough') return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const user = await store.users.findById(ctx.oidc.session!.accountId!);
      const reachable = user ? latchkey.kinds.reachableAal(user, await store.authenticators.listForUser(user.id)) : 0;
      return assuranceOutcome(required, aal, reachable) === 'unreachable' ? interactionPolicy.Check.REQUEST_PROMPT : interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }),
    afterNoSession() + 1,
  );
  // A level the person can reach but this sign-in did not: the interaction steps up (prompt=none: login_required).
  login.checks.add(
    new interactionPolicy.Check('aal_insufficient', 'The service requires a higher authentication assurance level', 'login_required', async (ctx) => {
      const { aal } = await latchkeySessionOf(ctx);
      return assuranceOutcome(requirementOf(ctx), aal, Infinity) === 'enough' ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
    }),
  );

  const configuration: Configuration = {
    adapter: (name: string) => new KyselyAdapter(name, store, secretBox, now),
    clients: [],
    jwks: { keys },
    async findAccount(_ctx, sub) {
      const user = await store.users.findById(sub);
      // A suspended person's tokens stop working: refresh and userinfo find no account.
      if (!user || user.status === 'suspended') return undefined;
      return {
        accountId: user.id,
        async claims() {
          return { sub: user.id, email: user.email, email_verified: true, name: user.display_name };
        },
      };
    },
    // acr, amr and auth_time ride with the openid scope: every ID token says how the person signed in.
    // A first-party service is granted what it asks without a consent page (the interaction would grant it anyway),
    // here rather than there, so prompt=none gets a code from the first request in a browser, not consent_required.
    // Grants are per person: one kept in the session for someone else is not loaded (oidc-provider would fail on it).
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session!.grantIdFor(oidc.client!.clientId);
      const accountId = oidc.session!.accountId;
      const stored = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      // A grant kept in this browser's session for the person signed in before (see forgetAccount) is never another's.
      const found = stored && stored.accountId === accountId ? stored : undefined;
      if (oidc.client![SERVICE_FIRST_PARTY] !== true || !accountId) return found;
      const grant = found ?? new oidc.provider.Grant({ accountId, clientId: oidc.client!.clientId });
      const before = `${grant.getOIDCScope()} ${grant.getOIDCClaims().join(' ')}`;
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      grant.addOIDCClaims([...oidc.requestParamClaims]);
      if (!found || `${grant.getOIDCScope()} ${grant.getOIDCClaims().join(' ')}` !== before) await grant.save();
      return grant;
    },
    // oidc-provider runs extraParams validators on every authorization request after loading the browser's session and
    // before loading its account and grant: the one place to bind that session to Latchkey's (see above). The
    // parameter itself means nothing; a service sending it changes nothing.
    extraParams: { latchkey_session: async (ctx) => void (await latchkeySessionOf(ctx as KoaContextWithOIDC)) },
    claims: SCOPE_CLAIMS,
    clientDefaults: { grant_types: ['authorization_code'], response_types: ['code'], id_token_signed_response_alg: 'RS256', token_endpoint_auth_method: 'client_secret_basic', require_auth_time: true },
    scopes: OIDC_SCOPES,
    responseTypes: ['code'],
    pkce: { required: () => true },
    acrValues: [config.oidcAcr[1], config.oidcAcr[2], config.oidcAcr[3]],
    extraClientMetadata: {
      properties: [SERVICE_AAL, SERVICE_FIRST_PARTY],
      validator(_ctx, key, value) {
        if (key === SERVICE_AAL && ![1, 2, 3].includes(value as number)) throw new Error(`${SERVICE_AAL} must be 1, 2 or 3`);
      },
    },
    cookies: {
      // Derived from the server secret: every instance signs the provider's cookies the same way.
      keys: [hmac(latchkey.secret, 'oidc-provider cookies')],
      long: { signed: true, sameSite: 'lax' },
      short: { signed: true, sameSite: 'lax' },
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: true },
      // The claims parameter (OpenID Connect Core §5.5), so a service can ask for an acr as essential; what that
      // requires is requiredAssurance's rule. A malformed acr request is the service's error, not a page of ours.
      claimsParameter: {
        enabled: true,
        assertClaimsParameter(ctx, claims) {
          // Only claims of the scopes asked for: the consent page names scopes, so a claim asked for by name alone
          // (claims={"userinfo":{"email":null}} with scope openid) would reach the service without the person seeing it.
          const scopes = String(ctx.oidc.params?.scope ?? '').split(' ');
          const allowed = new Set(scopes.flatMap((scope) => SCOPE_CLAIMS[scope] ?? []));
          for (const member of ['id_token', 'userinfo'] as const) {
            const asked = (claims as Record<string, unknown>)[member];
            if (asked === undefined || asked === null || typeof asked !== 'object') continue;
            const beyond = Object.keys(asked).filter((claim) => !allowed.has(claim));
            if (beyond.length) {
              throw new errors.InvalidRequest(
                `claims.${member} asks for ${beyond.join(', ')}, which the requested scopes do not release: ask for the scope instead (email: email, email_verified; profile: name)`,
              );
            }
          }
          const acr = (claims as { id_token?: { acr?: unknown } }).id_token?.acr;
          if (acr === undefined || acr === null) return;
          const { value, values, essential } = acr as { value?: unknown; values?: unknown; essential?: unknown };
          if (
            typeof acr !== 'object' ||
            Array.isArray(acr) ||
            (value !== undefined && typeof value !== 'string') ||
            (values !== undefined && !(Array.isArray(values) && values.every((v) => typeof v === 'string'))) ||
            (essential !== undefined && typeof essential !== 'boolean')
          ) {
            throw new errors.InvalidRequest('claims.id_token.acr must be null or an object with a string value, an array of string values and a boolean essential');
          }
        },
      },
      revocation: { enabled: true },
      introspection: { enabled: false },
      clientCredentials: { enabled: false },
      registration: { enabled: false },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          const target = ctx.oidc.params?.post_logout_redirect_uri;
          if (typeof target === 'string') allowFormActionTo(ctx, [new URL(target).origin]);
          const client = ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId;
          ctx.type = 'html';
          ctx.body = page(
            latchkey,
            'Sign out',
            <>
              <h1>Sign out{client ? ` of ${client}` : ''}?</h1>
              <p>You will also be signed out of {config.rpName} in this browser.</p>
              <div dangerouslySetInnerHTML={{ __html: form }} />
              <div class="actions">
                <button type="submit" form="op.logoutForm" value="yes" name="logout">
                  Yes, sign me out
                </button>
                <button type="submit" form="op.logoutForm" class="secondary">
                  No, stay signed in
                </button>
              </div>
            </>,
          );
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = page(
            latchkey,
            'Signed out',
            <>
              <h1>You have signed out</h1>
              <p>
                <a href="/signin">Sign in again</a>
              </p>
            </>,
          );
        },
      },
    },
    interactions: {
      policy,
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    routes: OIDC_ROUTES,
    ttl: {
      ...TOKEN_TTL,
      Session: config.sessionMaxSeconds,
      Grant: config.oidcRefreshTokenSeconds,
      // Absolute: a rotated refresh token inherits the first one's issue time (iiat), so the chain ends on time.
      RefreshToken(_ctx, token) {
        const issued = (token as { iiat?: number }).iiat ?? token.iat ?? Math.floor(now() / 1000);
        return Math.max(1, issued + config.oidcRefreshTokenSeconds - Math.floor(now() / 1000));
      },
    },
    // Refresh tokens rotate on every use; the old one is consumed (a replay revokes the grant).
    rotateRefreshToken: true,
    async renderError(ctx, out) {
      ctx.type = 'html';
      const description = typeof out.error_description === 'string' ? out.error_description : 'The request could not be completed.';
      ctx.body = page(
        latchkey,
        'There is a problem',
        <>
          <h1>There is a problem</h1>
          <div class="error-summary" role="alert">
            <p>The service that sent you here made a request {config.rpName} cannot complete: {description}</p>
          </div>
          <p data-error-code={String(out.error)}>
            Go back to the service and try again. If it keeps happening, tell the service's support team the error code{' '}
            <code>{String(out.error)}</code>.
          </p>
        </>,
      );
    },
    // oidc-provider's default also opens userinfo to a confidential client's redirect URI origins; a confidential
    // service calls userinfo from its server, so a browser page there has no business reading it.
    clientBasedCORS(_ctx, origin, client) {
      return corsOriginsOf({ public: client.clientAuthMethod === 'none', redirectUris: client.redirectUris ?? [] }).includes(origin);
    },
    clockTolerance: 5,
  };

  const provider = new Provider(config.origin, configuration);
  // oidcRoutes sets Host and X-Forwarded-Proto from LATCHKEY_ORIGIN on every request it hands over, so URLs and
  // Secure cookies follow the configured origin behind a TLS-terminating proxy.
  provider.proxy = true;

  // RP-initiated logout ends the Latchkey session in this browser too. (oidc-provider also ends its session to switch
  // accounts, which would end the new person's; it never gets to: the provider's session is emptied before another
  // person's sign-in lands in it, by bindToLatchkeySession and the interaction's forgetProviderSession.)
  // Token requests for /metrics: oidc-provider tells of each grant's outcome, and of errors inside it, by events.
  const metrics = latchkey.metrics;
  if (metrics?.enabled) {
    provider.on('grant.success', (ctx: KoaContextWithOIDC) => metrics.tokenGrant(grantTypeOf(ctx), 'success'));
    provider.on('grant.error', (ctx: KoaContextWithOIDC, error: { error?: string }) => metrics.tokenGrant(grantTypeOf(ctx), error.error ?? 'server_error'));
    provider.on('server_error', () => metrics.oidcServerError());
  }

  provider.on('end_session.success', (ctx: KoaContextWithOIDC) => {
    const token = ctx.cookies.get(sessionCookie);
    if (token && token.length <= 64) void store.sessions.delete(hashToken(token)).catch(() => {});
    ctx.cookies.set(sessionCookie, null, { path: '/', httpOnly: true, sameSite: 'lax', secure: config.secureCookies, overwrite: true });
  });
  return provider;
}

/** The grant_type a token request named (read from the request: a failed one may never have reached ctx.oidc.params). */
function grantTypeOf(ctx: KoaContextWithOIDC): string | undefined {
  const fromParams = ctx.oidc?.params?.grant_type;
  if (typeof fromParams === 'string') return fromParams;
  const body = (ctx.request as { body?: { grant_type?: unknown } }).body;
  return typeof body?.grant_type === 'string' ? body.grant_type : undefined;
}
