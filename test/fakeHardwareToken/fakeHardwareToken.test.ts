/**
 * The seam of issue 12: a kind registered only here (kind.tsx beside this file)
 * appears in self-service, settings, the console, the audit log and the ID
 * token's acr and amr, with no file outside this folder changed for it.
 */
import * as client from 'openid-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addService } from '../../src/oidc/services.js';
import { defaultKinds } from '../../src/strategies/defaultKinds.js';
import { authenticator, createTestApp, signUp, TEST_ORIGIN, TestBrowser, type TestApp } from '../support/app.js';
import { discoverRelyingParty, follow } from '../support/relyingParty.js';
import { fakeHardwareTokenKind } from './kind.js';

const REDIRECT = 'https://rp.example/callback';
const AAL3 = 'http://idmanagement.gov/ns/assurance/aal/3';

describe('a kind registered only in the tests', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await createTestApp({}, { kinds: [...defaultKinds, fakeHardwareTokenKind] });
  });
  afterEach(() => t.close());

  /** Ada adds a token through self-service from her settings; returns her browser. */
  async function addToken(): Promise<TestBrowser> {
    const ada = await signUp(t.app, authenticator(), 'ada@example.com', 'Ada Lovelace');
    const started = await ada.postForm('/settings/add-authenticator', {});
    expect(started.statusCode).toBe(303);
    const choose = String(started.headers.location);
    const page = await ada.get(choose);
    expect(page.body).toContain('Fake hardware token');
    expect(page.body).toContain('A token with a serial number and a PIN.');
    const chosen = await ada.postForm(choose, { type: 'fake-token' });
    expect(chosen.statusCode).toBe(303);
    const tokenPage = String(chosen.headers.location);
    expect(tokenPage).toMatch(/^\/add-authenticator\/[\w-]+\/fake-token$/);
    expect((await ada.get(tokenPage)).body).toContain('Add a hardware token');
    const added = await ada.postForm(tokenPage, { serial: 'SC1234', pin: '2468' });
    expect(added.statusCode).toBe(303);
    expect(String(added.headers.location)).toMatch(/\/done\?added=fake-token$/);
    expect((await ada.get(String(added.headers.location))).body).toContain('fake hardware token');
    return ada;
  }

  it('is offered and added in self-service, listed in settings, and its audit event has its words', async () => {
    const ada = await addToken();
    const settings = (await ada.get('/settings')).body;
    expect(settings).toMatch(/<tr data-authenticator-id="[\w-]+" data-kind="fake-token"><td data-label="Name">Token SC1234<\/td><td data-label="Type">Fake hardware token<\/td>/);
    expect(settings).toContain('Fake hardware token added');
  });

  it('shows in the console by its kind, at AAL3, and in the audit log', async () => {
    await addToken();
    const { store } = t.app.latchkey;
    const grace = await signUp(t.app, authenticator(), 'grace@example.com', 'Grace Hopper');
    const graceUser = (await store.users.findByEmail('grace@example.com'))!;
    await store.roles.set(graceUser.id, ['ra_manager'], null, Date.now());
    const ada = (await store.users.findByEmail('ada@example.com'))!;
    const tab = await grace.get(`/admin/users/${ada.id}/authenticators`);
    expect(tab.statusCode).toBe(200);
    const row = /<tr data-authenticator-id="[\w-]+" data-kind="fake-token">.*?<\/tr>/s.exec(tab.body)![0];
    expect(row).toContain('Fake hardware token: <strong>Token SC1234</strong>');
    expect(row).toContain('Serial SC1234');
    expect(row).toContain('AAL3');
    const log = await grace.get('/admin/audit?event=fake_token.added');
    expect(log.statusCode).toBe(200);
    expect(log.body).toMatch(/<tr data-event="fake_token.added">.*?Fake hardware token added/s);
  });

  it('signs someone in for a service that asks for AAL3, and the ID token says how', async () => {
    await addToken();
    const added = await addService(t.app.latchkey.store, t.app.latchkey.secretBox, { name: 'Records', redirectUris: [REDIRECT], postLogoutRedirectUris: [], clientType: 'confidential', aal: 2, firstParty: true }, Date.now());
    const rp = await discoverRelyingParty(t.app, added.service.client_id, added.clientSecret!);
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', acr_values: AAL3, code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    const person = new TestBrowser(t.app);
    const { url: atSignIn } = await follow(person, url.toString());
    const next = new URL(atSignIn).searchParams.get('next')!;
    await person.get('/signin');
    const signedIn = await person.postForm(`/signin/fake-token?next=${encodeURIComponent(next)}`, { email: 'ada@example.com', serial: 'SC1234', pin: '2468' });
    expect(signedIn.statusCode).toBe(303);
    const { url: callback } = await follow(person, new URL(String(signedIn.headers.location), TEST_ORIGIN).toString());
    const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
    expect(tokens.claims()).toMatchObject({ acr: AAL3, amr: ['sc', 'pin', 'mfa'] });
  });

  it('is nowhere when it is not registered', async () => {
    const plain = await createTestApp();
    try {
      const ada = await signUp(plain.app, authenticator(), 'ada@example.com', 'Ada Lovelace');
      const started = await ada.postForm('/settings/add-authenticator', {});
      expect((await ada.get(String(started.headers.location))).body).not.toContain('Fake hardware token');
      expect((await ada.postForm('/signin/fake-token', { email: 'ada@example.com', serial: 'X', pin: '1' })).statusCode).toBe(404);
    } finally {
      await plain.close();
    }
  });
});
