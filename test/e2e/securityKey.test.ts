/**
 * Issue 13 in Chromium: an RA agent issues a "Security key (AAL3)" link; the
 * person registers a virtual CTAP2 USB key with a PIN, whose packed attestation
 * Chromium signs with its virtual authenticator's batch certificate (trusted
 * here through a metadata statement naming it, as an organisation trusts a
 * vendor's root through the FIDO metadata); the key shows at AAL3 in settings
 * and in the console; a service that needs AAL3 gets acr AAL3 and amr hwk,
 * user, mfa. A key that syncs (backup eligible) is refused by name.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAttestationObject, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import type { User } from '../../src/db/schema.js';
import { addService } from '../../src/oidc/services.js';
import { catalogueWith, metadataStatement } from '../support/metadataStatements.js';
import { closeContextsAfterEach, errorSummaryText, expectAccessible, launchBrowser, openPage, startServer, toBase64Url, visit, waitReady, type E2EServer, type TestPage } from './support.js';

const AAL3 = 'http://idmanagement.gov/ns/assurance/aal/3';
let server: E2EServer;
let browser: Browser;
let rpServer: Server;
let rpOrigin: string;
const openTracked = closeContextsAfterEach();

beforeAll(async () => {
  [server, browser] = await Promise.all([startServer(), launchBrowser()]);
  rpServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>Records</title><p>Back at the service</p>'));
  await new Promise<void>((resolve) => rpServer.listen(0, '127.0.0.1', resolve));
  rpOrigin = `http://localhost:${(rpServer.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  await new Promise<void>((resolve) => rpServer?.close(() => resolve()));
});

/**
 * What Chromium's virtual CTAP2 authenticator attests with: its AAGUID and its (self-signed) batch certificate,
 * read from one registration on a blank page, so the test follows whatever this Chromium sends.
 */
async function virtualKeyModel(): Promise<{ aaguid: string; certificate: Buffer }> {
  const t = await openPage(browser, server);
  const id = await t.authenticators.add('security-key');
  await visit(t.page, server.url('/signin'));
  const attestationObject = await t.page.evaluate(async () => {
    const credential = (await navigator.credentials.create({
      publicKey: {
        rp: { name: 'probe', id: location.hostname },
        user: { id: new Uint8Array([9]), name: 'probe', displayName: 'probe' },
        challenge: new Uint8Array(32),
        pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
        attestation: 'direct',
        authenticatorSelection: { userVerification: 'required' },
      },
    })) as PublicKeyCredential;
    return Array.from(new Uint8Array((credential.response as AuthenticatorAttestationResponse).attestationObject));
  });
  await t.authenticators.remove(id);
  await t.close();
  const decoded = decodeAttestationObject(new Uint8Array(attestationObject));
  const aaguid = Buffer.from(parseAuthenticatorData(decoded.get('authData')).aaguid!).toString('hex');
  const x5c = decoded.get('attStmt').get('x5c') as Uint8Array[];
  return { aaguid: aaguid.replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5'), certificate: Buffer.from(x5c[0]!) };
}

/** Grace, an RA agent, in her own browser for the whole file. */
async function agent(): Promise<TestPage & { user: User }> {
  const t = await openPage(browser, server);
  await t.authenticators.add('platform');
  const { user, url } = await server.invite('grace@example.com', 'Grace Hopper');
  await visit(t.page, url);
  await t.page.getByLabel('Name your passkey').fill('Agent laptop');
  await t.page.getByRole('button', { name: 'Set up passkey' }).click();
  await t.page.waitForURL('**/enrol/done');
  await server.app.latchkey.store.roles.set(user.id, ['ra_agent_advanced'], null, Date.now());
  return { ...t, user };
}

/** The agent issues Ada a "Security key (AAL3)" link from her profile; returns the link. */
async function issueSecurityKey(page: Page, userId: string, name: string): Promise<string> {
  await visit(page, server.url(`/admin/users/${userId}/authenticators`));
  await page.getByRole('link', { name: 'Issue other authenticator' }).click();
  await page.waitForURL(`**/admin/users/${userId}/issue`);
  await waitReady(page);
  await page.getByRole('radio', { name: /^Security key \(AAL3\)/ }).check();
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL(`**/admin/users/${userId}/issue/security-key`);
  await waitReady(page);
  expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe(`Register a security key (AAL3) for ${name}`);
  await expectAccessible(page, 'security key instructions');
  await page.getByRole('button', { name: 'Generate link' }).click();
  await page.waitForURL(new RegExp(`/admin/users/${userId}/enrolments/[A-Za-z0-9_-]+$`));
  await waitReady(page);
  return page.getByLabel('Enrolment link').inputValue();
}

describe('an RA agent issues a security key for AAL3', () => {
  // Set up once, from inside the first test that needs it (a page reports its address when a test fails).
  let setUp: Promise<TestPage & { user: User }> | undefined;
  const agentReady = () =>
    (setUp ??= (async () => {
      const model = await virtualKeyModel();
      server.app.latchkey.trust.setMetadata(
        catalogueWith([
          { statement: metadataStatement({ aaguid: model.aaguid, description: 'Virtual Security Key 2', attestationRootCertificates: [model.certificate] }), statusReports: [{ status: 'FIDO_CERTIFIED_L2' }] },
        ]),
      );
      return agent();
    })());
  afterAll(async () => (await setUp)?.close());

  it('a key that syncs is refused by name, and the link still works', async () => {
    const grace = await agentReady();
    const { user: ada } = await server.invite('ada@example.com', 'Ada Lovelace');
    const link = await issueSecurityKey(grace.page, ada.id, 'Ada Lovelace');
    const synced = await openTracked(browser, server);
    // CDP's defaultBackupEligibility: the key reports BE and BS, as a passkey in a password manager does.
    await synced.authenticators.add('security-key', { defaultBackupEligibility: true, defaultBackupState: true });
    await visit(synced.page, link);
    expect(await synced.page.getByRole('heading', { level: 1 }).innerText()).toBe('Register your security key');
    await expectAccessible(synced.page, 'register your security key');
    await synced.page.getByRole('button', { name: 'Register security key' }).click();
    expect(await errorSummaryText(synced.page)).toContain('Virtual Security Key 2 can’t be used as a security key for the highest level of sign-in (AAL3). It is synced between devices.');
    const flows = await server.app.latchkey.store.flows.listForUser(ada.id, ['invite'], 5);
    expect(flows.filter((f) => f.state === 'active')).toHaveLength(1);
  });

  it('a device-bound key with a PIN registers, shows at AAL3 in settings and the console, and signs in to a service that needs AAL3', async () => {
    const { store, secretBox } = server.app.latchkey;
    const grace = await agentReady();
    const { user: ada } = await server.invite('alan@example.com', 'Alan Turing');
    const link = await issueSecurityKey(grace.page, ada.id, 'Alan Turing');
    const t = await openTracked(browser, server);
    const alansKey = await t.authenticators.add('security-key');
    await visit(t.page, link);
    await t.page.getByLabel('Name your security key').fill('Blue key');
    await t.page.getByRole('button', { name: 'Register security key' }).click();
    await t.page.waitForURL(/\/enrol\/done\?registered=security-key$/);
    await waitReady(t.page);
    expect(await t.page.getByRole('heading', { level: 1 }).innerText()).toBe('Your security key is registered');
    await expectAccessible(t.page, 'security key registered');
    const stored = (await store.authenticators.listForUser(ada.id)).find((a) => a.name === 'Blue key')!;
    expect(JSON.parse(stored.config)).toEqual({ attestation: { verified: true, model: 'Virtual Security Key 2', certification: 'FIDO_CERTIFIED_L2' } });

    await visit(t.page, server.url('/settings'));
    expect(await t.page.locator('main').innerText()).toContain('highest level of sign-in (AAL3)');
    await visit(grace.page, server.url(`/admin/users/${ada.id}/authenticators`));
    expect(await grace.page.locator(`tr[data-authenticator-id="${stored.id}"]`).innerText()).toMatch(/Virtual Security Key 2[\s\S]*Verified[\s\S]*AAL3/);

    // Signed out, Alan comes back from a service that needs AAL3 and signs in with the key.
    const added = await addService(store, secretBox, { name: 'Records', redirectUris: [`${rpOrigin}/callback`], postLogoutRedirectUris: [], clientType: 'confidential', aal: 3, firstParty: true }, Date.now());
    const config = await client.discovery(new URL(server.origin), added.service.client_id, undefined, client.ClientSecretBasic(added.clientSecret!), { execute: [client.allowInsecureRequests] });
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(config, { redirect_uri: `${rpOrigin}/callback`, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    // The key is unplugged while Alan signs out, so nothing signs him in by itself (autofill) before he asks.
    const keyCredentials = await t.authenticators.detach(alansKey);
    await t.page.getByRole('button', { name: 'Sign out' }).first().click();
    await t.page.waitForURL('**/signin');
    await t.page.goto(url.toString());
    await waitReady(t.page);
    await t.authenticators.attach('security-key', keyCredentials);
    await t.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await t.page.waitForURL(`${rpOrigin}/callback**`);
    const tokens = await client.authorizationCodeGrant(config, new URL(t.page.url()), { pkceCodeVerifier: verifier });
    expect(tokens.claims()).toMatchObject({ acr: AAL3, amr: ['hwk', 'user', 'mfa'] });
  });

  it('signed in with a laptop passkey, the person steps up with their security key for a service that needs AAL3; only the key is offered', async () => {
    const grace = await agentReady();
    const { store, secretBox } = server.app.latchkey;
    const t = await openTracked(browser, server);
    const laptop = await t.authenticators.add('platform');
    const { user: mary, url: invite } = await server.invite('mary@example.com', 'Mary Seacole');
    await visit(t.page, invite);
    await t.page.getByLabel('Name your passkey').fill('Laptop');
    await t.page.getByRole('button', { name: 'Set up passkey' }).click();
    await t.page.waitForURL('**/enrol/done');

    // Her security key, registered from the agent's link, then unplugged; she signs in again with the laptop (AAL2).
    const link = await issueSecurityKey(grace.page, mary.id, 'Mary Seacole');
    const key = await t.authenticators.add('security-key');
    await visit(t.page, link);
    await t.page.getByLabel('Name your security key').fill('Red key');
    await t.page.getByRole('button', { name: 'Register security key' }).click();
    await t.page.waitForURL(/\/enrol\/done\?registered=security-key$/);
    const [credential] = await t.authenticators.detach(key);
    // She leaves the laptop too while signing out, so nothing signs her in by itself (autofill) before she asks.
    const laptopCredentials = await t.authenticators.detach(laptop);
    await visit(t.page, server.url('/settings'));
    await t.page.getByRole('button', { name: 'Sign out' }).first().click();
    await t.page.waitForURL('**/signin');
    await waitReady(t.page);
    await t.authenticators.attach('platform', laptopCredentials);
    await t.page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await t.page.waitForURL('**/settings');

    const added = await addService(store, secretBox, { name: 'Prescribing', redirectUris: [`${rpOrigin}/callback`], postLogoutRedirectUris: [], clientType: 'confidential', aal: 3, firstParty: true }, Date.now());
    const config = await client.discovery(new URL(server.origin), added.service.client_id, undefined, client.ClientSecretBasic(added.clientSecret!), { execute: [client.allowInsecureRequests] });
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(config, { redirect_uri: `${rpOrigin}/callback`, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    await t.page.goto(url.toString());
    await t.page.waitForURL('**/settings/reauth?**need=3**');
    await waitReady(t.page);
    expect(await t.page.getByRole('heading', { level: 1 }).innerText()).toBe('Confirm it is you with your security key');
    expect(await t.page.locator('[data-aal3-keys]').innerText()).toBe('Red key');
    await expectAccessible(t.page, 'step-up to AAL3');

    // She plugs the key back in; the laptop stays attached, and is not offered.
    const pluggedIn = await t.authenticators.add('security-key');
    await t.authenticators.cdp.send('WebAuthn.addCredential', { authenticatorId: pluggedIn, credential });
    await t.page.getByRole('button', { name: 'Continue with your security key' }).click();
    await t.page.waitForURL(`${rpOrigin}/callback**`);
    const [options] = await t.postsTo('/reauth/options');
    expect((options!.answer as { options: { allowCredentials: { id: string }[] } }).options.allowCredentials.map((c) => c.id)).toEqual([toBase64Url(credential!.credentialId)]);
    const tokens = await client.authorizationCodeGrant(config, new URL(t.page.url()), { pkceCodeVerifier: verifier });
    expect(tokens.claims()).toMatchObject({ acr: AAL3, amr: ['hwk', 'user', 'mfa'] });
  });
});
