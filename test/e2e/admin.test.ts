/**
 * The registration-authority console (seed 000 Care Identity Management, seed
 * 003 enrolment by link, email or 9-character code) in a real browser, with two
 * actors per test: the agent and the person they enrol, each in their own
 * browser context with their own virtual authenticator. Mail goes over SMTP to
 * a real sink; the 60-second code expires by moving the server's fake clock.
 *
 * useE2E tracks one page per test; these tests need two contexts at once, so
 * this file keeps its own server, browser and sink (one of each for the file)
 * and checks every context it opened for console errors and CSP violations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Locator, Page } from 'playwright-core';
import type { Role } from '../../src/admin/roles.js';
import type { User } from '../../src/db/schema.js';
import { ENROLMENT_FLOWS, issueInvite } from '../../src/flows/enrolment/invites.js';
import { createUser } from '../../src/users/createUser.js';
import { startSmtpSink, type ReceivedMail, type SmtpSink } from '../support/smtpSink.js';
import { closeContextsAfterEach, errorSummaryText, expectAccessible, launchBrowser, startServer, visit, waitReady, type E2EServer, type TestPage } from './support.js';

let server: E2EServer;
let browser: Browser;
let sink: SmtpSink;
const openTracked = closeContextsAfterEach();

beforeAll(async () => {
  sink = await startSmtpSink();
  [server, browser] = await Promise.all([startServer({ LATCHKEY_SMTP_URL: sink.url }), launchBrowser()]);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await sink?.close();
});

const store = () => server.app.latchkey.store;

/** A fresh browser context with a platform authenticator (Windows Hello, Touch ID). */
async function openContext(): Promise<TestPage> {
  const t = await openTracked(browser, server);
  await t.authenticators.add('platform');
  return t;
}

/** On an invite (or redeemed-code) link page: set up the passkey and land on the confirmation. */
async function registerOnLinkPage(page: Page, passkeyName: string): Promise<void> {
  await waitReady(page);
  await page.getByLabel('Name your passkey').fill(passkeyName);
  await page.getByRole('button', { name: 'Set up passkey' }).click();
  await page.waitForURL('**/enrol/done');
  await waitReady(page);
  expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Your passkey is set up');
}

interface Actor extends TestPage {
  user: User;
}

/** An agent: invited like anyone else, sets up a passkey in their own browser (and is signed in by it), then given `role`. */
async function agent(displayName: string, email: string, role: Role): Promise<Actor> {
  const t = await openContext();
  const { user, url } = await server.invite(email, displayName);
  await visit(t.page, url);
  await registerOnLinkPage(t.page, 'Agent laptop');
  await store().roles.set(user.id, [role], null, Date.now());
  return { ...t, user };
}

/** The person being enrolled, in their own browser; they have no account yet (an agent or the test adds one). */
async function person(): Promise<TestPage> {
  return openContext();
}

/** A person invited from the command line who set up a passkey in `t` (so `t` is signed in with it). */
async function enrolledPerson(t: TestPage, displayName: string, email: string, passkeyName: string): Promise<User> {
  const { user, url } = await server.invite(email, displayName);
  await visit(t.page, url);
  await registerOnLinkPage(t.page, passkeyName);
  return user;
}

/** The text of `row`'s cell in the column headed `header` of `table`. */
async function cell(table: Locator, row: Locator, header: string): Promise<string> {
  const headers = (await table.locator('thead th').allInnerTexts()).map((h) => h.trim());
  const index = headers.indexOf(header);
  expect(index, `column "${header}" in ${headers.join(' | ')}`).toBeGreaterThanOrEqual(0);
  return (await row.locator('td').nth(index).innerText()).trim();
}

const profileTab = (page: Page, name: 'Details' | 'Authenticators' | 'Activity') =>
  page.getByRole('navigation', { name: 'Profile sections' }).getByRole('link', { name, exact: true });

async function openTab(page: Page, name: 'Details' | 'Authenticators' | 'Activity'): Promise<void> {
  await profileTab(page, name).click();
  await page.waitForFunction((tab) => document.querySelector('nav.tabs [aria-current="page"]')?.textContent?.trim() === tab, name);
  await waitReady(page);
}

const passkeysTable = (page: Page) => page.getByRole('table', { name: 'Authenticators', exact: true });
const enrolmentsTable = (page: Page) => page.getByRole('table', { name: 'Links and codes issued', exact: true });

/** From a profile's Authenticators tab to the instructions page with the three ways to send a passkey. */
async function startIssuing(page: Page, userId: string, axe = false): Promise<void> {
  await page.getByRole('link', { name: 'Issue other authenticator' }).click();
  await page.waitForURL(`**/admin/users/${userId}/issue`);
  await waitReady(page);
  expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Select authenticator type');
  if (axe) await expectAccessible(page, 'choose authenticator type');
  await page.getByRole('radio', { name: /^Passkey/ }).check();
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.waitForURL(`**/admin/users/${userId}/issue/passkey`);
  await waitReady(page);
  if (axe) await expectAccessible(page, 'passkey instructions');
}

/** Press one of the instruction page's buttons and wait for the page that shows what was issued. */
async function issue(page: Page, userId: string, button: 'Generate link' | 'Generate 9-character code' | 'Proceed and send email'): Promise<void> {
  await page.getByRole('button', { name: button }).click();
  // Post/redirect/get: the form's answer is a redirect to the page of what was issued.
  await page.waitForURL(new RegExp(`/admin/users/${userId}/enrolments/[A-Za-z0-9_-]+$`));
  await waitReady(page);
}

/**
 * After a form that comes back to the same address with a problem: the error summary of the new page (the old one's
 * was hidden, so this waits for the new page), once its bundle is ready.
 */
async function problemAfterPost(page: Page): Promise<string> {
  const text = await errorSummaryText(page);
  await waitReady(page);
  return text;
}

/** Mark the page so a test can tell it was not reloaded since. */
async function markPage(page: Page): Promise<void> {
  await page.evaluate(() => {
    (window as unknown as { notReloaded: boolean }).notReloaded = true;
  });
}

async function stillSamePage(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded === true);
}

const badge = (page: Page) => page.locator('[data-enrolment-status]');

/** Wait for the (only) live status badge on the page to read `label`; the page polls every 2 seconds. */
async function badgeBecomes(page: Page, label: string): Promise<void> {
  await page.waitForFunction((text) => document.querySelector('[data-enrolment-status]')?.textContent?.trim() === text, label);
}

const LINK = /http:\/\/localhost:\d+\/enrol\/[A-Za-z0-9_-]{43}/;

describe('registration authority console', () => {
  it('finds a user, issues a link, and sees the person enrol without reloading', { timeout: 90_000 }, async () => {
    const ra = await agent('Alan Turing', 'alan.turing@agents.example', 'ra_agent_advanced');
    const marie = await createUser(store(), { email: 'marie.curie@example.com', displayName: 'Marie Curie' }, server.clock.now());
    await createUser(store(), { email: 'dorothy.hodgkin@example.com', displayName: 'Dorothy Hodgkin' }, server.clock.now());
    const user = await person();
    const { page } = ra;

    await visit(page, server.url('/admin'));
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Registration authority console');
    expect(await page.locator('main').innerText()).toContain('Alan Turing, RA Agent (Advanced)');
    await expectAccessible(page, 'console home');

    // The start of the name is enough, in any case.
    await page.getByLabel('Name, email address or user ID').fill('mAR');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL('**/admin/users?**');
    await waitReady(page);
    const results = page.getByRole('table', { name: 'Results' });
    expect(await results.locator('tbody tr td:first-child').allInnerTexts()).toEqual(['Marie Curie']);
    await expectAccessible(page, 'search results');
    await page.getByRole('link', { name: 'View profile of Marie Curie' }).click();
    await page.waitForURL(`**/admin/users/${marie.id}`);
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Marie Curie Pending');
    expect(await page.locator('dl.summary').innerText()).toContain('marie.curie@example.com');
    await expectAccessible(page, 'profile details');

    await openTab(page, 'Authenticators');
    expect(await page.locator('main').innerText()).toContain('This user has no authenticators.');
    expect(await page.locator('main').innerText()).toContain('No links or codes have been issued to this user.');
    await expectAccessible(page, 'profile authenticators (empty)');

    await startIssuing(page, marie.id, true);
    await issue(page, marie.id, 'Generate link');
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Link generated');
    const link = await page.getByLabel('Enrolment link').inputValue();
    expect(link).toMatch(new RegExp(`^${server.origin}/enrol/[A-Za-z0-9_-]{43}$`));
    expect(await page.getByRole('button', { name: 'Send link by email to marie.curie@example.com' }).isVisible()).toBe(true);
    expect(await page.locator('main').innerText()).toMatch(/Marie Curie: Pending/);
    expect(await badge(page).innerText()).toBe('Pending');
    expect(await page.getByRole('button', { name: 'Revoke' }).isVisible()).toBe(true);
    await expectAccessible(page, 'link generated');

    // The stylesheet keeps [hidden] hidden (button's display rule once showed "Copy link" before the bundle could copy).
    const hiddenDisplay = await page.evaluate(() => {
      const probe = document.createElement('button');
      probe.className = 'secondary';
      probe.hidden = true;
      document.querySelector('main')!.append(probe);
      const display = getComputedStyle(probe).display;
      probe.remove();
      return display;
    });
    expect(hiddenDisplay).toBe('none');
    // "Copy link" (hidden until the bundle can do it) puts the link on the clipboard.
    await ra.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
    await page.getByRole('button', { name: 'Copy link' }).click();
    await page.getByRole('button', { name: 'Link copied' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(link);

    // Reloading the page (or coming back to it) issues nothing: the link already sent still works, and it is not
    // shown again.
    const issuedAt = page.url();
    await page.reload();
    await waitReady(page);
    expect(page.url()).toBe(issuedAt);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Link generated');
    expect(await page.getByLabel('Enrolment link').count()).toBe(0);
    expect(await page.locator('main').innerText()).toContain('The link was shown once, to the agent who generated it, and is not shown again.');
    expect(await page.locator('main').innerText()).not.toContain(link);
    expect(await page.getByRole('button', { name: 'Generate a new link' }).isVisible()).toBe(true);
    expect(await badge(page).innerText()).toBe('Pending');
    expect((await store().flows.listForUser(marie.id, ENROLMENT_FLOWS)).map((f) => f.state)).toEqual(['active']);
    expect((await store().audit.listForSubject(marie.id, 50)).filter((e) => e.event === 'enrolment.link_issued')).toHaveLength(1);
    await expectAccessible(page, 'link generated, reloaded');

    // The person opens the link in their browser and registers; the agent's page follows along on its own.
    await markPage(page);
    await visit(user.page, link);
    expect(await user.page.locator('main').innerText()).toContain('for the account of Marie Curie (marie.curie@example.com)');
    await registerOnLinkPage(user.page, 'Marie’s laptop');
    await badgeBecomes(page, 'Enrolled');
    expect(await stillSamePage(page)).toBe(true);
    expect(await page.locator('#enrolment-announcer').innerText()).toBe('Status: Enrolled');
    // Nothing left to revoke.
    expect(await page.getByRole('button', { name: 'Revoke' }).count()).toBe(0);

    expect((await store().users.findById(marie.id))!.status).toBe('enrolled');
    // Marie is told by email that a passkey was added, as for every authenticator added.
    const added = await sink.waitFor((m) => m.to.includes('marie.curie@example.com'));
    expect(added.subject).toBe('An authenticator was added to your Latchkey profile');
    expect(added.text).toContain('It is named "Marie’s laptop". It was set up with an enrolment link from your registration authority.');
    await page.getByRole('link', { name: 'Back to Marie Curie’s authenticators' }).click();
    await page.waitForURL(`**/admin/users/${marie.id}/authenticators`);
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Marie Curie Enrolled');
    const passkeys = passkeysTable(page);
    const row = passkeys.locator('tbody tr');
    expect(await row.count()).toBe(1);
    expect(await row.locator('td').first().innerText()).toContain('Marie’s laptop');
    expect(await cell(passkeys, row, 'Issued by')).toBe('Alan Turing');
    const enrolments = enrolmentsTable(page);
    const issued = enrolments.locator('tbody tr');
    expect(await issued.count()).toBe(1);
    expect(await cell(enrolments, issued, 'Method')).toBe('Link');
    expect(await cell(enrolments, issued, 'Issued by')).toBe('Alan Turing');
    expect(await cell(enrolments, issued, 'Status')).toBe('Enrolled');
    await expectAccessible(page, 'profile authenticators');

    await openTab(page, 'Activity');
    const events = await page.locator('tr[data-event]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.event));
    expect(events).toEqual(expect.arrayContaining(['enrolment.link_issued', 'enrolment.completed', 'passkey.added']));
    await expectAccessible(page, 'profile activity');

    // The person is signed in now, but holds no role: the console is not for them.
    const noRole = await user.page.goto(server.url('/admin'));
    expect(noRole!.status()).toBe(403);
    await waitReady(user.page);
    expect(await user.page.getByRole('heading', { level: 1 }).innerText()).toBe('You do not have access to the registration authority console');
  });

  it('issues a 9-character code the person redeems, then one that expires', { timeout: 90_000 }, async () => {
    const ra = await agent('Grace Hopper', 'grace.hopper@agents.example', 'ra_agent_advanced');
    const rosalind = await createUser(store(), { email: 'rosalind.franklin@example.com', displayName: 'Rosalind Franklin' }, server.clock.now());
    const user = await person();
    const { page } = ra;
    // The agent's browser gets a clock the test can move too (it runs on by itself until then).
    await page.clock.install();

    await visit(page, server.url(`/admin/users/${rosalind.id}/authenticators`));
    await startIssuing(page, rosalind.id);
    await issue(page, rosalind.id, 'Generate 9-character code');
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('9-character code generated');
    const shown = (await page.locator('#enrolment-code [aria-hidden]').innerText()).trim();
    expect(shown).toMatch(/^[0-9A-HJKMNP-TV-Z]{3}-[0-9A-HJKMNP-TV-Z]{3}-[0-9A-HJKMNP-TV-Z]{3}$/);
    // The countdown starts from the server's expiry and counts down.
    const secondsLeft = async () => Number(/^Expires in (\d+) seconds?$/.exec((await page.locator('#code-countdown').innerText()).trim())?.[1] ?? NaN);
    const first = await secondsLeft();
    expect(first).toBeGreaterThan(40);
    expect(first).toBeLessThanOrEqual(60);
    await page.waitForFunction((before) => Number(/(\d+)/.exec(document.getElementById('code-countdown')!.textContent!)?.[1]) < before, first);
    expect(await badge(page).innerText()).toBe('Pending');
    await expectAccessible(page, 'code generated');

    await markPage(page);
    await visit(user.page, server.url('/enrol'));
    await expectAccessible(user.page, 'enter enrolment code');
    await user.page.getByLabel('Email address').fill('rosalind.franklin@example.com');
    await user.page.getByLabel('Enrolment code').fill(shown);
    await user.page.getByRole('button', { name: 'Continue' }).click();
    await user.page.waitForURL(/\/enrol\/[A-Za-z0-9_-]{43}$/);
    expect(await user.page.locator('main').innerText()).toContain('for the account of Rosalind Franklin');
    // The agent's page learns the code was entered and stops counting down: past the minute it must not say
    // "expired, generate a new one", since a new code would cancel the set-up the person is in the middle of.
    const countdownIs = (text: string) => page.waitForFunction((t) => document.getElementById('code-countdown')!.textContent === t, text);
    await countdownIs('The code has been entered: the person is setting up their passkey.');
    await page.clock.fastForward(61_000);
    expect(await page.locator('#code-countdown').innerText()).toBe('The code has been entered: the person is setting up their passkey.');
    expect(await page.locator('#enrolment-code').getAttribute('class')).toBe('enrolment-code');
    expect(await badge(page).innerText()).toBe('Pending');
    await registerOnLinkPage(user.page, 'Lab phone');
    await badgeBecomes(page, 'Enrolled');
    await countdownIs('The code has been used.');
    expect(await stillSamePage(page)).toBe(true);
    expect((await store().users.findById(rosalind.id))!.status).toBe('enrolled');
    const [passkey] = await store().authenticators.listForUser(rosalind.id);
    expect(passkey!.issued_by).toBe(ra.user.id);

    // A second code that the person enters too late (the server's clock moves past its 60 seconds).
    await visit(page, server.url(`/admin/users/${rosalind.id}/issue/passkey`));
    await issue(page, rosalind.id, 'Generate 9-character code');
    const late = (await page.locator('#enrolment-code [aria-hidden]').innerText()).trim();
    expect(late).not.toBe(shown);
    expect(await badge(page).innerText()).toBe('Pending');
    await markPage(page);
    await visit(user.page, server.url('/enrol'));
    await user.page.getByLabel('Email address').fill('rosalind.franklin@example.com');
    await user.page.getByLabel('Enrolment code').fill(late);
    server.clock.offset += 61_000;
    const [answer] = await Promise.all([
      user.page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/enrol'),
      user.page.getByRole('button', { name: 'Continue' }).click(),
    ]);
    expect(answer.status()).toBe(410);
    expect(await problemAfterPost(user.page)).toContain('This code has expired: codes work for 60 seconds. Ask your agent for a new code.');
    await expectAccessible(user.page, 'expired code');
    await badgeBecomes(page, 'Expired');
    expect(await stillSamePage(page)).toBe(true);
    await page.clock.fastForward(61_000);
    await page.waitForFunction(() => /^This code has expired\./.test(document.getElementById('code-countdown')!.textContent!));
    expect(await page.locator('#enrolment-code').getAttribute('class')).toBe('enrolment-code expired');
    expect(await page.getByRole('button', { name: 'Revoke' }).count()).toBe(0);
    expect(await store().authenticators.listForUser(rosalind.id)).toHaveLength(1);

    await page.getByRole('link', { name: 'Back to Rosalind Franklin’s authenticators' }).click();
    await page.waitForURL(`**/admin/users/${rosalind.id}/authenticators`);
    await waitReady(page);
    const enrolments = enrolmentsTable(page);
    const rows = enrolments.locator('tbody tr');
    expect(await rows.count()).toBe(2);
    // Newest first.
    expect(await cell(enrolments, rows.nth(0), 'Method')).toBe('9-character code');
    expect(await cell(enrolments, rows.nth(0), 'Status')).toBe('Expired');
    expect(await cell(enrolments, rows.nth(1), 'Method')).toBe('9-character code');
    expect(await cell(enrolments, rows.nth(1), 'Status')).toBe('Enrolled');
    expect(await cell(passkeysTable(page), passkeysTable(page).locator('tbody tr'), 'Issued by')).toBe('Grace Hopper');
  });

  it('adds a user and sends the enrolment email over SMTP', { timeout: 90_000 }, async () => {
    const ra = await agent('Ada Byron', 'ada.byron@agents.example', 'ra_agent_advanced');
    const user = await person();
    const { page } = ra;

    await visit(page, server.url('/admin'));
    // The button under "Add a user" (the console's menu has the same link).
    await page.locator('main a.button', { hasText: 'Add a user' }).click();
    await page.waitForURL('**/admin/users/new');
    await waitReady(page);
    await expectAccessible(page, 'add a user');
    // Nothing filled in: a problem for each field.
    await page.getByRole('button', { name: 'Add user' }).click();
    const problems = await problemAfterPost(page);
    expect(problems).toContain('Enter the person’s full name');
    expect(problems).toContain('Enter an email address');
    await expectAccessible(page, 'add a user with errors');

    await page.getByLabel('Full name').fill('Katherine Johnson');
    await page.getByLabel('Email address').fill('katherine.johnson@example.com');
    expect(await page.getByLabel('National Insurance number (optional)').inputValue()).toBe('');
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.waitForURL('**/admin/users/*?done=added');
    await waitReady(page);
    expect(await page.locator('#flash').innerText()).toBe('Katherine Johnson has been added. They are Pending until they set up a passkey.');
    const katherine = (await store().users.findByEmail('katherine.johnson@example.com'))!;
    expect(page.url()).toContain(`/admin/users/${katherine.id}?`);
    expect(katherine.status).toBe('pending');

    await openTab(page, 'Authenticators');
    // No type chosen: asked to choose one.
    await page.getByRole('link', { name: 'Issue other authenticator' }).click();
    await page.waitForURL(`**/admin/users/${katherine.id}/issue`);
    await waitReady(page);
    await page.getByRole('button', { name: 'Continue' }).click();
    expect(await problemAfterPost(page)).toContain('Select an authenticator type');
    await expectAccessible(page, 'choose authenticator type with error');
    await page.getByRole('radio', { name: /^Passkey/ }).check();
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(`**/admin/users/${katherine.id}/issue/passkey`);
    await waitReady(page);

    // A link first, sent from its page by email, then revoked: the emailed link stops working.
    await issue(page, katherine.id, 'Generate link');
    const revokedLink = await page.getByLabel('Enrolment link').inputValue();
    await page.getByRole('button', { name: 'Send link by email to katherine.johnson@example.com' }).click();
    await page.waitForURL(/\/enrolments\/[A-Za-z0-9_-]+\?done=emailed$/);
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Enrolment email sent');
    const first = await sink.waitFor((m) => m.to.includes('katherine.johnson@example.com'), 10_000);
    expect(LINK.exec(first.text)?.[0]).toBe(revokedLink);
    await page.getByRole('button', { name: 'Revoke' }).click();
    await page.waitForURL(`**/admin/users/${katherine.id}/authenticators?done=revoked`);
    await waitReady(page);
    expect(await page.locator('#flash').innerText()).toBe('The link or code has been revoked. It can no longer be used.');
    expect(await cell(enrolmentsTable(page), enrolmentsTable(page).locator('tbody tr'), 'Status')).toBe('Revoked');
    const revoked = await user.page.goto(revokedLink);
    expect(revoked!.status()).toBe(410);
    await waitReady(user.page);
    expect(await errorSummaryText(user.page)).toContain('This link is no longer valid');

    await startIssuing(page, katherine.id);
    expect(await page.getByLabel('Email template').locator('option:checked').innerText()).toBe('Default (default)');
    await issue(page, katherine.id, 'Proceed and send email');
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Enrolment email sent');
    expect(await page.locator('main').innerText()).toContain('An enrolment email with a single-use link was sent to katherine.johnson@example.com.');
    // The link went to the person, not to the agent's screen.
    expect(await page.getByLabel('Enrolment link').count()).toBe(0);
    expect(await page.locator('main').innerText()).not.toMatch(LINK);
    await expectAccessible(page, 'enrolment email sent');

    const mail: ReceivedMail = await sink.waitFor((m) => m.to.includes('katherine.johnson@example.com') && m !== first, 10_000);
    expect(mail.subject).toBe('Set up your passkey for Latchkey');
    expect(mail.text).toContain('Hello Katherine Johnson,');
    const link = LINK.exec(mail.text)?.[0];
    expect(link?.startsWith(`${server.origin}/enrol/`)).toBe(true);
    expect(link).not.toBe(revokedLink);

    // This time the agent follows along from the profile's Authenticators tab, which updates live too.
    await page.getByRole('link', { name: 'Back to Katherine Johnson’s authenticators' }).click();
    await page.waitForURL(`**/admin/users/${katherine.id}/authenticators`);
    await waitReady(page);
    const enrolments = enrolmentsTable(page);
    const rows = enrolments.locator('tbody tr');
    expect(await rows.count()).toBe(2);
    const emailed = rows.nth(0);
    expect(await cell(enrolments, emailed, 'Method')).toBe('Enrolment email');
    expect(await cell(enrolments, emailed, 'Issued by')).toBe('Ada Byron');
    expect(await cell(enrolments, emailed, 'Status')).toBe('Pending');
    expect(await emailed.getByRole('button', { name: 'Revoke' }).count()).toBe(1);
    expect(await cell(enrolments, rows.nth(1), 'Method')).toBe('Link');
    expect(await cell(enrolments, rows.nth(1), 'Status')).toBe('Revoked');
    const emailedId = (await emailed.getAttribute('data-enrolment-id'))!;

    await markPage(page);
    await visit(user.page, link!);
    expect(await user.page.locator('main').innerText()).toContain('for the account of Katherine Johnson (katherine.johnson@example.com)');
    await registerOnLinkPage(user.page, 'Work laptop');
    await page.waitForFunction(
      (id) => document.querySelector(`tr[data-enrolment-id="${id}"] [data-enrolment-status]`)?.textContent === 'Enrolled',
      emailedId,
    );
    expect(await stillSamePage(page)).toBe(true);
    expect(await emailed.getByRole('button', { name: 'Revoke' }).count()).toBe(0);
    expect(await page.locator('#enrolment-announcer').innerText()).toBe('Status: Enrolled');
    expect((await store().users.findById(katherine.id))!.status).toBe('enrolled');

    await page.reload();
    await waitReady(page);
    expect(await cell(passkeysTable(page), passkeysTable(page).locator('tbody tr'), 'Issued by')).toBe('Ada Byron');
  });

  it('removes a passkey only once confirmed, ends the sessions it signed in, and tells the person', { timeout: 90_000 }, async () => {
    const ra = await agent('Hedy Lamarr', 'hedy.lamarr@agents.example', 'ra_agent_advanced');
    const user = await person();
    const barbara = await enrolledPerson(user, 'Barbara Liskov', 'barbara.liskov@example.com', 'Home laptop');
    const [passkey] = await store().authenticators.listForUser(barbara.id);
    // Signed in by that passkey.
    await visit(user.page, server.url('/settings'));
    expect(new URL(user.page.url()).pathname).toBe('/settings');
    const { page } = ra;

    await visit(page, server.url(`/admin/users/${barbara.id}/authenticators`));
    expect(await cell(passkeysTable(page), passkeysTable(page).locator('tbody tr'), 'Issued by')).toBe('The user');
    await page.getByRole('link', { name: 'Remove Home laptop' }).click();
    await page.waitForURL(`**/admin/users/${barbara.id}/authenticators/${passkey!.id}/remove`);
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Remove authenticator');
    await expectAccessible(page, 'remove authenticator');

    // Not ticked: refused, and nothing removed.
    await page.getByRole('button', { name: 'Remove authenticator' }).click();
    expect(await problemAfterPost(page)).toContain('Select the box to confirm you want to remove the passkey');
    await expectAccessible(page, 'remove authenticator with error');
    expect(await store().authenticators.listForUser(barbara.id)).toHaveLength(1);
    await visit(user.page, server.url('/settings'));
    expect(new URL(user.page.url()).pathname).toBe('/settings');
    // Only the notice of the passkey she set up: nothing about a removal.
    expect(sink.messages.filter((m) => m.to.includes('barbara.liskov@example.com')).map((m) => m.subject)).toEqual(['An authenticator was added to your Latchkey profile']);

    await page.getByLabel('I confirm I want to remove this passkey from Barbara Liskov’s profile').check();
    await page.getByRole('button', { name: 'Remove authenticator' }).click();
    await page.waitForURL(`**/admin/users/${barbara.id}/authenticators?done=removed`);
    await waitReady(page);
    expect(await page.locator('#flash').innerText()).toBe('The passkey has been removed from Barbara Liskov’s profile.');
    expect(await page.locator('main').innerText()).toContain('This user has no authenticators.');
    // No passkey left: Pending again, until an agent issues a new one.
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Barbara Liskov Pending');
    await expectAccessible(page, 'authenticators after removal');
    expect(await store().authenticators.listForUser(barbara.id)).toEqual([]);

    // The person's session ended with it: their next page is signed out.
    await user.page.goto(server.url('/settings'));
    await user.page.waitForURL('**/signin');
    await waitReady(user.page);
    await user.page.goto(server.url(`/admin/users/${barbara.id}`));
    await user.page.waitForURL(`**/signin?next=${encodeURIComponent(`/admin/users/${barbara.id}`)}`);

    const notice = await sink.waitFor((m) => m.to.includes('barbara.liskov@example.com') && m.subject.startsWith('A passkey was removed'), 10_000);
    expect(notice.subject).toBe('A passkey was removed from your Latchkey account');
    expect(notice.text).toContain('Hello Barbara Liskov,');
    expect(notice.text).toContain('removed the passkey "Home laptop"');
  });

  it('shows a plain RA Agent no controls to change authenticators and refuses them on the server', { timeout: 90_000 }, async () => {
    const ra = await agent('Joan Clarke', 'joan.clarke@agents.example', 'ra_agent');
    const user = await person();
    const mary = await enrolledPerson(user, 'Mary Jackson', 'mary.jackson@example.com', 'Office PC');
    const [passkey] = await store().authenticators.listForUser(mary.id);
    // A link still outstanding, so the list has something that could be revoked.
    const outstanding = await issueInvite(store(), server.config, mary, server.clock.now(), { revokeEarlier: false });
    const flowsBefore = await store().flows.listForUser(mary.id, ENROLMENT_FLOWS);
    const { page } = ra;

    await visit(page, server.url('/admin'));
    expect(await page.locator('main').innerText()).toContain('Joan Clarke, RA Agent.');
    expect(await page.getByRole('link', { name: 'Add a user' }).count()).toBe(0);
    await page.getByLabel('Name, email address or user ID').fill('mary.jackson@');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'View profile of Mary Jackson' }).click();
    await page.waitForURL(`**/admin/users/${mary.id}`);
    await waitReady(page);
    await openTab(page, 'Authenticators');
    // The passkey and the link are listed…
    expect(await passkeysTable(page).locator('tbody tr').count()).toBe(1);
    expect(await page.locator(`tr[data-enrolment-id="${outstanding.flowId}"] [data-enrolment-status]`).innerText()).toBe('Pending');
    // …with nothing to change them.
    expect(await page.getByRole('link', { name: 'Issue other authenticator' }).count()).toBe(0);
    expect(await page.getByRole('link', { name: /^Remove/ }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Revoke' }).count()).toBe(0);
    await expectAccessible(page, 'authenticators as a plain agent');

    // Nor from the address bar.
    const issuePage = await page.goto(server.url(`/admin/users/${mary.id}/issue`));
    expect(issuePage!.status()).toBe(403);
    await waitReady(page);
    const removePage = await page.goto(server.url(`/admin/users/${mary.id}/authenticators/${passkey!.id}/remove`));
    expect(removePage!.status()).toBe(403);
    await waitReady(page);

    // Nor by posting the forms' requests directly, with a valid CSRF token.
    const posts: [string, Record<string, string>][] = [
      [`/admin/users/${mary.id}/enrolments`, { method: 'link' }],
      [`/admin/users/${mary.id}/enrolments`, { method: 'code' }],
      [`/admin/users/${mary.id}/enrolments`, { method: 'email' }],
      [`/admin/users/${mary.id}/issue`, { type: 'passkey' }],
      [`/admin/users/${mary.id}/enrolments/${outstanding.flowId}/revoke`, {}],
      [`/admin/users/${mary.id}/enrolments/${outstanding.flowId}/email`, { token: outstanding.token }],
      [`/admin/users/${mary.id}/authenticators/${passkey!.id}/remove`, { confirm: 'yes' }],
    ];
    await visit(page, server.url(`/admin/users/${mary.id}/authenticators`));
    const answers = await page.evaluate(async (requests) => {
      const csrf = document.querySelector<HTMLMetaElement>('meta[name=csrf-token]')!.content;
      const out: { path: string; status: number; code?: string }[] = [];
      for (const [path, body] of requests) {
        const res = await fetch(path, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': csrf, accept: 'application/json' },
          body: new URLSearchParams(body).toString(),
          redirect: 'manual',
        });
        const json = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
        out.push({ path, status: res.status, code: json.error?.code });
      }
      return out;
    }, posts);
    // 403 for the role, not for the CSRF token.
    expect(answers).toEqual(posts.map(([path]) => ({ path, status: 403, code: 'forbidden' })));

    expect(await store().flows.listForUser(mary.id, ENROLMENT_FLOWS)).toEqual(flowsBefore);
    expect(flowsBefore.find((f) => f.id === outstanding.flowId)!.state).toBe('active');
    expect((await store().authenticators.listForUser(mary.id)).map((a) => a.id)).toEqual([passkey!.id]);
    // Nothing but the notice of the passkey she set up.
    expect(sink.messages.filter((m) => m.to.includes('mary.jackson@example.com')).map((m) => m.subject)).toEqual(['An authenticator was added to your Latchkey profile']);
    // Mary is still signed in with her passkey.
    await visit(user.page, server.url('/settings'));
    expect(new URL(user.page.url()).pathname).toBe('/settings');
  });

  it('keeps the audit log and email templates accessible for an RA Manager', { timeout: 60_000 }, async () => {
    const manager = await agent('Frances Allen', 'frances.allen@agents.example', 'ra_manager');
    const { page } = manager;

    await visit(page, server.url('/admin'));
    await page.getByRole('navigation', { name: 'Registration authority' }).getByRole('link', { name: 'Audit log' }).click();
    await page.waitForURL('**/admin/audit');
    await waitReady(page);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Audit log');
    // At least the manager's own enrolment is in it.
    expect(await page.locator('tr[data-event="enrolment.completed"]').count()).toBeGreaterThanOrEqual(1);
    await expectAccessible(page, 'audit log');

    // A refusal is in it too, with why: a plain agent opening "Add a user" from the address bar.
    const plain = await agent('Dorothy Vaughan', 'dorothy.vaughan@agents.example', 'ra_agent');
    expect((await plain.page.goto(server.url('/admin/users/new')))!.status()).toBe(403);
    await page.getByLabel('Event', { exact: true }).selectOption({ label: 'Console action refused' });
    await page.getByLabel('By (email address)').fill('dorothy.vaughan@agents.example');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL('**/admin/audit?**');
    await waitReady(page);
    const refused = page.locator('tr[data-event="console.refused"]');
    expect(await refused.count()).toBe(1);
    expect(await refused.innerText()).toContain('Console action refused (refused)');
    expect(await refused.innerText()).toContain('Why: their role does not allow it (GET /admin/users/new)');
    await expectAccessible(page, 'audit log with a refusal');

    // Refused for the person's state, not the agent's role: the log says that instead.
    const suspended = await createUser(store(), { email: 'mae.jemison@example.com', displayName: 'Mae Jemison' }, Date.now());
    await store().users.setStatus(suspended.id, 'suspended', Date.now());
    const issuePage = await manager.page.goto(server.url(`/admin/users/${suspended.id}/issue/passkey`));
    expect(issuePage!.status()).toBe(403);
    await waitReady(page);
    expect(await errorSummaryText(page)).toContain('Mae Jemison is suspended. Reactivate them before issuing an authenticator.');
    await visit(page, server.url('/admin/audit'));
    await page.getByLabel('Event', { exact: true }).selectOption({ label: 'Console action refused' });
    await page.getByLabel('By (email address)').fill('frances.allen@agents.example');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL('**/admin/audit?**');
    await waitReady(page);
    const refusedForState = page.locator('tr[data-event="console.refused"]');
    expect(await refusedForState.count()).toBe(1);
    expect(await refusedForState.innerText()).toContain('Why: the person is suspended (GET /admin/users/:id/issue/passkey)');
    expect(await refusedForState.innerText()).not.toContain('their role does not allow it');

    await page.getByRole('navigation', { name: 'Registration authority' }).getByRole('link', { name: 'Email templates' }).click();
    await page.waitForURL('**/admin/templates');
    await waitReady(page);
    const templates = page.getByRole('table', { name: 'Email templates' });
    expect(await templates.locator('tbody tr td:first-child').allInnerTexts()).toEqual(['Default (default)']);
    await expectAccessible(page, 'email templates');

    await page.getByRole('link', { name: 'Edit Default' }).click();
    await page.waitForURL('**/admin/templates/default');
    await waitReady(page);
    expect(await page.getByLabel('Subject').inputValue()).toBe('Set up your passkey for {{organisation}}');
    expect(await page.getByLabel('Email text').inputValue()).toContain('{{link}}');
    await expectAccessible(page, 'edit email template');

    // Services: register one (the secret is shown once), then the person's list of services.
    await visit(page, server.url('/admin/services'));
    await waitReady(page);
    await expectAccessible(page, 'services console');
    await page.getByLabel('Name', { exact: true }).fill('Rota');
    await page.getByLabel('Redirect URIs').fill('https://rota.example.org/callback');
    await page.getByLabel('Yes: a server-side application (confidential)').check();
    await page.getByLabel('AAL2: a passkey, or a password with an authenticator app').check();
    await page.getByRole('button', { name: 'Register service' }).click();
    await page.waitForSelector('#created');
    expect(await page.locator('[data-client-secret]').innerText()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await expectAccessible(page, 'service registered');
    await visit(page, server.url('/services'));
    await waitReady(page);
    expect(await page.locator('tr[data-usable="yes"] td:first-child').allInnerTexts()).toEqual(['Rota']);
    await expectAccessible(page, 'services a person can use');
  });
});
