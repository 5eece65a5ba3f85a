/**
 * Self-service "Add an authenticator to your profile" (seed 001, issue 4) in a
 * real browser, for each of the three branches from the start page to signing
 * in with what was added: a passkey (a platform virtual authenticator), an
 * authenticator app (password + TOTP, codes computed with otpauth for the
 * server's fake clock) and a linked NHS.net Connect account (a real
 * oidc-provider upstream on loopback). The CAPTCHA is solved by the page's own
 * script; the emailed code is read from a real SMTP sink.
 *
 * The upstream must know Latchkey's redirect URI, and Latchkey the upstream's
 * issuer: a port is reserved for the upstream, Latchkey started with that
 * issuer (discovery happens at the first use), then the upstream started on
 * that port with Latchkey's origin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Secret, TOTP } from 'otpauth';
import type { User } from '../../src/db/schema.js';
import { createUser } from '../../src/users/createUser.js';
import { hashNationalId } from '../../src/users/nationalId.js';
import { startSmtpSink, type SmtpSink } from '../support/smtpSink.js';
import { startUpstreamIdp, type UpstreamIdp } from '../support/upstreamIdp.js';
import { closeContextsAfterEach, errorSummaryText, expectAccessible, launchBrowser, reservePort, signUpInBrowser, startServer, toBase64Url, visit, waitReady, type E2EServer, type TestPage } from './support.js';

const NINO = 'QQ123456C';
const NHS = 'NHS.net Connect';
const ORGANISATION = 'Care Identity';

let server: E2EServer;
let browser: Browser;
let sink: SmtpSink;
let idp: UpstreamIdp;
const openTracked = closeContextsAfterEach();

beforeAll(async () => {
  const upstream = await reservePort();
  const upstreamPort = upstream.port;
  sink = await startSmtpSink();
  [server, browser] = await Promise.all([
    startServer({
      LATCHKEY_SMTP_URL: sink.url,
      LATCHKEY_ORGANISATION: ORGANISATION,
      // Light proof of work: the page solves it in well under a second.
      LATCHKEY_CAPTCHA_MAX_NUMBER: '5000',
      LATCHKEY_UPSTREAM_PROVIDERS: 'nhsnet',
      LATCHKEY_UPSTREAM_NHSNET_ISSUER: `http://127.0.0.1:${upstreamPort}`,
      LATCHKEY_UPSTREAM_NHSNET_CLIENT_ID: 'latchkey',
      LATCHKEY_UPSTREAM_NHSNET_CLIENT_SECRET: 'e2e-upstream-secret',
      LATCHKEY_UPSTREAM_NHSNET_NAME: NHS,
    }),
    launchBrowser(),
  ]);
  await upstream.release();
  idp = await startUpstreamIdp({
    port: upstreamPort,
    clientId: 'latchkey',
    clientSecret: 'e2e-upstream-secret',
    redirectUris: [`${server.origin}/signin/linked/nhsnet/callback`],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await idp?.close();
  await sink?.close();
});

const store = () => server.app.latchkey.store;

async function openContext(): Promise<TestPage> {
  const t = await openTracked(browser, server);
  return t;
}

/** A Pending profile with a National Insurance number, as a registration authority leaves it. */
async function person(email: string, displayName: string): Promise<User> {
  const user = await createUser(store(), { email, displayName }, server.clock.now());
  await store().users.setNationalIdHash(user.id, hashNationalId(server.app.latchkey.secret, NINO), server.clock.now());
  return (await store().users.findById(user.id))!;
}

/** The audit events about a user, oldest first. */
async function auditedEvents(userId: string): Promise<string[]> {
  return (await store().audit.listForSubject(userId, 50)).map((e) => e.event).reverse();
}

const heading = (page: Page) => page.getByRole('heading', { level: 1 }).innerText();

/** Press a button that leads to another address and wait for that page's bundle. */
async function pressAndGo(page: Page, button: string, url: string | RegExp): Promise<void> {
  await page.getByRole('button', { name: button, exact: true }).click();
  await page.waitForURL(url);
  await waitReady(page);
}

/** Press a button whose form comes back with a problem: the new page's error summary, once its bundle is ready. */
async function pressAndFail(page: Page, button: string): Promise<string> {
  await page.getByRole('button', { name: button, exact: true }).click();
  const text = await errorSummaryText(page);
  await waitReady(page);
  return text;
}

/** The details page's CAPTCHA, solved by the page itself. */
async function captchaSolved(page: Page): Promise<void> {
  await page.waitForSelector('body[data-captcha-solved="true"]', { state: 'attached' });
  expect((await page.locator('#captcha').innerText()).trim()).toBe('Done: you can continue.');
}

/** From the start page to the details page; returns the flow's base path. */
async function startFlow(page: Page, axe = false): Promise<string> {
  await visit(page, server.url('/add-authenticator'));
  expect(await heading(page)).toBe('Add an authenticator to your profile');
  if (axe) await expectAccessible(page, 'start');
  await pressAndGo(page, 'Start', /\/add-authenticator\/[A-Za-z0-9_-]+\/details$/);
  expect(await heading(page)).toBe('Enter your details');
  return new URL(page.url()).pathname.replace(/\/details$/, '');
}

async function enterDetails(page: Page, email: string, nationalId: string): Promise<void> {
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('National Insurance number').fill(nationalId);
  await captchaSolved(page);
}

/** The 6-digit code in the newest code email to `email`. */
async function emailedCode(email: string): Promise<string> {
  const mail = await sink.waitFor((m) => m.to.includes(email) && m.subject.startsWith('Your code to add an authenticator'), 15_000);
  const code = /\b(\d{6})\b/.exec(mail.text)?.[1];
  expect(code, mail.text).toBeDefined();
  return code!;
}

/** Start → details → the emailed code → "Select authenticator type". */
async function throughIdentityCheck(page: Page, email: string, axe = false): Promise<string> {
  const base = await startFlow(page, axe);
  await enterDetails(page, email, 'qq 12 34 56 c');
  await pressAndGo(page, 'Continue', `**${base}/code`);
  expect(await heading(page)).toBe('Enter the code from your email');
  if (axe) await expectAccessible(page, 'code');
  await page.getByLabel('Code', { exact: true }).fill(await emailedCode(email));
  await pressAndGo(page, 'Continue', `**${base}/choose`);
  expect(await heading(page)).toBe('Select authenticator type');
  if (axe) await expectAccessible(page, 'choose');
  return base;
}

async function choose(page: Page, base: string, type: 'Passkey' | 'Authenticator app' | typeof NHS, next: string): Promise<void> {
  await page.getByRole('radio', { name: new RegExp(`^${type.replace(/\./g, '\\.')}`) }).check();
  await pressAndGo(page, 'Continue', `**${base}${next}`);
}

/** "Authenticator added", and the email that tells the person. */
async function expectAdded(page: Page, email: string, what: string): Promise<void> {
  expect(await heading(page)).toBe('Authenticator added');
  expect(await page.locator('main').innerText()).toContain(`Your ${what} has been added to your profile.`);
  const notice = await sink.waitFor((m) => m.to.includes(email) && m.subject === `An authenticator was added to your ${ORGANISATION} profile`, 15_000);
  expect(notice.text).toContain(`A ${what} was added to your ${ORGANISATION} profile`);
}

/** Signed in without a passkey: "Set up a passkey" comes first (src/flows/passkeyUpgrade); the person chooses Not now. */
async function notNowToPasskey(page: Page): Promise<void> {
  await page.waitForURL(/\/passkey-upgrade\?next=%2Fsettings$/);
  await waitReady(page);
  expect(await heading(page)).toBe('Set up a passkey');
  await page.getByRole('button', { name: 'Not now' }).click();
}

async function signedInAs(page: Page, user: User): Promise<void> {
  await page.waitForURL('**/settings');
  await waitReady(page);
  expect(await page.locator('main').innerText()).toContain(user.email);
}

describe('self-service: add an authenticator in a browser', () => {
  it('adds a passkey with a platform authenticator, then signs in with it', { timeout: 60_000 }, async () => {
    const t = await openContext();
    const { page } = t;
    // Windows Hello, Touch ID, Android screen lock.
    const platform = await t.authenticators.add('platform');
    const user = await person('nell.gwyn@example.org', 'Nell Gwyn');

    const base = await throughIdentityCheck(page, user.email, true);
    await choose(page, base, 'Passkey', '/passkey');
    expect(await heading(page)).toBe('Add a passkey');
    await expectAccessible(page, 'passkey');
    await page.getByLabel('Name your passkey').fill('Work laptop');
    expect(await page.getByRole('radio', { name: /^This device/ }).isChecked()).toBe(true);
    await pressAndGo(page, 'Set up passkey', `**${base}/done?added=passkey`);
    await expectAdded(page, user.email, 'passkey');
    await expectAccessible(page, 'done');
    const passkeys = (await store().authenticators.listForUser(user.id)).filter((a) => a.type === 'passkey');
    expect(passkeys.map((a) => a.name)).toEqual(['Work laptop']);
    expect((await store().users.findById(user.id))!.status).toBe('enrolled');
    expect(await auditedEvents(user.id)).toEqual(expect.arrayContaining(['self_service.code_sent', 'passkey.added', 'self_service.added']));

    // Adding it does not sign the person in: they sign in with the passkey the virtual authenticator now holds.
    // Chromium answers a conditional (autofill) request at once when a platform authenticator holds a passkey
    // for the site, so the authenticator is taken away while /signin loads and comes back before the button
    // is pressed (as in signin.test.ts): the button, not autofill, does this sign-in.
    const credentials = await t.authenticators.detach(platform);
    expect(credentials).toHaveLength(1);
    expect(toBase64Url(credentials[0]!.credentialId)).toBe(passkeys[0]!.credential_id);
    await page.getByRole('link', { name: 'Go to sign in' }).click();
    await page.waitForURL('**/signin');
    await waitReady(page);
    await t.authenticators.attach('platform', credentials);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await signedInAs(page, user);
    expect((await t.postsTo('/signin/options')).map((e) => e.body.mode)).toEqual(['discoverable']);
    expect((await t.postsTo('/signin/verify')).map((e) => e.status)).toEqual([200]);
  });

  it('adds an authenticator app with a password, then signs in with both', { timeout: 60_000 }, async () => {
    const { page } = await openContext();
    const user = await person('mary.seacole@example.org', 'Mary Seacole');

    const base = await throughIdentityCheck(page, user.email);
    await choose(page, base, 'Authenticator app', '/app');
    expect(await heading(page)).toBe('Register an authenticator app');
    await expectAccessible(page, 'app confirm');
    expect(await pressAndFail(page, 'Continue')).toContain('Select the box to confirm only you have access to the authenticator app');
    await page.getByLabel('I confirm only I have access to this authenticator app').check();
    await pressAndGo(page, 'Continue', `**${base}/app/password`);
    expect(await heading(page)).toBe('Create a password');

    const password = 'lamp quarry violet harbour';
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByLabel('Confirm password').fill(`${password}!`);
    expect(await pressAndFail(page, 'Continue')).toContain('The passwords do not match');
    await expectAccessible(page, 'password with an error');
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByLabel('Confirm password').fill(password);
    await pressAndGo(page, 'Continue', `**${base}/app/setup`);
    expect(await heading(page)).toBe('Set up your authenticator app');
    expect(await page.getByRole('img', { name: 'QR code to scan with your authenticator app' }).getAttribute('src')).toMatch(/^data:image\/svg\+xml;base64,/);
    await expectAccessible(page, 'scan');

    // The person can't scan: they open the key and type it into their app.
    await page.getByText('Cannot scan the QR code?').click();
    const key = (await page.locator('#totp-secret').innerText()).replace(/\s+/g, '');
    expect(key).toMatch(/^[A-Z2-7]{32}$/);
    const app = new TOTP({ issuer: ORGANISATION, label: user.email, secret: Secret.fromBase32(key) });
    await page.getByLabel('Code from your authenticator app').fill(app.generate({ timestamp: server.clock.now() }));
    await pressAndGo(page, 'Submit', `**${base}/done?added=app`);
    await expectAdded(page, user.email, 'authenticator app');
    expect((await store().authenticators.listForUser(user.id)).map((a) => a.type)).toEqual(['totp']);
    expect(await auditedEvents(user.id)).toEqual(expect.arrayContaining(['totp.added', 'self_service.added']));

    // Sign in: a wrong password first (the form keeps the email), then with a code of the next time step.
    await page.getByRole('link', { name: 'Go to sign in' }).click();
    await page.waitForURL('**/signin');
    await waitReady(page);
    await page.getByRole('link', { name: 'Sign in with a password and authenticator app' }).click();
    await page.waitForURL('**/signin/password');
    await waitReady(page);
    expect(await heading(page)).toBe('Sign in with a password and authenticator app');
    await expectAccessible(page, 'sign-in with a password');
    await page.getByLabel('Email address').fill(user.email);
    await page.getByLabel('Password', { exact: true }).fill('not the password at all');
    await page.getByLabel('Code from your authenticator app').fill('000000');
    expect(await pressAndFail(page, 'Sign in')).toContain('The email address, password or code is not right');
    expect(await page.getByLabel('Email address').inputValue()).toBe(user.email);
    await expectAccessible(page, 'sign-in with a password error');

    server.clock.offset += 30_000;
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByLabel('Code from your authenticator app').fill(app.generate({ timestamp: server.clock.now() }));
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await notNowToPasskey(page);
    await signedInAs(page, user);
  });

  it(`links an ${NHS} account, then signs in with it`, { timeout: 60_000 }, async () => {
    const { page } = await openContext();
    const user = await person('edith.cavell@example.org', 'Edith Cavell');

    const base = await throughIdentityCheck(page, user.email);
    await choose(page, base, NHS, '/linked/nhsnet');
    expect(await heading(page)).toBe(`Register your ${NHS} account`);
    await expectAccessible(page, 'linked confirm');
    expect(await pressAndFail(page, 'Continue')).toContain(`Select the box to confirm only you have access to this ${NHS} account`);
    await page.getByLabel(`I confirm only I have access to this ${NHS} account`).check();
    idp.setNextLogin({ accountId: 'nhsnet-edith', email: 'edith.cavell@nhs.example', name: 'Edith Cavell' });
    const upstreamVisited: string[] = [];
    page.on('request', (r) => {
      if (r.isNavigationRequest() && r.url().startsWith(idp.issuer)) upstreamVisited.push(new URL(r.url()).pathname);
    });
    await pressAndGo(page, 'Continue', `**${base}/done?added=linked:nhsnet`);
    expect(upstreamVisited).toContain('/auth');
    await expectAdded(page, user.email, `${NHS} account`);
    const linked = await store().authenticators.listForUser(user.id);
    expect(linked.map((a) => [a.type, a.credential_id])).toEqual([['linked-account', `${idp.issuer}#nhsnet-edith`]]);
    // On the profile's Activity like the other branches' passkey.added and totp.added.
    expect(await auditedEvents(user.id)).toEqual(expect.arrayContaining(['linked_account.added', 'self_service.added']));

    await page.getByRole('link', { name: 'Go to sign in' }).click();
    await page.waitForURL('**/signin');
    await waitReady(page);
    await page.getByRole('link', { name: `Sign in with ${NHS}` }).click();
    await notNowToPasskey(page);
    await signedInAs(page, user);
  });

  it('the same problem page for an unknown email and a wrong National Insurance number; a wrong code is explained', { timeout: 60_000 }, async () => {
    const { page } = await openContext();
    const user = await person('florence.n@example.org', 'Florence Nightingale');

    // Nothing entered: a problem for each field.
    const base = await startFlow(page);
    await expectAccessible(page, 'details');
    await captchaSolved(page);
    const empty = await pressAndFail(page, 'Continue');
    expect(empty).toContain('Enter your email address');
    expect(empty).toContain('Enter your National Insurance number');
    await expectAccessible(page, 'details with errors');

    // An email with no profile.
    await enterDetails(page, 'nobody.here@example.org', NINO);
    await pressAndGo(page, 'Continue', `**${base}/problem`);
    expect(await heading(page)).toBe('Problem adding authenticator');
    const unknownEmail = await page.locator('main').innerText();
    await expectAccessible(page, 'problem');

    // The right email with another National Insurance number: the very same page.
    await page.getByRole('link', { name: 'Check your details and try again' }).click();
    await page.waitForURL(`**${base}/details`);
    await waitReady(page);
    await enterDetails(page, user.email, 'AB123456C');
    await pressAndGo(page, 'Continue', `**${base}/problem`);
    expect(await page.locator('main').innerText()).toBe(unknownEmail);
    expect(sink.messages.filter((m) => m.to.includes(user.email))).toEqual([]);

    // The right details, then a wrong code.
    await page.getByRole('link', { name: 'Check your details and try again' }).click();
    await page.waitForURL(`**${base}/details`);
    await waitReady(page);
    await enterDetails(page, user.email, NINO);
    await pressAndGo(page, 'Continue', `**${base}/code`);
    const code = await emailedCode(user.email);
    await page.getByLabel('Code', { exact: true }).fill(code === '000000' ? '111111' : '000000');
    expect(await pressAndFail(page, 'Continue')).toContain('The code is not right. Check the email and try again (4 tries left)');
    await expectAccessible(page, 'code with an error');
    await page.getByLabel('Code', { exact: true }).fill(code);
    await pressAndGo(page, 'Continue', `**${base}/choose`);
  });

  it('from settings: add an authenticator app without a second identity check, change the password, remove the app', { timeout: 60_000 }, async () => {
    const t = await openContext();
    const { page } = t;
    await t.authenticators.add('platform');
    const email = 'mary.somerville@example.org';
    await signUpInBrowser(server, page, { displayName: 'Mary Somerville', email });
    expect(await page.locator('main').innerText()).toContain('You have no authenticator app or linked work account.');

    // Just signed in: no fresh check needed; straight to the choice, no identity check.
    await pressAndGo(page, 'Add an authenticator app or work account', /\/add-authenticator\/[A-Za-z0-9_-]+\/choose$/);
    const base = new URL(page.url()).pathname.replace(/\/choose$/, '');
    await choose(page, base, 'Authenticator app', '/app');
    await page.getByLabel('I confirm only I have access to this authenticator app').check();
    await pressAndGo(page, 'Continue', `**${base}/app/password`);
    const password = 'a long settings passphrase';
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByLabel('Confirm password').fill(password);
    await pressAndGo(page, 'Continue', `**${base}/app/setup`);
    await page.getByText('Cannot scan the QR code?').click();
    const key = (await page.locator('#totp-secret').innerText()).replace(/\s+/g, '');
    const app = new TOTP({ secret: Secret.fromBase32(key) });
    await page.getByLabel('Code from your authenticator app').fill(app.generate({ timestamp: server.clock.now() }));
    await pressAndGo(page, 'Submit', `**${base}/done?added=app`);
    await expectAdded(page, email, 'authenticator app');

    await visit(page, server.url('/settings'));
    const row = page.locator('table[aria-labelledby="other-methods"] tbody tr');
    expect(await row.locator('td').first().innerText()).toBe('Authenticator app');

    // Change the password (the sign-in is still recent).
    await page.getByRole('link', { name: 'Change your password' }).click();
    await page.waitForURL('**/settings/password');
    await waitReady(page);
    await expectAccessible(page, 'change password');
    await page.getByLabel('New password', { exact: true }).fill('qwerty123');
    await page.getByLabel('Confirm new password').fill('qwerty123');
    expect(await pressAndFail(page, 'Change password')).toContain('too common');
    await expectAccessible(page, 'change password with an error');
    await page.getByLabel('New password', { exact: true }).fill('another long passphrase');
    await page.getByLabel('Confirm new password').fill('another long passphrase');
    await pressAndGo(page, 'Change password', '**/settings?password=1');
    expect(await page.locator('#flash').innerText()).toBe('Your password has been changed.');

    // Remove the app: the passkey remains, so it may go.
    await row.getByRole('link', { name: /^Remove/ }).click();
    await page.waitForURL('**/settings/authenticators/*/remove');
    await waitReady(page);
    await expectAccessible(page, 'remove authenticator app');
    expect(await pressAndFail(page, 'Remove')).toContain('Select the box to confirm');
    await page.getByLabel('I want to remove Authenticator app').check();
    await pressAndGo(page, 'Remove', '**/settings?unlinked=1');
    expect(await page.locator('main').innerText()).toContain('You have no authenticator app or linked work account.');
  });
});
