/**
 * "Login and security settings" (seed 004, seed 002): two authenticators on one
 * account, a duplicate registration refused in plain words, rename, remove,
 * the last passkey kept, and the step-up passkey check when the last one is
 * older than LATCHKEY_REAUTH_MINUTES (moved past with the server's fake clock).
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import {
  errorSummaryText,
  expectAccessible,
  expectSignalled,
  passkeyNames,
  signOut,
  signUpInBrowser,
  visit,
  waitReady,
  useE2E,
} from './support.js';

const e2e = useE2E();

const SCREENSHOT = process.env.LATCHKEY_E2E_SCREENSHOT; // e.g. /tmp/settings-two-passkeys.png

/** Fill in "Set up a passkey" on /settings and submit it. */
async function addPasskey(page: Page, name: string, placement: 'this-device' | 'another-device' | 'security-key'): Promise<void> {
  await page.locator('#add-passkey-form').getByLabel('Name your device').fill(name);
  await page.locator(`#add-passkey-form #placement-${placement}`).check();
  await page.getByRole('button', { name: 'Set up a passkey' }).click();
}

function row(page: Page, name: string) {
  return page.locator('tr[data-passkey-id]', { has: page.locator('.passkey-name', { hasText: name }) });
}

describe('passkeys in settings', () => {
  it('names the first passkey at sign-up ("Name your device", seed 002)', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    await authenticators.add('platform');
    await visit(page, e2e.server.url('/signup'));
    const name = page.getByLabel('Name your device');
    expect(await name.inputValue()).toBe('');
    await expectAccessible(page, 'sign up with the device name');
    await page.getByLabel('Your name').fill('Named Device');
    await page.getByLabel('Email address').fill('named.device@example.com');
    await name.fill('  Work   phone ');
    await page.getByRole('button', { name: 'Create account and set up a passkey' }).click();
    await page.waitForURL('**/settings?created=1');
    await waitReady(page);
    expect(await passkeyNames(page)).toEqual(['Work phone']);
  });

  it('adds a security key as a second passkey, refuses duplicates, and signs in with either', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    const platform = await authenticators.add('platform');
    await signUpInBrowser(e2e.server, page, { displayName: 'Two Keys', email: 'two.keys@example.com' });
    expect(await passkeyNames(page)).toEqual(['Passkey on this device']);

    // No name: the page asks for one before anything else happens.
    await page.getByRole('button', { name: 'Set up a passkey' }).click();
    expect(await errorSummaryText(page)).toContain('Enter a name for your passkey');
    expect(await t.postsTo('/settings/passkeys/options')).toEqual([]);

    // A YubiKey plugged in next to the laptop's own authenticator. Signed up a moment ago, so no extra check.
    const key = await authenticators.add('security-key');
    await addPasskey(page, 'Blue YubiKey', 'security-key');
    await page.waitForURL('**/settings?added=1');
    await waitReady(page);
    expect(await page.locator('#flash').innerText()).toBe('Your passkey has been set up.');
    expect(await passkeyNames(page)).toEqual(['Passkey on this device', 'Blue YubiKey']);
    expect(await row(page, 'Blue YubiKey').locator('.badge').innerText()).toBe('This device only');
    expect(await authenticators.credentials(key)).toHaveLength(1);
    expect((await t.postsTo('/settings/passkeys/options')).map((p) => p.status)).toEqual([200]);
    await expectAccessible(page, 'settings with two passkeys');
    if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // The same security key again: excludeCredentials makes the browser refuse (InvalidStateError).
    await addPasskey(page, 'Blue YubiKey again', 'security-key');
    let message = await errorSummaryText(page);
    expect(message).toContain('This device or security key already has a passkey for your account, so it cannot be registered again.');
    expect(message).toContain('Choose another device: another phone or tablet, or a different security key.');
    expect(await authenticators.credentials(key)).toHaveLength(1);
    await expectAccessible(page, 'settings with duplicate error');

    // This device again (a second Windows Hello passkey): refused the same way.
    await addPasskey(page, 'Laptop again', 'this-device');
    await page.waitForFunction(() => /already has a passkey/.test(document.getElementById('error-summary')?.textContent ?? '') && !document.querySelector('button[aria-busy="true"]'));
    message = await errorSummaryText(page);
    expect(message).toContain('already has a passkey for your account');
    expect(await authenticators.credentials(platform)).toHaveLength(1);
    // Nothing reached the server's verify step, and the list is unchanged.
    expect((await t.postsTo('/settings/passkeys/verify')).map((p) => p.status)).toEqual([200]);
    await page.reload();
    expect(await passkeyNames(page)).toEqual(['Passkey on this device', 'Blue YubiKey']);

    // Sign in with the security key alone (the laptop's authenticator taken away), by email.
    const laptop = await authenticators.detach(platform);
    await signOut(page);
    await page.locator('#email').fill('two.keys@example.com');
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL('**/settings');
    const byEmail = (await t.postsTo('/signin/options')).at(-1)!;
    expect((byEmail.answer.options as { allowCredentials: unknown[] }).allowCredentials).toHaveLength(2);

    // And with the laptop's passkey alone, with the button.
    const keyCredentials = await authenticators.detach(key);
    expect(keyCredentials[0]!.signCount).toBeGreaterThan(0);
    await signOut(page);
    await authenticators.attach('platform', laptop);
    // (attached after /signin loaded, so the button, not autofill, does this sign-in)
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL('**/settings');
    await waitReady(page);
    const lastUsed = await page.locator('tr[data-passkey-id] td:nth-child(4)').allInnerTexts();
    expect(lastUsed.every((s) => s !== 'Never')).toBe(true);
  });

  it('renames a passkey, with a clear error for an empty name', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    await authenticators.add('platform');
    await signUpInBrowser(e2e.server, page, { displayName: 'Renamer', email: 'renamer@example.com' });

    await page.getByRole('link', { name: 'Rename Passkey on this device' }).click();
    await page.waitForURL('**/rename');
    await waitReady(page);
    expect(await page.getByLabel('Name your device').inputValue()).toBe('Passkey on this device');
    await expectAccessible(page, 'rename');

    await page.getByLabel('Name your device').fill('   ');
    await page.getByRole('button', { name: 'Save name' }).click();
    await waitReady(page);
    expect(await errorSummaryText(page)).toContain('Enter a name for your passkey');
    expect(await page.getByLabel('Name your device').getAttribute('aria-invalid')).toBe('true');
    await expectAccessible(page, 'rename with error');

    await page.getByLabel('Name your device').fill('  Work   laptop ');
    await page.getByRole('button', { name: 'Save name' }).click();
    await page.waitForURL('**/settings?renamed=1&signal=1');
    await waitReady(page);
    expect(await page.locator('#flash').innerText()).toBe('Your passkey has been renamed.');
    expect(await passkeyNames(page)).toEqual(['Work laptop']);
    // WebAuthn Signals API: the provider is told the current passkeys and names, or the page says what to do.
    const how = await expectSignalled(page);
    if (how === 'fallback') expect(await page.locator('#signal-fallback').isVisible()).toBe(true);
    expect(await page.locator('tr[data-event="passkey.renamed"]').count()).toBe(1);
  });

  it('removes a passkey, and refuses to remove the last one', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    await authenticators.add('platform');
    await signUpInBrowser(e2e.server, page, { displayName: 'Remover', email: 'remover@example.com' });
    await authenticators.add('security-key');
    await addPasskey(page, 'Old key', 'security-key');
    await page.waitForURL('**/settings?added=1');
    await waitReady(page);

    await page.getByRole('link', { name: 'Remove Old key' }).click();
    await page.waitForURL('**/remove');
    await waitReady(page);
    expect(await page.locator('main').innerText()).toContain('Old key');
    await expectAccessible(page, 'remove');

    // Forgot the box.
    await page.getByRole('button', { name: 'Remove passkey' }).click();
    await waitReady(page);
    expect(await errorSummaryText(page)).toContain('Select the box to confirm you want to remove this passkey');
    await expectAccessible(page, 'remove with error');

    await page.getByLabel('I want to remove this passkey').check();
    await page.getByRole('button', { name: 'Remove passkey' }).click();
    await page.waitForURL('**/settings?removed=1&signal=1');
    await waitReady(page);
    expect(await page.locator('#flash').innerText()).toBe('Your passkey has been removed from your account.');
    expect(await passkeyNames(page)).toEqual(['Passkey on this device']);
    const how = await expectSignalled(page);
    if (how === 'signals-api') {
      // The one remaining credential is what the provider was told to keep.
      const kept = await page.evaluate(() => document.body.dataset.signalCredentials);
      expect(kept).toBe(await page.locator('tr[data-passkey-id]').getAttribute('data-credential-id'));
    }

    // The last passkey: the page explains and offers no way to remove it.
    await page.getByRole('link', { name: 'Remove Passkey on this device' }).click();
    await page.waitForURL('**/remove');
    await waitReady(page);
    expect(await page.locator('[data-last-passkey]').innerText()).toContain('This is your only passkey. You cannot remove it');
    expect(await page.getByRole('button', { name: 'Remove passkey' }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Set up another passkey' }).getAttribute('href')).toBe('/settings#add-passkey');
    await expectAccessible(page, 'remove last');

    // Even a hand-made request is refused.
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute('content');
    const res = await page.request.post(page.url(), { form: { _csrf: csrf!, confirm: 'yes' }, headers: { accept: 'text/html', origin: e2e.server.origin } });
    expect(res.status()).toBe(409);
    expect(await res.text()).toContain('You cannot remove your only passkey');
    await visit(page, e2e.server.url('/settings'));
    expect(await passkeyNames(page)).toEqual(['Passkey on this device']);
  });

  it('asks for a passkey check before adding or removing when the last one is too old', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    const laptop = await authenticators.add('platform');
    await signUpInBrowser(e2e.server, page, { displayName: 'Step Up', email: 'step.up@example.com' });

    // Adding: the form meets 401 reauth_required, runs the passkey check, then the registration.
    e2e.server.clock.advanceMinutes(e2e.server.config.reauthSeconds / 60 + 1);
    await authenticators.setUserVerified(laptop, false);
    await addPasskey(page, 'Spare key', 'security-key');
    // First the check fails (the screen lock was not confirmed): said as a check, not as a failed set-up.
    const message = await errorSummaryText(page);
    expect(message).toContain('The passkey check did not finish.');
    expect((await t.postsTo('/settings/passkeys/options')).map((p) => p.status)).toEqual([401]);
    await authenticators.setUserVerified(laptop, true);
    await authenticators.add('security-key');
    await page.getByRole('button', { name: 'Set up a passkey' }).click();
    await page.waitForURL('**/settings?added=1');
    await waitReady(page);
    expect(await passkeyNames(page)).toEqual(['Passkey on this device', 'Spare key']);
    const options = await t.postsTo('/settings/passkeys/options');
    expect(options.map((p) => p.status)).toEqual([401, 401, 200]);
    expect((options[0]!.answer.error as { code: string }).code).toBe('reauth_required');
    expect((await t.postsTo('/reauth/verify')).map((p) => p.status)).toEqual([200]);
    expect(await page.locator('tr[data-event="reauth"]').count()).toBe(1);
    expect(await page.locator('tr[data-event="reauth.failed"]').count()).toBe(0);

    // Removing: the link goes to "Confirm it is you" first, then back to the removal.
    e2e.server.clock.advanceMinutes(e2e.server.config.reauthSeconds / 60 + 1);
    await page.getByRole('link', { name: 'Remove Spare key' }).click();
    await page.waitForURL('**/settings/reauth?next=*');
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Confirm it is you');
    await expectAccessible(page, 'reauth');
    await page.getByRole('button', { name: 'Continue with a passkey' }).click();
    await page.waitForURL('**/passkeys/*/remove');
    await waitReady(page);
    await page.getByLabel('I want to remove this passkey').check();
    await page.getByRole('button', { name: 'Remove passkey' }).click();
    await page.waitForURL('**/settings?removed=1&signal=1');
    await waitReady(page);
    expect(await passkeyNames(page)).toEqual(['Passkey on this device']);
    await expectSignalled(page);
  });
  it('tells the device to forget a passkey the service no longer knows (signalUnknownCredential)', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    const key = await authenticators.add('security-key');
    await signUpInBrowser(e2e.server, page, { displayName: 'Removed Elsewhere', email: 'gone@example.com' }, 'security-key');
    expect(await authenticators.credentials(key)).toHaveLength(1);
    await signOut(page);
    // Removed by another session (or an administrator) while this device still holds it.
    const user = (await e2e.server.app.latchkey.store.users.findByEmail('gone@example.com'))!;
    await e2e.server.db.kysely.deleteFrom('authenticators').where('user_id', '=', user.id).execute();

    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    expect(await errorSummaryText(page)).toContain('not registered with this service');
    await page.waitForFunction(() => document.body.dataset.signalUnknownSent === 'true');
    // Chromium's virtual authenticator acts on the signal: the passkey is gone from the device.
    await expect.poll(async () => (await authenticators.credentials(key)).length).toBe(0);
  });
});
