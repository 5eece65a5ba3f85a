/**
 * Bulk import in a real browser: an RA Manager uploads a CSV file, reads the check page, imports the valid rows and
 * follows the progress page (which reloads itself, without script) to the report — under the strict CSP, accessible,
 * and at 375 px.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { closeContextsAfterEach, expectAccessible, launchBrowser, startServer, visit, waitReady, type E2EServer } from './support.js';

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

describe('importing users in the console', () => {
  it('uploads a file, shows the refused lines, imports the valid rows and reports', { timeout: 120_000 }, async () => {
    const t = await openTracked(browser, server);
    await t.authenticators.add('platform');
    const { user, url } = await server.invite('rosalind@example.org', 'Rosalind Franklin');
    await visit(t.page, url);
    await t.page.getByLabel('Name your passkey').fill('Agent laptop');
    await t.page.getByRole('button', { name: 'Set up passkey' }).click();
    await t.page.waitForURL('**/enrol/done');
    await server.app.latchkey.store.roles.set(user.id, ['ra_manager'], null, Date.now());

    await visit(t.page, server.url('/admin'));
    await t.page.getByRole('link', { name: 'Import users from a CSV file' }).click();
    await waitReady(t.page);
    await expectAccessible(t.page, 'import upload');
    const rows = ['name,email,roles', 'No Email,,'];
    for (let i = 0; i < 3000; i++) rows.push(`Person ${i},person.${i}@import.example,${i === 0 ? 'auditor' : ''}`);
    await t.page.setInputFiles('#file', { name: 'staff.csv', mimeType: 'text/csv', buffer: Buffer.from(rows.join('\n')) });
    await t.page.getByRole('button', { name: 'Check the file' }).click();
    await t.page.waitForURL('**/admin/imports/*');
    await waitReady(t.page);
    expect(await t.page.getByRole('heading', { level: 1 }).innerText()).toBe('Check the import');
    expect(await t.page.locator('#refused + table tbody tr').first().innerText()).toMatch(/^2\s+email\s+Enter an email address$/);
    await expectAccessible(t.page, 'import check');

    await t.page.getByRole('button', { name: 'Import the 3,000 valid rows' }).click();
    // The progress page reloads itself until the job is done, then shows the report.
    await t.page.getByRole('heading', { level: 1, name: 'Import finished' }).waitFor();
    await waitReady(t.page);
    expect(await t.page.locator('dl.summary').innerText()).toMatch(/Users added\s+3,000/);
    await expectAccessible(t.page, 'import report');
    await t.page.setViewportSize({ width: 375, height: 800 });
    expect(await t.page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);

    const imported = (await server.app.latchkey.store.users.findByEmail('person.0@import.example'))!;
    expect(await server.app.latchkey.store.roles.listForUser(imported.id)).toEqual(['auditor']);
  });
});
