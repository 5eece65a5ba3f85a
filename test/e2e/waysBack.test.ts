/**
 * Nobody locked out (issue 14, items 4 and 5), in Chromium: "Can't use your passkey?" from /signin leads to each way
 * back the deployment allows, and settings warn someone whose only way in is one passkey until they add another
 * with a (virtual) security key.
 */
import { describe, expect, it } from 'vitest';
import { expectAccessible, signUpInBrowser, useE2E, visit, waitReady } from './support.js';

const RA_CONTACT = 'https://ra.example.org/contact';

const e2e = useE2E({
  LATCHKEY_RA_CONTACT_URL: RA_CONTACT,
  LATCHKEY_UPSTREAM_PROVIDERS: 'nhsnet',
  LATCHKEY_UPSTREAM_NHSNET_ISSUER: 'https://login.nhs.example.org',
  LATCHKEY_UPSTREAM_NHSNET_CLIENT_ID: 'latchkey',
  LATCHKEY_UPSTREAM_NHSNET_NAME: 'NHS.net Connect',
});

describe("Can't use your passkey?", () => {
  it('from /signin: the QR code steps back to email sign-in, password and app, the work account, self-service and the RA', async () => {
    const { page } = await e2e.open();
    const heading = () => page.locator('h1').innerText();
    const openHelp = async () => {
      await visit(page, e2e.server.url('/signin?email=ada%40example.com'));
      await page.getByRole('link', { name: "Can't use your passkey?" }).click();
      await page.waitForURL(/\/signin\/help\?email=ada%40example\.com$/);
      await waitReady(page);
    };

    await openHelp();
    expect(await heading()).toBe("Can't use your passkey?");
    await expectAccessible(page, "can't use your passkey");
    expect(await page.locator('h2').allInnerTexts()).toEqual([
      'Your passkey is on another device',
      'Use your password and authenticator app',
      'Use your work account',
      'Add a new passkey yourself',
      'Ask your registration authority',
    ]);
    expect(await page.locator('[data-way="another-device"] ol li').allInnerTexts()).toEqual([
      'Enter your email address and select Continue. A pop-up will ask you to sign in with your passkey.',
      'Select "Use a different phone or tablet" or similar.',
      'Scan the QR code using the device that has your passkey. Bluetooth must be on.',
      'Follow the instructions on your device to finish signing in.',
    ]);
    expect(await page.getByRole('link', { name: 'Sign in with NHS.net Connect' }).getAttribute('href')).toBe('/signin/linked/nhsnet');

    // Another device: back to email-first sign-in, the address kept.
    await page.getByRole('link', { name: 'Sign in with your email address' }).click();
    await page.waitForURL(/\/signin\?email=ada%40example\.com#email$/);
    await waitReady(page);
    expect(await page.locator('#email').inputValue()).toBe('ada@example.com');

    // Password and app.
    await openHelp();
    await page.getByRole('link', { name: 'Sign in with a password and authenticator app' }).click();
    await page.waitForURL(/\/signin\/password\?email=ada%40example\.com$/);
    await waitReady(page);
    expect(await page.locator('#password').count()).toBe(1);

    // Self-service with the identity check.
    await openHelp();
    await page.getByRole('link', { name: 'Add an authenticator to your profile' }).click();
    await page.waitForURL(/\/add-authenticator$/);
    await waitReady(page);
    expect(await heading()).toBe('Add an authenticator to your profile');

    // The registration authority's own page (answered here: the test leaves no request to the internet).
    await page.route(RA_CONTACT, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>RA</title><h1>Contact the registration authority</h1>' }));
    await openHelp();
    await page.locator('[data-way="registration-authority"]').getByRole('link', { name: 'your registration authority' }).click();
    await page.waitForURL(RA_CONTACT);
    expect(await heading()).toBe('Contact the registration authority');
  });
});

describe('one passkey is a risk: settings say so', () => {
  it('warns a person with one passkey, and the warning goes once they add a security key', async () => {
    const { page, authenticators } = await e2e.open();
    await authenticators.add('platform');
    await signUpInBrowser(e2e.server, page, { displayName: 'Only One', email: 'only.one@example.com' });
    const warning = page.locator('[data-only-passkey]');
    expect(await warning.locator('h3').innerText()).toBe('You have only one way to sign in');
    expect(await warning.innerText()).toContain('If you lose your passkey Passkey on this device, or the phone, computer or security key it is on, you will not be able to sign in.');
    expect(await warning.getByRole('link', { name: 'your registration authority' }).getAttribute('href')).toBe(RA_CONTACT);
    await expectAccessible(page, 'settings with one passkey');

    // "Set up another passkey" goes to the form; a security key is plugged in and added there.
    await warning.getByRole('link', { name: 'Set up another passkey' }).click();
    await page.waitForURL(/#add-passkey$/);
    await authenticators.add('security-key');
    await page.locator('#add-passkey-form').getByLabel('Name your device').fill('Blue YubiKey');
    await page.locator('#add-passkey-form #placement-security-key').check();
    await page.getByRole('button', { name: 'Set up a passkey' }).click();
    await page.waitForURL('**/settings?added=1');
    await waitReady(page);
    expect(await page.locator('tr[data-passkey-id] .passkey-name').allInnerTexts()).toEqual(['Passkey on this device', 'Blue YubiKey']);
    expect(await warning.count()).toBe(0);
  });
});

describe('a passkey from a provider Latchkey does not know', () => {
  it('shows "Unknown passkey provider" in settings', async () => {
    const { page, authenticators } = await e2e.open();
    // Chromium's virtual authenticator sends an all-zero AAGUID.
    await authenticators.add('platform');
    await signUpInBrowser(e2e.server, page, { displayName: 'Zero Aaguid', email: 'zero.aaguid@example.com' });
    expect(await page.locator('tr[data-passkey-id] td[data-label="Provider"]').allInnerTexts()).toEqual(['Unknown passkey provider']);
  });
});
