/**
 * Issue 13, end to end over HTTP: an agent issues a "Security key (AAL3)"; the
 * ceremony asks for an attested cross-platform key with a PIN and refuses
 * anything else by name; the key's attestation is verified to the FIDO metadata
 * and the policy; a service that needs AAL3 gets acr AAL3 and amr hwk, user,
 * mfa, through sign-in and through step-up (which offers only the keys that
 * qualify); someone without one is told to ask their RA; a model the metadata
 * later marks compromised loses AAL3, or sign-in, as the policy says.
 */
import * as client from 'openid-client';
import type { AuthenticatorStatus, PublicKeyCredentialCreationOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { afterAll, describe, expect, it } from 'vitest';
import { addService } from '../src/oidc/services.js';
import { DEFAULT_POLICY } from '../src/webauthn/authenticatorPolicy.js';
import { authenticator, createTestApp, signUp, TEST_ORIGIN, TestBrowser, type TestApp } from './support/app.js';
import { testDatabases } from './support/databases.js';
import { catalogueWith, metadataStatement } from './support/metadataStatements.js';
import { packedAttestation, PackedAuthenticator } from './support/packedAuthenticator.js';
import { discoverRelyingParty, follow } from './support/relyingParty.js';

const databases = await testDatabases();
const REDIRECT = 'https://records.example/callback';
const AAL2 = 'http://idmanagement.gov/ns/assurance/aal/2';
const AAL3 = 'http://idmanagement.gov/ns/assurance/aal/3';
const MODEL = '7e57c0de-0000-4000-8000-00000000aa13';

/** A vendor's attestation root and a batch certificate for one model (WebAuthn L3 §8.2.1). */
const vendor = () => packedAttestation({ aaguid: MODEL, model: 'Test Key Batch 1' });

function catalogue(rootDer: Buffer, status: AuthenticatorStatus[] = ['FIDO_CERTIFIED_L2']) {
  const statement = metadataStatement({ aaguid: MODEL, description: 'Test Key 5 NFC', attestationRootCertificates: [rootDer] });
  return catalogueWith([{ statement, statusReports: status.map((s) => ({ status: s })) }]);
}

/** A roaming security key as the browser reports it. */
function roaming(response: RegistrationResponseJSON): RegistrationResponseJSON {
  return { ...response, authenticatorAttachment: 'cross-platform' };
}

describe.each(databases)('AAL3 security keys on $name', (target) => {
  afterAll(() => target.cleanup());

  async function setUp(): Promise<{ t: TestApp; agent: TestBrowser; adaPhone: TestBrowser; adaId: string; v: ReturnType<typeof vendor> }> {
    const t = await createTestApp({}, { db: await target.open() });
    const v = vendor();
    t.app.latchkey.trust.setMetadata(catalogue(v.root.der));
    const { store } = t.app.latchkey;
    const agent = await signUp(t.app, authenticator(), 'grace@example.com', 'Grace Hopper');
    await store.roles.set((await store.users.findByEmail('grace@example.com'))!.id, ['ra_agent_advanced'], null, Date.now());
    const adaPhone = await signUp(t.app, authenticator({ backupEligible: true, backedUp: true }), 'ada@example.com', 'Ada Lovelace');
    return { t, agent, adaPhone, adaId: (await store.users.findByEmail('ada@example.com'))!.id, v };
  }

  /** The agent issues a "Security key (AAL3)" link for Ada; returns its path. */
  async function issueSecurityKeyLink(agent: TestBrowser, adaId: string): Promise<string> {
    const choose = await agent.get(`/admin/users/${adaId}/issue`);
    expect(choose.body).toContain('Security key (AAL3)');
    const chosen = await agent.postForm(`/admin/users/${adaId}/issue`, { type: 'security-key' });
    expect(chosen.headers.location).toBe(`/admin/users/${adaId}/issue/security-key`);
    const page = await agent.get(String(chosen.headers.location));
    expect(page.body).toContain('Register a security key (AAL3) for Ada Lovelace');
    expect(page.body).not.toContain('No FIDO metadata is loaded');
    const issued = await agent.postForm(`/admin/users/${adaId}/enrolments`, { method: 'link', requires: 'security-key' });
    expect(issued.statusCode).toBe(303);
    const shown = await agent.get(String(issued.headers.location));
    const link = /\/enrol\/[A-Za-z0-9_-]{43}/.exec(shown.body);
    expect(link).not.toBeNull();
    return link![0];
  }

  async function options(browser: TestBrowser, link: string): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const res = await browser.postJson(`${link}/options`, { placement: 'this-device' });
    expect(res.statusCode).toBe(200);
    return res.json().options;
  }

  async function signInFor(browser: TestBrowser, key: PackedAuthenticator, rpUrl: string) {
    const { url: atSignIn } = await follow(browser, rpUrl);
    const next = new URL(atSignIn).searchParams.get('next')!;
    await browser.get('/signin');
    const o = await browser.postJson('/signin/options', { mode: 'email', email: 'ada@example.com' });
    return { next, verified: await browser.postJson('/signin/verify', { response: key.getAssertion(o.json().options) }) };
  }

  async function service(t: TestApp, aal: 1 | 2 | 3, extra: Record<string, string> = {}) {
    const added = await addService(t.app.latchkey.store, t.app.latchkey.secretBox, { name: 'Records', redirectUris: [REDIRECT], postLogoutRedirectUris: [], clientType: 'confidential', aal, firstParty: true }, Date.now());
    const rp = await discoverRelyingParty(t.app, added.service.client_id, added.clientSecret!);
    const verifier = client.randomPKCECodeVerifier();
    const url = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', ...extra }).toString();
    const claimsOf = async (callback: string) => (await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier })).claims()!;
    return { url, claimsOf };
  }

  it.skipIf(target.skipReason !== undefined)('an agent issues one; the ceremony refuses what is not an attested security key, by name, and registers one that is', async () => {
    const { t, agent, adaId, v } = await setUp();
    try {
      const { store } = t.app.latchkey;
      const link = await issueSecurityKeyLink(agent, adaId);
      const ada = new TestBrowser(t.app);
      const page = await ada.get(link);
      expect(page.body).toContain('Register your security key');
      expect(page.body).toContain('value="security-key"');

      const o = await options(ada, link);
      // Whatever the page sent, the invite decides: attested, roaming, with a PIN.
      expect(o.attestation).toBe('direct');
      expect(o.authenticatorSelection).toMatchObject({ authenticatorAttachment: 'cross-platform', userVerification: 'required' });
      expect(o.hints).toEqual(['security-key']);

      const refused = async (response: RegistrationResponseJSON) => {
        const res = await ada.postJson(`${link}/verify`, { response });
        expect(res.statusCode).toBe(422);
        expect(res.json().error.code).toBe('authenticator_not_allowed');
        return res.json().error.message as string;
      };
      // A synced passkey of the right model; the same model built into the device; self attestation; none.
      const synced = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL, backupEligible: true, backedUp: true }, v.key);
      expect(await refused(roaming(synced.createCredential(await options(ada, link))))).toMatch(/^Test Key 5 NFC can’t be used as a security key for the highest level of sign-in \(AAL3\)\. It is synced between devices\./);
      const builtIn = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL }, v.key);
      expect(await refused(builtIn.createCredential(await options(ada, link)))).toContain('Test Key 5 NFC is built into this device');
      const selfAttested = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL });
      expect(await refused(roaming(selfAttested.createCredential(await options(ada, link))))).toContain('Its make and model were not confirmed');
      const other = vendor();
      const forged = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL }, other.key);
      expect(await refused(roaming(forged.createCredential(await options(ada, link))))).toContain('Its make and model were not confirmed');
      const unattested = authenticator({ aaguid: MODEL });
      expect(await refused(roaming(unattested.createCredential(await options(ada, link))))).toContain('not confirmed');

      const key = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL, transports: ['usb', 'nfc'] }, v.key);
      const done = await ada.postJson(`${link}/verify`, { response: roaming(key.createCredential(await options(ada, link))), name: 'Blue key' });
      expect(done.statusCode).toBe(200);
      // The confirmation speaks of the security key, not of a passkey on her phone or computer.
      expect(done.json().redirect).toBe('/enrol/done?registered=security-key');
      const confirmation = (await ada.get(done.json().redirect)).body;
      expect(confirmation).toContain('<h1>Your security key is registered</h1>');
      expect(confirmation).toContain('highest level of sign-in (AAL3)');
      expect(confirmation).not.toContain('fingerprint, face, PIN or screen lock');
      const stored = (await store.authenticators.listForUser(adaId)).find((a) => a.name === 'Blue key')!;
      expect(stored).toMatchObject({ attestation_format: 'packed', aaguid: MODEL, backup_eligible: 0 });
      expect(JSON.parse(stored.config)).toEqual({ attestation: { verified: true, model: 'Test Key 5 NFC', certification: 'FIDO_CERTIFIED_L2' } });
      expect(t.app.latchkey.kinds.assuranceOf(stored, (await store.users.findById(adaId))!)).toEqual({ aal: 3, phishingResistant: true, amr: ['hwk', 'user', 'mfa'] });

      // Every refusal is in the audit log with its reason and the device's name.
      const rows = await store.kysely.selectFrom('audit_events').select(['event', 'outcome', 'subject_user_id', 'detail']).where('event', '=', 'passkey.refused').execute();
      expect(rows.map((r) => [r.outcome, r.subject_user_id, JSON.parse(r.detail).reason]).sort()).toEqual(
        [
          ['refused', adaId, 'not_aal3'],
          ['refused', adaId, 'not_aal3'],
          ['refused', adaId, 'not_aal3'],
          ['refused', adaId, 'not_aal3'],
          ['refused', adaId, 'not_security_key'],
        ].sort(),
      );
    } finally {
      await t.close();
    }
  });

  it.skipIf(target.skipReason !== undefined)('a 9-character code issued for a security key opens a link that asks for one, and registers only one', async () => {
    const { t, agent, adaId, v } = await setUp();
    try {
      const issued = await agent.postForm(`/admin/users/${adaId}/enrolments`, { method: 'code', requires: 'security-key' });
      expect(issued.statusCode).toBe(303);
      const code = /id="enrolment-code"><span aria-hidden="true">([0-9A-Z-]{11})</.exec((await agent.get(String(issued.headers.location))).body)![1]!;
      const ada = new TestBrowser(t.app);
      await ada.get('/enrol');
      const redeemed = await ada.postForm('/enrol', { email: 'ada@example.com', code });
      expect(redeemed.statusCode).toBe(303);
      const link = String(redeemed.headers.location);
      expect((await ada.get(link)).body).toContain('Register your security key');
      const o = await options(ada, link);
      expect(o.attestation).toBe('direct');
      const synced = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL, backupEligible: true, backedUp: true }, v.key);
      expect((await ada.postJson(`${link}/verify`, { response: roaming(synced.createCredential(o)) })).statusCode).toBe(422);
      const key = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL }, v.key);
      expect((await ada.postJson(`${link}/verify`, { response: roaming(key.createCredential(await options(ada, link))) })).statusCode).toBe(200);
      const rows = await t.app.latchkey.store.kysely.selectFrom('audit_events').select(['event', 'detail']).where('event', 'in', ['enrolment.code_issued', 'enrolment.completed']).execute();
      expect(rows.map((r) => [r.event, JSON.parse(r.detail).requires]).sort()).toEqual([
        ['enrolment.code_issued', 'security-key'],
        ['enrolment.completed', 'security-key'],
      ]);
    } finally {
      await t.close();
    }
  });

  it.skipIf(target.skipReason !== undefined)('with no FIDO metadata loaded, an agent can’t issue a security key, and is told why', async () => {
    const { t, agent, adaId } = await setUp();
    try {
      t.app.latchkey.trust.setMetadata(catalogueWith([]));
      const page = await agent.get(`/admin/users/${adaId}/issue/security-key`);
      expect(page.body).toContain('No FIDO metadata is loaded');
      expect(page.body).not.toContain('Generate link');
      const issued = await agent.postForm(`/admin/users/${adaId}/enrolments`, { method: 'link', requires: 'security-key' });
      expect(issued.statusCode).toBe(400);
      expect(await t.app.latchkey.store.flows.listForUser(adaId, ['invite', 'enrol-code'], 5)).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it.skipIf(target.skipReason !== undefined)('with no FIDO metadata loaded, the person is told it is not their key and to tell their RA', async () => {
    const { t, agent, adaId, v } = await setUp();
    try {
      const link = await issueSecurityKeyLink(agent, adaId);
      // The metadata goes away after the link was issued (an instance started with an empty database, say).
      t.app.latchkey.trust.setMetadata(catalogueWith([]));
      const ada = new TestBrowser(t.app);
      await ada.get(link);
      const key = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL, transports: ['usb'] }, v.key);
      const res = await ada.postJson(`${link}/verify`, { response: roaming(key.createCredential(await options(ada, link))), name: 'Blue key' });
      expect(res.statusCode).toBe(422);
      expect(res.json().error.code).toBe('authenticator_not_allowed');
      expect(res.json().error.message).toBe(
        'Your security key can’t be registered yet: Latchkey can’t confirm any security key’s make and model until its FIDO metadata is loaded. This is not a problem with your key: tell your registration authority.',
      );
      const rows = await t.app.latchkey.store.kysely.selectFrom('audit_events').select(['detail']).where('event', '=', 'passkey.refused').execute();
      expect(rows.map((r) => JSON.parse(r.detail).reason)).toEqual(['no_metadata']);
    } finally {
      await t.close();
    }
  });

  it.skipIf(target.skipReason !== undefined)('a service that needs AAL3 gets acr AAL3 and amr hwk, user, mfa from a sign-in with the key, and by step-up from a phone sign-in', async () => {
    const { t, agent, adaPhone, adaId, v } = await setUp();
    try {
      const link = await issueSecurityKeyLink(agent, adaId);
      const ada = new TestBrowser(t.app);
      await ada.get(link);
      const key = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL, transports: ['usb'] }, v.key);
      expect((await ada.postJson(`${link}/verify`, { response: roaming(key.createCredential(await options(ada, link))), name: 'Blue key' })).statusCode).toBe(200);
      const keyId = (await t.app.latchkey.store.authenticators.listForUser(adaId)).find((a) => a.name === 'Blue key')!.credential_id;

      // Signing in with the key.
      const records = await service(t, 3);
      const fresh = new TestBrowser(t.app);
      const { next, verified } = await signInFor(fresh, key, records.url);
      expect(verified.statusCode).toBe(200);
      const { url: callback } = await follow(fresh, new URL(next, TEST_ORIGIN).toString());
      expect(await records.claimsOf(callback)).toMatchObject({ acr: AAL3, amr: ['hwk', 'user', 'mfa'] });

      // Signed in with her synced phone passkey (AAL2): step-up offers only the key, by name.
      const again = await service(t, 3);
      const { url: stepUp } = await follow(adaPhone, again.url);
      const stepUpUrl = new URL(stepUp);
      expect(stepUpUrl.pathname).toBe('/settings/reauth');
      expect(stepUpUrl.searchParams.get('need')).toBe('3');
      const page = await adaPhone.get(stepUpUrl.pathname + stepUpUrl.search);
      expect(page.body).toContain('Confirm it is you with your security key');
      expect(page.body).toMatch(/<ul data-aal3-keys[^>]*><li>Blue key<\/li><\/ul>/);
      const o = await adaPhone.postJson('/reauth/options', { need: '3' });
      expect(o.json().options.allowCredentials.map((c: { id: string }) => c.id)).toEqual([keyId]);
      expect((await adaPhone.postJson('/reauth/verify', { response: key.getAssertion(o.json().options), need: '3' })).statusCode).toBe(200);
      const { url: back } = await follow(adaPhone, new URL(stepUpUrl.searchParams.get('next')!, TEST_ORIGIN).toString());
      expect(await again.claimsOf(back)).toMatchObject({ acr: AAL3, amr: ['hwk', 'user', 'mfa'] });

      // An AAL2 service asking for AAL3 with acr_values (the one rule, requiredAssurance): the same step-up.
      const asking = await service(t, 2, { acr_values: AAL3 });
      const phoneOnly = await signUp(t.app, authenticator({ backupEligible: true, backedUp: true }), 'ada2@example.com', 'Ada Two');
      const stopped = await follow(phoneOnly, asking.url);
      expect(stopped.res.statusCode).toBe(403);
      expect(stopped.res.body).toContain('data-required-aal="3"');
      // Ada's session reached AAL3 by the step-up above: the service gets its code at once.
      const { url: viaAda } = await follow(adaPhone, asking.url);
      expect(await asking.claimsOf(viaAda)).toMatchObject({ acr: AAL3, amr: ['hwk', 'user', 'mfa'] });
    } finally {
      await t.close();
    }
  });

  it.skipIf(target.skipReason !== undefined)('a key registered device-bound that later says it may be backed up signs in, but no longer at AAL3 (WebAuthn L3 §7.2 step 18)', async () => {
    const { t, agent, adaId, v } = await setUp();
    try {
      const link = await issueSecurityKeyLink(agent, adaId);
      const ada = new TestBrowser(t.app);
      await ada.get(link);
      const key = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL, transports: ['usb'] }, v.key);
      expect((await ada.postJson(`${link}/verify`, { response: roaming(key.createCredential(await options(ada, link))) })).statusCode).toBe(200);
      (key.options as { backupEligible: boolean }).backupEligible = true;
      const records = await service(t, 3);
      const browser = new TestBrowser(t.app);
      const { next, verified } = await signInFor(browser, key, records.url);
      expect(verified.statusCode).toBe(200);
      const stopped = await follow(browser, new URL(next, TEST_ORIGIN).toString());
      expect(stopped.res.statusCode).toBe(403);
      const stored = (await t.app.latchkey.store.authenticators.listForUser(adaId)).find((a) => a.aaguid === MODEL)!;
      expect(stored.backup_eligible).toBe(1);
    } finally {
      await t.close();
    }
  });

  it.skipIf(target.skipReason !== undefined)('someone with no qualifying key is told to ask their RA; a model later marked compromised loses AAL3, or sign-in', async () => {
    const { t, agent, adaPhone, adaId, v } = await setUp();
    try {
      const records = await service(t, 3);
      const { url: stopped, res } = await follow(adaPhone, records.url);
      expect(new URL(stopped).pathname).toMatch(/^\/interaction\//);
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('data-contact-ra');
      expect(res.body).toContain('Contact your registration authority (RA)');
      // The services page says the same: a key she adds herself would not give AAL3, so it doesn't send her to add one.
      const services = (await adaPhone.get('/services')).body;
      expect(services).toContain('Not yet: ask your registration authority for a security key');
      expect(services).not.toContain('add a security key');

      const link = await issueSecurityKeyLink(agent, adaId);
      const ada = new TestBrowser(t.app);
      await ada.get(link);
      const key = new PackedAuthenticator({ origin: TEST_ORIGIN, aaguid: MODEL, transports: ['usb'] }, v.key);
      expect((await ada.postJson(`${link}/verify`, { response: roaming(key.createCredential(await options(ada, link))) })).statusCode).toBe(200);
      const { store, kinds, trust } = t.app.latchkey;
      const stored = (await store.authenticators.listForUser(adaId)).find((a) => a.aaguid === MODEL)!;
      const user = (await store.users.findById(adaId))!;
      expect(kinds.assuranceOf(stored, user)?.aal).toBe(3);

      // The metadata now says REVOKED: the key stops counting for AAL3 and still signs in (AAL2)…
      trust.setMetadata(catalogue(v.root.der, ['FIDO_CERTIFIED_L2', 'REVOKED']));
      expect(kinds.assuranceOf(stored, user)?.aal).toBe(2);
      const aal2 = await service(t, 2);
      const browser = new TestBrowser(t.app);
      const first = await signInFor(browser, key, aal2.url);
      expect(first.verified.statusCode).toBe(200);
      const { url: callback } = await follow(browser, new URL(first.next, TEST_ORIGIN).toString());
      expect(await aal2.claimsOf(callback)).toMatchObject({ acr: AAL2 });

      // … until the policy says a compromised model may not sign in at all.
      trust.setPolicy({ ...DEFAULT_POLICY, compromised: 'refuse' });
      const refused = await signInFor(new TestBrowser(t.app), key, (await service(t, 2)).url);
      expect(refused.verified.statusCode).toBe(403);
      expect(refused.verified.json().error.code).toBe('authenticator_compromised');
    } finally {
      await t.close();
    }
  });
});
