/**
 * A real relying party (openid-client) against the provider, over app.inject:
 * discovery, code + PKCE, the ID token checked by hand (signature against the
 * JWKS, iss, aud, nonce, acr, amr, auth_time), userinfo, refresh, logout, and
 * the OAuth errors bad requests must get — never a 5xx.
 */
import { createPublicKey, verify as verifySignature, type JsonWebKey } from 'node:crypto';
import * as client from 'openid-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { OidcModelPersister } from '../db/persisters/oidcModels.js';
import { authenticator, createTestApp, insertApp, signUp, TEST_ORIGIN, TestBrowser, type TestApp } from '../../test/support/app.js';
import { hashToken } from '../crypto.js';
import { addService, removeService } from './services.js';
import { ensureSigningKey, rotateSigningKey } from './signingKeys.js';
import { Secret, TOTP } from 'otpauth';
import { createUser } from '../users/createUser.js';
import { hashPassword } from '../strategies/password/passwords.js';
import { newTotpSecret } from '../strategies/totp/totp.js';
import type { SoftAuthenticator } from '../../test/support/softAuthenticator.js';
import { follow, injectFetch } from '../../test/support/relyingParty.js';
import { startUpstreamIdp, type UpstreamIdp } from '../../test/support/upstreamIdp.js';

const RP = 'https://rp.example';
const REDIRECT = `${RP}/callback`;
const LOGOUT = `${RP}/signed-out`;

function decodeJwt(jwt: string) {
  const [h, p, s] = jwt.split('.');
  return { header: JSON.parse(Buffer.from(h!, 'base64url').toString()), payload: JSON.parse(Buffer.from(p!, 'base64url').toString()), signingInput: `${h}.${p}`, signature: Buffer.from(s!, 'base64url') };
}

describe('OpenID Connect provider', () => {
  let t: TestApp;
  let clock = Date.now();
  let auth: SoftAuthenticator;
  let browser: TestBrowser;
  let clientId: string;
  let clientSecret: string;
  let rp: client.Configuration;

  beforeEach(async () => {
    clock = Date.now();
    t = await createTestApp({}, { now: () => clock });
    const added = await addService(
      t.app.latchkey.store,
      t.app.latchkey.secretBox,
      { name: 'Rota', redirectUris: [REDIRECT], postLogoutRedirectUris: [LOGOUT], clientType: 'confidential', aal: 2, firstParty: true },
      clock,
    );
    clientId = added.service.client_id;
    clientSecret = added.clientSecret!;
    rp = await client.discovery(new URL(TEST_ORIGIN), clientId, undefined, client.ClientSecretBasic(clientSecret), {
      execute: [client.allowInsecureRequests],
      [client.customFetch]: injectFetch(t.app),
    });
    auth = authenticator();
    browser = await signUp(t.app, auth, 'mary@example.com', 'Mary Seacole');
  });
  afterEach(() => t.close());

  /** An authorization request URL with fresh PKCE, nonce and state. */
  async function authorizeUrl(extra: Record<string, string> = {}) {
    return client.buildAuthorizationUrl(rp, {
      redirect_uri: REDIRECT,
      scope: 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
      nonce: client.randomNonce(),
      ...extra,
    });
  }

  async function authorize(extra: Record<string, string> = {}) {
    const verifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(rp, {
      redirect_uri: REDIRECT,
      scope: 'openid email profile offline_access',
      prompt: 'consent',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      nonce,
      state,
      ...extra,
    });
    const { url: callback } = await follow(browser, url.toString());
    return { callback, verifier, nonce, state };
  }

  it('serves discovery at the origin with code flow, S256 PKCE and the acr values', async () => {
    const meta = rp.serverMetadata();
    expect(meta.issuer).toBe(TEST_ORIGIN);
    expect(meta.authorization_endpoint).toBe(`${TEST_ORIGIN}/oidc/auth`);
    expect(meta.response_types_supported).toEqual(['code']);
    expect(meta.grant_types_supported).toEqual(['authorization_code', 'refresh_token']);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.acr_values_supported).toContain('http://idmanagement.gov/ns/assurance/aal/2');
  });

  it('code + PKCE: a signed ID token with acr, amr and auth_time; userinfo; refresh; logout', async () => {
    const { callback, verifier, nonce, state } = await authorize();
    expect(callback.startsWith(REDIRECT)).toBe(true);
    const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });

    const idToken = decodeJwt(tokens.id_token!);
    const jwks = (await t.app.inject({ method: 'GET', url: '/oidc/jwks' })).json() as { keys: (JsonWebKey & { kid: string })[] };
    const jwk = jwks.keys.find((k) => k.kid === idToken.header.kid)!;
    // A service added now signs with ES256 (signingKeys.ts DEFAULT_ID_TOKEN_ALG): JWS signatures are r || s (RFC 7518 §3.4).
    expect(idToken.header.alg).toBe('ES256');
    expect(verifySignature('sha256', Buffer.from(idToken.signingInput), { key: createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, idToken.signature)).toBe(true);
    const user = (await t.app.latchkey.store.users.findByEmail('mary@example.com'))!;
    expect(idToken.payload).toMatchObject({
      iss: TEST_ORIGIN,
      aud: clientId,
      sub: user.id,
      nonce,
      acr: 'http://idmanagement.gov/ns/assurance/aal/2',
      amr: ['hwk', 'user', 'mfa'], // the test authenticator is device-bound (not backup-eligible)
    });
    expect(Math.abs(idToken.payload.auth_time - Math.floor(clock / 1000))).toBeLessThanOrEqual(5);

    const info = await client.fetchUserInfo(rp, tokens.access_token, user.id);
    expect(info).toMatchObject({ sub: user.id, email: 'mary@example.com', name: 'Mary Seacole' });

    expect(tokens.refresh_token).toBeTruthy();
    const refreshed = await client.refreshTokenGrant(rp, tokens.refresh_token!);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(decodeJwt(refreshed.id_token!).payload).toMatchObject({ acr: 'http://idmanagement.gov/ns/assurance/aal/2', sub: user.id });
    // Rotated: the old refresh token is spent.
    await expect(client.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

    // RP-initiated logout ends Latchkey's session too.
    const end = client.buildEndSessionUrl(rp, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: LOGOUT });
    const confirm = await browser.get(end.pathname + end.search);
    expect(confirm.statusCode).toBe(200);
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
    const action = /id="op.logoutForm" method="post" action="([^"]+)"/.exec(confirm.body)?.[1] ?? '/oidc/session/end/confirm';
    const done = await t.app.inject({
      method: 'POST',
      url: new URL(action, TEST_ORIGIN).pathname,
      headers: { cookie: [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
    });
    expect(done.statusCode).toBe(303);
    expect(done.headers.location).toBe(LOGOUT);
    const sessionToken = browser.cookies.get('latchkey_session')!;
    expect(await t.app.latchkey.store.sessions.findByHash(hashToken(sessionToken))).toBeUndefined();
  });

  it('RS256 stays available: a service that asks for it, and every service added before ES256, gets RS256 ID tokens', async () => {
    expect(rp.serverMetadata().id_token_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'RS256']));
    const { store, secretBox } = t.app.latchkey;
    const asked = await addService(store, secretBox, { name: 'Legacy', redirectUris: [REDIRECT], clientType: 'confidential', aal: 2, firstParty: true, idTokenAlg: 'RS256' }, clock);
    // A service from before migration 0014 has no algorithm of its own: the column's default applies.
    const older = await addService(store, secretBox, { name: 'Older', redirectUris: [REDIRECT], clientType: 'confidential', aal: 2, firstParty: true }, clock);
    const { id_token_alg: _, ...withoutAlg } = older.service;
    await t.db.kysely.deleteFrom('services').where('client_id', '=', older.service.client_id).execute();
    await t.db.kysely.insertInto('services').values(withoutAlg).execute();
    expect((await store.services.find(older.service.client_id))?.id_token_alg).toBe('RS256');
    const jwks = (await t.app.inject({ method: 'GET', url: '/oidc/jwks' })).json() as { keys: (JsonWebKey & { kid: string; alg: string })[] };
    for (const { service, clientSecret: secret } of [asked, older]) {
      const rsRp = await client.discovery(new URL(TEST_ORIGIN), service.client_id, { id_token_signed_response_alg: 'RS256' }, client.ClientSecretBasic(secret!), {
        execute: [client.allowInsecureRequests],
        [client.customFetch]: injectFetch(t.app),
      });
      const verifier = client.randomPKCECodeVerifier();
      const url = client.buildAuthorizationUrl(rsRp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const { url: callback } = await follow(browser, url.toString());
      const tokens = await client.authorizationCodeGrant(rsRp, new URL(callback), { pkceCodeVerifier: verifier, idTokenExpected: true });
      const idToken = decodeJwt(tokens.id_token!);
      expect(idToken.header.alg).toBe('RS256');
      const jwk = jwks.keys.find((k) => k.kid === idToken.header.kid)!;
      expect(jwk.alg).toBe('RS256');
      expect(verifySignature('RSA-SHA256', Buffer.from(idToken.signingInput), createPublicKey({ key: jwk, format: 'jwk' }), idToken.signature)).toBe(true);
    }
  });

  it('a deployment with only an RS256 key gets an ES256 one at the next start, and keeps the RS256 key', async () => {
    const { store, secretBox } = t.app.latchkey;
    const es = (await store.signingKeys.listPublished(clock)).filter((k) => k.alg === 'ES256');
    expect(es).toHaveLength(1);
    await t.db.kysely.deleteFrom('signing_keys').where('alg', '=', 'ES256').execute();
    const rsKid = (await store.signingKeys.listPublished(clock))[0]!.kid;
    expect(await ensureSigningKey(store, secretBox, clock)).toBe(true);
    const after = await store.signingKeys.listPublished(clock);
    expect(after.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
    expect(after.find((k) => k.alg === 'RS256')!.kid).toBe(rsKid);
    expect(await ensureSigningKey(store, secretBox, clock)).toBe(false);
  });

  it('a removed service\'s access and refresh tokens stop working', async () => {
    const { callback, verifier, nonce, state } = await authorize();
    const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
    expect(await removeService(t.app.latchkey.store, clientId)).toMatchObject({ client_id: clientId, name: 'Rota' });
    const info = await t.app.inject({ method: 'GET', url: '/oidc/me', headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(info.statusCode).toBe(401);
    expect(info.headers['www-authenticate']).toContain('error="invalid_token"');
    await expect(client.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({ status: 401, cause: [{ parameters: { error: 'invalid_client' } }] });
    expect(await removeService(t.app.latchkey.store, clientId)).toBeUndefined();
  });

  it('refresh tokens stop at their absolute lifetime, however often they rotate', async () => {
    const { callback, verifier, nonce, state } = await authorize();
    let tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
    clock += 12 * 3600_000;
    tokens = await client.refreshTokenGrant(rp, tokens.refresh_token!);
    clock += 12 * 3600_000 + 1000;
    await expect(client.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('a running server picks up rotated keys: it signs with the new one, publishes the old one until it retires', async () => {
    const { store, secretBox } = t.app.latchkey;
    const jwksKids = async () => ((await t.app.inject({ method: 'GET', url: '/oidc/jwks' })).json() as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const oldKids = await jwksKids();
    expect(oldKids).toHaveLength(2); // one ES256, one RS256
    expect(await t.app.latchkey.reloadOidcKeys!()).toBe(false);
    const { kids } = await rotateSigningKey(store, secretBox, clock, 3600);
    expect(kids).toHaveLength(2);
    expect(await t.app.latchkey.reloadOidcKeys!()).toBe(true);
    expect((await jwksKids()).sort()).toEqual([...kids, ...oldKids].sort());
    const { callback, verifier, nonce, state } = await authorize();
    const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
    expect(kids).toContain(decodeJwt(tokens.id_token!).header.kid);
    clock += 3601_000;
    expect(await t.app.latchkey.reloadOidcKeys!()).toBe(true);
    expect((await jwksKids()).sort()).toEqual([...kids].sort());
  });

  it('after keys rotate, a restarted server signs with the new key and still publishes the old one', async () => {
    const { store, secretBox } = t.app.latchkey;
    const oldKids = ((await t.app.inject({ method: 'GET', url: '/oidc/jwks' })).json() as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    const { kids } = await rotateSigningKey(store, secretBox, clock, 3600);
    const restarted = await createTestApp({}, { db: t.db, now: () => clock });
    try {
      const published = ((await restarted.app.inject({ method: 'GET', url: '/oidc/jwks' })).json() as { keys: { kid: string }[] }).keys.map((k) => k.kid);
      expect(published.sort()).toEqual([...kids, ...oldKids].sort());
      const rp2 = await client.discovery(new URL(TEST_ORIGIN), clientId, undefined, client.ClientSecretBasic(clientSecret), {
        execute: [client.allowInsecureRequests],
        [client.customFetch]: injectFetch(restarted.app),
      });
      const b2 = await signUp(restarted.app, authenticator(), 'rosalind@example.com', 'Rosalind Franklin');
      const verifier = client.randomPKCECodeVerifier();
      const url = client.buildAuthorizationUrl(rp2, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const { url: callback } = await follow(b2, url.toString());
      const tokens = await client.authorizationCodeGrant(rp2, new URL(callback), { pkceCodeVerifier: verifier });
      expect(kids).toContain(decodeJwt(tokens.id_token!).header.kid);
      // Past the retirement time the old key leaves the JWKS.
      clock += 3601_000;
      const later = await createTestApp({}, { db: t.db, now: () => clock });
      try {
        expect(((await later.app.inject({ method: 'GET', url: '/oidc/jwks' })).json() as { keys: { kid: string }[] }).keys.map((k) => k.kid).sort()).toEqual([...kids].sort());
      } finally {
        await later.app.close();
      }
    } finally {
      await restarted.app.close();
    }
  });

  it('a third-party service asks for consent; Allow continues to the service, Cancel returns access_denied', async () => {
    const third = await addService(t.app.latchkey.store, t.app.latchkey.secretBox, { name: 'Partner app', redirectUris: [REDIRECT], clientType: 'public', aal: 2, firstParty: false }, clock);
    const start = async () => {
      const verifier = client.randomPKCECodeVerifier();
      const url = `/oidc/auth?${new URLSearchParams({ client_id: third.service.client_id, response_type: 'code', scope: 'openid email', redirect_uri: REDIRECT, state: 'st', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' })}`;
      const { res, url: at } = await follow(browser, url);
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('Sign in to Partner app?');
      expect(res.body).toContain('see your email address');
      return new URL(at).pathname;
    };
    const consentAt = await start();
    const allowed = await browser.postForm(`${consentAt}/confirm`, {});
    expect(allowed.statusCode).toBe(200);
    const link = /id="continue-link" class="button" href="([^"]+)"/.exec(allowed.body)![1]!.replace(/&amp;/g, '&');
    const { url: callback } = await follow(browser, link);
    expect(new URL(callback).searchParams.get('code')).toBeTruthy();

    const again = await start().catch(() => undefined);
    // Consent was granted once: the next request goes straight through.
    expect(again).toBeUndefined();
    await t.app.latchkey.store.kysely.deleteFrom('oidc_models').where('kind', '=', 'Grant').execute();
    await t.app.latchkey.store.kysely.deleteFrom('oidc_models').where('kind', '=', 'Session').execute();
    const consentAgain = await start();
    const cancelled = await browser.postForm(`${consentAgain}/abort`, {});
    const back = /id="continue-link" class="button" href="([^"]+)"/.exec(cancelled.body)![1]!.replace(/&amp;/g, '&');
    const { url: denied } = await follow(browser, back);
    expect(new URL(denied).searchParams.get('error')).toBe('access_denied');
    expect(new URL(denied).searchParams.get('state')).toBe('st');
  });

  describe('bad requests get the OAuth error the specs require, never a 5xx', () => {
    it('an unregistered redirect URI: an error page, no redirect (RFC 6749 §4.1.2.1)', async () => {
      const url = client.buildAuthorizationUrl(rp, { redirect_uri: 'https://evil.example/cb', scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' });
      const res = await browser.get(url.pathname + url.search);
      expect(res.statusCode).toBe(400);
      expect(res.headers.location).toBeUndefined();
      expect(res.body).toContain('data-error-code="invalid_redirect_uri"');
    });

    it('an unknown client: an error page', async () => {
      const res = await browser.get(`/oidc/auth?client_id=nobody&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(REDIRECT)}`);
      expect(res.statusCode).toBe(400);
      expect(res.body).toContain('data-error-code="invalid_client"');
    });

    it('no PKCE: invalid_request back at the redirect URI', async () => {
      const url = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', state: 's1' });
      const res = await browser.get(url.pathname + url.search);
      expect(res.statusCode).toBe(303);
      const back = new URL(res.headers.location as string);
      expect(back.origin + back.pathname).toBe(REDIRECT);
      expect(back.searchParams.get('error')).toBe('invalid_request');
      expect(back.searchParams.get('state')).toBe('s1');
    });

    it('implicit and password grants are refused', async () => {
      const implicit = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', response_type: 'id_token', nonce: 'n' });
      const res = await browser.get(implicit.pathname + implicit.search);
      expect(res.statusCode).toBeLessThan(500);
      expect(res.headers.location ?? res.body).toMatch(/unsupported_response_type/);
      const password = await t.app.inject({
        method: 'POST',
        url: '/oidc/token',
        headers: { authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'grant_type=password&username=mary@example.com&password=x',
      });
      expect(password.statusCode).toBe(400);
      expect(password.json().error).toBe('unsupported_grant_type');
    });

    it('a code used twice: invalid_grant, and the first tokens are revoked', async () => {
      const { callback, verifier, nonce, state } = await authorize();
      const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
      await expect(client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state })).rejects.toMatchObject({
        error: 'invalid_grant',
      });
      await expect(client.fetchUserInfo(rp, tokens.access_token, client.skipSubjectCheck)).rejects.toBeTruthy();
    });

    it('one code or refresh token sent many times at once: one answer with tokens, invalid_grant for the rest, and the grant revoked', async () => {
      const token = (form: Record<string, string>) =>
        t.app.inject({
          method: 'POST',
          url: '/oidc/token',
          headers: { authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams(form).toString(),
        });
      // What the database said to each consume (on the persister's prototype: on SQLite the adapter writes through a
      // transaction's own Store). The race is only run when some lost there, not all refused by oidc-provider's own
      // check of the consumed mark, which a request reading after the first commit sees.
      const consume = vi.spyOn(OidcModelPersister.prototype, 'consume');
      const tenAtOnce = async (form: Record<string, string>) => {
        consume.mockClear();
        const answers = await Promise.all(Array.from({ length: 10 }, () => token(form)));
        expect(consume.mock.settledResults.filter((r) => r.type === 'fulfilled' && r.value === false).length).toBeGreaterThan(0);
        expect(answers.map((r) => r.statusCode).sort()).toEqual([200, ...Array(9).fill(400)]);
        expect(answers.filter((r) => r.statusCode === 400).map((r) => r.json().error)).toEqual(Array(9).fill('invalid_grant'));
        return answers.find((r) => r.statusCode === 200)!.json() as { access_token: string; refresh_token: string };
      };
      const userinfo = async (accessToken: string) => (await t.app.inject({ method: 'GET', url: '/oidc/me', headers: { authorization: `Bearer ${accessToken}` } })).statusCode;

      const first = await authorize();
      const won = await tenAtOnce({ grant_type: 'authorization_code', code: new URL(first.callback).searchParams.get('code')!, redirect_uri: REDIRECT, code_verifier: first.verifier });
      // As with a code used twice one after the other: what the code gave stops working.
      expect(await userinfo(won.access_token)).toBe(401);
      expect((await token({ grant_type: 'refresh_token', refresh_token: won.refresh_token })).statusCode).toBe(400);

      const second = await authorize();
      const tokens = await client.authorizationCodeGrant(rp, new URL(second.callback), { pkceCodeVerifier: second.verifier, expectedNonce: second.nonce, expectedState: second.state });
      expect(await userinfo(tokens.access_token)).toBe(200);
      const rotated = await tenAtOnce({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token! });
      expect(await userinfo(rotated.access_token)).toBe(401);
      expect(await userinfo(tokens.access_token)).toBe(401);
      consume.mockRestore();
    });

    it('an expired code: invalid_grant', async () => {
      const { callback, verifier, nonce, state } = await authorize();
      clock += 2 * 60_000;
      await expect(client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state })).rejects.toMatchObject({
        error: 'invalid_grant',
      });
    });

    it('a wrong PKCE verifier: invalid_grant', async () => {
      const { callback, nonce, state } = await authorize();
      await expect(
        client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedNonce: nonce, expectedState: state }),
      ).rejects.toMatchObject({ error: 'invalid_grant' });
    });

    it('malformed requests: 4xx, never a 5xx', async () => {
      const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
      const cases: { method: 'GET' | 'POST'; url: string; headers?: Record<string, string>; payload?: string }[] = [
        { method: 'POST', url: '/oidc/token', headers: { authorization: basic, 'content-type': 'application/json' }, payload: '{"grant_type":"authorization_code"}' },
        { method: 'POST', url: '/oidc/token', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, payload: '%%%' },
        { method: 'POST', url: '/oidc/token', headers: { authorization: 'Basic !!!', 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=refresh_token&refresh_token=x' },
        { method: 'POST', url: '/oidc/token', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=authorization_code&code=nope&redirect_uri=x&code_verifier=y' },
        { method: 'POST', url: '/oidc/token', headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' }, payload: `grant_type=authorization_code&code=${'a'.repeat(70_000)}` },
        { method: 'GET', url: `/oidc/auth?client_id=${clientId}&client_id=${clientId}&response_type=code&scope=openid` },
        { method: 'GET', url: `/oidc/auth?client_id=${clientId}&response_type=code&scope=openid&redirect_uri=${encodeURIComponent(REDIRECT)}&code_challenge=short&code_challenge_method=plain` },
        { method: 'GET', url: '/oidc/me', headers: { authorization: 'Bearer nope' } },
        { method: 'GET', url: '/oidc/session/end?id_token_hint=not.a.jwt' },
        { method: 'GET', url: '/oidc/nothing-here' },
        { method: 'GET', url: '/interaction/unknownuid123' },
        { method: 'POST', url: '/interaction/unknownuid123/confirm', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: '_csrf=x' },
      ];
      for (const c of cases) {
        const res = await t.app.inject({ method: c.method, url: c.url, headers: { cookie: [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; '), ...c.headers }, payload: c.payload });
        expect(res.statusCode, `${c.method} ${c.url.slice(0, 80)}: ${res.body.slice(0, 200)}`).toBeGreaterThanOrEqual(300);
        expect(res.statusCode, `${c.method} ${c.url.slice(0, 80)}: ${res.body.slice(0, 200)}`).toBeLessThan(500);
      }
      // Without its cookie an interaction has expired, as far as anyone can tell.
      const expired = await browser.get('/interaction/unknownuid123');
      expect(expired.statusCode).toBe(410);
      expect(expired.body).toContain('data-error-code="interaction_expired"');
    });

    it('a wrong client secret and an unknown client: 401 invalid_client', async () => {
      const { callback } = await authorize();
      const code = new URL(callback).searchParams.get('code')!;
      for (const credentials of [`${clientId}:wrong`, `nobody:${clientSecret}`]) {
        const res = await t.app.inject({
          method: 'POST',
          url: '/oidc/token',
          headers: { authorization: `Basic ${Buffer.from(credentials).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: 'v'.repeat(43) }).toString(),
        });
        expect(res.statusCode).toBe(401);
        expect(res.json().error).toBe('invalid_client');
      }
    });
  });

  describe('interactions', () => {
    it('without a Latchkey session: sign in first (login_hint prefills the email), then back to the service', async () => {
      const stranger = new TestBrowser(t.app);
      const url = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'x'.repeat(43), code_challenge_method: 'S256', login_hint: 'mary@example.com' });
      const { res, url: at } = await follow(stranger, url.toString());
      expect(at).toMatch(/\/signin\?next=%2Finteraction%2F[\w-]+&email=mary%40example\.com$/);
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('value="mary@example.com"');
    });

    it('prompt=none after signing out of Latchkey, or in a fresh browser: login_required (OpenID Connect Core §3.1.2.6)', async () => {
      const first = await authorize();
      expect(first.callback.startsWith(REDIRECT)).toBe(true);
      const silent = async (who: TestBrowser) => {
        const { url } = await follow(who, (await authorizeUrl({ prompt: 'none', state: 'quiet' })).toString());
        const back = new URL(url);
        expect(back.origin + back.pathname).toBe(REDIRECT);
        expect(back.searchParams.get('state')).toBe('quiet');
        return back.searchParams.get('error');
      };
      // Still signed in: straight back with a code.
      const { url: stillIn } = await follow(browser, (await authorizeUrl({ prompt: 'none' })).toString());
      expect(new URL(stillIn).searchParams.get('code')).toBeTruthy();
      expect((await browser.postForm('/signout', {})).statusCode).toBe(303);
      // The provider's session cookie is still there; Latchkey's is not.
      expect(browser.cookies.has('latchkey_session')).toBe(false);
      expect(await silent(browser)).toBe('login_required');
      expect(await silent(new TestBrowser(t.app))).toBe('login_required');

      // Signed in again on Latchkey's own page: prompt=none answers from that sign-in.
      clock += 5_000;
      await browser.get('/signin');
      const options = await browser.postJson('/signin/options', { mode: 'discoverable' });
      expect((await browser.postJson('/signin/verify', { response: auth.getAssertion(options.json().options) })).statusCode).toBe(200);
      const verifier = client.randomPKCECodeVerifier();
      const again = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', prompt: 'none', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const { url: callback } = await follow(browser, again.toString());
      const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
      expect(tokens.claims()!.auth_time).toBe(Math.floor(clock / 1000));
    });

    it('prompt=none answers from the Latchkey sign-in even before the provider has a session in this browser', async () => {
      const ACR = { 2: 'http://idmanagement.gov/ns/assurance/aal/2', 3: 'http://idmanagement.gov/ns/assurance/aal/3' } as const;
      // Signed up (and so signed in) on Latchkey's own pages: the provider has never seen this browser.
      const verifier = client.randomPKCECodeVerifier();
      const silent = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', prompt: 'none', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const { url: callback } = await follow(browser, silent.toString());
      expect(new URL(callback).searchParams.get('error')).toBeNull();
      const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
      expect(tokens.claims()!.acr).toBe(ACR[2]);
      // In another fresh browser, a level nothing reaches is said as such, not as "sign in".
      const other = new TestBrowser(t.app);
      await other.get('/signin');
      const options = await other.postJson('/signin/options', { mode: 'discoverable' });
      expect((await other.postJson('/signin/verify', { response: auth.getAssertion(options.json().options) })).statusCode).toBe(200);
      const { url: unmet } = await follow(other, (await authorizeUrl({ prompt: 'none', acr_values: ACR[3] })).toString());
      expect(new URL(unmet).searchParams.get('error')).toBe('unmet_authentication_requirements');
    });

    it('another person signing in to the same browser gets their own sign-in at the service, and nothing of the first', async () => {
      const mary = (await t.app.latchkey.store.users.findByEmail('mary@example.com'))!;
      const first = await authorize();
      const maryTokens = await client.authorizationCodeGrant(rp, new URL(first.callback), { pkceCodeVerifier: first.verifier, expectedState: first.state, expectedNonce: first.nonce });
      expect(maryTokens.claims()!.sub).toBe(mary.id);
      expect((await browser.postForm('/signout', {})).statusCode).toBe(303);

      // Ada signs in on Latchkey's own page, then goes to the service: her sign-in, and she stays signed in.
      await signUp(t.app, authenticator(), 'ada@example.com', 'Ada Lovelace', browser);
      const ada = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
      const second = await authorize();
      expect(second.callback.startsWith(REDIRECT)).toBe(true);
      const adaTokens = await client.authorizationCodeGrant(rp, new URL(second.callback), { pkceCodeVerifier: second.verifier, expectedState: second.state, expectedNonce: second.nonce });
      expect(adaTokens.claims()!.sub).toBe(ada.id);
      expect((await browser.get('/settings')).statusCode).toBe(200);

      // Ada signs out; the service sends the browser first, and Mary signs in on the interaction's page.
      expect((await browser.postForm('/signout', {})).statusCode).toBe(303);
      const verifier = client.randomPKCECodeVerifier();
      const start = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const { res: signInPage, url: signInUrl } = await follow(browser, start.toString());
      expect(signInPage.statusCode).toBe(200);
      const next = new URL(signInUrl).searchParams.get('next');
      expect(next).toMatch(/^\/interaction\//);
      const options = await browser.postJson('/signin/options', { mode: 'discoverable' });
      expect((await browser.postJson('/signin/verify', { response: auth.getAssertion(options.json().options) })).statusCode).toBe(200);
      const { url: callback, res: landed } = await follow(browser, `${TEST_ORIGIN}${next}`);
      expect(callback.startsWith(REDIRECT), `${callback} ${landed.statusCode}`).toBe(true);
      const again = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
      expect(again.claims()!.sub).toBe(mary.id);
      expect((await browser.get('/settings')).statusCode).toBe(200);

      // Nothing of Ada's came along into Mary's session at the provider: Mary signing out at the service (which
      // revokes the grants that session holds) leaves Ada's refresh token working.
      const end = client.buildEndSessionUrl(rp, { id_token_hint: again.id_token!, post_logout_redirect_uri: LOGOUT });
      const confirm = await browser.get(end.pathname + end.search);
      const xsrf = /name="xsrf" value="([^"]+)"/.exec(confirm.body)![1]!;
      const loggedOut = await t.app.inject({
        method: 'POST',
        url: '/oidc/session/end/confirm',
        headers: { cookie: [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
      });
      expect(loggedOut.headers.location).toBe(LOGOUT);
      expect((await client.refreshTokenGrant(rp, adaTokens.refresh_token!)).access_token).toBeTruthy();
    });

    it('password + authenticator app: AAL2 with amr pwd otp mfa, back to the service through the continue page', async () => {
      const { store, secretBox } = t.app.latchkey;
      const user = await createUser(store, { email: 'katherine@example.com', displayName: 'Katherine Johnson' }, clock);
      // She chose "Not now" on the passkey offer today, so this sign-in goes straight back (src/flows/passkeyUpgrade).
      await store.kysely.updateTable('users').set({ password_hash: await hashPassword('correct horse battery'), status: 'enrolled', passkey_prompt_skipped_at: clock }).where('id', '=', user.id).execute();
      const secret = newTotpSecret();
      const appId = 'totp-app-1';
      await insertApp(store, secretBox, { id: appId, user_id: user.id, created_at: clock }, secret);
      const person = new TestBrowser(t.app);
      const verifier = client.randomPKCECodeVerifier();
      const url = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const { url: atSignIn } = await follow(person, url.toString());
      const next = new URL(atSignIn).searchParams.get('next')!;
      const code = new TOTP({ secret: Secret.fromBase32(secret) }).generate({ timestamp: clock });
      const signedIn = await person.postForm(`/signin/password?next=${encodeURIComponent(next)}`, { email: 'katherine@example.com', password: 'correct horse battery', code });
      expect(signedIn.statusCode).toBe(200);
      const link = /id="continue-link" class="button" href="([^"]+)"/.exec(signedIn.body)![1]!.replace(/&amp;/g, '&');
      expect(link).toBe(next);
      const { url: callback } = await follow(person, link);
      const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
      expect(tokens.claims()).toMatchObject({ sub: user.id, acr: 'http://idmanagement.gov/ns/assurance/aal/2', amr: ['pwd', 'otp', 'mfa'] });
    });

    it('prompt=login asks for a fresh sign-in even with a session, and auth_time says when it happened', async () => {
      const before = browser.cookies.get('latchkey_session')!;
      const { callback: atSignIn, verifier, nonce, state } = await authorize({ prompt: 'login consent' });
      expect(atSignIn).toMatch(/\/signin\?next=%2Finteraction%2F[\w-]+%3Fafter%3D/);
      // The old session has ended.
      expect(await t.app.latchkey.store.sessions.findByHash(hashToken(before))).toBeUndefined();
      clock += 5_000;
      await browser.get(atSignIn.slice(TEST_ORIGIN.length));
      const options = await browser.postJson('/signin/options', { mode: 'discoverable' });
      expect((await browser.postJson('/signin/verify', { response: auth.getAssertion(options.json().options) })).statusCode).toBe(200);
      const { url: callback } = await follow(browser, decodeURIComponent(new URL(atSignIn).searchParams.get('next')!));
      const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
      expect(tokens.claims()!.auth_time).toBe(Math.floor(clock / 1000));
    });

    it('max_age: a recent sign-in goes straight through; an older one must sign in again', async () => {
      const recent = await authorize({ max_age: '600' });
      expect(recent.callback.startsWith(REDIRECT)).toBe(true);
      // The same person, signed in 11 minutes ago (the provider's clock is the real one, so move the sign-in).
      const sessionHash = hashToken(browser.cookies.get('latchkey_session')!);
      await t.app.latchkey.store.kysely.updateTable('sessions').set({ authenticated_at: clock - 11 * 60_000 }).where('id_hash', '=', sessionHash).execute();
      const old = await authorize({ max_age: '600' });
      expect(old.callback).toMatch(/\/signin\?next=%2Finteraction%2F[\w-]+%3Fafter%3D/);
    });

    it('a forged fresh-sign-in mark is ignored', async () => {
      const { callback: atSignIn } = await authorize({ prompt: 'login consent' });
      const next = new URL(decodeURIComponent(new URL(atSignIn).searchParams.get('next')!), TEST_ORIGIN);
      const options = await browser.postJson('/signin/options', { mode: 'discoverable' });
      await browser.postJson('/signin/verify', { response: auth.getAssertion(options.json().options) });
      // Claim the forced sign-in happened long ago: the mark no longer verifies, so the sign-in must be newer than the request.
      const forged = `${next.pathname}?after=${encodeURIComponent('1.' + next.searchParams.get('after')!.split('.')[1])}`;
      const res = await browser.get(forged);
      expect([303, 410]).toContain(res.statusCode);
    });

    it('an AAL1 session asking an AAL2 service steps up with a passkey, then gets acr AAL2', async () => {
      const sessionHash = hashToken(browser.cookies.get('latchkey_session')!);
      await t.app.latchkey.store.kysely.updateTable('sessions').set({ aal: 1 }).where('id_hash', '=', sessionHash).execute();
      const { callback: atReauth, verifier, nonce, state } = await authorize();
      expect(atReauth).toMatch(/\/settings\/reauth\?next=%2Finteraction%2F/);
      const reauthPage = await browser.get(atReauth.slice(TEST_ORIGIN.length));
      expect(reauthPage.statusCode).toBe(200);
      const options = await browser.postJson('/reauth/options', {});
      const verified = await browser.postJson('/reauth/verify', { response: auth.getAssertion(options.json().options) });
      expect(verified.statusCode).toBe(200);
      const next = decodeURIComponent(new URL(atReauth).searchParams.get('next')!);
      const { url: callback } = await follow(browser, next);
      const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
      expect(tokens.claims()).toMatchObject({ acr: 'http://idmanagement.gov/ns/assurance/aal/2', amr: ['hwk', 'user', 'mfa'] });
    });

    it('a token at AAL2, then a weaker sign-in in the same browser: the next request steps up again', async () => {
      const first = await authorize();
      expect(first.callback.startsWith(REDIRECT)).toBe(true);
      // The person signs in again another way (an AAL1 upstream, say): a new, weaker Latchkey session.
      const sessionHash = hashToken(browser.cookies.get('latchkey_session')!);
      await t.app.latchkey.store.kysely.updateTable('sessions').set({ aal: 1, authenticated_at: clock + 2000 }).where('id_hash', '=', sessionHash).execute();
      const second = await authorize();
      expect(second.callback).toMatch(/\/settings\/reauth\?next=/);
    });

    it('a later sign-in is what auth_time reports, not the provider\'s older session', async () => {
      await authorize();
      const sessionHash = hashToken(browser.cookies.get('latchkey_session')!);
      const later = clock + 60_000;
      await t.app.latchkey.store.kysely.updateTable('sessions').set({ authenticated_at: later }).where('id_hash', '=', sessionHash).execute();
      const { callback, verifier, nonce, state } = await authorize();
      const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
      expect(tokens.claims()!.auth_time).toBe(Math.floor(later / 1000));
    });

    it('acr_values can ask for more than the service needs, never less', async () => {
      const aal1 = 'http://idmanagement.gov/ns/assurance/aal/1';
      const aal3 = 'http://idmanagement.gov/ns/assurance/aal/3';
      // An AAL2 service asking for AAL3: a synced passkey (AAL2) is not enough.
      const { res } = await follow(browser, (await authorizeUrl({ acr_values: aal3 })).toString());
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('data-required-aal="3"');
      // Asking for AAL1 does not lower the service's AAL2: an AAL1 session still steps up.
      const sessionHash = hashToken(browser.cookies.get('latchkey_session')!);
      await t.app.latchkey.store.kysely.updateTable('sessions').set({ aal: 1 }).where('id_hash', '=', sessionHash).execute();
      const { callback } = await authorize({ acr_values: aal1 });
      expect(callback).toMatch(/\/settings\/reauth\?next=%2Finteraction%2F/);
    });

    describe('one rule for the level a request needs, on every path (openid-client asking for each level)', () => {
      const ACR = { 1: 'http://idmanagement.gov/ns/assurance/aal/1', 2: 'http://idmanagement.gov/ns/assurance/aal/2', 3: 'http://idmanagement.gov/ns/assurance/aal/3' } as const;
      const essential = (acr: { value?: string; values?: string[] }) => JSON.stringify({ id_token: { acr: { essential: true, ...acr } } });
      let basic: client.Configuration;

      beforeEach(async () => {
        // A service registered at AAL1, so every level above comes from the request alone.
        const added = await addService(t.app.latchkey.store, t.app.latchkey.secretBox, { name: 'Library', redirectUris: [REDIRECT], clientType: 'confidential', aal: 1, firstParty: true }, clock);
        basic = await client.discovery(new URL(TEST_ORIGIN), added.service.client_id, undefined, client.ClientSecretBasic(added.clientSecret!), {
          execute: [client.allowInsecureRequests],
          [client.customFetch]: injectFetch(t.app),
        });
        // A live session at the provider as well as at Latchkey: the path that used to answer without looking.
        expect((await ask({})).acr).toBe(ACR[2]);
      });

      /** Ask with openid-client; the ID token's acr, the error at the redirect URI, or where the browser stopped. */
      async function ask(extra: Record<string, string>, who: TestBrowser = browser): Promise<{ acr?: string; error?: string; stopped?: string; status?: number; body?: string }> {
        const verifier = client.randomPKCECodeVerifier();
        const state = client.randomState();
        const url = client.buildAuthorizationUrl(basic, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, ...extra });
        const { res, url: at } = await follow(who, url.toString());
        if (!at.startsWith(REDIRECT)) return { stopped: new URL(at).pathname, status: res.statusCode, body: res.body };
        const back = new URL(at);
        if (back.searchParams.get('error')) return { error: back.searchParams.get('error')! };
        const tokens = await client.authorizationCodeGrant(basic, back, { pkceCodeVerifier: verifier, expectedState: state, idTokenExpected: true });
        return { acr: tokens.claims()!.acr as string };
      }

      it('a level the sign-in reached: a code and an ID token at that level (never lower, higher is fine)', async () => {
        for (const extra of <Record<string, string>[]>[
          { acr_values: ACR[1] },
          { acr_values: ACR[2] },
          { acr_values: `${ACR[2]} ${ACR[3]}` }, // alternatives: AAL2 is one of them
          { acr_values: 'urn:example:unknown' }, // voluntary and unknown: ignored
          { claims: essential({ value: ACR[1] }) },
          { claims: essential({ value: ACR[2] }) },
          { claims: essential({ values: [ACR[2], ACR[3]] }) },
          { acr_values: ACR[1], prompt: 'none' },
          { claims: essential({ value: ACR[2] }), prompt: 'none' },
        ]) {
          expect(await ask(extra), JSON.stringify(extra)).toEqual({ acr: ACR[2] });
        }
      });

      it('a level nothing the person has reaches (AAL3, or an essential acr Latchkey never issues): the page, or unmet_authentication_requirements with prompt=none', async () => {
        for (const [extra, required] of [
          [{ acr_values: ACR[3] }, '3'],
          [{ acr_values: ACR[3], prompt: 'login' }, '3'],
          [{ acr_values: ACR[3], max_age: '0' }, '3'],
          [{ claims: essential({ value: ACR[3] }) }, '3'],
          [{ claims: essential({ values: [ACR[3], 'urn:example:unknown'] }) }, '3'],
          [{ claims: essential({ value: 'urn:example:unknown' }) }, 'unknown'],
          [{ acr_values: ACR[1], claims: essential({ value: ACR[3] }) }, '3'],
        ] as const) {
          let answer = await ask(extra);
          if (answer.stopped === '/signin') {
            // prompt=login and max_age=0 end the session first: sign in again, then the same rule applies.
            const options = await browser.postJson('/signin/options', { mode: 'discoverable' });
            expect((await browser.postJson('/signin/verify', { response: auth.getAssertion(options.json().options) })).statusCode).toBe(200);
            answer = await ask(Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'prompt' && k !== 'max_age')));
          }
          expect(answer.stopped, JSON.stringify(extra)).toMatch(/^\/interaction\//);
          expect(answer.status).toBe(403);
          expect(answer.body).toContain(`data-required-aal="${required}"`);
          // max_age=0 asks for a sign-in now, which prompt=none forbids: that comes first (login_required).
          const silently = 'max_age' in extra ? 'login_required' : 'unmet_authentication_requirements';
          expect(await ask({ ...extra, prompt: 'none' }), JSON.stringify(extra)).toEqual({ error: silently });
        }
      });

      it('a level the person can reach but this sign-in did not: step-up, or login_required with prompt=none', async () => {
        const sessionHash = hashToken(browser.cookies.get('latchkey_session')!);
        await t.app.latchkey.store.kysely.updateTable('sessions').set({ aal: 1 }).where('id_hash', '=', sessionHash).execute();
        expect(await ask({ acr_values: ACR[1] })).toEqual({ acr: ACR[1] });
        for (const extra of <Record<string, string>[]>[{ acr_values: ACR[2] }, { claims: essential({ value: ACR[2] }) }, { acr_values: `${ACR[2]} ${ACR[3]}` }]) {
          expect((await ask(extra)).stopped, JSON.stringify(extra)).toBe('/settings/reauth');
          expect(await ask({ ...extra, prompt: 'none' }), JSON.stringify(extra)).toEqual({ error: 'login_required' });
        }
        // Once stepped up (here, or on any page of Latchkey's), the same request is answered at once, prompt=none too.
        const options = await browser.postJson('/reauth/options', {});
        expect((await browser.postJson('/reauth/verify', { response: auth.getAssertion(options.json().options) })).statusCode).toBe(200);
        expect(await ask({ claims: essential({ value: ACR[2] }), prompt: 'none' })).toEqual({ acr: ACR[2] });
      });

      it('a malformed acr in the claims parameter is the service\'s error: invalid_request at its redirect URI', async () => {
        expect(await ask({ claims: JSON.stringify({ id_token: { acr: { essential: true, values: ACR[2] } } }) })).toEqual({ error: 'invalid_request' });
        expect(await ask({ claims: JSON.stringify({ id_token: { acr: { value: 3 } } }) })).toEqual({ error: 'invalid_request' });
      });

      it('the claims parameter releases only claims of the scopes asked for (the consent page names scopes)', async () => {
        expect(await ask({ claims: JSON.stringify({ userinfo: { email: null, name: { essential: true } } }) })).toEqual({ error: 'invalid_request' });
        expect(await ask({ claims: JSON.stringify({ id_token: { email: null } }) })).toEqual({ error: 'invalid_request' });
        // Asked for with its scope, the same claim is fine.
        expect(await ask({ scope: 'openid email', claims: JSON.stringify({ id_token: { email: { essential: true } } }) })).toEqual({ acr: ACR[2] });
      });
    });

    it('an AAL3 service with nothing that reaches AAL3: a page saying what is needed, with no offer to add what would not help', async () => {
      const strict = await addService(t.app.latchkey.store, t.app.latchkey.secretBox, { name: 'Prescribing', redirectUris: [REDIRECT], clientType: 'public', aal: 3, firstParty: true }, clock);
      const url = `/oidc/auth?${new URLSearchParams({ client_id: strict.service.client_id, response_type: 'code', scope: 'openid', redirect_uri: REDIRECT, code_challenge: 'x'.repeat(43), code_challenge_method: 'S256' })}`;
      const { res } = await follow(browser, url);
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('Prescribing needs a stronger way to sign in');
      // Nothing anyone can add reaches AAL3 yet: no offer to add one that would not help.
      expect(res.body).not.toContain('/add-authenticator');
      expect(res.body).toContain('href="/settings"');
    });
  });
});

describe('step-up from a real AAL1 sign-in (a linked account at an upstream configured as AAL1)', () => {
  let idp: UpstreamIdp;
  let t: TestApp;
  let rp: client.Configuration;
  /** Moves Latchkey's clock (not the upstream's, nor oidc-provider's own expiry of the interaction). */
  let offset = 0;

  beforeAll(async () => {
    idp = await startUpstreamIdp({ redirectUris: [`${TEST_ORIGIN}/signin/linked/work/callback`] });
    t = await createTestApp({
      LATCHKEY_UPSTREAM_PROVIDERS: 'work',
      LATCHKEY_UPSTREAM_WORK_ISSUER: idp.issuer,
      LATCHKEY_UPSTREAM_WORK_CLIENT_ID: idp.clientId,
      LATCHKEY_UPSTREAM_WORK_CLIENT_SECRET: idp.clientSecret!,
      LATCHKEY_UPSTREAM_WORK_NAME: 'Work sign-in',
      LATCHKEY_UPSTREAM_WORK_AAL: '1',
      // These people are about step-up, not the passkey offer after a sign-in (src/flows/passkeyUpgrade tests that).
      LATCHKEY_PASSKEY_PROMPT_DAYS: '0',
    }, { now: () => Date.now() + offset });
    const { service, clientSecret } = await addService(t.app.latchkey.store, t.app.latchkey.secretBox, { name: 'Rota', redirectUris: [REDIRECT], clientType: 'confidential', aal: 2, firstParty: true }, Date.now());
    rp = await client.discovery(new URL(TEST_ORIGIN), service.client_id, undefined, client.ClientSecretBasic(clientSecret!), {
      execute: [client.allowInsecureRequests],
      [client.customFetch]: injectFetch(t.app),
    });
  });
  afterAll(async () => {
    await t?.close();
    await idp?.close();
  });

  /** Ask the service's way in, sign in with the linked account, and return where Latchkey sends the browser next. */
  async function signInWithWorkAccount(browser: TestBrowser, subject: string) {
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    const { url: atSignIn } = await follow(browser, url.toString());
    const next = new URL(atSignIn).searchParams.get('next')!;
    const start = await browser.get(`/signin/linked/work?next=${encodeURIComponent(next)}`);
    idp.setNextLogin({ accountId: subject, email: `${subject}@work.example` });
    const callback = await idp.browser().follow(String(start.headers.location));
    const back = await browser.get(callback.pathname + callback.search);
    expect(back.headers.location).toBe(next);
    return { verifier, ...(await follow(browser, next)) };
  }

  it('with a passkey: asked for it, then the service gets acr AAL2', async () => {
    const auth = authenticator();
    await signUp(t.app, auth, 'grace@example.com', 'Grace Hopper');
    const user = (await t.app.latchkey.store.users.findByEmail('grace@example.com'))!;
    const provider = t.config.upstreamProviders[0]!;
    await t.app.latchkey.linkedAccounts!.linkAccount(t.app.latchkey.store, user.id, provider, idp.issuer, 'grace-work', Date.now());

    const browser = new TestBrowser(t.app);
    const { verifier, url: atReauth } = await signInWithWorkAccount(browser, 'grace-work');
    expect(atReauth).toMatch(/\/settings\/reauth\?next=%2Finteraction%2F/);
    const session = (await t.app.latchkey.store.sessions.findByHash(hashToken(browser.cookies.get('latchkey_session')!)))!;
    expect(session.aal).toBe(1);

    await browser.get(atReauth.slice(TEST_ORIGIN.length));
    const options = await browser.postJson('/reauth/options', {});
    expect((await browser.postJson('/reauth/verify', { response: auth.getAssertion(options.json().options) })).statusCode).toBe(200);
    const { url: callback } = await follow(browser, new URL(atReauth).searchParams.get('next')!);
    const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
    expect(tokens.claims()).toMatchObject({ sub: user.id, acr: 'http://idmanagement.gov/ns/assurance/aal/2', amr: ['hwk', 'user', 'mfa'] });
  });

  it('with nothing stronger: a page saying what the service needs and where to add it; no code', async () => {
    const user = await createUser(t.app.latchkey.store, { email: 'ada.linked@example.com', displayName: 'Ada Linked' }, Date.now());
    await t.app.latchkey.store.users.setStatus(user.id, 'enrolled', Date.now());
    await t.app.latchkey.linkedAccounts!.linkAccount(t.app.latchkey.store, user.id, t.config.upstreamProviders[0]!, idp.issuer, 'ada-work', Date.now());
    const browser = new TestBrowser(t.app);
    const { res, url } = await signInWithWorkAccount(browser, 'ada-work');
    expect(url).toMatch(/\/interaction\//);
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain('Rota needs a stronger way to sign in');
    expect(res.body).toContain('a passkey, or a password with an authenticator app');
    // Signed in: the settings route for adding one, not the signed-out identity check.
    expect(res.body).toContain('action="/settings/add-authenticator"');
    expect(res.body).toContain(`name="interaction" value="${url.split('/interaction/')[1]}"`);
    expect(res.body).not.toContain('href="/add-authenticator"');
  });

  it('with nothing stronger: adds a passkey in settings (no identity check again), comes back, steps up and the service gets a code', async () => {
    const user = await createUser(t.app.latchkey.store, { email: 'mary.linked@example.com', displayName: 'Mary Linked' }, Date.now());
    await t.app.latchkey.store.users.setStatus(user.id, 'enrolled', Date.now());
    await t.app.latchkey.linkedAccounts!.linkAccount(t.app.latchkey.store, user.id, t.config.upstreamProviders[0]!, idp.issuer, 'mary-work', Date.now());
    const browser = new TestBrowser(t.app);
    const { verifier, url: stepUpAt } = await signInWithWorkAccount(browser, 'mary-work');
    const uid = stepUpAt.split('/interaction/')[1]!;

    const add = await browser.postForm('/settings/add-authenticator', { interaction: uid });
    expect(add.headers.location).toMatch(/^\/add-authenticator\/[A-Za-z0-9_-]+\/choose$/);
    const flowBase = String(add.headers.location).replace(/\/choose$/, '');
    const key = authenticator();
    const options = await browser.postJson(`${flowBase}/passkey/options`, { name: 'Laptop', placement: 'this-device' });
    const added = await browser.postJson(`${flowBase}/passkey/verify`, { response: key.createCredential(options.json().options), name: 'Laptop' });
    expect(added.statusCode).toBe(200);
    const done = await browser.get(added.json().redirect);
    expect(done.body).toContain('Authenticator added');
    expect(done.body).toContain(`href="/interaction/${uid}"`);
    expect(done.body).toContain('Continue to Rota');
    expect(done.body).not.toContain('Go to sign in');

    // Back at the service's sign-in: confirm it is them with the new passkey, then a code at AAL2.
    const { url: atReauth } = await follow(browser, `/interaction/${uid}`);
    expect(atReauth).toBe(`${TEST_ORIGIN}/settings/reauth?next=${encodeURIComponent(`/interaction/${uid}`)}`);
    await browser.get(atReauth.slice(TEST_ORIGIN.length));
    const check = await browser.postJson('/reauth/options', {});
    expect((await browser.postJson('/reauth/verify', { response: key.getAssertion(check.json().options) })).statusCode).toBe(200);
    const { url: callback } = await follow(browser, `/interaction/${uid}`);
    const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
    expect(tokens.claims()).toMatchObject({ sub: user.id, acr: 'http://idmanagement.gov/ns/assurance/aal/2' });
  });

  it('with nothing stronger, signed in longer ago than LATCHKEY_REAUTH_MINUTES: signs in again with the work account, adds a passkey, and the service gets a code', async () => {
    const user = await createUser(t.app.latchkey.store, { email: 'sam.linked@example.com', displayName: 'Sam Linked' }, Date.now());
    await t.app.latchkey.store.users.setStatus(user.id, 'enrolled', Date.now());
    await t.app.latchkey.linkedAccounts!.linkAccount(t.app.latchkey.store, user.id, t.config.upstreamProviders[0]!, idp.issuer, 'sam-work', Date.now());
    const stranger = await createUser(t.app.latchkey.store, { email: 'kim.linked@example.com', displayName: 'Kim Linked' }, Date.now());
    await t.app.latchkey.linkedAccounts!.linkAccount(t.app.latchkey.store, stranger.id, t.config.upstreamProviders[0]!, idp.issuer, 'kim-work', Date.now());
    const browser = new TestBrowser(t.app);
    const { verifier, url: stepUpAt } = await signInWithWorkAccount(browser, 'sam-work');
    const uid = stepUpAt.split('/interaction/')[1]!;
    const sessionHash = hashToken(browser.cookies.get('latchkey_session')!);
    offset = (t.config.reauthSeconds + 60) * 1000;
    try {
      // Too long since they signed in: first confirm it is them, with the only way in they have.
      const add = await browser.postForm('/settings/add-authenticator', { interaction: uid });
      const continueAdding = `/settings/add-authenticator?interaction=${uid}`;
      expect(add.headers.location).toBe(`/settings/reauth?next=${encodeURIComponent(continueAdding)}`);
      const reauth = await browser.get(String(add.headers.location));
      expect(reauth.statusCode).toBe(200);
      const again = `/reauth/linked/work?next=${encodeURIComponent(continueAdding)}`;
      expect(reauth.body).toContain(`href="${again.replace(/&/g, '&amp;')}"`);
      expect(reauth.body).toContain('Sign in again with Work sign-in');
      expect(reauth.body).not.toContain('id="reauth-button"');

      /** Sign in at the upstream as `subject`; what Latchkey answers at the callback. */
      const signInAgainAs = async (subject: string) => {
        const start = await browser.get(again);
        expect(start.statusCode).toBe(303);
        // A fresh sign-in there, not the upstream's existing session.
        expect(new URL(String(start.headers.location)).searchParams.get('prompt')).toBe('login');
        idp.setNextLogin({ accountId: subject, email: `${subject}@work.example` });
        const callback = await idp.browser().follow(String(start.headers.location));
        return browser.get(callback.pathname + callback.search);
      };
      // Someone else's work account (or one linked to no one) does not confirm it is Sam; nothing changes.
      for (const subject of ['kim-work', 'nobody-work']) {
        const wrong = await signInAgainAs(subject);
        expect(wrong.statusCode, subject).toBe(403);
        expect(wrong.body).toContain('That is not the Work sign-in account linked to your profile');
      }
      expect((await t.app.latchkey.store.sessions.findByHash(sessionHash))!.authenticated_at).toBeLessThan(Date.now() + offset - t.config.reauthSeconds * 1000);
      expect((await browser.get(continueAdding)).headers.location).toBe(`/settings/reauth?next=${encodeURIComponent(continueAdding)}`);

      // Their own: back into adding an authenticator, with the way back to the service.
      const back = await signInAgainAs('sam-work');
      expect(back.headers.location).toBe(continueAdding);
      const choose = await browser.get(continueAdding);
      expect(choose.headers.location).toMatch(/^\/add-authenticator\/[A-Za-z0-9_-]+\/choose$/);
      const flowBase = String(choose.headers.location).replace(/\/choose$/, '');
      const key = authenticator();
      const options = await browser.postJson(`${flowBase}/passkey/options`, { name: 'Laptop', placement: 'this-device' });
      const added = await browser.postJson(`${flowBase}/passkey/verify`, { response: key.createCredential(options.json().options), name: 'Laptop' });
      expect(added.statusCode).toBe(200);
      const done = await browser.get(added.json().redirect);
      expect(done.body).toContain(`href="/interaction/${uid}"`);
      expect(done.body).toContain('Continue to Rota');

      // The work account reaches AAL1 only: the service still asks for the new passkey, then gets a code at AAL2.
      const { url: atReauth } = await follow(browser, `/interaction/${uid}`);
      expect(atReauth).toBe(`${TEST_ORIGIN}/settings/reauth?next=${encodeURIComponent(`/interaction/${uid}`)}`);
      const check = await browser.postJson('/reauth/options', {});
      expect((await browser.postJson('/reauth/verify', { response: key.getAssertion(check.json().options) })).statusCode).toBe(200);
      const { url: callback } = await follow(browser, `/interaction/${uid}`);
      const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
      expect(tokens.claims()).toMatchObject({ sub: user.id, acr: 'http://idmanagement.gov/ns/assurance/aal/2' });
      const events = (await t.app.latchkey.store.audit.listByEvent('reauth')).filter((e) => e.subject_user_id === user.id);
      expect(events.map((e) => JSON.parse(String(e.detail ?? '{}')).method)).toContain('linked-account');
    } finally {
      offset = 0;
    }
  });

  it('signing in again with a work account is only for people whose only way in it is, and only with theirs', async () => {
    const user = await createUser(t.app.latchkey.store, { email: 'lin.linked@example.com', displayName: 'Lin Linked' }, Date.now());
    await t.app.latchkey.store.users.setStatus(user.id, 'enrolled', Date.now());
    await t.app.latchkey.linkedAccounts!.linkAccount(t.app.latchkey.store, user.id, t.config.upstreamProviders[0]!, idp.issuer, 'lin-work', Date.now());
    const browser = new TestBrowser(t.app);
    await signInWithWorkAccount(browser, 'lin-work');
    expect((await browser.get('/reauth/linked/other?next=/settings')).statusCode).toBe(404);
    // Signed out: sent to sign in, never to the upstream provider.
    expect((await new TestBrowser(t.app).get('/reauth/linked/work?next=/settings')).headers.location).toMatch(/^\/signin/);
    // With a passkey, the check is the passkey: a work account at AAL1 would be a weaker way round it.
    const key = authenticator();
    const add = await browser.postForm('/settings/add-authenticator', {});
    const flowBase = String(add.headers.location).replace(/\/choose$/, '');
    const options = await browser.postJson(`${flowBase}/passkey/options`, { name: 'Laptop', placement: 'this-device' });
    expect((await browser.postJson(`${flowBase}/passkey/verify`, { response: key.createCredential(options.json().options), name: 'Laptop' })).statusCode).toBe(200);
    const reauth = await browser.get('/settings/reauth?next=/settings');
    expect(reauth.body).toContain('id="reauth-button"');
    expect(reauth.body).not.toContain('Sign in again with');
    expect((await browser.get('/reauth/linked/work?next=/settings')).statusCode).toBe(404);
    // An open redirect is never made of `next`.
    for (const next of ['//evil.example', 'https://evil.example/', '/\\evil.example']) {
      const page = await browser.get(`/settings/reauth?next=${encodeURIComponent(next)}`);
      expect(page.body, next).not.toContain('evil.example');
    }
  });

  it('the return to a service is only ever an interaction the provider knows, by its local path', async () => {
    const user = await createUser(t.app.latchkey.store, { email: 'joan.linked@example.com', displayName: 'Joan Linked' }, Date.now());
    await t.app.latchkey.store.users.setStatus(user.id, 'enrolled', Date.now());
    await t.app.latchkey.linkedAccounts!.linkAccount(t.app.latchkey.store, user.id, t.config.upstreamProviders[0]!, idp.issuer, 'joan-work', Date.now());
    const browser = new TestBrowser(t.app);
    await signInWithWorkAccount(browser, 'joan-work');
    for (const interaction of ['//evil.example', 'https://evil.example/x', '../settings', 'a'.repeat(65)]) {
      const res = await browser.postForm('/settings/add-authenticator', { interaction });
      expect(res.statusCode, interaction).toBe(400);
    }
    // A well-formed uid the provider never issued: the ordinary settings journey, with no way back to a service.
    const add = await browser.postForm('/settings/add-authenticator', { interaction: 'notAnInteraction123' });
    const flowBase = String(add.headers.location).replace(/\/choose$/, '');
    const key = authenticator();
    const options = await browser.postJson(`${flowBase}/passkey/options`, { name: 'Laptop', placement: 'this-device' });
    const added = await browser.postJson(`${flowBase}/passkey/verify`, { response: key.createCredential(options.json().options), name: 'Laptop' });
    const done = await browser.get(added.json().redirect);
    expect(done.body).not.toContain('/interaction/');
    expect(done.body).toContain('href="/settings"');
  });
});
