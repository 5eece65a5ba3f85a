/**
 * Passkey upgrade over HTTP: who is offered a passkey after signing in (and who never is), "Not now" and when the
 * offer comes back, a waiting OpenID Connect service that "Not now" returns to at once, and the one place a
 * registration may come back without the user-present flag (a conditional create, WebAuthn L3 §7.1 step 15).
 */
import * as client from 'openid-client';
import { Secret, TOTP } from 'otpauth';
import { afterEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, insertApp, signUp, TEST_ORIGIN, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { follow, injectFetch } from '../../../test/support/relyingParty.js';
import type { Mailer, OutgoingMail } from '../../mail/mailer.js';
import type { User } from '../../db/schema.js';
import { addService } from '../../oidc/services.js';
import { hashPassword } from '../../strategies/password/passwords.js';
import { newTotpSecret } from '../../strategies/totp/totp.js';
import { createUser } from '../../users/createUser.js';
import { shouldOfferPasskey } from './afterNonPasskeySignIn.js';

const DAY = 86_400_000;
const PASSWORD = 'correct horse battery staple';

describe('shouldOfferPasskey', () => {
  const now = Date.UTC(2026, 5, 1);
  const on = { passkeyPromptSeconds: 7 * 86_400 };
  const never = { passkey_prompt_skipped_at: null };
  it.each([
    ['no passkey, never skipped', on, never, ['totp'], true],
    ['skipped 1 day ago', on, { passkey_prompt_skipped_at: now - DAY }, ['totp'], false],
    ['skipped 6 days 23 hours ago', on, { passkey_prompt_skipped_at: now - 7 * DAY + 3_600_000 }, ['totp'], false],
    ['skipped exactly 7 days ago', on, { passkey_prompt_skipped_at: now - 7 * DAY }, ['totp'], true],
    ['skipped 8 days ago', on, { passkey_prompt_skipped_at: now - 8 * DAY }, ['linked-account'], true],
    ['has a passkey', on, never, ['totp', 'passkey'], false],
    ['LATCHKEY_PASSKEY_PROMPT_DAYS=0', { passkeyPromptSeconds: 0 }, never, ['totp'], false],
  ])('%s → %s', (_label, config, user, kinds, expected) => {
    expect(shouldOfferPasskey(config, user, kinds.map((type) => ({ type })), now)).toBe(expected);
  });
});

describe('passkey upgrade after a sign-in without a passkey', () => {
  let t: TestApp;
  let clock = Date.UTC(2026, 5, 1, 9);
  let sent: OutgoingMail[] = [];
  const mailer: Mailer = { kind: 'smtp', send: async (m) => void sent.push(m), close: async () => {} };

  afterEach(async () => t?.close());

  async function start(env: Record<string, string> = {}) {
    clock = Date.UTC(2026, 5, 1, 9);
    sent = [];
    t = await createTestApp(env, { now: () => clock, mailer });
    return t;
  }

  /** Someone whose way in is a password and an authenticator app, as self-service leaves them. */
  async function appUser(email = 'katherine@example.com'): Promise<{ user: User; secret: string }> {
    const { store, secretBox } = t.app.latchkey;
    const user = await createUser(store, { email, displayName: 'Katherine Johnson' }, clock);
    await store.kysely.updateTable('users').set({ password_hash: await hashPassword(PASSWORD), status: 'enrolled' }).where('id', '=', user.id).execute();
    const secret = newTotpSecret();
    await insertApp(store, secretBox, { id: `app-${user.id}`, user_id: user.id, created_at: clock }, secret);
    return { user, secret };
  }

  /** POST /signin/password with a fresh code (each sign-in moves the clock a time step, as a code works once). */
  async function signInWithApp(browser: TestBrowser, email: string, secret: string, next?: string) {
    clock += 30_000;
    if (!browser.csrf) await browser.get('/signin/password');
    const code = new TOTP({ secret: Secret.fromBase32(secret) }).generate({ timestamp: clock });
    const query = next ? `?next=${encodeURIComponent(next)}` : '';
    return browser.postForm(`/signin/password${query}`, { email, password: PASSWORD, code });
  }

  /** Someone with a password and an app, signed in with them in a browser of their own, not yet past the offer. */
  async function signedInAppUser(email?: string) {
    const { user, secret } = await appUser(email);
    const browser = new TestBrowser(t.app);
    await signInWithApp(browser, user.email, secret);
    return { user, secret, browser };
  }

  const skippedAt = async (userId: string) => (await t.app.latchkey.store.users.findById(userId))!.passkey_prompt_skipped_at;
  const passkeysOf = async (userId: string) => (await t.app.latchkey.store.authenticators.listForUser(userId)).filter((a) => a.type === 'passkey');

  describe('who is asked', () => {
    it('no passkey: the sign-in leads to "Set up a passkey", which offers the three places and Not now', async () => {
      await start();
      const { user, secret } = await appUser();
      const browser = new TestBrowser(t.app);
      const res = await signInWithApp(browser, user.email, secret);
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toBe('/passkey-upgrade?next=%2Fsettings');
      const page = await browser.get(res.headers.location as string);
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('<h1>Set up a passkey</h1>');
      expect(page.body).toContain('data-page="passkey-upgrade"');
      expect(page.body).toContain('data-next="/settings"');
      for (const place of ['this-device', 'another-device', 'security-key']) expect(page.body).toContain(`id="placement-${place}"`);
      expect(page.body).toContain('action="/passkey-upgrade/skip"');
      expect(page.body).toContain('we will ask again after 7 days');
    });

    it('skipped 1 day ago: straight on; 8 days ago: asked again', async () => {
      await start();
      const { user, secret } = await appUser();
      await t.app.latchkey.store.users.setPasskeyPromptSkippedAt(user.id, clock - DAY);
      expect((await signInWithApp(new TestBrowser(t.app), user.email, secret)).headers.location).toBe('/settings');
      await t.app.latchkey.store.users.setPasskeyPromptSkippedAt(user.id, clock - 8 * DAY);
      expect((await signInWithApp(new TestBrowser(t.app), user.email, secret)).headers.location).toBe('/passkey-upgrade?next=%2Fsettings');
    });

    it('Not now is remembered: the next sign-in goes straight on, and one after LATCHKEY_PASSKEY_PROMPT_DAYS asks again', async () => {
      await start({ LATCHKEY_PASSKEY_PROMPT_DAYS: '2' });
      const { user, secret } = await appUser();
      const browser = new TestBrowser(t.app);
      await browser.get((await signInWithApp(browser, user.email, secret)).headers.location as string);
      const skipped = await browser.postForm('/passkey-upgrade/skip', { next: '/settings' });
      expect(skipped.statusCode).toBe(303);
      expect(skipped.headers.location).toBe('/settings');
      expect(await skippedAt(user.id)).toBe(clock);
      // The page and its ceremony follow the same rule as the sign-in: nothing to offer until the days have passed.
      expect((await browser.get('/passkey-upgrade?next=%2Fsettings')).headers.location).toBe('/settings');
      expect((await browser.postJson('/passkey-upgrade/options', { conditional: true })).statusCode).toBe(403);
      expect((await signInWithApp(new TestBrowser(t.app), user.email, secret)).headers.location).toBe('/settings');
      clock += 2 * DAY;
      expect((await signInWithApp(new TestBrowser(t.app), user.email, secret)).headers.location).toBe('/passkey-upgrade?next=%2Fsettings');
    });

    it('LATCHKEY_PASSKEY_PROMPT_DAYS=0: nobody is asked, and the page sends anyone who opens it on', async () => {
      await start({ LATCHKEY_PASSKEY_PROMPT_DAYS: '0' });
      const { user, secret } = await appUser();
      const browser = new TestBrowser(t.app);
      expect((await signInWithApp(browser, user.email, secret)).headers.location).toBe('/settings');
      expect((await browser.get('/passkey-upgrade?next=%2Fsettings')).headers.location).toBe('/settings');
    });

    it('someone with a passkey is never asked, whether they sign in with it or with their password and app', async () => {
      await start();
      const { user, secret } = await appUser();
      const key = authenticator();
      // A passkey added in settings right after a (not yet prompted) sign-in.
      const browser = new TestBrowser(t.app);
      await signInWithApp(browser, user.email, secret);
      const options = await browser.postJson('/settings/passkeys/options', { name: 'Phone', placement: 'this-device' });
      expect((await browser.postJson('/settings/passkeys/verify', { response: key.createCredential(options.json().options) })).statusCode).toBe(200);

      expect((await signInWithApp(new TestBrowser(t.app), user.email, secret)).headers.location).toBe('/settings');
      const passkeyBrowser = new TestBrowser(t.app);
      await passkeyBrowser.get('/signin');
      const o = await passkeyBrowser.postJson('/signin/options', { mode: 'discoverable' });
      const verified = await passkeyBrowser.postJson('/signin/verify', { response: key.getAssertion(o.json().options) });
      expect(verified.statusCode).toBe(200);
      expect(verified.json().redirect).toBe('/settings');
      // Opened by hand, the page has nothing to offer.
      expect((await passkeyBrowser.get('/passkey-upgrade?next=%2Fsettings')).headers.location).toBe('/settings');
    });

    it('signed out, the page sends people to sign in; a sign-in older than LATCHKEY_REAUTH_MINUTES is not asked on the page', async () => {
      await start();
      expect((await new TestBrowser(t.app).get('/passkey-upgrade?next=%2Fsettings')).headers.location).toBe('/signin');
      const { user, secret } = await appUser();
      const browser = new TestBrowser(t.app);
      const to = (await signInWithApp(browser, user.email, secret)).headers.location as string;
      clock += 6 * 60_000;
      expect((await browser.get(to)).headers.location).toBe('/settings');
      const options = await browser.postJson('/passkey-upgrade/options', { placement: 'this-device' });
      expect(options.statusCode).toBe(401);
      expect(options.json().error.code).toBe('reauth_required');
      expect(options.json().error.message).toContain('you must have signed in within 5 minutes');
    });

    it('only a local next: another site is replaced by settings', async () => {
      await start();
      const { browser } = await signedInAppUser();
      const page = await browser.get('/passkey-upgrade?next=%2F%2Fevil.example%2F');
      expect(page.body).toContain('data-next="/settings"');
      const skipped = await browser.postForm('/passkey-upgrade/skip', { next: 'https://evil.example/' });
      expect(skipped.headers.location).toBe('/settings');
    });
  });

  describe('a service that is waiting', () => {
    it('the sign-in passes through "Set up a passkey"; Not now returns to the service at once, which gets its code', async () => {
      await start();
      const REDIRECT = 'https://rp.example/callback';
      const { service, clientSecret } = await addService(t.app.latchkey.store, t.app.latchkey.secretBox, { name: 'Rota', redirectUris: [REDIRECT], clientType: 'confidential', aal: 2, firstParty: true }, clock);
      const rp = await client.discovery(new URL(TEST_ORIGIN), service.client_id, undefined, client.ClientSecretBasic(clientSecret!), {
        execute: [client.allowInsecureRequests],
        [client.customFetch]: injectFetch(t.app),
      });
      const { user, secret } = await appUser();
      const browser = new TestBrowser(t.app);
      const verifier = client.randomPKCECodeVerifier();
      const url = client.buildAuthorizationUrl(rp, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
      const { url: atSignIn } = await follow(browser, url.toString());
      const next = new URL(atSignIn).searchParams.get('next')!;
      expect(next).toMatch(/^\/interaction\//);

      const signedIn = await signInWithApp(browser, user.email, secret, next);
      expect(signedIn.headers.location).toBe(`/passkey-upgrade?next=${encodeURIComponent(next)}`);
      const page = await browser.get(signedIn.headers.location as string);
      expect(page.body).toContain(`<input type="hidden" name="next" value="${next.replace(/&/g, '&amp;')}"/>`);

      // A form post that ends at another site goes through the continue page (CSP form-action), with nothing else on the way.
      const skipped = await browser.postForm('/passkey-upgrade/skip', { next });
      expect(skipped.statusCode).toBe(200);
      const link = /id="continue-link" class="button" href="([^"]+)"/.exec(skipped.body)![1]!.replace(/&amp;/g, '&');
      expect(link).toBe(next);
      const { url: callback } = await follow(browser, link);
      const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier });
      expect(tokens.claims()).toMatchObject({ sub: user.id, amr: ['pwd', 'otp', 'mfa'] });
    });

    it('a passkey set up on the page leads back to the service, not to settings', async () => {
      await start();
      const { browser } = await signedInAppUser();
      const options = await browser.postJson('/passkey-upgrade/options', { placement: 'this-device', next: '/interaction/abc123' });
      const verified = await browser.postJson('/passkey-upgrade/verify', { response: authenticator().createCredential(options.json().options) });
      expect(verified.statusCode).toBe(200);
      expect(verified.json().redirect).toBe('/interaction/abc123');
    });
  });

  describe('setting up the passkey', () => {
    it('the usual ceremony: stored, audited as an upgrade, the person emailed, and back in settings with a message', async () => {
      await start();
      const { user, browser } = await signedInAppUser();
      const options = await browser.postJson('/passkey-upgrade/options', { placement: 'security-key', next: '/settings' });
      expect(options.statusCode).toBe(200);
      const o = options.json().options;
      expect(o.authenticatorSelection).toMatchObject({ residentKey: 'required', userVerification: 'required' });
      expect(o.hints).toEqual(['security-key']);
      const verified = await browser.postJson('/passkey-upgrade/verify', { response: authenticator().createCredential(o) });
      expect(verified.statusCode, verified.body).toBe(200);
      expect(verified.json().redirect).toBe('/settings?added=1');
      const [passkey] = await passkeysOf(user.id);
      expect(passkey).toBeDefined();
      const [event] = await t.app.latchkey.store.audit.listByEvent('passkey.added');
      expect(event!.authenticator_id).toBe(passkey!.id);
      expect(JSON.parse(event!.detail)).toEqual({ name: passkey!.name, how: 'upgrade' });
      expect(sent.map((m) => [m.to, m.subject])).toEqual([[user.email, expect.stringContaining('An authenticator was added')]]);
      expect(sent[0]!.text).toContain('It was set up when you signed in.');
      expect((await browser.get('/settings?added=1')).body).toContain('Your passkey has been set up.');
      // Done: the page and its options are for people without a passkey.
      expect((await browser.get('/passkey-upgrade?next=%2Fsettings')).headers.location).toBe('/settings');
      const more = await browser.postJson('/passkey-upgrade/options', { conditional: true });
      expect(more.statusCode).toBe(403);
    });

    it('one credential answering two ceremonies at once: one is stored, the other refused as already registered', async () => {
      await start();
      const { user, browser } = await signedInAppUser();
      const first = (await browser.postJson('/passkey-upgrade/options', { placement: 'this-device' })).json().options;
      const second = (await browser.postJson('/passkey-upgrade/options', { placement: 'this-device' })).json().options;
      const response = authenticator().createCredential(first);
      // Attestation "none" signs nothing, so the same credential can answer the second challenge too.
      const clientData = { type: 'webauthn.create', challenge: second.challenge, origin: TEST_ORIGIN, crossOrigin: false };
      const again = { ...response, response: { ...response.response, clientDataJSON: Buffer.from(JSON.stringify(clientData)).toString('base64url') } };
      const answers = await Promise.all([browser.postJson('/passkey-upgrade/verify', { response }), browser.postJson('/passkey-upgrade/verify', { response: again })]);
      expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 409]);
      const refused = answers.find((a) => a.statusCode === 409)!;
      expect(refused.json().error).toMatchObject({ code: 'credential_exists', message: 'This passkey is already registered. Choose another device or security key.' });
      expect(await passkeysOf(user.id)).toHaveLength(1);
      expect(await t.app.latchkey.store.audit.listByEvent('passkey.added')).toHaveLength(1);
      expect(sent).toHaveLength(1);
    });

    it("someone else's ceremony can't be finished with this session", async () => {
      await start();
      const a = await appUser('a@example.com');
      const b = await appUser('b@example.com');
      const browser = new TestBrowser(t.app);
      await signInWithApp(browser, a.user.email, a.secret);
      const options = (await browser.postJson('/passkey-upgrade/options', { placement: 'this-device' })).json().options;
      // The same browser now signed in as someone else.
      await signInWithApp(browser, b.user.email, b.secret);
      const res = await browser.postJson('/passkey-upgrade/verify', { response: authenticator().createCredential(options) });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('challenge_invalid');
      expect(await passkeysOf(a.user.id)).toEqual([]);
      expect(await passkeysOf(b.user.id)).toEqual([]);
    });

    it('needs a session and the CSRF token', async () => {
      await start();
      const anonymous = new TestBrowser(t.app);
      await anonymous.get('/signin');
      expect((await anonymous.postJson('/passkey-upgrade/options', { conditional: true })).statusCode).toBe(401);
      expect((await anonymous.postForm('/passkey-upgrade/skip', { next: '/settings' })).statusCode).toBe(401);
      const { user, browser } = await signedInAppUser();
      expect((await browser.postJson('/passkey-upgrade/options', { conditional: true }, { 'x-csrf-token': 'forged' })).statusCode).toBe(403);
      expect(await skippedAt(user.id)).toBeNull();
    });
  });

  describe('user presence (WebAuthn L3 §7.1 step 15)', () => {
    /** A password manager saving a passkey by itself: no UP, no UV. */
    const silent = () => authenticator({ userPresence: false, userVerification: false });

    it('a conditional create may come back without UP or UV: accepted, and audited as conditional', async () => {
      await start();
      const { user, browser } = await signedInAppUser();
      const options = await browser.postJson('/passkey-upgrade/options', { conditional: true, next: '/settings' });
      const o = options.json().options;
      // UV "required" would make the browser refuse a conditional create it can't verify (§5.1.3 step 22).
      expect(o.authenticatorSelection).toMatchObject({ residentKey: 'required', userVerification: 'preferred' });
      expect(o.hints ?? []).toEqual([]);
      const verified = await browser.postJson('/passkey-upgrade/verify', { response: silent().createCredential(o) });
      expect(verified.statusCode, verified.body).toBe(200);
      expect(verified.json().redirect).toBe('/settings?added=1');
      expect(await passkeysOf(user.id)).toHaveLength(1);
      const [event] = await t.app.latchkey.store.audit.listByEvent('passkey.added');
      expect(JSON.parse(event!.detail)).toMatchObject({ how: 'upgrade', conditional: true });
      expect(sent[0]!.text).toContain('Your browser or password manager saved it for you when you signed in.');
    });

    it('the upgrade page\'s usual ceremony refuses a response without UP, and one without UV', async () => {
      await start();
      const { user, browser } = await signedInAppUser();
      const noUp = await browser.postJson('/passkey-upgrade/verify', {
        response: silent().createCredential((await browser.postJson('/passkey-upgrade/options', { placement: 'this-device' })).json().options),
      });
      expect(noUp.statusCode).toBe(400);
      expect(noUp.json().error.code).toBe('ceremony_failed');
      expect(noUp.json().error.message).toMatch(/user was not present/i);
      const noUv = await browser.postJson('/passkey-upgrade/verify', {
        response: authenticator({ userVerification: false }).createCredential((await browser.postJson('/passkey-upgrade/options', { placement: 'this-device' })).json().options),
      });
      expect(noUv.statusCode).toBe(400);
      expect(noUv.json().error.code).toBe('user_verification_required');
      expect(await passkeysOf(user.id)).toEqual([]);
    });

    it("settings' add-passkey never accepts a response without UP", async () => {
      await start();
      const browser = await signUp(t.app, authenticator());
      const options = await browser.postJson('/settings/passkeys/options', { name: 'Laptop', placement: 'this-device' });
      const res = await browser.postJson('/settings/passkeys/verify', { response: silent().createCredential(options.json().options) });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('ceremony_failed');
      const user = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
      expect(await passkeysOf(user.id)).toHaveLength(1);
    });

    it('a conditional ceremony answered at another registration endpoint is not found there', async () => {
      await start();
      const { user, browser } = await signedInAppUser();
      const o = (await browser.postJson('/passkey-upgrade/options', { conditional: true })).json().options;
      const res = await browser.postJson('/settings/passkeys/verify', { response: silent().createCredential(o) });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.code).toBe('challenge_invalid');
      expect(await passkeysOf(user.id)).toEqual([]);
    });
  });

  it('without script, "Set up a passkey" says passkeys need JavaScript and Not now still works', async () => {
    await start();
    const { browser } = await signedInAppUser();
    const posted = await browser.postForm('/passkey-upgrade?next=%2Fsettings', { placement: 'this-device' });
    expect(posted.headers.location).toBe('/passkey-upgrade?next=%2Fsettings&nojs=1');
    const page = await browser.get(posted.headers.location as string);
    expect(page.body).toContain('Passkeys need JavaScript');
    expect((await browser.postForm('/passkey-upgrade/skip', { next: '/settings' })).headers.location).toBe('/settings');
  });
});
