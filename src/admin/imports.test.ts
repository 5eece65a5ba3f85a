/**
 * Bulk import in the console over HTTP: upload, the check page, confirming, the progress page and the report; who may
 * do it; the upload's CSRF check and size limit (and the 64 KiB limit everywhere else).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../test/support/app.js';
import { startSmtpSink, type SmtpSink } from '../../test/support/smtpSink.js';
import type { Role, User } from '../db/schema.js';

let sink: SmtpSink;
let t: TestApp;
let counter = 0;

beforeAll(async () => {
  sink = await startSmtpSink();
  t = await createTestApp({ LATCHKEY_SMTP_URL: sink.url, LATCHKEY_ORGANISATION: 'St Elsewhere NHS Trust' });
});
afterAll(async () => {
  await t.close();
  await sink.close();
});

async function agent(roles: Role[]): Promise<{ browser: TestBrowser; user: User }> {
  const email = `agent-${++counter}@example.org`;
  const browser = await signUp(t.app, authenticator(), email, `Agent ${counter}`);
  const user = (await t.app.latchkey.store.users.findByEmail(email))!;
  await t.app.latchkey.store.roles.set(user.id, roles, null, Date.now());
  await browser.get('/admin');
  return { browser, user };
}

const csv = (text: string, filename = 'staff.csv') => ({ field: 'file', filename, content: text });

/** Follow the progress page until the job has ended; returns the last page. */
async function waitForImport(browser: TestBrowser, location: string): Promise<string> {
  for (let i = 0; i < 500; i++) {
    const page = await browser.get(location);
    if (!page.body.includes('Importing users')) return page.body;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the import did not finish');
}

describe('importing users in the console', () => {
  it('checks the file, shows refused lines by number, imports the valid rows on confirmation and reports', async () => {
    const { browser, user } = await agent(['ra_manager']);
    const upload = await browser.get('/admin/users/import');
    expect(upload.statusCode).toBe(200);
    expect(upload.body).toContain('enctype="multipart/form-data"');
    expect(upload.body).toContain('Up to 20 MB');
    const example = await browser.get('/admin/users/import/example.csv');
    expect(example.headers['content-type']).toContain('text/csv');
    expect(example.body.split('\r\n')[0]).toBe('name,email,National Insurance number,roles');

    const file = [
      'name,email,nino,roles',
      'Mary Seacole,mary.seacole@example.org,QQ 12 34 56 C,ra_agent',
      'No Email,,,',
      'Florence Nightingale,florence@example.org,,',
      `Agent Themselves,${user.email},,`,
    ].join('\n');
    const checked = await browser.postMultipart('/admin/users/import', {}, csv(file));
    expect(checked.statusCode).toBe(303);
    const location = String(checked.headers.location);
    expect(location).toMatch(/^\/admin\/imports\/[\w-]+$/);
    const check = await browser.get(location);
    expect(check.body).toContain('Check the import');
    expect(check.body).toContain('1 line was refused. Nothing has been added yet.');
    expect(check.body).toMatch(/<td data-label="Line">3<\/td><td data-label="Column">email<\/td><td data-label="Problem">Enter an email address<\/td>/);
    expect(check.body).toMatch(/<td data-label="Line">5<\/td><td data-label="Column">agent-\d+@example.org<\/td>/);
    expect(check.body).toContain('Import the 2 valid rows');
    expect(check.body).toContain('href="/admin/users/import">upload a corrected file</a>');
    expect(await t.app.latchkey.store.users.findByEmail('mary.seacole@example.org')).toBeUndefined();

    const report = await browser.get(`${location}/report.csv`);
    expect(report.body).toBe(`line,outcome,field,email,message\r\n3,refused,email,,Enter an email address\r\n5,skipped,email,${user.email},A user with this email address already exists\r\n`);

    const started = await browser.postForm(`${location}/start`, {});
    expect(started.statusCode).toBe(303);
    expect(started.headers.location).toBe(location);
    const done = await waitForImport(browser, location);
    expect(done).toContain('Import finished');
    expect(done).toMatch(/<dt>Users added<\/dt><dd>2<\/dd>/);
    expect(done).not.toContain('http-equiv="refresh"');
    const mary = (await t.app.latchkey.store.users.findByEmail('mary.seacole@example.org'))!;
    expect(mary.status).toBe('pending');
    expect(await t.app.latchkey.store.roles.listForUser(mary.id)).toEqual(['ra_agent']);
    const [created] = await t.app.latchkey.store.audit.listForSubject(mary.id).then((rows) => rows.filter((r) => r.event === 'user.created'));
    expect(created).toMatchObject({ actor_user_id: user.id });
    const [summary] = await t.app.latchkey.store.audit.listByEvent('users.imported', 1);
    expect(summary).toMatchObject({ actor_user_id: user.id, outcome: 'success' });
    expect(JSON.parse(summary!.detail)).toMatchObject({ source: 'console', fileName: 'staff.csv', rows: 4, created: 2, skipped: 1, refused: 1 });

    // Started once only: a second confirmation changes nothing.
    expect((await browser.postForm(`${location}/start`, {})).statusCode).toBe(303);
    expect(await t.app.latchkey.store.audit.listByEvent('users.imported', 5)).toHaveLength(1);
  });

  it('shows a progress bar that reloads itself while the job runs', async () => {
    const { browser, user } = await agent(['ra_agent_advanced']);
    const now = Date.now();
    await t.app.latchkey.store.userImports.insert({
      id: `running-${++counter}`,
      created_by: user.id,
      file_name: 'big.csv',
      state: 'running',
      options: JSON.stringify({ sendEmail: false }),
      rows: 1000,
      to_create: 1000,
      done: 500,
      created: 500,
      skipped: 0,
      refused: 0,
      plan: '[]',
      report: JSON.stringify({ refused: [], skipped: [], mailFailures: [], mailed: 0 }),
      created_at: now,
      updated_at: now,
      finished_at: null,
    });
    const page = await browser.get(`/admin/imports/running-${counter}`);
    expect(page.body).toContain('<meta http-equiv="refresh" content="2"/>');
    expect(page.body).toContain('<progress id="progress" max="1000" value="500">50%</progress>');
    expect(page.body).toContain('500 of 1,000.');
    expect(page.body).not.toContain('has not moved');
    // A job whose server stopped mid-way says so, rather than spinning for ever.
    await t.db.kysely.updateTable('user_imports').set({ updated_at: now - 6 * 60_000 }).where('id', '=', `running-${counter}`).execute();
    expect((await browser.get(`/admin/imports/running-${counter}`)).body).toContain('This import has not moved for 6 minutes');
  });

  it('sends each new user an enrolment email when asked, after the users are written', async () => {
    const { browser } = await agent(['ra_agent_advanced']);
    const checked = await browser.postMultipart('/admin/users/import', { sendEmail: 'yes', template: 'default' }, csv('name,email\nEdith Cavell,edith@example.org\n'));
    const location = String(checked.headers.location);
    expect((await browser.get(location)).body).toContain('Sent to each new user, with the template “Default”');
    await browser.postForm(`${location}/start`, {});
    const done = await waitForImport(browser, location);
    expect(done).toMatch(/<dt>Enrolment emails sent<\/dt><dd>1<\/dd>/);
    const mail = await sink.waitFor((m) => m.to.includes('edith@example.org'));
    expect(mail.text).toContain('Hello Edith Cavell');
    expect(mail.text).toMatch(/http:\/\/localhost:3000\/enrol\/[\w-]{43}/);
  });

  it('refuses a file it cannot read, with the problem at the file field, and an upload without a file', async () => {
    const { browser } = await agent(['ra_agent_advanced']);
    const bad = await browser.postMultipart('/admin/users/import', {}, csv('full name,phone\nA,1\n'));
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('<a href="#file">The header row has a column we do not recognise: “phone”');
    const none = await browser.postMultipart('/admin/users/import', {});
    expect(none.statusCode).toBe(400);
    expect(none.body).toContain('<a href="#file">Choose a CSV file</a>');
  });

  it('refuses roles in the file from an agent who cannot grant them', async () => {
    const { browser } = await agent(['ra_agent_advanced']);
    const checked = await browser.postMultipart('/admin/users/import', {}, csv('name,email,roles\nRole Seeker,seeker@example.org,ra_manager\n'));
    const page = await browser.get(String(checked.headers.location));
    expect(page.body).toContain('Your role does not allow granting roles');
    expect(page.body).toContain('There is nobody new to add.');
    const [refusal] = await t.app.latchkey.store.audit.listByEvent('console.refused', 1);
    expect(JSON.parse(refusal!.detail)).toMatchObject({ reason: 'forbidden', rolesRefusedLines: 1, action: 'POST /admin/users/import' });
  });

  it('refuses to start a check with roles once the uploader may no longer grant them', async () => {
    const { browser, user } = await agent(['ra_manager']);
    const checked = await browser.postMultipart('/admin/users/import', {}, csv('name,email,roles\nNew Agent,new.agent@example.org,ra_agent\n'));
    const location = String(checked.headers.location);
    await t.app.latchkey.store.roles.set(user.id, ['ra_agent_advanced'], null, Date.now());
    expect((await browser.postForm(`${location}/start`, {})).statusCode).toBe(403);
    expect(await t.app.latchkey.store.users.findByEmail('new.agent@example.org')).toBeUndefined();
  });

  it('lets only the uploader start a check, and refuses an RA Agent altogether', async () => {
    const uploader = await agent(['ra_agent_advanced']);
    const other = await agent(['ra_agent_advanced']);
    const checked = await uploader.browser.postMultipart('/admin/users/import', {}, csv('name,email\nOnly Mine,only.mine@example.org\n'));
    const location = String(checked.headers.location);
    expect((await other.browser.get(location)).body).toContain('Only the agent who uploaded this file can start the import.');
    expect((await other.browser.postForm(`${location}/start`, {})).statusCode).toBe(403);
    const viewer = await agent(['ra_agent']);
    expect((await viewer.browser.get('/admin/users/import')).statusCode).toBe(403);
    expect((await viewer.browser.postMultipart('/admin/users/import', {}, csv('name,email\nX,x-viewer@example.org\n'))).statusCode).toBe(403);
    expect((await viewer.browser.get(location)).statusCode).toBe(403);
    expect(await t.app.latchkey.store.users.findByEmail('only.mine@example.org')).toBeUndefined();
  });

  it('checks the upload’s CSRF token like any form', async () => {
    const { browser } = await agent(['ra_manager']);
    const before = await t.app.latchkey.store.users.count();
    browser.csrf = 'forged';
    const res = await browser.postMultipart('/admin/users/import', {}, csv('name,email\nForged,forged@example.org\n'));
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain('This form has expired or was sent from another site');
    expect(await t.app.latchkey.store.users.count()).toBe(before);
  });

  it('takes files up to 20 MB on the upload only; every other form keeps the 64 KiB limit', async () => {
    const { browser } = await agent(['ra_manager']);
    const large = `name,email\n${'Big Name,big@example.org\n'.repeat(Math.ceil((21 * 1024 * 1024) / 25))}`;
    const tooLarge = await browser.postMultipart('/admin/users/import', {}, csv(large));
    expect(tooLarge.statusCode).toBe(413);
    expect(tooLarge.body).toContain('the limit is 20 MB');
    // Within the request's limit, but the file itself over 20 MB: the parser stops reading it.
    const justOver = await browser.postMultipart('/admin/users/import', {}, csv('x'.repeat(20 * 1024 * 1024 + 10 * 1024)));
    expect(justOver.statusCode).toBe(413);
    expect(justOver.body).toContain('The file is larger than 20 MB');
    // 100 KiB is fine for the upload…
    const rows = Array.from({ length: 2500 }, (_, i) => `Person ${i},person-${i}@limit.example`).join('\n');
    expect(rows.length).toBeGreaterThan(64 * 1024);
    expect((await browser.postMultipart('/admin/users/import', {}, csv(`name,email\n${rows}\n`))).statusCode).toBe(303);
    // …but not for the Add user form.
    const form = await browser.postForm('/admin/users/new', { name: 'x'.repeat(70 * 1024), email: 'limit@example.org' });
    expect(form.statusCode).toBe(413);
  });
});
