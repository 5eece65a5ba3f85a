/**
 * A real relying party (openid-client) signing people in through Chromium:
 * discovery, code + PKCE with a passkey on a virtual authenticator, the ID
 * token verified (signature, iss, aud, nonce, acr, amr, auth_time), refresh,
 * RP-initiated logout, and step-up from an AAL1 session to an AAL2 service
 * (with a passkey, or by adding one in settings and coming back).
 */
import { createPublicKey, verify as verifySignature, type JsonWebKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/crypto.js';
import { addService } from '../../src/oidc/services.js';
import { startUpstreamIdp, type UpstreamIdp } from '../support/upstreamIdp.js';
import { expectAccessible, reservePort, signOut, signUpInBrowser, useE2E, waitReady } from './support.js';

const upstreamPort = await reservePort();
// A work-account provider at AAL1: someone whose only way in it is has nothing that reaches an AAL2 service.
const e2e = useE2E({
  LATCHKEY_UPSTREAM_PROVIDERS: 'work',
  LATCHKEY_UPSTREAM_WORK_ISSUER: `http://127.0.0.1:${upstreamPort.port}`,
  LATCHKEY_UPSTREAM_WORK_CLIENT_ID: 'latchkey',
  LATCHKEY_UPSTREAM_WORK_CLIENT_SECRET: 'e2e-upstream-secret',
  LATCHKEY_UPSTREAM_WORK_NAME: 'Work sign-in',
  LATCHKEY_UPSTREAM_WORK_AAL: '1',
});
let rpServer: Server;
let rpOrigin: string;
let idp: UpstreamIdp;

beforeAll(async () => {
  await upstreamPort.release();
  idp = await startUpstreamIdp({
    port: upstreamPort.port,
    clientId: 'latchkey',
    clientSecret: 'e2e-upstream-secret',
    redirectUris: [`${e2e.server.origin}/signin/linked/work/callback`],
  });
});
afterAll(() => idp?.close());

beforeAll(async () => {
  // The relying party's redirect and post-logout pages: plain pages the browser lands on.
  rpServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Rota</title><p>Back at the service</p>'));
  await new Promise<void>((resolve) => rpServer.listen(0, '127.0.0.1', resolve));
  rpOrigin = `http://localhost:${(rpServer.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => rpServer.close(() => resolve())));

async function relyingParty(aal: 1 | 2 | 3, firstParty = true) {
  const { store, secretBox } = e2e.server.app.latchkey;
  const { service, clientSecret } = await addService(
    store,
    secretBox,
    { name: 'Rota', redirectUris: [`${rpOrigin}/callback`], postLogoutRedirectUris: [`${rpOrigin}/signed-out`], clientType: 'confidential', aal, firstParty },
    Date.now(),
  );
  const config = await client.discovery(new URL(e2e.server.origin), service.client_id, undefined, client.ClientSecretBasic(clientSecret!), {
    execute: [client.allowInsecureRequests],
  });
  const verifier = client.randomPKCECodeVerifier();
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: `${rpOrigin}/callback`,
    scope: 'openid email offline_access',
    prompt: 'consent',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
  });
  const exchange = (callback: string) => client.authorizationCodeGrant(config, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
  return { config, clientId: service.client_id, url: url.toString(), nonce, exchange };
}

async function verifyIdTokenSignature(idToken: string): Promise<void> {
  const [h, p, s] = idToken.split('.') as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { kid: string; alg: string };
  const jwks = (await (await fetch(`${e2e.server.origin}/oidc/jwks`)).json()) as { keys: (JsonWebKey & { kid: string })[] };
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  expect(jwk, 'the signing key is published').toBeDefined();
  // A service added now signs with ES256 (signingKeys.ts DEFAULT_ID_TOKEN_ALG); a JWS ECDSA signature is r || s.
  expect(header.alg).toBe('ES256');
  expect(verifySignature('sha256', Buffer.from(`${h}.${p}`), { key: createPublicKey({ key: jwk!, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'))).toBe(true);
}

describe('OpenID Connect in a browser', () => {
  it('signs in to a service with a passkey: code + PKCE, verified ID token, refresh, and logout', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    const platform = await authenticators.add('platform');
    const email = 'florence@example.com';
    await signUpInBrowser(e2e.server, page, { displayName: 'Florence Nightingale', email });
    // Signed out with no authenticator attached, or /signin's autofill request would sign straight back in.
    const credentials = await authenticators.detach(platform);
    await signOut(page);
    await page.goto('about:blank');
    await authenticators.attach('platform', credentials);

    const rp = await relyingParty(2);
    await page.goto(rp.url);
    // No Latchkey session: /signin, where the platform passkey answers the page's autofill request at once
    // (Chromium's virtual environment, see signin.test.ts), then straight back through the interaction.
    await page.waitForURL(`${rpOrigin}/callback**`);
    const signIns = await t.postsTo('/signin/verify');
    expect(signIns.map((x) => x.status)).toEqual([200]);
    const signedInAt = Math.floor(e2e.server.clock.now() / 1000);

    const tokens = await rp.exchange(page.url());
    await verifyIdTokenSignature(tokens.id_token!);
    const user = (await e2e.server.app.latchkey.store.users.findByEmail(email))!;
    const passkey = (await e2e.server.app.latchkey.store.authenticators.listForUser(user.id))[0]!;
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({
      iss: e2e.server.origin,
      aud: rp.clientId,
      sub: user.id,
      nonce: rp.nonce,
      acr: 'http://idmanagement.gov/ns/assurance/aal/2',
      amr: [passkey.backup_eligible ? 'swk' : 'hwk', 'user', 'mfa'],
    });
    expect(Math.abs(claims.auth_time! - signedInAt)).toBeLessThanOrEqual(10);

    const info = await client.fetchUserInfo(rp.config, tokens.access_token, user.id);
    expect(info.email).toBe(email);
    const refreshed = await client.refreshTokenGrant(rp.config, tokens.refresh_token!);
    expect(refreshed.claims()).toMatchObject({ sub: user.id, acr: 'http://idmanagement.gov/ns/assurance/aal/2' });

    // RP-initiated logout: a confirmation page, then back at the service, and signed out of Latchkey too.
    await page.goto(client.buildEndSessionUrl(rp.config, { id_token_hint: refreshed.id_token!, post_logout_redirect_uri: `${rpOrigin}/signed-out` }).toString());
    await page.getByRole('button', { name: 'Yes, sign me out' }).waitFor();
    await expectAccessible(page, 'sign out of the service');
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await page.waitForURL(`${rpOrigin}/signed-out**`);
    await page.goto(e2e.server.url('/settings'));
    expect(new URL(page.url()).pathname).toBe('/signin');
  });

  it('steps an AAL1 session up with a passkey before an AAL2 service gets a token', async () => {
    const { page, authenticators } = await e2e.open();
    await authenticators.add('platform');
    const email = 'mary.seacole@example.com';
    await signUpInBrowser(e2e.server, page, { displayName: 'Mary Seacole', email });
    // As if this session came from an AAL1 sign-in (an upstream provider configured at AAL1).
    const cookies = await page.context().cookies();
    const token = cookies.find((c) => c.name === 'latchkey_session')!.value;
    await e2e.server.app.latchkey.store.kysely.updateTable('sessions').set({ aal: 1 }).where('id_hash', '=', hashToken(token)).execute();

    const rp = await relyingParty(2);
    await page.goto(rp.url);
    await page.waitForURL('**/settings/reauth?next=*');
    await waitReady(page);
    await page.getByRole('button', { name: 'Continue with a passkey' }).click();
    await page.waitForURL(`${rpOrigin}/callback**`);
    const tokens = await rp.exchange(page.url());
    await verifyIdTokenSignature(tokens.id_token!);
    expect(tokens.claims()).toMatchObject({ acr: 'http://idmanagement.gov/ns/assurance/aal/2', amr: expect.arrayContaining(['user', 'mfa']) });
    expect((await e2e.server.app.latchkey.store.sessions.findByHash(hashToken(token)))?.aal).toBe(2);
  });

  it('step-up with nothing strong enough, signed in longer ago than LATCHKEY_REAUTH_MINUTES: signs in again with the work account, adds a passkey in settings, comes back to the service and gets a code', async () => {
    const { page, authenticators } = await e2e.open();
    const first = await authenticators.add('platform');
    const email = 'edith.cavell@example.com';
    await signUpInBrowser(e2e.server, page, { displayName: 'Edith Cavell', email });
    // As if this person's only way in were their work account at the upstream (configured as AAL1), and this session
    // came from it (src/oidc/oidc.test.ts signs in through it): nothing they have reaches AAL2.
    const { store } = e2e.server.app.latchkey;
    const user = (await store.users.findByEmail(email))!;
    const [passkey] = await store.authenticators.listForUser(user.id);
    await store.authenticators.insert({
      id: 'work-account-1', user_id: user.id, type: 'linked-account', credential_id: `${idp.issuer}#edith`, public_key: '', counter: 0,
      transports: '[]', aaguid: '', config: JSON.stringify({ provider: 'work' }), backup_eligible: 0, backed_up: 0, attestation_format: 'none', name: 'Work sign-in', created_at: Date.now(), last_used_at: null,
    });
    const token = (await page.context().cookies()).find((c) => c.name === 'latchkey_session')!.value;
    await store.kysely.updateTable('sessions').set({ aal: 1, authenticator_id: 'work-account-1' }).where('id_hash', '=', hashToken(token)).execute();
    await store.authenticators.remove(user.id, passkey!.id);
    await authenticators.remove(first);
    await authenticators.add('platform');

    const rp = await relyingParty(2);
    await page.goto(rp.url);
    await page.waitForURL('**/interaction/**');
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Rota needs a stronger way to sign in');
    await expectAccessible(page, 'needs a stronger way to sign in, with a way to add one');
    // Signed in, but longer ago than the check that adding needs: they confirm it is them with the only way in they
    // have, then go straight on to the choice of authenticator, no email, National Insurance number or code again.
    const clock = e2e.server.clock;
    const offsetBefore = clock.offset;
    clock.advanceMinutes(e2e.server.config.reauthSeconds / 60 + 1);
    try {
      await page.getByRole('button', { name: 'Add a passkey or an authenticator app' }).click();
      await page.waitForURL('**/settings/reauth?next=*');
      await waitReady(page);
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Confirm it is you');
      await expectAccessible(page, 'confirm it is you with a work account');
      idp.setNextLogin({ accountId: 'edith', email: 'edith@work.example' });
      await page.getByRole('link', { name: 'Sign in again with Work sign-in' }).click();
      await page.waitForURL('**/add-authenticator/*/choose');
      await waitReady(page);
      await page.getByRole('radio', { name: /^Passkey/ }).check();
      await page.getByRole('button', { name: 'Continue', exact: true }).click();
      await page.waitForURL('**/add-authenticator/*/passkey');
      await waitReady(page);
      await page.getByRole('button', { name: 'Set up passkey' }).click();
      await page.waitForURL('**/add-authenticator/*/done?added=passkey');
      await waitReady(page);
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Authenticator added');
      expect(await page.getByRole('link', { name: 'Go to sign in' }).count()).toBe(0);
      await expectAccessible(page, 'authenticator added, back to the service');

      // Back at the service's sign-in: confirm it is them with the new passkey, and the service gets its code.
      await page.getByRole('link', { name: 'Continue to Rota' }).click();
      await page.waitForURL('**/settings/reauth?next=*');
      await waitReady(page);
      await page.getByRole('button', { name: 'Continue with a passkey' }).click();
      await page.waitForURL(`${rpOrigin}/callback**`);
      const tokens = await rp.exchange(page.url());
      expect(tokens.claims()).toMatchObject({ sub: user.id, acr: 'http://idmanagement.gov/ns/assurance/aal/2', amr: expect.arrayContaining(['user', 'mfa']) });
    } finally {
      clock.offset = offsetBefore;
    }
  });

  it('the pages on the way to a service are accessible: consent for a third-party service, the continue page, and "needs a stronger way"', async () => {
    const { page, authenticators } = await e2e.open();
    await authenticators.add('platform');
    await signUpInBrowser(e2e.server, page, { displayName: 'Grace Hopper', email: 'grace.hopper@example.com' });

    const thirdParty = await relyingParty(2, false);
    await page.goto(thirdParty.url);
    await page.waitForURL('**/interaction/**');
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign in to Rota?');
    await expectAccessible(page, 'consent');
    // The continue page moves on by script as soon as it loads; without the script it stays, so axe can look at
    // it, and its link is what a browser without JavaScript follows.
    await page.route('**/assets/app.js', (route) => route.abort());
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL('**/interaction/*/confirm');
    const onward = page.getByRole('link', { name: 'Continue' });
    await onward.waitFor();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Signed in');
    await expectAccessible(page, 'continue to the service');
    await page.unroute('**/assets/app.js');
    await onward.click();
    await page.waitForURL(`${rpOrigin}/callback**`);
    expect((await thirdParty.exchange(page.url())).claims()?.acr).toBe('http://idmanagement.gov/ns/assurance/aal/2');

    // A synced passkey reaches AAL2, not AAL3.
    const strict = await relyingParty(3);
    const answer = await page.goto(strict.url);
    await waitReady(page);
    expect(answer!.status()).toBe(403);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Rota needs a stronger way to sign in');
    await expectAccessible(page, 'needs a stronger way to sign in');
  });
});
