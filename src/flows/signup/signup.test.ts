import { generateKeyPairSync } from 'node:crypto';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TEST_ORIGIN, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { FidoU2fAuthenticator, PackedAuthenticator } from '../../../test/support/packedAuthenticator.js';
import type { SoftAuthenticator } from '../../../test/support/softAuthenticator.js';
import { issueCertificate } from '../../../test/support/x509.js';

describe('sign up', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await createTestApp();
  });
  afterEach(async () => t.close());

  it('creates an Enrolled user with a passkey and signs them in', async () => {
    const auth = authenticator({ backupEligible: true, backedUp: true, aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd' });
    const browser = await signUp(t.app, auth, 'Grace@Example.com', 'Grace Hopper');
    const store = t.app.latchkey.store;
    const user = await store.users.findByEmail('grace@example.com');
    expect(user?.status).toBe('enrolled');
    expect(user?.email).toBe('Grace@Example.com');
    const [passkey] = await store.authenticators.listForUser(user!.id);
    expect(passkey).toMatchObject({ backup_eligible: 1, backed_up: 1, aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd', attestation_format: 'none', name: 'iCloud Keychain' });
    const settings = await browser.get('/settings');
    expect(settings.body).toContain('iCloud Keychain');
    expect(settings.body).toContain('Synced');
    const events = (await store.audit.listForSubject(user!.id)).map((e) => e.event);
    expect(events).toEqual(expect.arrayContaining(['signup', 'passkey.added']));
  });

  it('names the passkey as the person asked ("Name your device"), or after its provider when the name is blank', async () => {
    const page = await new TestBrowser(t.app).get('/signup');
    expect(page.body).toMatch(/<label for="name">Name your device/);
    const store = t.app.latchkey.store;
    for (const [email, name, expected] of [
      ['named@example.com', '  Grace’s   iPhone ', 'Grace’s iPhone'],
      ['blank@example.com', '   ', 'iCloud Keychain'],
    ] as const) {
      const browser = new TestBrowser(t.app);
      await browser.get('/signup');
      const o = (await browser.postJson('/signup/options', { displayName: 'Grace', email, name, placement: 'this-device' })).json().options;
      const auth = authenticator({ aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd' });
      // The name comes from the form the ceremony started with, not from the verify request.
      expect((await browser.postJson('/signup/verify', { response: auth.createCredential(o), name: 'Something else' })).statusCode).toBe(200);
      const user = (await store.users.findByEmail(email))!;
      expect((await store.authenticators.listForUser(user.id)).map((a) => a.name)).toEqual([expected]);
    }
  });

  it('stores nothing until the passkey is verified', async () => {
    const browser = new TestBrowser(t.app);
    await browser.get('/signup');
    const opts = await browser.postJson('/signup/options', { displayName: 'Ada', email: 'ada@example.com', placement: 'this-device' });
    expect(opts.statusCode).toBe(200);
    const o = opts.json().options;
    expect(o.authenticatorSelection).toMatchObject({ residentKey: 'required', userVerification: 'required', authenticatorAttachment: 'platform' });
    expect(o.hints).toEqual(['client-device']);
    expect(o.pubKeyCredParams.map((p: { alg: number }) => p.alg)).toEqual([-7, -8, -257]);
    expect(await t.app.latchkey.store.users.findByEmail('ada@example.com')).toBeUndefined();
    // A tampered response is refused and leaves nothing behind.
    const response = authenticator().createCredential(o);
    response.response.clientDataJSON = Buffer.from(JSON.stringify({ type: 'webauthn.create', challenge: o.challenge, origin: 'https://evil.example' })).toString('base64url');
    const verify = await browser.postJson('/signup/verify', { response });
    expect(verify.statusCode).toBe(400);
    expect(verify.json().error.code).toBe('ceremony_failed');
    expect(await t.app.latchkey.store.users.findByEmail('ada@example.com')).toBeUndefined();
  });

  it('refuses a registration without user verification', async () => {
    const browser = new TestBrowser(t.app);
    await browser.get('/signup');
    const o = (await browser.postJson('/signup/options', { displayName: 'Ada', email: 'ada@example.com' })).json().options;
    const verify = await browser.postJson('/signup/verify', { response: authenticator({ userVerification: false }).createCredential(o) });
    expect(verify.json().error.code).toBe('user_verification_required');
    expect(await t.app.latchkey.store.users.findByEmail('ada@example.com')).toBeUndefined();
  });

  it('refuses a passkey whose public key is not a usable key, and stores nothing', async () => {
    const browser = new TestBrowser(t.app);
    await browser.get('/signup');
    const o = (await browser.postJson('/signup/options', { displayName: 'Ada', email: 'ada@example.com', placement: 'this-device' })).json().options;
    const verify = await browser.postJson('/signup/verify', { response: authenticator().createCredential(o, { brokenPublicKey: true }) });
    expect(verify.statusCode).toBe(400);
    expect(verify.json().error).toMatchObject({ code: 'ceremony_failed', message: expect.stringContaining('public key is not valid') });
    expect(await t.app.latchkey.store.users.findByEmail('ada@example.com')).toBeUndefined();
  });

  it('refuses an email that is taken, whatever its case', async () => {
    await signUp(t.app, authenticator(), 'ada@example.com');
    const browser = new TestBrowser(t.app);
    await browser.get('/signup');
    const res = await browser.postJson('/signup/options', { displayName: 'Ada', email: 'ADA@example.com' });
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe('email_unavailable');
  });

  it('lets exactly one of two concurrent sign-ups for one email succeed', async () => {
    const a = new TestBrowser(t.app);
    const b = new TestBrowser(t.app);
    await a.get('/signup');
    await b.get('/signup');
    const oa = (await a.postJson('/signup/options', { displayName: 'Ada', email: 'ada@example.com' })).json().options;
    const ob = (await b.postJson('/signup/options', { displayName: 'Ada', email: 'ADA@example.com' })).json().options;
    const results = await Promise.all([
      a.postJson('/signup/verify', { response: authenticator().createCredential(oa) }),
      b.postJson('/signup/verify', { response: authenticator().createCredential(ob) }),
    ]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    expect(await t.app.latchkey.store.users.count()).toBe(1);
  });

  it('validates the form with field errors', async () => {
    const browser = new TestBrowser(t.app);
    await browser.get('/signup');
    const res = await browser.postJson('/signup/options', { displayName: '', email: 'not-an-email' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('validation_failed');
    expect(res.json().error.fields).toEqual([
      { field: 'displayName', message: 'Enter your name (up to 100 characters)' },
      { field: 'email', message: 'Enter an email address in the correct format, like name@example.com' },
    ]);
  });

  it('is closed when LATCHKEY_SIGNUP=invite', async () => {
    const closed = await createTestApp({ LATCHKEY_SIGNUP: 'invite' });
    try {
      const browser = new TestBrowser(closed.app);
      expect((await browser.get('/signup')).statusCode).toBe(403);
      const signin = await browser.get('/signin');
      expect(signin.body).not.toContain('href="/signup"');
      const res = await browser.postJson('/signup/options', { displayName: 'Ada', email: 'ada@example.com' });
      expect(res.json().error.code).toBe('signup_closed');
    } finally {
      await closed.close();
    }
  });

  it('binds the ceremony to the browser that started it', async () => {
    const browser = new TestBrowser(t.app);
    await browser.get('/signup');
    const o = (await browser.postJson('/signup/options', { displayName: 'Ada', email: 'ada@example.com' })).json().options;
    const other = new TestBrowser(t.app);
    await other.get('/signup');
    const res = await other.postJson('/signup/verify', { response: authenticator().createCredential(o) });
    expect(res.json().error.code).toBe('challenge_invalid');
  });
  /**
   * The registration checks the FIDO conformance API runs too (src/webauthn/responseChecks.ts; issue 13 item 6):
   * each case is refused here as on /fido2 (src/fido2/fido2.test.ts), and nothing is stored.
   */
  describe('refuses what WebAuthn does not allow, as /fido2 does', () => {
    const u2fCert = issueCertificate({ subject: { CN: 'U2F Test Key' } });
    const p384Cert = issueCertificate({ subject: { CN: 'U2F P-384 Key' }, keys: generateKeyPairSync('ec', { namedCurve: 'P-384' }) });

    async function signUpWith(auth: SoftAuthenticator, change: (r: RegistrationResponseJSON) => unknown = (r) => r) {
      const browser = new TestBrowser(t.app);
      await browser.get('/signup');
      const email = `person${Math.random().toString(36).slice(2)}@example.com`;
      const o = (await browser.postJson('/signup/options', { displayName: 'Ada', email, placement: 'this-device' })).json().options;
      const response = change(auth.createCredential(o));
      return { verify: await browser.postJson('/signup/verify', { response }), email };
    }

    for (const [name, make, expected] of [
      ['a packed self attestation whose alg is the key’s', () => new PackedAuthenticator({ origin: TEST_ORIGIN, alg: -7 }), 'packed'],
      ['a fido-u2f attestation with P-256 keys', () => new FidoU2fAuthenticator({ origin: TEST_ORIGIN }, { privateKey: u2fCert.privateKey, x5c: [u2fCert.der] }), 'fido-u2f'],
      ['a credential id of 1,023 bytes', () => authenticator({ credentialIdLength: 1023 }), 'none'],
    ] as const) {
      it(`accepts ${name}`, async () => {
        const { verify, email } = await signUpWith(make());
        expect(verify.statusCode, verify.body).toBe(200);
        const user = await t.app.latchkey.store.users.findByEmail(email);
        expect((await t.app.latchkey.store.authenticators.listForUser(user!.id)).map((a) => a.attestation_format)).toEqual([expected]);
      });
    }

    for (const [name, make, message] of [
      ['a credential id longer than 1,023 bytes', () => authenticator({ credentialIdLength: 1024 }), /1024 bytes long; at most 1023/],
      ['packed self attestation whose alg is not the key’s', () => new PackedAuthenticator({ origin: TEST_ORIGIN, alg: -7 }, undefined, -257), /attStmt.alg -257 does not match/],
      ['fido-u2f with an RSA credential key', () => new FidoU2fAuthenticator({ origin: TEST_ORIGIN, alg: -257 }, { privateKey: u2fCert.privateKey, x5c: [u2fCert.der] }), /not an EC P-256 key/],
      ['fido-u2f with a P-384 attestation certificate', () => new FidoU2fAuthenticator({ origin: TEST_ORIGIN }, { privateKey: p384Cert.privateKey, x5c: [p384Cert.der] }), /certificate's key is not an EC P-256 key/],
      ['a cross-origin ceremony with a foreign topOrigin', () => authenticator({ clientDataExtra: { crossOrigin: true, topOrigin: 'https://evil.example' } }), /crossOrigin is true/],
      ['a foreign topOrigin', () => authenticator({ clientDataExtra: { topOrigin: 'https://evil.example' } }), /topOrigin "https:\/\/evil.example" is not/],
    ] as const) {
      it(`refuses ${name}`, async () => {
        const { verify, email } = await signUpWith(make());
        expect(verify.statusCode).toBe(400);
        expect(verify.json().error).toMatchObject({ code: 'ceremony_failed', message: expect.stringMatching(message) });
        expect(await t.app.latchkey.store.users.findByEmail(email)).toBeUndefined();
      });
    }

    it('refuses a response without rawId', async () => {
      const { verify, email } = await signUpWith(authenticator(), ({ rawId: _rawId, ...rest }) => rest);
      expect(verify.statusCode).toBe(400);
      expect(await t.app.latchkey.store.users.findByEmail(email)).toBeUndefined();
    });
  });
});
