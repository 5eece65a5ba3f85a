/**
 * Sign up, sign out, and sign in three ways (seed 004 "How to log in with a
 * passkey") in Chromium with CDP virtual authenticators; a passkey without user
 * verification is refused with a clear message.
 *
 * How Chromium's virtual environment treats conditional mediation (autofill),
 * which shapes these tests: PublicKeyCredential.isConditionalMediationAvailable()
 * is true only while a platform ("internal") authenticator is attached, and
 * then a conditional request that finds a credential for the site is answered
 * at once, standing in for the person picking the passkey from the email
 * field's autofill list. So the autofill test really completes a conditional
 * ceremony; the button and email-first tests attach the authenticator after the
 * page has loaded, so no autofill request races them. A conditional request
 * that finds no passkey is refused at once (a real browser keeps it waiting for
 * the person), so a test that needs one pending holds it the way a real browser
 * does (watchConditionalRequests), and waits for the page to have made it
 * rather than for the server to have answered /signin/options.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import {
  errorSummaryText,
  expectAccessible,
  signOut,
  signUpInBrowser,
  toBase64Url,
  visit,
  waitReady,
  useE2E,
} from './support.js';

const e2e = useE2E();

/**
 * From the next page load on, sessionStorage.conditionalRequest says where the page's latest conditional (autofill)
 * request is: "pending" once navigator.credentials.get() has been called with it, then "resolved", "rejected" or
 * (held) "aborted". Chromium's virtual environment refuses a conditional request that finds no passkey at once
 * (NotAllowedError within milliseconds), where a real browser keeps it waiting for the person to pick one; with
 * `hold`, conditional requests wait as a real browser's do, until the page aborts them.
 */
async function watchConditionalRequests(page: Page, hold = false): Promise<void> {
  // No named functions inside: the test transform would wrap them in a helper the page does not have.
  await page.addInitScript((holdRequests: boolean) => {
    const credentials = navigator.credentials;
    const get = credentials.get.bind(credentials);
    credentials.get = (options?: CredentialRequestOptions) => {
      if (options?.mediation !== 'conditional') return get(options);
      sessionStorage.setItem('conditionalRequest', 'pending');
      if (!holdRequests) {
        const request = get(options);
        request.then(
          () => sessionStorage.setItem('conditionalRequest', 'resolved'),
          () => sessionStorage.setItem('conditionalRequest', 'rejected'),
        );
        return request;
      }
      return new Promise<Credential | null>((_resolve, reject) => {
        options.signal?.addEventListener(
          'abort',
          () => {
            sessionStorage.setItem('conditionalRequest', 'aborted');
            reject(new DOMException('The request was aborted.', 'AbortError'));
          },
          { once: true },
        );
      });
    };
  }, hold);
}

const conditionalRequest = (page: Page) => page.evaluate(() => sessionStorage.getItem('conditionalRequest'));
const conditionalRequestIs = (page: Page, state: string) => page.waitForFunction((s) => sessionStorage.getItem('conditionalRequest') === s, state);

async function signInModes(userId: string): Promise<string[]> {
  const events = await e2e.server.app.latchkey.store.audit.listForSubject(userId, 50);
  return events
    .filter((e) => e.event === 'signin')
    .reverse()
    .map((e) => (JSON.parse(e.detail) as { mode: string }).mode);
}

describe('sign up, sign out, sign in', () => {
  it('signs up with a platform passkey, signs out, and signs in three ways', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    const email = 'three.ways@example.com';

    // Sign up on this device (Windows Hello, Touch ID, Android screen lock).
    const platform = await authenticators.add('platform');
    await visit(page, e2e.server.url('/signup'));
    await expectAccessible(page, 'signup');
    await signUpInBrowser(e2e.server, page, { displayName: 'Grace Hopper', email });
    expect(await page.locator('#flash').innerText()).toBe('Your account has been created and your passkey is set up.');
    expect(await page.locator('tr[data-passkey-id]').count()).toBe(1);
    await expectAccessible(page, 'settings');
    const user = (await e2e.server.app.latchkey.store.users.findByEmail(email))!;
    expect(user.status).toBe('enrolled');

    // The person leaves this computer: no passkey here any more, so nothing signs in by itself.
    let credentials = await authenticators.detach(platform);
    expect(credentials).toHaveLength(1);
    expect(credentials[0]!.isResidentCredential).toBe(true);
    const credentialId = toBase64Url(credentials[0]!.credentialId);

    // Sign out: back on /signin and the session is gone.
    await signOut(page);
    await expectAccessible(page, 'signin');
    await page.goto(e2e.server.url('/settings'));
    expect(new URL(page.url()).pathname).toBe('/signin');
    await waitReady(page);

    // 1. "Sign in with a passkey": a discoverable credential, no email, empty allowCredentials.
    let passkey = await authenticators.attach('platform', credentials);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL('**/settings');
    const discoverable = (await t.postsTo('/signin/options')).at(-1)!;
    expect(discoverable.body).toEqual({ mode: 'discoverable' });
    const discoverableOptions = discoverable.answer.options as { allowCredentials?: unknown[]; userVerification: string };
    expect(discoverableOptions.allowCredentials ?? []).toEqual([]);
    expect(discoverableOptions.userVerification).toBe('preferred');

    credentials = await authenticators.detach(passkey);
    await signOut(page);

    // 2. Email first: allowCredentials names this person's passkeys.
    passkey = await authenticators.attach('platform', credentials);
    await page.locator('#email').fill(email.toUpperCase());
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL('**/settings');
    const byEmail = (await t.postsTo('/signin/options')).at(-1)!;
    expect(byEmail.body).toEqual({ mode: 'email', email: email.toUpperCase() });
    const emailOptions = byEmail.answer.options as { allowCredentials: { id: string; transports?: string[] }[] };
    expect(emailOptions.allowCredentials.map((c) => c.id)).toEqual([credentialId]);
    expect(emailOptions.allowCredentials[0]!.transports).toContain('internal');

    // 3. Autofill (conditional mediation): the platform passkey stays attached and
    // nobody clicks anything; the conditional request started on page load signs in.
    const verified = page.waitForRequest((r) => r.url().endsWith('/signin/verify'));
    await page.getByRole('button', { name: 'Sign out' }).first().click();
    await verified;
    await page.waitForURL('**/settings');
    const autofill = (await t.postsTo('/signin/options')).at(-1)!;
    expect(autofill.body).toEqual({ mode: 'autofill' });
    expect((autofill.answer.options as { allowCredentials?: unknown[] }).allowCredentials ?? []).toEqual([]);
    expect((await t.postsTo('/signin/verify')).at(-1)!.status).toBe(200);

    // The e2e.server agrees about how each sign-in happened.
    expect(await signInModes(user.id)).toEqual(['discoverable', 'email', 'autofill']);
    expect(await page.locator('tr[data-event="signin"]').count()).toBe(3);
  });

  it('offers passkey autofill on the email field and starts a conditional request as the page loads', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    // A platform authenticator with no passkey for this site: conditional mediation is available, so the page
    // asks for options at once and hands the browser a conditional request. Chromium's virtual environment
    // refuses it at once (no passkey); the page must not show that to the person as an error.
    await authenticators.add('platform');
    await watchConditionalRequests(page);
    await visit(page, e2e.server.url('/signin'));
    expect(await page.locator('#email').getAttribute('autocomplete')).toBe('username webauthn');
    await conditionalRequestIs(page, 'rejected');
    expect((await t.postsTo('/signin/options')).map((p) => p.body)).toEqual([{ mode: 'autofill' }]);
    expect(await page.evaluate(() => PublicKeyCredential.isConditionalMediationAvailable())).toBe(true);
    expect(await t.postsTo('/signin/verify')).toEqual([]);
    expect(await page.locator('#error-summary').isHidden()).toBe(true);
    expect(new URL(page.url()).pathname).toBe('/signin');
  });

  it('cancels a pending autofill request when the person uses the button with a security key', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    const key = await authenticators.add('security-key');
    await signUpInBrowser(e2e.server, page, { displayName: 'Key Holder', email: 'key.holder@example.com' }, 'security-key');
    const credentials = await authenticators.detach(key);
    await signOut(page);

    // Autofill pending, waiting for the person as in a real browser, then the security key is plugged in and used.
    // (Before the request was held, it was refused at once, and a key attached before the page had made it
    // answered it instead: autofill signed in by itself and the click waited for a button that had gone.)
    await authenticators.add('platform');
    await watchConditionalRequests(page, true);
    await visit(page, e2e.server.url('/signin'));
    await conditionalRequestIs(page, 'pending');
    expect((await t.postsTo('/signin/options')).map((p) => p.body.mode)).toEqual(['autofill']);
    await authenticators.attach('security-key', credentials);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL('**/settings');
    expect(await conditionalRequest(page)).toBe('aborted');
    expect((await t.postsTo('/signin/options')).map((p) => p.body.mode)).toEqual(['autofill', 'discoverable']);
    expect((await t.postsTo('/signin/verify')).map((p) => p.status)).toEqual([200]);
    // The aborted autofill request is not an error the person sees (the page has gone; nothing was logged).
  });

  it('refuses a passkey that cannot verify the user, with a clear message', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    const key = await authenticators.add('security-key');
    await signUpInBrowser(e2e.server, page, { displayName: 'No Pin', email: 'no.pin@example.com' }, 'security-key');
    const credentials = await authenticators.detach(key);
    await signOut(page);

    // The same passkey on a security key without a PIN (copied over CDP, as no real key allows):
    // it can only prove presence, not who you are. Email first, because Chromium does not try a
    // no-UV key for a request without allowCredentials (the button ends in NotAllowedError
    // before the e2e.server sees anything), and it only offers allowCredentials to authenticators
    // with a matching transport, hence a USB passkey to start with.
    await authenticators.attach('no-uv', credentials);
    await page.locator('#email').fill('no.pin@example.com');
    await page.getByRole('button', { name: 'Continue' }).click();
    const message = await errorSummaryText(page);
    expect(message).toContain('Your passkey did not confirm it is you with a fingerprint, face, PIN or screen lock');
    expect(message).toContain('set a PIN on your security key');
    const verify = (await t.postsTo('/signin/verify'));
    expect(verify.map((p) => p.status)).toEqual([400]);
    expect((verify[0]!.answer.error as { code: string }).code).toBe('user_verification_required');
    expect(new URL(page.url()).pathname).toBe('/signin');
    expect(await page.getByRole('button', { name: 'Continue' }).isEnabled()).toBe(true);
    await expectAccessible(page, 'signin with error');
    // Nothing signed in: /settings still sends the person to sign in.
    await page.goto(e2e.server.url('/settings'));
    expect(new URL(page.url()).pathname).toBe('/signin');
  });

  it('asks for the email address when Continue is pressed without one', async () => {
    const t = await e2e.open();
    const { page } = t;
    await visit(page, e2e.server.url('/signin'));
    await page.getByRole('button', { name: 'Continue' }).click();
    const message = await errorSummaryText(page);
    expect(message).toContain('Enter your email address');
    // The error summary links to the field, and has focus so screen readers announce it.
    expect(await page.locator('#error-summary a[href="#email"]').innerText()).toBe('Enter your email address');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('error-summary');
    expect(await page.locator('#email').getAttribute('aria-invalid')).not.toBeNull();
    await expectAccessible(page, 'signin with field error');

    await page.locator('#email').fill('ada.example.com');
    await page.getByRole('button', { name: 'Continue' }).click();
    expect(await errorSummaryText(page)).toContain('Enter an email address in the correct format, like name@example.com');
    // Checked in the page: the server's schema messages are for developers.
    expect(await t.postsTo('/signin/options')).toEqual([]);
  });

  it('checks the sign-up form in plain words and will not make a second account for one email', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    await visit(page, e2e.server.url('/signup'));
    await page.getByRole('button', { name: 'Create account and set up a passkey' }).click();
    const message = await errorSummaryText(page);
    expect(message).toContain('Enter your name');
    expect(message).toContain('Enter your email address');
    expect(await t.postsTo('/signup/options')).toEqual([]);
    await expectAccessible(page, 'signup with field errors');

    // An address that already has an account: refused before any passkey is made.
    await e2e.server.invite('taken@example.com', 'Taken Already');
    const key = await authenticators.add('security-key');
    await page.getByLabel('Your name').fill('Someone Else');
    await page.locator('#email').fill('TAKEN@example.com');
    await page.getByRole('button', { name: 'Create account and set up a passkey' }).click();
    await page.waitForFunction(() => /could not be created/.test(document.getElementById('error-summary')?.textContent ?? ''));
    expect(await errorSummaryText(page)).toContain('An account could not be created with that email address. If you already have an account, sign in instead.');
    expect((await t.postsTo('/signup/options')).map((p) => p.status)).toEqual([409]);
    expect(await authenticators.credentials(key)).toEqual([]);
  });
});
