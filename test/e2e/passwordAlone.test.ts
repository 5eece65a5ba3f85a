/**
 * A password as a fallback (LATCHKEY_PASSWORD_SIGNIN=alone), in Chromium: a
 * person with a passkey sets a password in settings after the passkey check,
 * signs out, and signs in again from "Use your password instead" at AAL1.
 */
import { describe, expect, it } from 'vitest';
import { errorSummaryText, expectAccessible, signOut, signUpInBrowser, useE2E, visit, waitReady } from './support.js';

const e2e = useE2E({ LATCHKEY_PASSWORD_SIGNIN: 'alone' });
const PASSWORD = 'a long and unusual passphrase 1958';

describe('a password as a fallback', () => {
  it('is set in settings after a passkey check, and signs in from "Use your password instead"', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    const laptop = await authenticators.add('platform');
    await signUpInBrowser(e2e.server, page, { displayName: 'Grace Hopper', email: 'grace@example.com' });

    // The check that it is them is older than LATCHKEY_REAUTH_MINUTES: a passkey first.
    e2e.server.clock.advanceMinutes(e2e.server.config.reauthSeconds / 60 + 1);
    await page.getByRole('link', { name: 'Set a password' }).click();
    await page.waitForURL(/\/settings\/reauth\?next=%2Fsettings%2Fset-password$/);
    await waitReady(page);
    expect(await page.locator('form[action^="/reauth/password"]').count()).toBe(0);
    await page.getByRole('button', { name: 'Continue with a passkey' }).click();
    await page.waitForURL(/\/settings\/set-password$/);
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Set a password');
    expect(await page.getByRole('link', { name: 'Back', exact: true }).getAttribute('href')).toBe('/settings');
    await expectAccessible(page, 'set a password');

    // Passwords that differ: the summary links to the field, where the message is said again.
    await page.getByRole('textbox', { name: /^Password At least 8 characters/ }).fill(PASSWORD);
    await page.getByLabel('Confirm password').fill(`${PASSWORD}!`);
    await page.getByRole('button', { name: 'Set password' }).click();
    expect(await errorSummaryText(page)).toBe('There is a problem The passwords do not match');
    expect(await page.locator('.error-summary a').getAttribute('href')).toBe('#confirmPassword');
    expect((await page.locator('#confirmPassword-error').innerText()).replace(/\s+/g, ' ')).toBe('Error: The passwords do not match');
    await expectAccessible(page, 'set a password with an error');

    await page.getByRole('textbox', { name: /^Password At least 8 characters/ }).fill(PASSWORD);
    await page.getByLabel('Confirm password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.waitForURL(/\/settings\?passwordset=1$/);
    await waitReady(page);
    expect(await page.locator('#flash').innerText()).toBe('Your password has been set. You can now use it to sign in.');
    expect(await page.locator('tr[data-kind="password"] td[data-label="Type"]').innerText()).toBe('Password');
    expect(await page.locator('tr[data-event="password.set"]').count()).toBe(1);

    // Away from the passkey: no autofill sign-in on /signin.
    await authenticators.detach(laptop);
    await signOut(page);
    expect(await page.locator('main').innerText()).toContain('If you do not have a passkey set up on another device, you can use your password instead.');
    await page.getByRole('link', { name: 'Use your password instead' }).click();
    await page.waitForURL(/\/signin\/password$/);
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign in with your password');
    await expectAccessible(page, 'sign in with your password');
    await page.getByLabel('Email address').fill('grace@example.com');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(/\/settings$/);
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Login and security settings');

    const store = e2e.server.app.latchkey.store;
    const user = (await store.users.findByEmail('grace@example.com'))!;
    const sessions = await store.sessions.listForUser(user.id, e2e.server.clock.now(), e2e.server.config.sessionIdleSeconds * 1000);
    expect(sessions.map((s) => s.aal)).toEqual([1]);
    const [signin] = await store.audit.listForSubject(user.id, 1);
    expect(signin!.event).toBe('signin');
    expect(JSON.parse(signin!.detail)).toEqual({ method: 'password' });
  });

  it('a wrong password gets the one message, at the page', async () => {
    const t = await e2e.open();
    const { page } = t;
    await visit(page, e2e.server.url('/signin'));
    await page.getByRole('link', { name: 'Use your password instead' }).click();
    await page.waitForURL(/\/signin\/password$/);
    await waitReady(page);
    await page.getByLabel('Email address').fill('nobody@example.com');
    await page.getByLabel('Password', { exact: true }).fill('not anyone’s password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    expect(await errorSummaryText(page)).toBe('There is a problem The email address, password or code is not right. Check them and try again.');
    await expectAccessible(page, 'sign in with your password, failed');
  });
});
