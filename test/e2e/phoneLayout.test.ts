/**
 * Every page a person or an agent uses fits a phone (issue 11, item 12): at
 * 375 px wide nothing scrolls sideways. One agent (RA Manager) and one person
 * walk the pages with data that tends to widen them (long names and email
 * addresses, several authenticators, sessions, audit events, an issued link
 * and code); failures are collected across pages so one run shows them all,
 * each with the elements that stick out.
 */
import { catalogueWith, metadataStatement } from '../support/metadataStatements.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { hashToken, randomToken } from '../../src/crypto.js';
import type { Authenticator, User } from '../../src/db/schema.js';
import { createUser } from '../../src/users/createUser.js';
import { Secret, TOTP } from 'otpauth';
import { hashPassword } from '../../src/strategies/password/passwords.js';
import { newTotpSecret } from '../../src/strategies/totp/totp.js';
import { insertApp } from '../support/app.js';
import { closeContextsAfterEach, errorSummaryText, expectAccessible, launchBrowser, startServer, visit, waitReady, type E2EServer, type TestPage } from './support.js';

const PHONE = { width: 375, height: 812 };

let server: E2EServer;
let browser: Browser;
const openTracked = closeContextsAfterEach();

beforeAll(async () => {
  [server, browser] = await Promise.all([startServer(), launchBrowser()]);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const store = () => server.app.latchkey.store;

async function phone(): Promise<TestPage> {
  const t = await openTracked(browser, server);
  await t.page.setViewportSize(PHONE);
  await t.authenticators.add('platform');
  return t;
}

/** How wide the page is, and which elements reach past the viewport's right edge (the innermost first). */
async function overflow(page: Page): Promise<{ width: number; culprits: string[] }> {
  return page.evaluate(() => {
    const limit = window.innerWidth;
    const sticksOut = (e: Element) => e.getBoundingClientRect().right > limit + 0.5;
    const culprits = Array.from(document.querySelectorAll('body *'))
      .filter((e) => sticksOut(e) && !Array.from(e.children).some(sticksOut))
      .slice(0, 4)
      .map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}${typeof e.className === 'string' && e.className ? `.${e.className.trim().split(/\s+/).join('.')}` : ''}`);
    return { width: document.documentElement.scrollWidth, culprits };
  });
}

/** A copy of `base` for `user` under a new id: more rows in the tables without more ceremonies. */
function authenticatorLike(base: Authenticator, user: User, fields: Partial<Authenticator>): Authenticator {
  const id = randomToken(12);
  return { ...base, id, user_id: user.id, credential_id: `${id}-credential`, created_at: server.clock.now(), last_used_at: server.clock.now(), issued_by: null, ...fields };
}

/** The hash of this context's browser binding: flows made here belong to its browser. */
async function bindingHash(t: TestPage): Promise<string> {
  const binding = (await t.context.cookies()).find((c) => c.name === 'latchkey_binding')!.value;
  return hashToken(binding);
}

/** A self-service flow for this browser at `step`, as the steps before it would leave it. */
async function selfServiceFlow(t: TestPage, user: User, data: Record<string, unknown>): Promise<string> {
  const id = randomToken(16);
  const now = server.clock.now();
  await store().flows.insert({
    id,
    type: 'self-service',
    binding_hash: await bindingHash(t),
    user_id: user.id,
    lookup: `self-service:${id}`,
    data: JSON.stringify(data),
    created_at: now,
    expires_at: now + 30 * 60_000,
  });
  return id;
}

describe('pages on a phone', () => {
  it('no page a person or an agent uses scrolls sideways at 375 px', { timeout: 120_000 }, async () => {
    const failures: string[] = [];
    let checked = 0;
    const check = async (page: Page, label: string) => {
      await waitReady(page);
      const { width, culprits } = await overflow(page);
      checked++;
      if (width > PHONE.width) failures.push(`${label} (${new URL(page.url()).pathname}): ${width} px wide; sticking out: ${culprits.join(', ')}`);
    };
    const go = async (page: Page, path: string, label: string) => {
      await visit(page, server.url(path));
      await check(page, label);
    };

    // ---- signed out: sign in, sign up, enrolment code, self-service start and details
    const visitor = await phone();
    await go(visitor.page, '/signin', 'sign in');
    await go(visitor.page, '/signin/help?next=/interaction/abc&email=alexandra.wilhelmina.montgomery-smythe@registration-authority.example.org', "can't use your passkey");
    await expectAccessible(visitor.page, "can't use your passkey at 375 px");
    await go(visitor.page, '/signup', 'sign up');
    await go(visitor.page, '/enrol', 'enrolment code');
    await go(visitor.page, '/add-authenticator', 'self-service start');
    await visitor.page.getByRole('button', { name: 'Start' }).click();
    await visitor.page.waitForURL('**/details');
    await check(visitor.page, 'self-service details');
    expect(await visitor.page.locator('.caption.step').innerText()).toBe('Step 1 of 4');
    expect(await visitor.page.getByRole('link', { name: 'Back', exact: true }).getAttribute('href')).toBe('/add-authenticator');
    const detailsPath = new URL(visitor.page.url()).pathname;
    await go(visitor.page, detailsPath.replace(/details$/, 'problem'), 'self-service problem');
    await go(visitor.page, '/no-such-page', 'not found');

    // ---- an agent with a long name, enrolled by link: the link page, the done page, then their own settings
    const agentPage = await phone();
    const { user: agent, url } = await server.invite('alexandra.wilhelmina.montgomery-smythe@registration-authority.example.org', 'Alexandra Wilhelmina Montgomery-Smythe');
    await go(agentPage.page, new URL(url).pathname, 'enrolment link');
    await agentPage.page.getByLabel('Name your passkey').fill('Work phone with a rather long descriptive name');
    await agentPage.page.getByRole('button', { name: 'Set up passkey' }).click();
    await agentPage.page.waitForURL('**/enrol/done');
    await check(agentPage.page, 'enrolment done');
    await store().roles.set(agent.id, ['ra_manager'], null, server.clock.now());

    // One passkey and nothing else: the warning that says what losing it means.
    await go(agentPage.page, '/settings', 'settings with one passkey');
    expect(await agentPage.page.locator('[data-only-passkey]').count()).toBe(1);
    await expectAccessible(agentPage.page, 'settings with one passkey at 375 px');

    // More rows: another passkey, an authenticator app with a password, so every settings table and page is there.
    const [first] = await store().authenticators.listForUser(agent.id);
    const second = authenticatorLike(first!, agent, { name: 'Blue YubiKey on the office keyring', aaguid: 'cb69481e-8ff7-4039-93ec-0a2729a154a8', backup_eligible: 0, backed_up: 0 });
    const app = authenticatorLike(first!, agent, { type: 'totp', name: 'Authenticator app', aaguid: '', credential_id: `totp:${randomToken(8)}`, config: JSON.stringify({ sealedSecret: 'sealed', lastStep: 0 }) });
    await store().authenticators.insert(second);
    await store().authenticators.insert(app);
    await store().users.setPasswordHash(agent.id, 'not-a-real-hash', server.clock.now());

    const a = agentPage.page;
    await go(a, '/settings', 'settings');
    // Stacked tables keep their headings for screen readers, and the page stays accessible.
    await expectAccessible(a, 'settings at 375 px');
    if (process.env.LATCHKEY_E2E_SCREENSHOTS) await a.screenshot({ path: `${process.env.LATCHKEY_E2E_SCREENSHOTS}/settings-375.png`, fullPage: true });
    await go(a, `/settings/passkeys/${first!.id}/rename`, 'rename passkey');
    await go(a, `/settings/passkeys/${second.id}/remove`, 'remove passkey');
    // Without the tick: the summary links to the box, and the message sits at the box, said once each.
    await a.getByRole('button', { name: 'Remove passkey' }).click();
    expect(await errorSummaryText(a)).toBe('There is a problem Select the box to confirm you want to remove this passkey');
    await check(a, 'remove passkey, not ticked');
    expect((await a.locator('#confirm-error').innerText()).replace(/\s+/g, ' ')).toBe('Error: Select the box to confirm you want to remove this passkey');
    expect(await a.getByRole('checkbox', { name: 'I want to remove this passkey' }).getAttribute('aria-describedby')).toBe('confirm-error');
    await go(a, `/settings/authenticators/${app.id}/remove`, 'remove authenticator app');
    await go(a, '/settings/password', 'change password');
    await go(a, '/settings/reauth?next=/settings', 'confirm it is you');
    await go(a, '/services', 'services you can use');

    // Self-service steps after the identity check, as settings starts them.
    await go(a, `/add-authenticator/${await selfServiceFlow(agentPage, agent, { step: 'code', email: agent.email, codeHash: 'x', codeExpiresAt: server.clock.now() + 600_000, resends: 0 })}/code`, 'self-service code');
    const verified = await selfServiceFlow(agentPage, agent, { step: 'verified', email: agent.email });
    await go(a, `/add-authenticator/${verified}/choose`, 'self-service choose');
    await go(a, `/add-authenticator/${verified}/passkey`, 'self-service passkey');
    await go(a, `/add-authenticator/${verified}/app`, 'self-service app');
    await a.getByRole('checkbox').check();
    await a.getByRole('button', { name: 'Continue' }).click();
    await a.waitForURL('**/app/password');
    await check(a, 'self-service password');
    await a.getByLabel('Password', { exact: true }).fill('a long and unusual passphrase 1958');
    await a.getByLabel('Confirm password').fill('a long and unusual passphrase 1958');
    await a.getByRole('button', { name: 'Continue' }).click();
    await a.waitForURL('**/app/setup');
    await check(a, 'self-service scan');
    const done = await selfServiceFlow(agentPage, agent, { step: 'verified' });
    await store().flows.consume(done, server.clock.now());
    await go(a, `/add-authenticator/${done}/done?added=passkey`, 'self-service done');

    // ---- the console, about a person with a long email address and a passkey
    const person = await createUser(store(), { email: 'bartholomew.featherstonehaugh-cholmondeley@hospital-trust.nhs.example.uk', displayName: 'Bartholomew Featherstonehaugh-Cholmondeley' }, server.clock.now());
    const personsPasskey = authenticatorLike(first!, person, { name: 'Bartholomew’s phone', issued_by: agent.id });
    await store().authenticators.insert(personsPasskey);
    await go(a, '/admin', 'console home');
    await go(a, '/admin/users?q=b', 'users');
    await go(a, '/admin/users/new', 'add a user');
    await go(a, `/admin/users/${person.id}`, 'profile details');
    await go(a, `/admin/users/${person.id}/authenticators`, 'profile authenticators');
    await go(a, `/admin/users/${person.id}/activity`, 'profile activity');
    await go(a, `/admin/users/${agent.id}/authenticators`, 'own profile authenticators');
    expect(await a.locator('[data-own-account]').innerText()).toBe('You can’t change your own authenticators here. Use your Login and security settings, or ask another agent.');
    await go(a, `/admin/users/${person.id}/authenticators/${personsPasskey.id}/remove`, 'remove authenticator');
    await go(a, `/admin/users/${person.id}/issue`, 'issue: choose type');
    await go(a, `/admin/users/${person.id}/issue/passkey`, 'issue: passkey instructions');
    await a.getByRole('button', { name: 'Generate link' }).click();
    await a.waitForFunction(() => document.querySelector('h1')?.textContent === 'Link generated');
    await check(a, 'link generated');
    await go(a, `/admin/users/${person.id}/issue/passkey`, 'issue: passkey instructions');
    await a.getByRole('button', { name: 'Generate 9-character code' }).click();
    await a.waitForFunction(() => document.querySelector('h1')?.textContent === '9-character code generated');
    await check(a, 'code generated');
    await go(a, `/admin/users/${person.id}/authenticators`, 'profile authenticators with links and codes');
    await go(a, '/admin/audit', 'audit log');
    await expectAccessible(a, 'audit log at 375 px');
    if (process.env.LATCHKEY_E2E_SCREENSHOTS) await a.screenshot({ path: `${process.env.LATCHKEY_E2E_SCREENSHOTS}/audit-375.png`, fullPage: true });
    await go(a, '/admin/templates', 'email templates');
    await go(a, '/admin/templates/new', 'new email template');
    const [template] = await store().emailTemplates.list();
    await go(a, `/admin/templates/${template!.id}`, 'edit email template');
    await go(a, '/admin/services', 'services (console)');

    // ---- issue 15: webhooks, with a long address, a long answer and a delivery of a long-named person
    const hookId = 'phone-layout-hooks';
    await store().webhooks.insertEndpoint({
      id: hookId,
      url: 'https://integration-gateway.hospital-trust.nhs.example.uk/identity/latchkey/webhooks/receive-events-v2',
      description: 'Electronic staff record feed (workforce information team)',
      events: '["user.created","user.suspended","authenticator.added","role.changed"]',
      secret: server.app.latchkey.secretBox.seal('whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0', `webhook-secret:${hookId}`),
      created_by: agent.id,
      created_at: server.clock.now(),
    });
    await store().webhooks.insertDelivery({
      id: 'msg_phoneLayoutDelivery0000001',
      endpoint_id: hookId,
      event_type: 'user.created',
      payload: JSON.stringify({ type: 'user.created', timestamp: new Date(server.clock.now()).toISOString(), data: { user: { id: person.id, email: person.email, name: person.display_name } } }),
      created_at: server.clock.now(),
    });
    await server.app.latchkey.store.kysely
      .updateTable('webhook_deliveries')
      .set({ status: 'failed', attempts: 8, response_status: 502, response_body: `<html><body>${'Bad gateway: the upstream integration service did not answer in time. '.repeat(6)}</body></html>` })
      .execute();
    await go(a, '/admin/webhooks', 'webhooks');
    await go(a, '/admin/webhooks/new', 'add a webhook endpoint');
    await a.getByLabel('Address').fill('http://hr.example.org/hooks');
    await a.getByRole('button', { name: 'Add endpoint' }).click();
    await waitReady(a);
    expect(await errorSummaryText(a)).toContain('Enter an https:// address');
    expect(await errorSummaryText(a)).toContain('Choose at least one event to send');
    await check(a, 'add a webhook endpoint, with errors');
    await expectAccessible(a, 'add a webhook endpoint with errors at 375 px');
    await go(a, `/admin/webhooks/${hookId}`, 'webhook endpoint with a failed delivery');
    await expectAccessible(a, 'webhook endpoint at 375 px');
    await go(a, `/admin/webhooks/${hookId}/deliveries/msg_phoneLayoutDelivery0000001`, 'webhook delivery with its curl command');
    await go(a, `/admin/webhooks/${hookId}/delete`, 'delete webhook endpoint');

    // ---- issue 13: the security key pages and the authenticator policy, with and without FIDO metadata
    await go(a, `/admin/users/${person.id}/issue/security-key`, 'issue: security key, no metadata');
    await go(a, '/settings/reauth?next=/settings&need=3', 'confirm it is you with a security key (none)');
    await go(a, '/admin/policy', 'authenticator policy, no metadata');
    await a.getByLabel('Denied models').fill('YubiKey 5 NFC');
    await a.getByRole('button', { name: 'Save policy' }).click();
    expect(await errorSummaryText(a)).toContain('Line 1 of denied models, “YubiKey 5 NFC”, is not an AAGUID');
    expect(await a.locator('.error-summary a').first().getAttribute('href')).toBe('#deniedModels');
    await check(a, 'authenticator policy with an error');
    await expectAccessible(a, 'authenticator policy with an error at 375 px');
    server.app.latchkey.trust.setMetadata(
      catalogueWith([{ statement: metadataStatement({ aaguid: 'cb69481e-8ff7-4039-93ec-0a2729a154a8', description: 'YubiKey 5 Series with a long model name (test metadata)', attestationRootCertificates: [] }), statusReports: [{ status: 'FIDO_CERTIFIED_L2' }] }]),
    );
    await go(a, '/admin/policy', 'authenticator policy with metadata');
    await a.locator('details[data-known-models] summary').click();
    await check(a, 'authenticator policy, models listed');
    await go(a, `/admin/users/${person.id}/issue/security-key`, 'issue: security key instructions');
    await expectAccessible(a, 'security key instructions at 375 px');

    // ---- issue 14: someone with a password and an app, offered a passkey after signing in
    const upgrading = await phone();
    const u = upgrading.page;
    const withApp = await createUser(store(), { email: 'wilhelmina.featherstonehaugh@community-pharmacy.nhs.example.uk', displayName: 'Wilhelmina Featherstonehaugh' }, server.clock.now());
    await store().users.setPasswordHash(withApp.id, await hashPassword('a long and unusual passphrase 1958'), server.clock.now());
    const appSecret = newTotpSecret();
    await insertApp(store(), server.app.latchkey.secretBox, { id: `app-${withApp.id}`, user_id: withApp.id, created_at: server.clock.now() }, appSecret);
    await go(u, '/signin/password', 'sign in with a password');
    await u.getByLabel('Email address').fill(withApp.email);
    await u.getByLabel('Password', { exact: true }).fill('a long and unusual passphrase 1958');
    await u.getByLabel('Code from your authenticator app').fill(new TOTP({ secret: Secret.fromBase32(appSecret) }).generate({ timestamp: server.clock.now() }));
    await u.getByRole('button', { name: 'Sign in', exact: true }).click();
    await u.waitForURL(/\/passkey-upgrade\?next=/);
    // Once the browser's own chance (conditional create) has passed, the page asks.
    await u.waitForSelector('body[data-upgrade="interstitial"]', { state: 'attached' });
    await check(u, 'set up a passkey');
    await expectAccessible(u, 'set up a passkey at 375 px');
    if (process.env.LATCHKEY_E2E_SCREENSHOTS) await u.screenshot({ path: `${process.env.LATCHKEY_E2E_SCREENSHOTS}/passkey-upgrade-375.png`, fullPage: true });

    expect(checked).toBeGreaterThan(35);
    expect(failures, failures.join('\n')).toEqual([]);
  });

  it('the password fallback pages (LATCHKEY_PASSWORD_SIGNIN=alone) fit a phone and pass axe', { timeout: 90_000 }, async () => {
    const alone = await startServer({ LATCHKEY_PASSWORD_SIGNIN: 'alone' });
    try {
      const t = await openTracked(browser, alone);
      await t.page.setViewportSize(PHONE);
      const failures: string[] = [];
      const walk = async (path: string, label: string) => {
        await visit(t.page, alone.url(path));
        const { width, culprits } = await overflow(t.page);
        if (width > PHONE.width) failures.push(`${label} (${path}): ${width} px wide; sticking out: ${culprits.join(', ')}`);
        await expectAccessible(t.page, `${label} at 375 px`);
      };
      await walk('/signin', 'sign in, with "Use your password instead"');
      expect(await t.page.getByRole('link', { name: 'Use your password instead' }).count()).toBe(1);
      await walk('/signin/password', 'sign in with your password');
      await t.page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await waitReady(t.page);
      expect(await errorSummaryText(t.page)).toBe('There is a problem Enter your email address Enter your password');
      await expectAccessible(t.page, 'sign in with your password, with errors, at 375 px');

      // A person with a long name and address, signed in (enrolled by link), with an app and its password.
      await t.authenticators.add('platform');
      const { user, url } = await alone.invite('bartholomew.featherstonehaugh-cholmondeley@hospital-trust.nhs.example.uk', 'Bartholomew Featherstonehaugh-Cholmondeley');
      await visit(t.page, url);
      await t.page.getByRole('button', { name: 'Set up passkey' }).click();
      await t.page.waitForURL('**/enrol/done');
      const [passkey] = await alone.app.latchkey.store.authenticators.listForUser(user.id);
      await alone.app.latchkey.store.authenticators.insert({ ...passkey!, id: randomToken(12), type: 'totp', name: 'Authenticator app', aaguid: '', credential_id: `totp:${randomToken(8)}`, config: JSON.stringify({ sealedSecret: 'sealed', lastStep: 0 }) });
      await alone.app.latchkey.store.users.setPasswordHash(user.id, 'not-a-real-hash', alone.clock.now());
      await walk('/settings', 'settings, offering "Set a password"');
      expect(await t.page.getByRole('link', { name: 'Set a password' }).count()).toBe(1);
      await walk('/settings/set-password', 'set a password');
      await t.page.getByRole('button', { name: 'Set password' }).click();
      await waitReady(t.page);
      expect(await t.page.locator('.error-summary a').first().getAttribute('href')).toBe('#password');
      const { width, culprits } = await overflow(t.page);
      if (width > PHONE.width) failures.push(`set a password, with an error: ${width} px wide; sticking out: ${culprits.join(', ')}`);
      await expectAccessible(t.page, 'set a password, with an error, at 375 px');
      expect(failures, failures.join('\n')).toEqual([]);
    } finally {
      await alone.close();
    }
  });

  it('styles the password field on "Confirm it is you" like the other fields', async () => {
    const t = await phone();
    const { user, url } = await server.invite('grace.hopper@example.com', 'Grace Hopper');
    await visit(t.page, url);
    await t.page.getByRole('button', { name: 'Set up passkey' }).click();
    await t.page.waitForURL('**/enrol/done');
    await store().users.setPasswordHash(user.id, 'not-a-real-hash', server.clock.now());
    // The form is offered to someone with an authenticator app to use the password with.
    const [passkey] = await store().authenticators.listForUser(user.id);
    await store().authenticators.insert(authenticatorLike(passkey!, user, { type: 'totp', name: 'Authenticator app', aaguid: '', credential_id: `totp:${randomToken(8)}`, config: JSON.stringify({ sealedSecret: 'sealed', lastStep: 0 }) }));
    await visit(t.page, server.url('/settings/reauth?next=/settings'));
    const look = (selector: string) =>
      t.page.locator(selector).evaluate((e) => {
        const s = getComputedStyle(e);
        return { border: `${s.borderTopWidth} ${s.borderTopStyle} ${s.borderTopColor}`, padding: s.paddingTop, font: s.fontSize, radius: s.borderTopLeftRadius };
      });
    expect(await look('#password')).toEqual(await look('#code'));
  });
});
