/**
 * Linked work accounts against a real upstream: an oidc-provider instance on
 * loopback plays the organisation's identity provider. Latchkey is driven with
 * app.inject, the provider with real HTTP; the test carries each side's
 * cookies and follows the Location headers between them, as a browser would.
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../config/index.js';
import { hashToken } from '../../crypto.js';
import { AppError } from '../../errors.js';
import { createUser } from '../../users/createUser.js';
import { createTestApp, TEST_ORIGIN, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { startUpstreamIdp, type UpstreamBrowser, type UpstreamIdp } from '../../../test/support/upstreamIdp.js';
import { startVerifiedFlow } from '../../flows/selfService/routes.js';

const NAME = 'NHS.net Connect';

describe('linked work account configuration', () => {
  const base = {
    LATCHKEY_UPSTREAM_PROVIDERS: 'nhsnet, work-idp',
    LATCHKEY_UPSTREAM_NHSNET_ISSUER: 'https://login.nhs.example/tenant/v2.0',
    LATCHKEY_UPSTREAM_NHSNET_CLIENT_ID: 'latchkey',
    LATCHKEY_UPSTREAM_NHSNET_CLIENT_SECRET: 's3cret',
    LATCHKEY_UPSTREAM_NHSNET_NAME: NAME,
    LATCHKEY_UPSTREAM_NHSNET_AAL: '3',
    LATCHKEY_UPSTREAM_WORK_IDP_ISSUER: 'http://127.0.0.1:8080',
    LATCHKEY_UPSTREAM_WORK_IDP_CLIENT_ID: 'public-client',
    LATCHKEY_UPSTREAM_WORK_IDP_NAME: 'Work sign-in',
  };

  it('has no upstream providers by default', () => {
    expect(loadConfig({}).upstreamProviders).toEqual([]);
  });

  it('reads each listed provider from its own variables', () => {
    expect(loadConfig(base).upstreamProviders).toEqual([
      { id: 'nhsnet', issuer: 'https://login.nhs.example/tenant/v2.0', clientId: 'latchkey', clientSecret: 's3cret', name: NAME, aal: 3 },
      // No secret: a public client (PKCE only); AAL defaults to 2.
      { id: 'work-idp', issuer: 'http://127.0.0.1:8080', clientId: 'public-client', clientSecret: undefined, name: 'Work sign-in', aal: 2 },
    ]);
  });

  it.each([
    [{ LATCHKEY_UPSTREAM_PROVIDERS: 'NHSnet' }, 'LATCHKEY_UPSTREAM_PROVIDERS'],
    [{ LATCHKEY_UPSTREAM_PROVIDERS: 'nhsnet,nhsnet' }, 'LATCHKEY_UPSTREAM_PROVIDERS'],
    [{ LATCHKEY_UPSTREAM_PROVIDERS: 'nhs_net' }, 'LATCHKEY_UPSTREAM_PROVIDERS'],
    [{ LATCHKEY_UPSTREAM_NHSNET_ISSUER: 'not a url' }, 'LATCHKEY_UPSTREAM_NHSNET_ISSUER'],
    [{ LATCHKEY_UPSTREAM_NHSNET_ISSUER: 'http://login.nhs.example' }, 'LATCHKEY_UPSTREAM_NHSNET_ISSUER'],
    [{ LATCHKEY_UPSTREAM_NHSNET_ISSUER: 'ftp://login.nhs.example' }, 'LATCHKEY_UPSTREAM_NHSNET_ISSUER'],
    [{ LATCHKEY_UPSTREAM_NHSNET_ISSUER: 'https://login.nhs.example/?tenant=1' }, 'LATCHKEY_UPSTREAM_NHSNET_ISSUER'],
    [{ LATCHKEY_UPSTREAM_NHSNET_ISSUER: '' }, 'LATCHKEY_UPSTREAM_NHSNET_ISSUER'],
    [{ LATCHKEY_UPSTREAM_NHSNET_CLIENT_ID: '' }, 'LATCHKEY_UPSTREAM_NHSNET_CLIENT_ID'],
    [{ LATCHKEY_UPSTREAM_WORK_IDP_CLIENT_ID: ' ' }, 'LATCHKEY_UPSTREAM_WORK_IDP_CLIENT_ID'],
    [{ LATCHKEY_UPSTREAM_NHSNET_NAME: '' }, 'LATCHKEY_UPSTREAM_NHSNET_NAME'],
    [{ LATCHKEY_UPSTREAM_NHSNET_AAL: '4' }, 'LATCHKEY_UPSTREAM_NHSNET_AAL'],
  ])('refuses %j naming %s', (override, variable) => {
    let error: unknown;
    try {
      loadConfig({ ...base, ...override });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message.startsWith(`${variable}: `)).toBe(true);
  });
});

/** A port nothing listens on: the "unreachable issuer". */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('linked work account against a real upstream provider', () => {
  let idp: UpstreamIdp;
  let t: TestApp;
  let offset = 0;

  beforeAll(async () => {
    idp = await startUpstreamIdp({ redirectUris: [`${TEST_ORIGIN}/signin/linked/nhsnet/callback`] });
    t = await createTestApp(
      {
        LATCHKEY_UPSTREAM_PROVIDERS: 'nhsnet,down',
        LATCHKEY_UPSTREAM_NHSNET_ISSUER: idp.issuer,
        LATCHKEY_UPSTREAM_NHSNET_CLIENT_ID: idp.clientId,
        LATCHKEY_UPSTREAM_NHSNET_CLIENT_SECRET: idp.clientSecret!,
        LATCHKEY_UPSTREAM_NHSNET_NAME: NAME,
        // Not the default, so the test shows the session takes the configured level.
        LATCHKEY_UPSTREAM_NHSNET_AAL: '3',
        LATCHKEY_UPSTREAM_DOWN_ISSUER: `http://127.0.0.1:${await closedPort()}`,
        LATCHKEY_UPSTREAM_DOWN_CLIENT_ID: 'latchkey',
        LATCHKEY_UPSTREAM_DOWN_NAME: 'Down Health IdP',
      },
      { now: () => Date.now() + offset },
    );
  });
  afterAll(async () => {
    await t?.close();
    await idp?.close();
  });
  afterEach(() => {
    offset = 0;
  });

  const linked = () => t.app.latchkey.linkedAccounts!;
  const nhsnet = () => t.config.upstreamProviders.find((p) => p.id === 'nhsnet')!;
  let people = 0;

  async function newUser(displayName = 'Alice Example') {
    const store = t.app.latchkey.store;
    const user = await createUser(store, { email: `person${++people}@example.org`, displayName }, Date.now());
    await store.users.setStatus(user.id, 'enrolled', Date.now());
    return user;
  }

  /** Link an upstream account the way the self-service flow will, and return the authenticator id. */
  async function link(userId: string, subject: string): Promise<string> {
    const { authenticator } = await linked().linkAccount(t.app.latchkey.store, userId, nhsnet(), idp.issuer, subject, Date.now());
    return authenticator.id;
  }

  /** Start at Latchkey, sign in at the provider; returns the callback URL the provider sent the browser to. */
  async function toCallback(browser: TestBrowser, start = '/signin/linked/nhsnet', upstream: UpstreamBrowser = idp.browser()): Promise<string> {
    const res = await browser.get(start);
    expect(res.statusCode, res.body).toBe(303);
    const location = String(res.headers.location);
    expect(location.startsWith(`${idp.issuer}/auth?`)).toBe(true);
    return atUpstream(location, upstream);
  }

  /** Sign in at the provider from its authorization URL; returns the Latchkey callback path. */
  async function atUpstream(authorizationUrl: string, upstream: UpstreamBrowser = idp.browser()): Promise<string> {
    const callback = await upstream.follow(authorizationUrl);
    expect(callback.origin).toBe(TEST_ORIGIN);
    return callback.pathname + callback.search;
  }

  async function sessionsOf(userId: string) {
    return t.db.kysely.selectFrom('sessions').selectAll().where('user_id', '=', userId).execute();
  }

  async function lastAudit(event: string) {
    return (await t.app.latchkey.store.audit.listByEvent(event, 1))[0]!;
  }

  function expectErrorPage(res: { statusCode: number; body: string }, status: number, code: string) {
    expect(res.statusCode, res.body).toBe(status);
    expect(res.body).toContain(`data-error-code="${code}"`);
  }

  it('self-service links the account the upstream vouches for, once, and it then signs in', async () => {
    const user = await newUser('Nell Linked');
    const browser = new TestBrowser(t.app);
    await browser.get('/add-authenticator');
    // The identity check is covered in selfService.test.ts; start where it ends.
    const flowId = await startVerifiedFlow(t.app.latchkey.store, browser.bindingHash(), user, Date.now());
    const base = `/add-authenticator/${flowId}`;
    expect((await browser.get(`${base}/choose`)).body).toContain(NAME);
    expect((await browser.postForm(`${base}/choose`, { type: 'linked:nhsnet' })).headers.location).toBe(`${base}/linked/nhsnet`);
    const unticked = await browser.postForm(`${base}/linked/nhsnet`, {});
    expect(unticked.statusCode).toBe(400);
    expect(unticked.body).toContain(`confirm only you have access to this ${NAME} account`);
    const go = await browser.postForm(`${base}/linked/nhsnet`, { confirm: 'yes' });
    expect(go.statusCode).toBe(303);
    idp.setNextLogin({ accountId: 'nell-upstream', email: 'nell@nhs.example' });
    const callback = await atUpstream(String(go.headers.location));
    // The callback keeps what the provider vouched for and hands it back to the self-service flow's page.
    const vouched = await browser.get(callback);
    expect(vouched.statusCode, vouched.body).toBe(303);
    expect(vouched.headers.location).toMatch(new RegExp(`^${base}/linked/nhsnet/finish\\?link=[A-Za-z0-9_-]+$`));
    const back = await browser.get(String(vouched.headers.location));
    expect(back.statusCode, back.body).toBe(303);
    expect(back.headers.location).toBe(`${base}/done?added=linked:nhsnet`);
    // Its token is used up with the flow.
    expect((await browser.get(String(vouched.headers.location))).statusCode).toBe(410);
    expect((await browser.get(String(back.headers.location))).body).toContain(`Your ${NAME} account has been added to your profile`);
    const rows = (await t.app.latchkey.store.authenticators.listForUser(user.id)).filter((a) => a.type === 'linked-account');
    expect(rows.map((a) => a.credential_id)).toEqual([`${idp.issuer}#nell-upstream`]);

    // The flow is used up: the same callback can't link again.
    expect((await browser.get(callback)).statusCode).toBeGreaterThanOrEqual(400);

    // Signing in with it now works.
    idp.setNextLogin({ accountId: 'nell-upstream', email: 'nell@nhs.example' });
    const signin = new TestBrowser(t.app);
    const done = await signin.get(await toCallback(signin));
    expect(done.statusCode).toBe(303);
    expect((await signin.get('/settings')).statusCode).toBe(200);
  });

  it('offers "Sign in with NHS.net Connect" on the sign-in page', async () => {
    const browser = new TestBrowser(t.app);
    const page = await browser.get('/signin?next=%2Fsettings%3Ftab%3D1');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain(`Sign in with ${NAME}`);
    expect(page.body).toContain('href="/signin/linked/nhsnet?next=%2Fsettings%3Ftab%3D1"');
    expect(page.body).toContain('Sign in with Down Health IdP');
  });

  it('sends the browser to the provider with the code flow, PKCE S256, state and nonce', async () => {
    const browser = new TestBrowser(t.app);
    const res = await browser.get('/signin/linked/nhsnet');
    expect(res.statusCode).toBe(303);
    const url = new URL(String(res.headers.location));
    expect(url.origin + url.pathname).toBe(`${idp.issuer}/auth`);
    const q = url.searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe(idp.clientId);
    expect(q.get('redirect_uri')).toBe(`${TEST_ORIGIN}/signin/linked/nhsnet/callback`);
    expect(q.get('scope')).toBe('openid email profile');
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[\w-]{43}$/);
    expect(q.get('state')).toMatch(/^[\w-]{40,}$/);
    expect(q.get('nonce')).toMatch(/^[\w-]{40,}$/);
    // The flow is stored under the state's hash, bound to this browser, for 10 minutes.
    const flow = (await t.app.latchkey.store.flows.findByLookup(hashToken(q.get('state')!)))!;
    expect(flow.type).toBe('oidc-login');
    expect(flow.binding_hash).toBe(hashToken(browser.cookies.get('latchkey_binding')!));
    expect(flow.expires_at - flow.created_at).toBe(10 * 60_000);
    expect(flow.data).not.toContain(q.get('state')!);
  });

  it('signs in end to end with a linked account at the configured assurance level', async () => {
    const user = await newUser();
    const authenticatorId = await link(user.id, 'alice');
    idp.setNextLogin({ accountId: 'alice', email: 'alice@nhs.net', name: 'Alice Example' });
    const browser = new TestBrowser(t.app);
    const callback = await toCallback(browser, '/signin/linked/nhsnet?next=%2Fsettings%3Fwelcome%3D1');
    expect(callback).toMatch(/^\/signin\/linked\/nhsnet\/callback\?code=.+&state=.+&iss=/);

    const done = await browser.get(callback);
    expect(done.statusCode, done.body).toBe(303);
    // No passkey yet: offered one first (src/flows/passkeyUpgrade), on the way to where the sign-in was going.
    expect(done.headers.location).toBe('/passkey-upgrade?next=%2Fsettings%3Fwelcome%3D1');
    expect(browser.cookies.get('latchkey_session')).toBeTruthy();
    expect((await browser.get('/settings')).statusCode).toBe(200);

    const [session] = await sessionsOf(user.id);
    expect(session!.aal).toBe(3);
    expect(session!.authenticator_id).toBe(authenticatorId);
    const authenticator = await t.app.latchkey.store.authenticators.findForUser(user.id, authenticatorId);
    expect(authenticator!.last_used_at).toBeGreaterThan(0);
    const event = await lastAudit('signin');
    expect(event.subject_user_id).toBe(user.id);
    expect(event.authenticator_id).toBe(authenticatorId);
    expect(JSON.parse(event.detail)).toEqual({ method: 'linked-account', provider: 'nhsnet' });

    // Replaying the same callback (back button, or a stolen URL) is refused.
    const replay = await new TestBrowser(t.app).get(callback);
    expectErrorPage(replay, 400, 'upstream_failed');
    const sameBrowser = await browser.get(callback);
    expectErrorPage(sameBrowser, 400, 'upstream_failed');
    expect(sameBrowser.body).toContain(`Signing in with ${NAME} did not work. Try again, or use another way to sign in.`);
    expect(JSON.parse((await lastAudit('signin.failed')).detail)).toMatchObject({ method: 'linked-account', provider: 'nhsnet', code: 'upstream_failed', reason: 'replayed' });
  });

  it('refuses a tampered state and a callback opened in another browser, and the real one still works', async () => {
    const user = await newUser();
    await link(user.id, 'bob');
    idp.setNextLogin({ accountId: 'bob' });
    const browser = new TestBrowser(t.app);
    const callback = await toCallback(browser);
    const url = new URL(callback, TEST_ORIGIN);

    const tampered = new URL(url);
    tampered.searchParams.set('state', url.searchParams.get('state')!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')));
    expectErrorPage(await browser.get(tampered.pathname + tampered.search), 400, 'upstream_failed');
    const noState = new URL(url);
    noState.searchParams.delete('state');
    expectErrorPage(await browser.get(noState.pathname + noState.search), 400, 'upstream_failed');

    // Another browser (another binding cookie) with the genuine URL: refused, and the flow is left for its owner.
    const other = new TestBrowser(t.app);
    const stolen = await other.get(callback);
    expectErrorPage(stolen, 400, 'upstream_failed');
    expect(other.cookies.get('latchkey_session')).toBeUndefined();
    expect(JSON.parse((await lastAudit('signin.failed')).detail)).toMatchObject({ reason: 'binding' });

    const done = await browser.get(callback);
    expect(done.statusCode, done.body).toBe(303);
    expect(done.headers.location).toBe('/passkey-upgrade?next=%2Fsettings');
    expect((await sessionsOf(user.id)).length).toBe(1);
  });

  it('refuses a code the provider did not issue (the flow is used up)', async () => {
    const user = await newUser();
    await link(user.id, 'carol');
    idp.setNextLogin({ accountId: 'carol' });
    const browser = new TestBrowser(t.app);
    const url = new URL(await toCallback(browser), TEST_ORIGIN);
    url.searchParams.set('code', 'not-a-real-code');
    const res = await browser.get(url.pathname + url.search);
    expectErrorPage(res, 400, 'upstream_failed');
    expect(JSON.parse((await lastAudit('signin.failed')).detail)).toMatchObject({ reason: 'token_invalid_grant' });
    expect(await sessionsOf(user.id)).toEqual([]);
  });

  it('explains when the person cancels at the provider (access_denied)', async () => {
    idp.setNextLogin(null);
    const browser = new TestBrowser(t.app);
    const callback = await toCallback(browser);
    expect(callback).toContain('error=access_denied');
    const res = await browser.get(callback);
    expectErrorPage(res, 400, 'upstream_failed');
    expect(res.body).toContain(`Signing in with ${NAME} did not work.`);
    expect(JSON.parse((await lastAudit('signin.failed')).detail)).toMatchObject({ code: 'upstream_failed', reason: 'access_denied' });
    expect(browser.cookies.get('latchkey_session')).toBeUndefined();
  });

  it('explains that an upstream account is not linked to any profile', async () => {
    idp.setNextLogin({ accountId: 'stranger', email: 'stranger@nhs.net' });
    const browser = new TestBrowser(t.app);
    const res = await browser.get(await toCallback(browser));
    expectErrorPage(res, 400, 'linked_account_unknown');
    expect(res.body).toContain(`This ${NAME} account is not linked to a profile here. Sign in another way, then link it, or ask your registration authority.`);
    expect(browser.cookies.get('latchkey_session')).toBeUndefined();
    expect(JSON.parse((await lastAudit('signin.failed')).detail)).toMatchObject({ code: 'linked_account_unknown' });
  });

  it('refuses a suspended user', async () => {
    const user = await newUser();
    await link(user.id, 'dave');
    await t.app.latchkey.store.users.setStatus(user.id, 'suspended', Date.now());
    idp.setNextLogin({ accountId: 'dave' });
    const browser = new TestBrowser(t.app);
    expectErrorPage(await browser.get(await toCallback(browser)), 403, 'account_disabled');
    expect(await sessionsOf(user.id)).toEqual([]);
  });

  it('says the page expired when the person comes back after 10 minutes', async () => {
    idp.setNextLogin({ accountId: 'erin' });
    const browser = new TestBrowser(t.app);
    const callback = await toCallback(browser);
    offset = 11 * 60_000;
    expectErrorPage(await browser.get(callback), 410, 'flow_expired');
  });

  it('links one upstream account to at most one profile', async () => {
    const first = await newUser('Frank First');
    const second = await newUser('Grace Second');
    const store = t.app.latchkey.store;
    const a = await linked().linkAccount(store, first.id, nhsnet(), idp.issuer, 'frank', Date.now());
    expect(a.created).toBe(true);
    expect(a.authenticator).toMatchObject({
      type: 'linked-account',
      credential_id: `${idp.issuer}#frank`,
      aaguid: '',
      config: JSON.stringify({ provider: 'nhsnet' }),
      name: NAME,
      public_key: '',
      counter: 0,
      transports: '[]',
      attestation_format: 'none',
    });
    // The same account to the same user again: nothing changes.
    const again = await linked().linkAccount(store, first.id, nhsnet(), idp.issuer, 'frank', Date.now());
    expect(again).toEqual({ authenticator: a.authenticator, created: false });

    let error: unknown;
    try {
      await linked().linkAccount(store, second.id, nhsnet(), idp.issuer, 'frank', Date.now());
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('linked_account_taken');
    expect((error as AppError).status).toBe(409);
    expect((error as AppError).message).toBe(`This ${NAME} account is already linked to another profile.`);
    expect((error as AppError).message).not.toContain('Frank');
    expect((await linked().findLinked(store, idp.issuer, 'frank'))!.user.id).toBe(first.id);
  });

  it('hands purpose "link" returns back to the page that asked, for that flow and browser only, and 404s without one', async () => {
    await newUser();
    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    const bindingHash = hashToken(browser.cookies.get('latchkey_binding')!);
    idp.setNextLogin({ accountId: 'heidi', email: 'heidi@nhs.net', name: 'Heidi Example' });

    // Nowhere to go back to.
    const first = await linked().start('nhsnet', { purpose: 'link', bindingHash, linkFlowId: 'flow-1' });
    expectErrorPage(await browser.get(await atUpstream(first)), 404, 'not_found');

    const second = await linked().start('nhsnet', { purpose: 'link', bindingHash, linkFlowId: 'flow-2', returnTo: '/somewhere/flow-2' });
    const back = await browser.get(await atUpstream(second));
    expect(back.statusCode, back.body).toBe(303);
    const location = new URL(String(back.headers.location), TEST_ORIGIN);
    expect(location.pathname).toBe('/somewhere/flow-2');
    const token = location.searchParams.get('link')!;
    const store = t.app.latchkey.store;
    // Not for another flow, provider or browser; then once for the right one.
    expect(await linked().takeLink(store, token, 'flow-1', 'nhsnet', bindingHash)).toBeUndefined();
    expect(await linked().takeLink(store, token, 'flow-2', 'nhsnet', 'another-browser')).toBeUndefined();
    const taken = await linked().takeLink(store, token, 'flow-2', 'nhsnet', bindingHash);
    expect(taken).toMatchObject({ issuer: idp.issuer, subject: 'heidi' });
    expect(taken!.provider.id).toBe('nhsnet');
    expect(await linked().takeLink(store, token, 'flow-2', 'nhsnet', bindingHash)).toBeUndefined();
  });

  it('answers 503 with a clear page when the provider cannot be reached', async () => {
    const browser = new TestBrowser(t.app);
    const res = await browser.get('/signin/linked/down');
    expectErrorPage(res, 503, 'upstream_unavailable');
    expect(res.body).toContain('Down Health IdP is not available right now. Try again later or use another way to sign in.');
    const json = await browser.get('/signin/linked/down', 'application/json');
    expect(json.statusCode).toBe(503);
    expect(json.json()).toEqual({
      error: { code: 'upstream_unavailable', message: 'Down Health IdP is not available right now. Try again later or use another way to sign in.' },
    });
  });

  it('answers 404 for a provider that is not configured', async () => {
    const browser = new TestBrowser(t.app);
    expectErrorPage(await browser.get('/signin/linked/nope'), 404, 'not_found');
    expectErrorPage(await browser.get('/signin/linked/nope/callback?state=x&code=y'), 404, 'not_found');
  });
});
