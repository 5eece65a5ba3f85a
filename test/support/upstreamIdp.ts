/**
 * A real upstream OpenID Connect provider for linked-account tests: an
 * `oidc-provider` instance on 127.0.0.1 (plain http, a random port), as an
 * organisation's identity provider would be, with one registered client.
 *
 * There is no login page: the test says who "signs in" next with
 * `setNextLogin({ accountId, email, name })`, and the interaction endpoint
 * completes login and consent for that account, or answers `access_denied`
 * when it is null (the person cancelled). `browser()` is a cookie-keeping
 * fetch client that follows the provider's redirects.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface UpstreamAccount {
  accountId: string;
  email?: string;
  name?: string;
}

export interface UpstreamIdpOptions {
  clientId?: string;
  /** null: a public client (token_endpoint_auth_method none). */
  clientSecret?: string | null;
  redirectUris: string[];
  /**
   * Listen on this port (default: any free one). Lets a test give the relying
   * party the issuer before the relying party's own origin, and so the
   * redirect URI, is known.
   */
  port?: number;
}

export interface UpstreamIdp {
  /** http://127.0.0.1:<port> */
  issuer: string;
  clientId: string;
  clientSecret: string | null;
  /** Who signs in at the next login prompt; null: the person cancels (access_denied). */
  nextLogin: UpstreamAccount | null;
  setNextLogin(account: UpstreamAccount | null): void;
  /** A fresh browser at the provider: its own cookie jar, so no upstream session is reused. */
  browser(): UpstreamBrowser;
  close(): Promise<void>;
}

// ------------------------------------------------------------ the slice of oidc-provider used here (it ships no types)

interface InteractionDetails {
  uid: string;
  grantId?: string;
  prompt: { name: string; details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> } };
  params: Record<string, unknown>;
  session?: { accountId?: string };
}

interface OidcGrant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(indicator: string, scope: string): void;
  save(): Promise<string>;
}

interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: object, opts?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  Grant: { new (props: { accountId: string; clientId: string }): OidcGrant; find(id: string): Promise<OidcGrant | undefined> };
}

type ProviderConstructor = new (issuer: string, configuration: object) => OidcProvider;

/** oidc-provider's storage contract, in memory, per instance (its own default adapter warns on every start). */
function memoryAdapter() {
  const items = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>();
  const live = (key: string) => {
    const item = items.get(key);
    if (!item) return undefined;
    if (item.expiresAt <= Date.now()) {
      items.delete(key);
      return undefined;
    }
    return item.payload;
  };
  return class MemoryAdapter {
    constructor(readonly model: string) {}
    private key(id: string) {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: Record<string, unknown>, expiresIn: number) {
      items.set(this.key(id), { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Number.POSITIVE_INFINITY });
    }
    async find(id: string) {
      return live(this.key(id));
    }
    async findByUid(uid: string) {
      for (const [key, item] of items) if (key.startsWith(`${this.model}:`) && item.payload.uid === uid) return live(key);
      return undefined;
    }
    async findByUserCode(userCode: string) {
      for (const [key, item] of items) if (key.startsWith(`${this.model}:`) && item.payload.userCode === userCode) return live(key);
      return undefined;
    }
    async consume(id: string) {
      const item = items.get(this.key(id));
      if (item) item.payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      items.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string) {
      for (const [key, item] of items) if (item.payload.grantId === grantId) items.delete(key);
    }
  };
}

export async function startUpstreamIdp(opts: UpstreamIdpOptions): Promise<UpstreamIdp> {
  // A variable specifier: oidc-provider has no type declarations, the interfaces above describe what is used.
  const specifier = 'oidc-provider';
  const { default: Provider } = (await import(specifier)) as { default: ProviderConstructor };
  const clientId = opts.clientId ?? 'latchkey';
  const clientSecret = opts.clientSecret === undefined ? randomBytes(24).toString('base64url') : opts.clientSecret;
  const accounts = new Map<string, UpstreamAccount>();
  let provider: OidcProvider | undefined;
  let handle: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;

  const server = createServer((req, res) => {
    if (!provider || !handle) return void res.writeHead(503).end();
    if (req.method === 'GET' && /^\/interaction\/[\w-]+$/.test(req.url ?? '')) {
      interact(provider, req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`interaction failed: ${String(err)}`);
      });
      return;
    }
    handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const idp: UpstreamIdp = {
    issuer,
    clientId,
    clientSecret,
    nextLogin: null,
    setNextLogin(account) {
      idp.nextLogin = account;
    },
    browser: () => new UpstreamBrowser(issuer),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  /** The provider's login and consent prompts, answered for `idp.nextLogin` without a page. */
  async function interact(p: OidcProvider, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await p.interactionDetails(req, res);
    if (details.prompt.name === 'login') {
      const account = idp.nextLogin;
      if (!account) {
        return p.interactionFinished(req, res, { error: 'access_denied', error_description: 'The person cancelled signing in.' }, { mergeWithLastSubmission: false });
      }
      accounts.set(account.accountId, account);
      return p.interactionFinished(req, res, { login: { accountId: account.accountId } }, { mergeWithLastSubmission: false });
    }
    if (details.prompt.name === 'consent') {
      const missing = details.prompt.details;
      const grant =
        (details.grantId ? await p.Grant.find(details.grantId) : undefined) ??
        new p.Grant({ accountId: details.session!.accountId!, clientId: String(details.params.client_id) });
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
      return p.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
    }
    throw new Error(`unexpected prompt ${details.prompt.name}`);
  }

  // One RSA key for RS256 ID tokens (the OpenID Connect default algorithm); exported once, not in a loop.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'upstream-test', use: 'sig', alg: 'RS256' };

  provider = new Provider(issuer, {
    adapter: memoryAdapter(),
    clients: [
      {
        client_id: clientId,
        ...(clientSecret ? { client_secret: clientSecret, token_endpoint_auth_method: 'client_secret_basic' } : { token_endpoint_auth_method: 'none' }),
        redirect_uris: opts.redirectUris,
        response_types: ['code'],
        grant_types: ['authorization_code'],
      },
    ],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: async (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    async findAccount(_ctx: unknown, sub: string) {
      const account = accounts.get(sub);
      return {
        accountId: sub,
        async claims() {
          return { sub, ...(account?.email ? { email: account.email, email_verified: true } : {}), ...(account?.name ? { name: account.name } : {}) };
        },
      };
    },
    // Explicit lifetimes (seconds): the defaults print a notice each.
    ttl: { AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600 },
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    clientBasedCORS: () => false,
    async renderError(ctx: { type: string; body: unknown }, out: Record<string, string>) {
      ctx.type = 'json';
      ctx.body = out;
    },
  });
  handle = provider.callback();
  return idp;
}

/** A browser at the upstream provider: keeps its cookies and follows its redirects. */
export class UpstreamBrowser {
  readonly cookies = new Map<string, string>();
  constructor(readonly issuer: string) {}

  /** One GET, no redirect following; the Location is resolved against the request URL. */
  async get(url: string): Promise<{ status: number; location: string | undefined; body: string }> {
    const res = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '), accept: 'text/html' },
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attributes.some((a) => {
        const [k, v] = a.split('=').map((s) => s.trim().toLowerCase());
        return (k === 'max-age' && Number(v) <= 0) || (k === 'expires' && Date.parse(v ?? '') < Date.now());
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const location = res.headers.get('location');
    return { status: res.status, location: location ? new URL(location, url).href : undefined, body: await res.text() };
  }

  /**
   * Follow redirects while they stay at the provider; return the first URL
   * elsewhere (the relying party's redirect URI with code or error).
   */
  async follow(url: string): Promise<URL> {
    let next = url;
    const origin = new URL(this.issuer).origin;
    for (let hops = 0; hops < 20; hops++) {
      if (new URL(next).origin !== origin) return new URL(next);
      const res = await this.get(next);
      if (!res.location) throw new Error(`upstream answered ${res.status} at ${next}: ${res.body.slice(0, 500)}`);
      next = res.location;
    }
    throw new Error('too many redirects at the upstream provider');
  }
}
