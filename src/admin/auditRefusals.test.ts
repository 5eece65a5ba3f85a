/**
 * Refused and failed console actions, and failed enrolments from links and codes
 * agents issued, are in the audit log (page and CSV) with who, what, why and
 * from where, never a secret; a flood of them is recorded only up to a limit.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../test/support/app.js';
import type { Role, User } from '../db/schema.js';
import { RefusalBudgets, RefusalWindow } from '../audit.js';
import { createUser } from '../users/createUser.js';
import { formatCode, issueCode, issueInvite } from '../flows/enrolment/invites.js';

const T0 = Date.UTC(2026, 10, 22, 9);

let t: TestApp;
let clock: { now: number };
let counter = 0;
afterEach(async () => t?.close());

async function start(env: Record<string, string> = {}) {
  clock = { now: T0 };
  t = await createTestApp(env, { now: () => clock.now });
}

async function person(roles: Role[] = []): Promise<{ browser: TestBrowser; user: User; auth: ReturnType<typeof authenticator> }> {
  const email = `person-${++counter}@example.org`;
  const auth = authenticator();
  const browser = await signUp(t.app, auth, email, `Person ${counter}`);
  const user = (await t.app.latchkey.store.users.findByEmail(email))!;
  if (roles.length) await t.app.latchkey.store.roles.set(user.id, roles, null, clock.now);
  return { browser, user, auth };
}

/** The CSV export's rows as objects (the quoting here is simple: no commas in the fields these tests read). */
function parseCsv(body: string): Record<string, string>[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(cell), (cell = '');
    else if (c === '\r' && body[i + 1] === '\n') row.push(cell), rows.push(row), (row = []), (cell = ''), i++;
    else cell += c;
  }
  const [header, ...data] = rows;
  return data.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i] ?? ''])));
}

async function refusals(manager: TestBrowser, event: string) {
  const page = await manager.get(`/admin/audit?event=${event}`);
  expect(page.statusCode).toBe(200);
  const csv = await manager.get(`/admin/audit.csv?event=${event}`);
  expect(csv.statusCode).toBe(200);
  return { page: page.body, rows: parseCsv(csv.body), csv: csv.body };
}

describe('refused and failed actions in the audit log', () => {
  it('a basic RA Agent’s POST to issue a link (403) is recorded as refused, with who, for whom, why and from where', async () => {
    await start();
    const manager = await person(['ra_manager']);
    const agent = await person(['ra_agent']);
    const target = await person();
    const res = await agent.browser.postForm(`/admin/users/${target.user.id}/enrolments`, { method: 'link' });
    expect(res.statusCode).toBe(403);
    const { page, rows } = await refusals(manager.browser, 'console.refused');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ event: 'console.refused', outcome: 'refused', actor_email: agent.user.email, subject_email: target.user.email, ip: '127.0.0.1' });
    expect(JSON.parse(rows[0]!.detail!)).toEqual({ action: 'POST /admin/users/:id/enrolments', reason: 'forbidden' });
    expect(page).toContain('Console action refused (refused)');
    expect(page).toContain('Why: their role does not allow it (POST /admin/users/:id/enrolments)');
    // The person's Activity tab shows it too.
    expect((await manager.browser.get(`/admin/users/${target.user.id}/activity`)).body).toContain('Console action refused');
  });

  it('issuing to a suspended person is recorded with that reason, not as the agent’s role refusing it', async () => {
    await start();
    const manager = await person(['ra_manager']);
    const target = await person();
    expect((await manager.browser.postForm(`/admin/users/${target.user.id}/status`, { action: 'suspend' })).statusCode).toBe(303);
    const res = await manager.browser.postForm(`/admin/users/${target.user.id}/enrolments`, { method: 'link' });
    expect(res.statusCode).toBe(403);
    expect(res.body).toContain(`${target.user.display_name} is suspended. Reactivate them before issuing an authenticator.`);
    const { page, rows } = await refusals(manager.browser, 'console.refused');
    expect(rows).toHaveLength(1);
    expect(JSON.parse(rows[0]!.detail!)).toEqual({ action: 'POST /admin/users/:id/enrolments', reason: 'user_suspended' });
    expect(page).toContain('Why: the person is suspended (POST /admin/users/:id/enrolments)');
    expect(page).not.toContain('their role does not allow it');
  });

  it('a JSON request from someone with no console role is recorded as such, and told so', async () => {
    await start();
    const manager = await person(['ra_manager']);
    const nobody = await person();
    const res = await nobody.browser.postJson(`/admin/users/${manager.user.id}/enrolments`, { method: 'link' });
    expect(res.statusCode).toBe(403);
    expect(res.json().error).toEqual({ code: 'no_console_role', message: 'Your account has no registration-authority role. Ask an RA Manager to give you one.' });
    const { page, rows } = await refusals(manager.browser, 'console.refused');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor_email: nobody.user.email });
    expect(page).toContain('Why: they have no registration-authority role (POST /admin/users/:id/enrolments)');
    // Asking for a page gets the page that says so, and the same reason on record.
    expect((await nobody.browser.get('/admin')).statusCode).toBe(403);
    expect(JSON.parse((await refusals(manager.browser, 'console.refused')).rows[0]!.detail!)).toEqual({ action: 'GET /admin', reason: 'no_console_role' });
  });

  it('acting on one’s own account is recorded as refused', async () => {
    await start();
    const manager = await person(['ra_manager']);
    const res = await manager.browser.postForm(`/admin/users/${manager.user.id}/status`, { action: 'suspend' });
    expect(res.statusCode).toBe(403);
    const { rows } = await refusals(manager.browser, 'console.refused');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ outcome: 'refused', actor_email: manager.user.email, subject_email: manager.user.email });
    expect(JSON.parse(rows[0]!.detail!)).toEqual({ action: 'POST /admin/users/:id/status', reason: 'own_account' });
  });

  it('a passkey already registered, offered through an agent’s link, is recorded as a failed enrolment for that person', async () => {
    await start();
    const manager = await person(['ra_manager']);
    const other = await person();
    const pending = await createUser(t.app.latchkey.store, { email: 'mary@example.org', displayName: 'Mary Seacole' }, clock.now);
    // Issued as the console's Generate link does (the page that shows it is another test's business).
    const { token } = await issueInvite(t.app.latchkey.store, t.config, pending, clock.now, { issuedBy: manager.user.id, method: 'link', lifetimeSeconds: t.config.agentLinkSeconds });
    const path = `/enrol/${token}`;
    const mary = new TestBrowser(t.app);
    await mary.get(path);
    const options = (await mary.postJson(`${path}/options`, { name: 'Phone', placement: 'this-device' })).json().options;
    // A client that replays a credential id already registered (to another person) in a fresh attestation.
    const response = authenticator().createCredential(options);
    const existingId = [...other.auth.credentials.keys()][0]!;
    const attestation = Buffer.from(response.response.attestationObject, 'base64url');
    attestation.set(Buffer.from(existingId, 'base64url'), attestation.indexOf(Buffer.from(response.id, 'base64url')));
    const replay = { ...response, id: existingId, rawId: existingId, response: { ...response.response, attestationObject: attestation.toString('base64url') } };
    const verify = await mary.postJson(`${path}/verify`, { response: replay, name: 'Phone' });
    expect(verify.statusCode).toBe(409);
    expect(verify.json().error.code).toBe('credential_exists');
    const { page, rows, csv } = await refusals(manager.browser, 'enrolment.failed');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ outcome: 'failure', actor_email: '', subject_email: 'mary@example.org', ip: '127.0.0.1' });
    expect(JSON.parse(rows[0]!.detail!)).toEqual({ action: 'POST /enrol/:token/verify', reason: 'credential_exists' });
    expect(page).toContain('Why: that passkey is already registered');
    // What was recorded names the route, never the link's token.
    expect(csv).not.toContain(token);
  });

  it('an expired code is recorded as a failed enrolment for that person, without the code', async () => {
    await start();
    const manager = await person(['ra_manager']);
    const pending = await createUser(t.app.latchkey.store, { email: 'mary@example.org', displayName: 'Mary Seacole' }, clock.now);
    const { code } = await issueCode(t.app.latchkey.store, t.config, t.app.latchkey.secret, pending, clock.now, manager.user.id);
    clock.now += 61_000;
    const mary = new TestBrowser(t.app);
    await mary.get('/enrol');
    const res = await mary.postForm('/enrol', { email: 'mary@example.org', code });
    expect(res.statusCode).toBe(410);
    const { page, rows, csv } = await refusals(manager.browser, 'enrolment.code_failed');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ outcome: 'failure', subject_email: 'mary@example.org', ip: '127.0.0.1' });
    expect(JSON.parse(rows[0]!.detail!)).toEqual({ action: 'POST /enrol', reason: 'enrolment_code_expired' });
    expect(page).toContain('Why: the code had expired');
    expect(csv).not.toContain(code);
    expect(csv).not.toContain(formatCode(code));
  });

  it('a flood of refusals is recorded only up to the limit per person and reason, and in all; the next minute says how many were not', async () => {
    await start({ LATCHKEY_AUDIT_REFUSALS_PER_SOURCE_PER_MINUTE: '5', LATCHKEY_AUDIT_REFUSALS_PER_MINUTE: '8' });
    const manager = await person(['ra_manager']);
    const agent = await person(['ra_agent']);
    const second = await person(['auditor']);
    const target = await person();
    const count = async () => (await t.db.kysely.selectFrom('audit_events').select((eb) => eb.fn.countAll<number>().as('n')).where('outcome', '=', 'refused').executeTakeFirstOrThrow()).n;
    for (let i = 0; i < 40; i++) expect((await agent.browser.postForm(`/admin/users/${target.user.id}/enrolments`, { method: 'link' })).statusCode).toBe(403);
    expect(Number(await count())).toBe(5);
    // Another source has its own five, up to eight in all.
    for (let i = 0; i < 40; i++) expect((await second.browser.get('/admin/users')).statusCode).toBe(403);
    expect(Number(await count())).toBe(8);
    const rows = (await refusals(manager.browser, 'console.refused')).rows.reverse();
    expect(rows.map((r) => JSON.parse(r.detail!).moreNotRecordedThisMinute ?? false)).toEqual([false, false, false, false, true, false, false, true]);
    clock.now += 60_000;
    expect((await agent.browser.postForm(`/admin/users/${target.user.id}/enrolments`, { method: 'link' })).statusCode).toBe(403);
    expect(Number(await count())).toBe(9);
    // One record says what the minute left out, per area and kind of source: 35 of the agent's and 37 of the auditor's.
    const { rows: summaries, page } = await refusals(manager.browser, 'audit.not_recorded');
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({ outcome: 'failure', actor_email: '' });
    expect(JSON.parse(summaries[0]!.detail!)).toEqual({ from: new Date(T0).toISOString(), to: new Date(T0 + 60_000).toISOString(), notRecorded: { 'console.signed_in': 72 } });
    expect(page).toContain('Refusals and failures not recorded (too many in one minute)');
  });

  /** `n` failed enrolments from links that do not exist, each from another IP address (anyone can send them). */
  const anonymousFlood = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const res = await t.app.inject({ method: 'GET', url: `/enrol/no-such-link-${i}`, remoteAddress: `10.0.${i >> 8}.${i & 255}`, headers: { accept: 'text/html' } });
      expect(res.statusCode).toBe(404);
    }
  };

  it('anonymous failures, however many, do not crowd out a signed-in agent’s console refusals', async () => {
    await start({ LATCHKEY_AUDIT_REFUSALS_PER_SOURCE_PER_MINUTE: '5', LATCHKEY_AUDIT_REFUSALS_PER_MINUTE: '8' });
    const manager = await person(['ra_manager']);
    const agent = await person(['ra_agent']);
    const target = await person();
    await anonymousFlood(40);
    expect((await refusals(manager.browser, 'enrolment.failed')).rows).toHaveLength(8);
    expect((await agent.browser.postForm(`/admin/users/${target.user.id}/enrolments`, { method: 'link' })).statusCode).toBe(403);
    const { rows } = await refusals(manager.browser, 'console.refused');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor_email: agent.user.email, subject_email: target.user.email });
  });

  it('what a minute left unrecorded is told by the next refusal of any kind, not only the next of the same kind', async () => {
    await start({ LATCHKEY_AUDIT_REFUSALS_PER_SOURCE_PER_MINUTE: '5', LATCHKEY_AUDIT_REFUSALS_PER_MINUTE: '8' });
    const manager = await person(['ra_manager']);
    const agent = await person(['ra_agent']);
    const target = await person();
    await anonymousFlood(40);
    expect((await refusals(manager.browser, 'audit.not_recorded')).rows).toHaveLength(0);
    clock.now += 90_000;
    // None of the flood's sources comes back: an agent's refusal in the console is the next one.
    expect((await agent.browser.postForm(`/admin/users/${target.user.id}/enrolments`, { method: 'link' })).statusCode).toBe(403);
    const { rows } = await refusals(manager.browser, 'audit.not_recorded');
    expect(rows).toHaveLength(1);
    expect(JSON.parse(rows[0]!.detail!).notRecorded).toEqual({ 'enrolment.signed_out': 32 });
    // Told once.
    expect((await agent.browser.postForm(`/admin/users/${target.user.id}/enrolments`, { method: 'link' })).statusCode).toBe(403);
    expect((await refusals(manager.browser, 'audit.not_recorded')).rows).toHaveLength(1);
  });

  it('the budgets keep their counts bounded and apart', () => {
    const budgets = new RefusalBudgets(2, 3);
    expect(budgets.take('console.signed_in', 'a', 0)).toEqual({ taken: { record: true, last: false }, notRecorded: undefined });
    expect(budgets.take('console.signed_in', 'a', 1).taken).toEqual({ record: true, last: true });
    expect(budgets.take('console.signed_in', 'a', 2).taken).toEqual({ record: false });
    expect(budgets.take('console.signed_in', 'b', 3).taken).toEqual({ record: true, last: true });
    expect(budgets.take('console.signed_in', 'c', 4).taken).toEqual({ record: false });
    // Another budget has its own three.
    expect(budgets.take('enrolment.signed_out', 'c', 5).taken).toEqual({ record: true, last: false });
    expect(budgets.take('enrolment.signed_out', 'c', 60_000)).toEqual({
      taken: { record: true, last: false },
      notRecorded: { from: 0, to: 60_000, counts: { 'console.signed_in': 2 } },
    });
    expect(budgets.take('console.signed_in', 'a', 60_001)).toEqual({ taken: { record: true, last: false }, notRecorded: undefined });
    // 100,000 sources in one minute: at most the limit recorded, and only counts kept for the rest.
    const flood = new RefusalWindow(1, 3);
    let recorded = 0;
    for (let i = 0; i < 100_000; i++) if (flood.take(`ip:${i}`).record) recorded++;
    expect(recorded).toBe(3);
    expect(flood.dropped).toBe(99_997);
    expect((flood as unknown as { counts: Map<string, number> }).counts.size).toBe(3);
  });
});
