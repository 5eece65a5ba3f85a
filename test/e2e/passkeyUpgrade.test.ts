/**
 * Passkey upgrade in Chromium: someone whose way in is a password and an authenticator app signs in and is offered
 * a passkey.
 *
 * How Chromium's virtual environment treats conditional create, which shapes these tests: getClientCapabilities()
 * reports conditionalCreate, but a conditional navigator.credentials.create() never completes there (no password
 * manager holds a recently used password for the site), with or without a virtual authenticator. So the page tries
 * it, gives up after a few seconds and shows "Set up a passkey", which the first tests use. The last test stands in
 * for a password manager that does save one: an init script answers the conditional request with the virtual
 * authenticator, as the browser would without showing anything.
 */
import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { Secret, TOTP } from 'otpauth';
import { insertApp } from '../support/app.js';
import { hashPassword } from '../../src/strategies/password/passwords.js';
import { newTotpSecret } from '../../src/strategies/totp/totp.js';
import { createUser } from '../../src/users/createUser.js';
import type { User } from '../../src/db/schema.js';
import { expectAccessible, passkeyNames, signOut, useE2E, visit, waitReady } from './support.js';

const e2e = useE2E();
const PASSWORD = 'lamp quarry violet harbour';
const store = () => e2e.server.app.latchkey.store;

/** A profile with a password and an authenticator app, as self-service leaves it. */
async function appUser(email: string, displayName: string): Promise<{ user: User; app: TOTP }> {
  const now = e2e.server.clock.now();
  const user = await createUser(store(), { email, displayName }, now);
  await store().kysely.updateTable('users').set({ password_hash: await hashPassword(PASSWORD), status: 'enrolled' }).where('id', '=', user.id).execute();
  const secret = newTotpSecret();
  await insertApp(store(), e2e.server.app.latchkey.secretBox, { id: `app-${user.id}`, user_id: user.id, created_at: now }, secret);
  return { user, app: new TOTP({ secret: Secret.fromBase32(secret) }) };
}

/** Sign in at /signin/password with a code of a new time step (a code works once). */
async function signInWithApp(page: Page, user: User, app: TOTP): Promise<void> {
  e2e.server.clock.offset += 30_000;
  await visit(page, e2e.server.url('/signin'));
  await page.getByRole('link', { name: 'Sign in with a password and authenticator app' }).click();
  await page.waitForURL(/\/signin\/password$/);
  await waitReady(page);
  await page.getByLabel('Email address').fill(user.email);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Code from your authenticator app').fill(app.generate({ timestamp: e2e.server.clock.now() }));
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

const heading = (page: Page) => page.getByRole('heading', { level: 1 }).innerText();
const addedEvents = async (userId: string) =>
  (await store().audit.listForSubject(userId, 20)).filter((e) => e.event === 'passkey.added').map((e) => JSON.parse(e.detail) as Record<string, unknown>);

describe('passkey upgrade after signing in with a password and an authenticator app', () => {
  it('the browser saves none by itself, so the page asks; the person sets one up and lands in settings with it listed', { timeout: 60_000 }, async () => {
    const t = await e2e.open();
    const { page } = t;
    const { user, app } = await appUser('katherine@example.com', 'Katherine Johnson');
    // Windows Hello, Touch ID, Android screen lock.
    await t.authenticators.add('platform');

    await signInWithApp(page, user, app);
    await page.waitForURL(/\/passkey-upgrade\?next=%2Fsettings$/);
    await waitReady(page);
    expect(await page.evaluate(async () => (await (PublicKeyCredential as unknown as { getClientCapabilities(): Promise<Record<string, boolean>> }).getClientCapabilities()).conditionalCreate)).toBe(true);
    // First the browser's own chance (conditional create), then the page.
    await page.waitForSelector('body[data-upgrade="interstitial"]', { state: 'attached' });
    expect((await t.postsTo('/passkey-upgrade/options')).map((e) => [e.body.conditional, e.status])).toEqual([[true, 200]]);
    expect(await heading(page)).toBe('Set up a passkey');
    expect(await page.locator('#passkey-upgrade-choice').isVisible()).toBe(true);
    expect(await page.getByRole('radio', { name: /^This device/ }).isChecked()).toBe(true);
    expect(await page.getByRole('radio', { name: /^Another phone or tablet/ }).isVisible()).toBe(true);
    expect(await page.getByRole('radio', { name: /^Security key/ }).isVisible()).toBe(true);
    expect(await page.locator('#error-summary').isHidden()).toBe(true);
    await expectAccessible(page, 'set up a passkey');

    await page.getByRole('button', { name: 'Set up a passkey' }).click();
    await page.waitForURL(/\/settings\?added=1$/);
    await waitReady(page);
    expect(await page.locator('#flash').innerText()).toBe('Your passkey has been set up.');
    expect(await passkeyNames(page)).toHaveLength(1);
    const options = await t.postsTo('/passkey-upgrade/options');
    expect(options.map((e) => e.body.conditional ?? false)).toEqual([true, false]);
    expect((await t.postsTo('/passkey-upgrade/verify')).map((e) => e.status)).toEqual([200]);
    expect(await addedEvents(user.id)).toEqual([expect.objectContaining({ how: 'upgrade' })]);
    expect((await addedEvents(user.id))[0]).not.toHaveProperty('conditional');
  });

  it('Not now goes on at once, even while the browser is still being given its chance, and the next sign-in does not ask', { timeout: 60_000 }, async () => {
    const t = await e2e.open();
    const { page } = t;
    const { user, app } = await appUser('dorothy@example.com', 'Dorothy Vaughan');

    await signInWithApp(page, user, app);
    await page.waitForURL(/\/passkey-upgrade\?next=%2Fsettings$/);
    await waitReady(page);
    // The conditional create is under way: the choice waits out of sight, Not now does not.
    await page.waitForSelector('body[data-upgrade="conditional"]', { state: 'attached' });
    expect(await page.locator('#passkey-upgrade-choice').isHidden()).toBe(true);
    const asked = e2e.server.clock.now();
    await page.getByRole('button', { name: 'Not now' }).click();
    await page.waitForURL(/\/settings$/);
    await waitReady(page);
    expect(await heading(page)).toBe('Login and security settings');
    const skipped = (await store().users.findById(user.id))!.passkey_prompt_skipped_at!;
    expect(skipped).toBeGreaterThanOrEqual(asked);
    expect(skipped).toBeLessThanOrEqual(e2e.server.clock.now());
    expect(await passkeyNames(page)).toEqual([]);

    await signOut(page);
    await signInWithApp(page, user, app);
    await page.waitForURL(/\/settings$/);
    await waitReady(page);
    expect(await heading(page)).toBe('Login and security settings');
  });

  it('a password manager that saves a passkey by itself: the page goes straight on to settings, and the passkey is recorded as saved that way', { timeout: 60_000 }, async () => {
    const t = await e2e.open();
    const { page } = t;
    const { user, app } = await appUser('mary.jackson@example.com', 'Mary Jackson');
    await t.authenticators.add('platform');
    // Stands in for the password manager: the conditional request is answered by the authenticator, with no dialog
    // (the virtual environment shows none anyway). No named functions inside: the test transform would wrap them.
    await page.addInitScript(() => {
      const credentials = navigator.credentials;
      const create = credentials.create.bind(credentials);
      credentials.create = (options?: CredentialCreationOptions) => {
        if ((options as { mediation?: string } | undefined)?.mediation !== 'conditional') return create(options);
        sessionStorage.setItem('conditionalCreate', 'asked');
        const { mediation: _conditional, ...rest } = options as CredentialCreationOptions & { mediation?: string };
        return create(rest);
      };
    });

    await signInWithApp(page, user, app);
    await page.waitForURL(/\/settings\?added=1$/);
    await waitReady(page);
    expect(await page.evaluate(() => sessionStorage.getItem('conditionalCreate'))).toBe('asked');
    expect(await passkeyNames(page)).toHaveLength(1);
    expect((await t.postsTo('/passkey-upgrade/options')).map((e) => e.body.conditional)).toEqual([true]);
    expect(await addedEvents(user.id)).toEqual([expect.objectContaining({ how: 'upgrade', conditional: true })]);
  });
});
