/**
 * API tokens in the console, in a real browser: an RA Manager creates one (the form's errors first), copies it from
 * the page that shows it once, sees it work at the API, finds it in the list at phone width, and revokes it after
 * the confirmation page. axe checks every page on the way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { closeContextsAfterEach, errorSummaryText, expectAccessible, launchBrowser, startServer, visit, waitReady, type E2EServer } from './support.js';

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

const asToken = (token: string) => fetch(server.url('/api/v1/token'), { headers: { authorization: `Bearer ${token}` } });

async function heading(page: Page): Promise<string> {
  return page.getByRole('heading', { level: 1 }).innerText();
}

describe('API tokens in the console', () => {
  it('an RA Manager creates a token, copies it once, and revokes it; the API then answers 401', { timeout: 90_000 }, async () => {
    const t = await openTracked(browser, server);
    await t.authenticators.add('platform');
    const { page, context } = t;
    const { user, url } = await server.invite('grace.hopper@agents.example', 'Grace Hopper');
    await visit(page, url);
    await page.getByLabel('Name your passkey').fill('Laptop');
    await page.getByRole('button', { name: 'Set up passkey' }).click();
    await page.waitForURL('**/enrol/done');
    await server.app.latchkey.store.roles.set(user.id, ['ra_manager'], null, Date.now());

    await visit(page, server.url('/admin'));
    await page.getByRole('navigation', { name: 'Registration authority' }).getByRole('link', { name: 'API tokens' }).click();
    await page.waitForURL('**/admin/api-tokens');
    await waitReady(page);
    expect(await heading(page)).toBe('API tokens');
    expect(await page.locator('main').innerText()).toContain('No API tokens have been made.');
    await expectAccessible(page, 'API tokens (none)');

    await page.getByRole('link', { name: 'Create an API token' }).click();
    await page.waitForURL('**/admin/api-tokens/new');
    await waitReady(page);
    expect(await page.getByLabel('Expires in (days)').inputValue()).toBe('90');
    await expectAccessible(page, 'create an API token');

    // Nothing chosen: the summary names each problem and takes the person to the field.
    await page.getByLabel('Expires in (days)').fill('400');
    await page.getByRole('button', { name: 'Create token' }).click();
    await waitReady(page);
    expect(await errorSummaryText(page)).toContain('Enter a name for the token');
    expect(await errorSummaryText(page)).toContain('Choose the role the token acts with');
    expect(await errorSummaryText(page)).toContain('A token lasts from 1 to 365 days');
    await expectAccessible(page, 'create an API token, with errors');
    await page.locator('#error-summary').getByRole('link', { name: 'Choose the role the token acts with' }).click();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('role-ra_manager');

    await page.getByLabel('Name').fill('HR feed');
    await page.getByLabel('RA Agent (Advanced)').check();
    await page.getByLabel('Expires in (days)').fill('30');
    await page.getByRole('button', { name: 'Create token' }).click();
    await page.waitForURL('**/admin/api-tokens/*/created');
    await waitReady(page);
    expect(await heading(page)).toBe('API token created');
    expect(await page.locator('main').innerText()).toContain('Copy it now: you will not see it again.');
    const token = await page.getByLabel('API token').inputValue();
    expect(token).toMatch(/^lk_[A-Za-z0-9_-]{43}$/);
    await expectAccessible(page, 'API token created');

    // "Copy token" (shown once the bundle can copy) puts it on the clipboard.
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.origin });
    await page.getByRole('button', { name: 'Copy token' }).click();
    await page.getByRole('button', { name: 'Token copied' }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(token);

    const used = await asToken(token);
    expect(used.status).toBe(200);
    expect(await used.json()).toMatchObject({ name: 'HR feed', role: 'ra_agent_advanced' });

    // A reload does not show it again.
    await page.reload();
    await waitReady(page);
    expect(await page.getByLabel('API token').count()).toBe(0);
    expect(await page.locator('main').innerText()).toContain('The token was shown once');
    expect(await page.content()).not.toContain(token);
    await expectAccessible(page, 'API token created, reloaded');

    // The list at phone width: the table becomes a stacked list and nothing scrolls sideways.
    await page.setViewportSize({ width: 375, height: 812 });
    await page.getByRole('link', { name: 'Back to API tokens' }).click();
    await page.waitForURL('**/admin/api-tokens');
    await waitReady(page);
    const row = page.locator('tr[data-token-id]');
    expect(await row.innerText()).toContain('HR feed');
    expect(await row.innerText()).toContain('RA Agent (Advanced)');
    expect(await row.innerText()).toContain('Active');
    expect(await row.innerText()).toContain('by Grace Hopper');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await expectAccessible(page, 'API tokens, at 375 px');

    await page.getByRole('link', { name: 'Revoke HR feed' }).click();
    await page.waitForURL('**/admin/api-tokens/*/revoke');
    await waitReady(page);
    expect(await heading(page)).toBe('Are you sure you want to revoke the API token ‘HR feed’?');
    await expectAccessible(page, 'revoke an API token');
    await page.getByRole('button', { name: 'Revoke token' }).click();
    await page.waitForURL('**/admin/api-tokens?done=revoked');
    await waitReady(page);
    expect(await page.locator('#flash').innerText()).toContain('The token has been revoked.');
    expect(await page.locator('tr[data-token-id]').innerText()).toContain('Revoked');
    expect(await page.getByRole('link', { name: 'Revoke HR feed' }).count()).toBe(0);
    await expectAccessible(page, 'API tokens, revoked');

    expect((await asToken(token)).status).toBe(401);
  });
});
