/**
 * Invite links (seed 000 "Register a passkey", seed 002): a first attempt that
 * fails leaves the link usable; a used, an expired and an invalid link each
 * get a page that says what to do next. Plus the 404 page.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { errorSummaryText, expectAccessible, passkeyNames, useE2E, visit, waitReady } from './support.js';

const e2e = useE2E();

describe('invite links', () => {
  it('sets up a passkey from an invite link after a cancelled first attempt, then the link is used', async () => {
    const t = await e2e.open();
    const { page, authenticators } = t;
    const { user, url } = await e2e.server.invite('linus@example.com', 'Linus Pauling');
    expect(user.status).toBe('pending');

    // The screen lock is not confirmed (cancelled, wrong fingerprint): the ceremony fails with NotAllowedError.
    const laptop = await authenticators.add('platform', { isUserVerified: false });
    await visit(page, url);
    expect(await page.locator('main').innerText()).toMatch(/has asked you to set up a passkey for the account of Linus Pauling \(\s*linus@example\.com\)/);
    await expectAccessible(page, 'enrol');
    await page.getByLabel('Name your passkey').fill('Home laptop');
    await page.getByRole('button', { name: 'Set up passkey' }).click();
    const message = await errorSummaryText(page);
    expect(message).toContain('The passkey was not set up.');
    expect(message).toContain('You can try again.');
    expect(await page.getByRole('button', { name: 'Set up passkey' }).isEnabled()).toBe(true);
    expect(await t.postsTo(`${new URL(url).pathname}/verify`)).toEqual([]);
    await expectAccessible(page, 'enrol with error');

    // Later (a reload: the link still works), the person unlocks the device and it works.
    await authenticators.setUserVerified(laptop, true);
    await visit(page, url);
    await page.getByLabel('Name your passkey').fill('Home laptop');
    await page.getByRole('button', { name: 'Set up passkey' }).click();
    await page.waitForURL('**/enrol/done');
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Your passkey is set up');
    await expectAccessible(page, 'enrolment confirmation');
    await page.getByRole('link', { name: 'Go to your Login and security settings' }).click();
    await waitReady(page);
    expect(await passkeyNames(page)).toEqual(['Home laptop']);
    expect((await e2e.server.app.latchkey.store.users.findById(user.id))!.status).toBe('enrolled');

    // The same link again: used.
    const used = await page.goto(url);
    expect(used!.status()).toBe(410);
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('This link can no longer be used');
    expect(await errorSummaryText(page)).toContain('This link has already been used to set up a passkey.');
    expect(await page.getByRole('link', { name: 'Sign in with your passkey' }).getAttribute('href')).toBe('/signin');
    await expectAccessible(page, 'used link');
  });

  it('explains an expired link and an invalid one', async () => {
    const t = await e2e.open();
    const { page } = t;
    const { url } = await e2e.server.invite('late@example.com', 'Late Comer', { issuedAt: e2e.server.clock.now() - e2e.server.config.inviteSeconds * 1000 - 60_000 });
    const expired = await page.goto(url);
    expect(expired!.status()).toBe(410);
    await waitReady(page);
    expect(await errorSummaryText(page)).toContain('This link has expired. Ask the person who sent it');
    await expectAccessible(page, 'expired link');

    const invalid = await page.goto(e2e.server.url(`/enrol/${randomBytes(32).toString('base64url')}`));
    expect(invalid!.status()).toBe(404);
    await waitReady(page);
    expect(await errorSummaryText(page)).toContain('This link is not valid. Check you copied the whole link, or ask for a new one.');
    await expectAccessible(page, 'invalid link');

    const truncated = await page.goto(url.slice(0, -5));
    expect(truncated!.status()).toBe(404);
    await waitReady(page);
  });

  it('shows a helpful 404 page', async () => {
    const t = await e2e.open();
    const { page } = t;
    const res = await page.goto(e2e.server.url('/no-such-page'));
    expect(res!.status()).toBe(404);
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Page not found');
    expect(await page.getByRole('link', { name: 'Go to the start page' }).getAttribute('href')).toBe('/');
    await expectAccessible(page, '404');
  });
});
