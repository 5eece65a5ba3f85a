/**
 * API tokens in the console over HTTP: only RA Managers; create → shown once, to the browser that made it → it works
 * at the API → revoke → 401; the form's errors; and a token as the actor wherever the audit log is read.
 */
import { csvCell } from './csvCell.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, type TestApp, type TestBrowser } from '../../test/support/app.js';
import type { Role, User } from '../db/schema.js';
import { createApiToken } from '../api/apiTokens.js';

const T0 = Date.UTC(2026, 11, 1, 9);
const DAY = 24 * 60 * 60 * 1000;

let t: TestApp;
const clock = { now: T0 };
let counter = 0;
beforeAll(async () => {
  t = await createTestApp({}, { now: () => clock.now });
});
afterAll(() => t.close());

const store = () => t.app.latchkey.store;

async function agent(roles: Role[], name = `Agent ${++counter}`): Promise<{ browser: TestBrowser; user: User }> {
  const email = `agent-${++counter}@example.org`;
  const browser = await signUp(t.app, authenticator(), email, name);
  const user = (await store().users.findByEmail(email))!;
  await store().roles.set(user.id, roles, null, clock.now);
  return { browser, user };
}

const asToken = (token: string) => t.app.inject({ method: 'GET', url: '/api/v1/token', headers: { authorization: `Bearer ${token}` } });

/** Make a token through the form; the id from the redirect to the page that shows it. */
async function create(browser: TestBrowser, fields: Record<string, string> = { name: 'HR feed', role: 'ra_agent_advanced', days: '30' }): Promise<string> {
  const res = await browser.postForm('/admin/api-tokens/new', fields);
  expect(res.statusCode, res.body.slice(0, 300)).toBe(303);
  const m = /^\/admin\/api-tokens\/([A-Za-z0-9_-]+)\/created$/.exec(String(res.headers.location));
  expect(m).not.toBeNull();
  return m![1]!;
}

const tokenIn = (html: string) => /value="(lk_[A-Za-z0-9_-]{43})"/.exec(html)?.[1];

describe('who may manage API tokens', () => {
  it('RA Managers only: every other role is refused with 403, and the refusal is recorded', async () => {
    const manager = await agent(['ra_manager']);
    const home = await manager.browser.get('/admin');
    expect(home.body).toContain('<a href="/admin/api-tokens">API tokens</a>');
    expect((await manager.browser.get('/admin/api-tokens')).statusCode).toBe(200);
    expect((await manager.browser.get('/admin/api-tokens/new')).statusCode).toBe(200);
    for (const role of ['ra_agent_advanced', 'ra_agent', 'auditor'] as const) {
      const other = await agent([role]);
      const before = await store().apiTokens.list();
      expect((await other.browser.get('/admin')).body, role).not.toContain('/admin/api-tokens');
      for (const res of [
        await other.browser.get('/admin/api-tokens'),
        await other.browser.get('/admin/api-tokens/new'),
        await other.browser.postForm('/admin/api-tokens/new', { name: 'Sneaky', role: 'ra_manager', days: '30' }),
      ]) {
        expect(res.statusCode, role).toBe(403);
      }
      expect(await store().apiTokens.list()).toEqual(before);
      const refusals = await store().kysely.selectFrom('audit_events').selectAll().where('event', '=', 'console.refused').where('actor_user_id', '=', other.user.id).execute();
      expect(refusals.map((r) => JSON.parse(r.detail).action)).toContain('POST /admin/api-tokens/new');
    }
  });

  it('refuses a create or revoke without the form’s CSRF token, or from another site, and changes nothing', async () => {
    const manager = await agent(['ra_manager']);
    await manager.browser.get('/admin/api-tokens/new');
    const before = await store().apiTokens.list();
    const forged = await manager.browser.postForm('/admin/api-tokens/new', { _csrf: 'forged', name: 'Forged', role: 'ra_manager', days: '30' });
    expect(forged.statusCode).toBe(403);
    expect(forged.body).toContain('There is a problem');
    const crossSite = await t.app.inject({
      method: 'POST',
      url: '/admin/api-tokens/new',
      payload: new URLSearchParams({ _csrf: manager.browser.csrf, name: 'Cross', role: 'ra_manager', days: '30' }).toString(),
      headers: {
        cookie: [...manager.browser.cookies].map(([k, v]) => `${k}=${v}`).join('; '),
        origin: 'https://evil.example',
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
    });
    expect(crossSite.statusCode).toBe(403);
    expect(crossSite.json().error.code).toBe('csrf_failed');
    expect(await store().apiTokens.list()).toEqual(before);

    const { record } = await createApiToken(store(), { name: 'Kept', role: 'auditor', createdBy: null }, clock.now);
    expect((await manager.browser.postForm(`/admin/api-tokens/${record.id}/revoke`, { _csrf: 'forged' })).statusCode).toBe(403);
    expect((await store().apiTokens.findById(record.id))!.revoked_at).toBeNull();
  });
});

describe('creating, showing once, using and revoking a token', () => {
  it('shows the token once to the browser that made it; it works at the API until revoked, then 401', async () => {
    const manager = await agent(['ra_manager'], 'Grace Hopper');
    const colleague = await agent(['ra_manager'], 'Katherine Johnson');

    const form = await manager.browser.get('/admin/api-tokens/new');
    expect(form.body).toContain('value="90"');
    expect(form.body).toContain('From 1 to 365 days; 90 unless you change it.');
    expect(form.body).toContain('Add users, issue and remove authenticators.'); // each role's description beside its radio

    const id = await create(manager.browser);
    const created = await store().apiTokens.findById(id);
    expect(created).toMatchObject({ name: 'HR feed', role: 'ra_agent_advanced', created_by: manager.user.id, expires_at: T0 + 30 * DAY, revoked_at: null });

    // Another manager opening the page (a shared address) sees no token, and does not use up its one showing.
    const peek = await colleague.browser.get(`/admin/api-tokens/${id}/created`);
    expect(peek.statusCode).toBe(200);
    expect(tokenIn(peek.body)).toBeUndefined();

    const shown = await manager.browser.get(`/admin/api-tokens/${id}/created`);
    expect(shown.statusCode).toBe(200);
    expect(shown.headers['cache-control']).toBe('no-store');
    const token = tokenIn(shown.body)!;
    expect(token).toBeDefined();
    expect(shown.body).toContain('Copy it now: you will not see it again.');
    expect(shown.body).toContain('Authorization: Bearer lk_…');
    expect(shown.body).toContain('href="/api/docs"');
    // Only the hash is kept: no row anywhere holds the token, and the sealed copy is gone once shown.
    const flows = await store().kysely.selectFrom('flows').selectAll().execute();
    expect(JSON.stringify([await store().kysely.selectFrom('api_tokens').selectAll().execute(), flows])).not.toContain(token);
    expect(flows.map((f) => f.data).join('\n')).not.toContain('sealed');

    // A reload (or Back) does not show it again.
    const again = await manager.browser.get(`/admin/api-tokens/${id}/created`);
    expect(again.statusCode).toBe(200);
    expect(tokenIn(again.body)).toBeUndefined();
    expect(again.body).toContain('The token was shown once');
    expect(again.body).not.toContain(token);

    const used = await asToken(token);
    expect(used.statusCode).toBe(200);
    expect(used.json()).toMatchObject({ id, name: 'HR feed', role: 'ra_agent_advanced' });

    const list = await manager.browser.get('/admin/api-tokens');
    const row = new RegExp(`<tr data-token-id="${id}">(.*?)</tr>`, 's').exec(list.body)![1]!;
    expect(row).toContain('HR feed');
    expect(row).toContain('RA Agent (Advanced)');
    expect(row).toContain('data-token-status="active"');
    expect(row).toContain('by Grace Hopper');
    expect(row).toContain('2026-12-31 09:00 UTC'); // expires
    expect(row).toContain(`href="/admin/api-tokens/${id}/revoke"`);

    const confirm = await manager.browser.get(`/admin/api-tokens/${id}/revoke`);
    expect(confirm.statusCode).toBe(200);
    expect(confirm.body).toContain('Are you sure you want to revoke the API token ‘HR feed’?');
    expect(confirm.body).toContain('href="/admin/api-tokens" class="back-link"');
    const revoked = await manager.browser.postForm(`/admin/api-tokens/${id}/revoke`, {});
    expect(revoked.statusCode).toBe(303);
    expect(revoked.headers.location).toBe('/admin/api-tokens?done=revoked');
    expect((await manager.browser.get('/admin/api-tokens?done=revoked')).body).toContain('The token has been revoked.');
    expect((await asToken(token)).statusCode).toBe(401);
    expect((await manager.browser.get('/admin/api-tokens')).body).toContain('data-token-status="revoked"');

    // Revoking again changes and records nothing; the confirmation page is not offered for it.
    expect((await manager.browser.postForm(`/admin/api-tokens/${id}/revoke`, {})).headers.location).toBe('/admin/api-tokens?done=already-revoked');
    expect((await manager.browser.get(`/admin/api-tokens/${id}/revoke`)).headers.location).toBe('/admin/api-tokens?done=already-revoked');
    expect((await manager.browser.postForm('/admin/api-tokens/no-such-token/revoke', {})).statusCode).toBe(404);

    // Both audited with the agent as actor, the token's id, name and role, never the token itself.
    const records = await store().kysely.selectFrom('audit_events').selectAll().where('event', 'in', ['api_token.created', 'api_token.revoked']).where('actor_user_id', '=', manager.user.id).orderBy('id').execute();
    expect(records.map((r) => r.event)).toEqual(['api_token.created', 'api_token.revoked']);
    expect(JSON.parse(records[0]!.detail)).toEqual({ tokenId: id, name: 'HR feed', role: 'ra_agent_advanced', expiresAt: new Date(T0 + 30 * DAY).toISOString(), via: 'console' });
    expect(JSON.parse(records[1]!.detail)).toEqual({ tokenId: id, name: 'HR feed', role: 'ra_agent_advanced', via: 'console' });
    expect(JSON.stringify(records)).not.toContain(token);
  });

  it('does not show the token after its few minutes have passed', async () => {
    const manager = await agent(['ra_manager']);
    const id = await create(manager.browser, { name: 'Late', role: 'auditor', days: '1' });
    clock.now += 10 * 60 * 1000;
    try {
      expect(tokenIn((await manager.browser.get(`/admin/api-tokens/${id}/created`)).body)).toBeUndefined();
    } finally {
      clock.now = T0;
    }
  });

  it('says what is wrong with each field, linked from the error summary, and keeps what was typed', async () => {
    const manager = await agent(['ra_manager']);
    const before = (await store().apiTokens.list()).length;
    const cases: [Record<string, string>, [string, string][]][] = [
      [{ name: '', days: '90' }, [['name', 'Enter a name for the token, such as the system that will use it'], ['role-ra_manager', 'Choose the role the token acts with']]],
      [{ name: 'x'.repeat(101), role: 'auditor', days: '90' }, [['name', 'The name must be 100 characters or fewer']]],
      [{ name: 'Feed', role: 'superuser', days: '90' }, [['role-ra_manager', 'Choose the role the token acts with']]],
      [{ name: 'Feed', role: 'auditor', days: '0' }, [['days', 'A token lasts from 1 to 365 days']]],
      [{ name: 'Feed', role: 'auditor', days: '366' }, [['days', 'A token lasts from 1 to 365 days']]],
      [{ name: 'Feed', role: 'auditor', days: 'ninety' }, [['days', 'A token lasts from 1 to 365 days']]],
      [{ name: 'Feed', role: 'auditor', days: '' }, [['days', 'Enter how many days the token lasts']]],
    ];
    for (const [fields, errors] of cases) {
      const res = await manager.browser.postForm('/admin/api-tokens/new', fields);
      const where = JSON.stringify(fields);
      expect(res.statusCode, where).toBe(400);
      const summary = /<div class="error-summary"[^]*?<\/div>/.exec(res.body)![0];
      expect([...summary.matchAll(/<a href="#([^"]+)">([^<]+)<\/a>/g)].map((m) => [m[1], m[2]]), where).toEqual(errors);
      for (const [field] of errors) expect(res.body, where).toMatch(new RegExp(`id="${field}"`));
      if (fields.name && fields.name.length <= 100) expect(res.body).toContain(`value="${fields.name}"`);
      if (fields.role === 'auditor') expect(res.body).toMatch(/id="role-auditor" name="role" value="auditor" checked/);
    }
    expect((await store().apiTokens.list()).length).toBe(before);
  });
});

describe('a token as the actor in the audit log', () => {
  it('the audit page, a person’s Activity tab and the CSV name the token; the By filter finds it by id or name', async () => {
    const manager = await agent(['ra_manager']);
    const person = await agent([], 'Mary Jackson');
    const { token, record } = await createApiToken(store(), { name: 'Helpdesk portal', role: 'ra_agent', createdBy: manager.user.id }, clock.now);
    expect((await asToken(token)).statusCode).toBe(200); // recorded as api.read, by the token
    // What the API writes when a token acts on a person (src/audit.ts: the token, no person, as actor).
    await store().audit.record({ at: clock.now, event: 'user.suspended', outcome: 'success', actorTokenId: record.id, subjectUserId: person.user.id, detail: {} });
    const actor = `API token ‘Helpdesk portal’ (${record.id})`;

    const log = await manager.browser.get('/admin/audit');
    expect(log.body).toContain(actor);

    const activity = await manager.browser.get(`/admin/users/${person.user.id}/activity`);
    const suspended = /<tr data-event="user.suspended">(.*?)<\/tr>/s.exec(activity.body)![1]!;
    expect(suspended).toContain(actor);

    for (const by of [record.id, 'helpdesk PORTAL']) {
      const filtered = await manager.browser.get(`/admin/audit?actor=${encodeURIComponent(by)}`);
      expect(filtered.statusCode).toBe(200);
      const events = [...filtered.body.matchAll(/<tr data-event="([^"]+)">/g)].map((m) => m[1]);
      expect(events, by).toEqual(['user.suspended', 'api.read']);
    }
    const none = await manager.browser.get('/admin/audit?actor=no-such-token');
    expect(none.body).toContain('No activity recorded.');
    // An email address still finds a person's actions, not the token's.
    const byManager = await manager.browser.get(`/admin/audit?actor=${encodeURIComponent(manager.user.email)}`);
    expect(byManager.body).not.toContain(actor);

    const csv = await manager.browser.get(`/admin/audit.csv?actor=${record.id}`);
    expect(csv.statusCode).toBe(200);
    const [header, ...rows] = csv.body.trim().split('\r\n');
    const columns = header!.split(',');
    expect(rows).toHaveLength(2);
    for (const line of rows) {
      const cells = line.split(',');
      // As the cell is written: an id that starts with - is defused against spreadsheet formulas.
      expect(cells[columns.indexOf('actor_token_id')]).toBe(csvCell(record.id));
      expect(cells[columns.indexOf('actor_token_name')]).toBe('Helpdesk portal');
      expect(cells[columns.indexOf('actor_email')]).toBe('');
    }
  });
});
