/**
 * Linked work accounts: sign in through an organisation's OpenID Connect
 * provider (the seed's "NHS.net Connect"), over `openid-client`.
 *
 * - `start()` stores an `oidc-login` flow (state, nonce, PKCE verifier) bound
 *   to the browser and returns the authorization URL (code flow, PKCE S256).
 * - `finish()` consumes that flow once, by the state's hash, and runs the
 *   authorization code grant with the stored checks.
 * - A linked account is an authenticator row of type `linked-account` whose
 *   credential id is `<issuer>#<subject>`: the unique index on credential_id
 *   means one upstream account links to at most one profile.
 *
 * Every provider uses one redirect URI, `<origin>/signin/linked/<id>/callback`;
 * the flow record says whether the return is a sign-in or a link.
 *
 * Linking belongs to the flow that asked for it (self-service): at the callback
 * `recordLink()` keeps the checked upstream account in a short `linked-account-link`
 * flow bound to the browser, and the browser goes back to the caller's page with
 * its token, where `takeLink()` hands the account over once.
 */
import * as client from 'openid-client';
import { Type } from 'typebox';
import type { UpstreamProvider } from '../../config/index.js';
import { hashToken, randomToken } from '../../crypto.js';
import { isUniqueViolation } from '../../db/isUniqueViolation.js';
import type { Authenticator, NewAuthenticator, User } from '../../db/schema.js';
import type { Store } from '../../db/store.js';
import { AppError, appError, type ErrorCode } from '../../errors.js';
import { defineFlow } from '../../flows/flowMachine.js';
import { LINKED_ACCOUNT_TYPE } from './kind.js';
import { NO_PASSKEY_COLUMNS } from '../authenticatorKind.js';

export const OIDC_LOGIN_FLOW = 'oidc-login';
export const LINKED_ACCOUNT_LINK_FLOW = 'linked-account-link';
/** Time allowed at the upstream provider between leaving Latchkey and coming back. */
export const OIDC_LOGIN_SECONDS = 10 * 60;
const SCOPE = 'openid email profile';

/** `reauth`: a signed-in person confirms it is them with the account they are linked to (src/flows/reauth). */
export type LinkPurpose = 'signin' | 'link' | 'reauth';

export interface StartOptions {
  purpose: LinkPurpose;
  /** Hash of the browser binding cookie: only this browser may finish. */
  bindingHash: string;
  /** For purpose `link`: the caller's own flow to resume once the upstream account is known. */
  linkFlowId?: string;
  /** A local path to go to afterwards (already checked with safeNext). */
  returnTo?: string;
}

/** Who the upstream provider says signed in, and why we sent them there. */
export interface UpstreamLogin {
  purpose: LinkPurpose;
  linkFlowId?: string;
  returnTo?: string;
  provider: UpstreamProvider;
  /** The ID token's `iss` (equal to the configured issuer). */
  issuer: string;
  /** The ID token's `sub`: stable per upstream account. */
  subject: string;
  email?: string;
  name?: string;
}

/**
 * A refusal from the linked-account strategy. `reason` is a short, secret-free
 * word for the audit log (e.g. `access_denied`, `state_unknown`, `binding`).
 */
export class LinkedAccountError extends AppError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly reason: string,
    cause?: unknown,
  ) {
    super(code, message);
    this.name = 'LinkedAccountError';
    if (cause !== undefined) this.cause = cause;
  }
}

const Purpose = Type.Union([Type.Literal('signin'), Type.Literal('link'), Type.Literal('reauth')]);

/** The round trip to the provider: what the callback needs to check its answer, and why the browser went. */
const oidcLoginFlow = defineFlow({
  type: OIDC_LOGIN_FLOW,
  data: Type.Object({
    providerId: Type.String(),
    purpose: Purpose,
    linkFlowId: Type.Optional(Type.String()),
    returnTo: Type.Optional(Type.String()),
    nonce: Type.String(),
    codeVerifier: Type.String(),
  }),
});

/** An upstream account the provider vouched for, waiting for the flow that asked to link it (`linkFlowId`). */
const linkFlow = defineFlow({
  type: LINKED_ACCOUNT_LINK_FLOW,
  data: Type.Object({ linkFlowId: Type.String(), providerId: Type.String(), issuer: Type.String(), subject: Type.String() }),
});

/** A checked upstream account handed to the flow that asked to link it. */
export interface VouchedAccount {
  provider: UpstreamProvider;
  issuer: string;
  subject: string;
}

export interface LinkedAccountsOptions {
  /** Latchkey's public origin: redirect URIs are built from it. */
  origin: string;
  now?: () => number;
  /** Seconds to wait for each request to an upstream provider (default 10). */
  timeoutSeconds?: number;
}

/** The message people read when the provider cannot be reached. */
function unavailable(provider: UpstreamProvider, reason: string, cause?: unknown): LinkedAccountError {
  return new LinkedAccountError(
    'upstream_unavailable',
    `${provider.name} is not available right now. Try again later or use another way to sign in.`,
    reason,
    cause,
  );
}

/** The message people read when the round trip did not produce a trustworthy answer. */
function failed(provider: UpstreamProvider, reason: string, cause?: unknown): LinkedAccountError {
  return new LinkedAccountError('upstream_failed', `Signing in with ${provider.name} did not work. Try again, or use another way to sign in.`, reason, cause);
}

/** fetch() could not reach the host, or openid-client gave up waiting. */
function isNetworkFailure(err: unknown): boolean {
  if (err instanceof TypeError && err.message === 'fetch failed') return true;
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof client.ClientError && (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT');
}

/** A short word for why openid-client refused the callback (never the token or code). */
function reasonFor(err: unknown): string {
  if (err instanceof client.AuthorizationResponseError) return String(err.error).slice(0, 64);
  if (err instanceof client.ResponseBodyError) return `token_${String(err.error).slice(0, 58)}`;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code.slice(0, 64) : 'rejected';
}

export class LinkedAccounts {
  private readonly byId: Map<string, UpstreamProvider>;
  /** Discovery results, one per provider; a failed discovery is forgotten so the next request tries again. */
  private readonly discovered = new Map<string, Promise<client.Configuration>>();
  private readonly now: () => number;

  constructor(
    readonly providers: readonly UpstreamProvider[],
    private readonly store: Store,
    private readonly options: LinkedAccountsOptions,
  ) {
    this.byId = new Map(providers.map((p) => [p.id, p]));
    this.now = options.now ?? Date.now;
  }

  /** The configured provider with this id, or undefined. */
  provider(providerId: string): UpstreamProvider | undefined {
    return this.byId.get(providerId);
  }

  /** The one redirect URI to register at the provider. */
  redirectUri(providerId: string): string {
    return `${this.options.origin}/signin/linked/${providerId}/callback`;
  }

  private requireProvider(providerId: string): UpstreamProvider {
    const provider = this.byId.get(providerId);
    if (!provider) throw appError('not_found');
    return provider;
  }

  /** openid-client's configuration for a provider, discovered once (OpenID Connect Discovery 1.0). */
  private configuration(provider: UpstreamProvider): Promise<client.Configuration> {
    let pending = this.discovered.get(provider.id);
    if (!pending) {
      const execute = provider.issuer.startsWith('http:') ? [client.allowInsecureRequests] : [];
      // OpenID Connect Core §9: client_secret_basic is the default every provider supports.
      const auth = provider.clientSecret ? client.ClientSecretBasic(provider.clientSecret) : client.None();
      pending = client.discovery(new URL(provider.issuer), provider.clientId, undefined, auth, { execute, timeout: this.options.timeoutSeconds ?? 10 });
      this.discovered.set(provider.id, pending);
      pending.catch(() => this.discovered.delete(provider.id));
    }
    return pending.catch((err: unknown) => {
      throw unavailable(provider, 'discovery', err);
    });
  }

  /**
   * The origins a browser is sent to when it starts at this provider: the
   * issuer's and the authorization endpoint's (they can differ, e.g. Azure AD
   * B2C). A page whose form answers with a redirect there must allow them in
   * CSP form-action, which Chromium applies to every redirect of a form's
   * navigation. An unreachable provider gives the issuer's alone: the form's
   * answer then says it is unavailable.
   */
  async authorizationOrigins(providerId: string): Promise<string[]> {
    const provider = this.requireProvider(providerId);
    const origins = new Set([new URL(provider.issuer).origin]);
    try {
      const endpoint = (await this.configuration(provider)).serverMetadata().authorization_endpoint;
      if (endpoint) origins.add(new URL(endpoint).origin);
    } catch {
      /* see above */
    }
    return [...origins];
  }

  /** Store an `oidc-login` flow and return the provider's authorization URL to redirect the browser to. */
  async start(providerId: string, opts: StartOptions): Promise<string> {
    const provider = this.requireProvider(providerId);
    const config = await this.configuration(provider);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const codeVerifier = client.randomPKCECodeVerifier();
    const t = this.now();
    await oidcLoginFlow.insert(this.store, {
      id: randomToken(16),
      binding_hash: opts.bindingHash,
      user_id: null,
      // Only the state's hash is stored as the key: a database reader can't forge a callback from it.
      lookup: hashToken(state),
      data: {
        providerId,
        purpose: opts.purpose,
        nonce,
        codeVerifier,
        ...(opts.linkFlowId ? { linkFlowId: opts.linkFlowId } : {}),
        ...(opts.returnTo ? { returnTo: opts.returnTo } : {}),
      },
      created_at: t,
      expires_at: t + OIDC_LOGIN_SECONDS * 1000,
    });
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: this.redirectUri(providerId),
      response_type: 'code',
      scope: SCOPE,
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      // Confirming it is you means signing in there now, not riding on a session the provider already has
      // (OpenID Connect Core §3.1.2.1).
      ...(opts.purpose === 'reauth' ? { prompt: 'login' } : {}),
    });
    return url.href;
  }

  /**
   * Check the provider's answer at the callback: the flow is found by the
   * state, must belong to this browser and provider, and is consumed once;
   * then the code is exchanged with the PKCE verifier and the ID token is
   * checked (signature, issuer, audience, nonce). Refusals are
   * `upstream_failed` (400); an unreachable provider is `upstream_unavailable` (503).
   */
  async finish(providerId: string, callbackUrl: URL, bindingHash: string): Promise<UpstreamLogin> {
    const provider = this.requireProvider(providerId);
    const state = callbackUrl.searchParams.get('state');
    if (!state) throw failed(provider, 'state_missing');
    const lookup = hashToken(state);
    const t = this.now();
    const flow = await this.store.flows.consumeByLookup(lookup, OIDC_LOGIN_FLOW, bindingHash, t);
    if (!flow) {
      const existing = await this.store.flows.findByLookup(lookup);
      if (!existing || existing.type !== OIDC_LOGIN_FLOW) throw failed(provider, 'state_unknown');
      if (existing.binding_hash !== bindingHash) throw failed(provider, 'binding');
      if (existing.state === 'active' && existing.expires_at <= t) {
        throw new LinkedAccountError('flow_expired', `You took too long to sign in with ${provider.name}. Start again.`, 'expired');
      }
      throw failed(provider, 'replayed');
    }
    const data = oidcLoginFlow.read(flow);
    if (!data) throw failed(provider, 'state_unknown');
    if (data.providerId !== provider.id) throw failed(provider, 'provider_mismatch');
    const config = await this.configuration(provider);

    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: data.codeVerifier,
        expectedState: state,
        expectedNonce: data.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      if (isNetworkFailure(err)) throw unavailable(provider, 'token_endpoint', err);
      throw failed(provider, reasonFor(err), err);
    }
    const claims = tokens.claims();
    if (!claims) throw failed(provider, 'no_id_token');

    let email = typeof claims.email === 'string' ? claims.email : undefined;
    let name = typeof claims.name === 'string' ? claims.name : undefined;
    // Many providers put profile claims in UserInfo only; they are for display, so their absence is no failure.
    if ((!email || !name) && tokens.access_token && config.serverMetadata().userinfo_endpoint) {
      try {
        const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
        email ??= typeof info.email === 'string' ? info.email : undefined;
        name ??= typeof info.name === 'string' ? info.name : undefined;
      } catch {
        /* display details only */
      }
    }
    const login: UpstreamLogin = { purpose: data.purpose, provider, issuer: claims.iss, subject: claims.sub };
    if (data.linkFlowId) login.linkFlowId = data.linkFlowId;
    if (data.returnTo) login.returnTo = data.returnTo;
    if (email) login.email = email.slice(0, 254);
    if (name) login.name = name.slice(0, 100);
    return login;
  }

  /**
   * Link an upstream account to a user. Linking the same account to the same
   * user again returns the existing authenticator (`created: false`); linking
   * it to anyone else is `linked_account_taken` (409), settled by the unique
   * index even when two requests race. The caller audits `linked_account.added` when created.
   */
  async linkAccount(
    store: Store,
    userId: string,
    provider: UpstreamProvider,
    issuer: string,
    subject: string,
    now: number,
    /** Shown in the list of sign-in methods; defaults to the provider's name. */
    name?: string,
  ): Promise<{ authenticator: Authenticator; created: boolean }> {
    const credentialId = linkedCredentialId(issuer, subject);
    const taken = () =>
      new LinkedAccountError('linked_account_taken', `This ${provider.name} account is already linked to another profile.`, 'taken');
    const existing = await store.authenticators.findByCredentialId(credentialId);
    if (existing) {
      if (existing.user_id === userId && existing.type === LINKED_ACCOUNT_TYPE) return { authenticator: existing, created: false };
      throw taken();
    }
    const row: NewAuthenticator = {
      id: randomToken(16),
      user_id: userId,
      type: LINKED_ACCOUNT_TYPE,
      credential_id: credentialId,
      ...NO_PASSKEY_COLUMNS,
      config: JSON.stringify({ provider: provider.id }),
      name: (name ?? provider.name).slice(0, 64),
      created_at: now,
      last_used_at: null,
    };
    try {
      await store.authenticators.insert(row);
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const winner = await store.authenticators.findByCredentialId(credentialId);
      if (winner?.user_id === userId && winner.type === LINKED_ACCOUNT_TYPE) return { authenticator: winner, created: false };
      throw taken();
    }
    return { authenticator: (await store.authenticators.findByCredentialId(credentialId))!, created: true };
  }

  /**
   * Keep the upstream account a `link` round trip vouched for, bound to this browser, for the flow that asked
   * (`login.linkFlowId`); returns the token to hand to that flow's page, which calls takeLink().
   */
  async recordLink(login: UpstreamLogin & { linkFlowId: string }, bindingHash: string): Promise<string> {
    const token = randomToken(16);
    const t = this.now();
    await linkFlow.insert(this.store, {
      id: randomToken(16),
      binding_hash: bindingHash,
      user_id: null,
      // Keyed by the flow too: a token brought to another flow's page finds nothing and stays usable.
      lookup: hashToken(`${login.linkFlowId}:${token}`),
      data: { linkFlowId: login.linkFlowId, providerId: login.provider.id, issuer: login.issuer, subject: login.subject },
      created_at: t,
      expires_at: t + OIDC_LOGIN_SECONDS * 1000,
    });
    return token;
  }

  /**
   * The upstream account recordLink() kept, used up once: only by the browser that went to the provider, only for
   * the flow that sent it (`linkFlowId`) and `providerId`. Undefined otherwise. In a transaction, a rollback keeps it.
   */
  async takeLink(store: Store, token: string, linkFlowId: string, providerId: string, bindingHash: string): Promise<VouchedAccount | undefined> {
    const flow = await store.flows.consumeByLookup(hashToken(`${linkFlowId}:${token}`), LINKED_ACCOUNT_LINK_FLOW, bindingHash, this.now());
    const data = linkFlow.read(flow);
    const provider = data && this.byId.get(data.providerId);
    if (!data || !provider || data.linkFlowId !== linkFlowId || data.providerId !== providerId) return undefined;
    return { provider, issuer: data.issuer, subject: data.subject };
  }

  /** The linked-account authenticator for this upstream account and its user, if linked. */
  async findLinked(store: Store, issuer: string, subject: string): Promise<{ authenticator: Authenticator; user: User } | undefined> {
    const found = await store.authenticators.findByCredentialIdWithUser(linkedCredentialId(issuer, subject));
    return found?.authenticator.type === LINKED_ACCOUNT_TYPE ? found : undefined;
  }
}

/** Passkey credential ids are base64url, so `#` keeps the two kinds apart. */
export function linkedCredentialId(issuer: string, subject: string): string {
  return `${issuer}#${subject}`;
}
