/**
 * What the admin API's resources do, through HTTP with a bearer token: the same outcomes as the console's actions
 * (users added, suspended and signed out; links that work at /enrol; codes; emails in a real SMTP sink; removal
 * ending sessions; roles; the audit log and its CSV), every change naming the token as its actor. Users and roles
 * run on SQLite and PostgreSQL.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../test/support/app.js';
import { testDatabases } from '../../test/support/databases.js';
import { startSmtpSink, type SmtpSink } from '../../test/support/smtpSink.js';
import type { Role } from '../db/schema.js';
import { createApiToken } from './apiTokens.js';
import { csvCell } from '../admin/csvCell.js';

let sink: SmtpSink;
beforeAll(async () => {
  sink = await startSmtpSink();
});
afterAll(async () => sink.close());

/** An API client holding one token. */
function client(t: TestApp, token: string) {
  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
  return {
    get: (url: string) => call('GET', url),
    post: (url: string, payload: object = {}) => call('POST', url, payload),
    put: (url: string, payload: object) => call('PUT', url, payload),
    delete: (url: string) => call('DELETE', url),
  };
}

async function tokenFor(t: TestApp, role: Role, createdBy: string | null = null) {
  const { token, record } = await createApiToken(t.app.latchkey.store, { name: `${role} integration`, role, days: 30, createdBy }, Date.now());
  return { api: client(t, token), id: record.id };
}

const databases = await testDatabases();

describe.each(databases)('users and roles over the API on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({}, { db: await target.open() });
    });
    afterAll(async () => {
      await t.close();
      await target.cleanup();
    });

    it('adds a user who then appears in search, and names the token in the audit record', async () => {
      const { api, id } = await tokenFor(t, 'ra_agent_advanced');
      const res = await api.post('/api/v1/users', { name: ' Grace Hopper ', email: 'grace@example.org', nationalInsuranceNumber: 'qq 12 34 56 c' });
      expect(res.statusCode).toBe(201);
      const user = res.json();
      expect(user).toMatchObject({ name: 'Grace Hopper', email: 'grace@example.org', status: 'pending', hasNationalInsuranceNumber: true, roles: [] });
      expect(JSON.stringify(user)).not.toMatch(/QQ ?12/i);
      expect((await api.get(`/api/v1/users/${user.id}`)).json()).toEqual(user);
      const found = (await api.get('/api/v1/users?q=grace')).json();
      expect(found.items.map((u: { id: string }) => u.id)).toEqual([user.id]);
      const [record] = await t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'user.created').where('subject_user_id', '=', user.id).execute();
      expect(record).toMatchObject({ actor_token_id: id, actor_user_id: null });
      expect(JSON.parse(record!.detail)).toMatchObject({ via: 'api', nationalId: true });
    });

    it('refuses a taken address with 409 and bad fields with 400, each named as in the body and in words for people', async () => {
      const { api } = await tokenFor(t, 'ra_agent_advanced');
      await api.post('/api/v1/users', { name: 'Taken', email: 'taken@example.org' });
      const taken = await api.post('/api/v1/users', { name: 'Again', email: 'TAKEN@example.org' });
      expect(taken.statusCode).toBe(409);
      expect(taken.json().error).toMatchObject({ code: 'user_exists', fields: [{ field: 'email', message: 'A user with this email address already exists' }] });

      const bad = await api.post('/api/v1/users', { name: ' ', email: 'not-an-address', nationalInsuranceNumber: '123' });
      expect(bad.statusCode).toBe(400);
      const fields = bad.json().error.fields as { field: string; message: string }[];
      expect(fields.map((f) => f.field)).toEqual(['name', 'email', 'nationalInsuranceNumber']);
      expect(fields[0]!.message).toBe('Enter the person’s full name');
      expect(fields[2]!.message).toMatch(/National Insurance number/);

      // Refused by the schema, not by checkNewUser: still named as sent, never a passkey's "name".
      const missing = await api.post('/api/v1/users', { email: 5 });
      expect(missing.statusCode).toBe(400);
      const missingFields = missing.json().error as { code: string; message: string; fields: { field: string; message: string }[] };
      expect(missingFields.code).toBe('validation_failed');
      expect(missingFields.fields.map((f) => f.field).sort()).toEqual(['email', 'name']);
      expect(missingFields.message).not.toMatch(/passkey/i);
    });

    it('pages a search with a cursor that covers every match once, in the console’s order', async () => {
      const { api } = await tokenFor(t, 'ra_agent');
      const { api: adder } = await tokenFor(t, 'ra_agent_advanced');
      // Names and addresses both start "page": each person matches twice, and must be listed once.
      for (let i = 0; i < 7; i++) expect((await adder.post('/api/v1/users', { name: `Page Person ${i}`, email: `page${i}@example.org` })).statusCode).toBe(201);
      // One who matches by email only, listed after the name matches.
      await adder.post('/api/v1/users', { name: 'Zed Other', email: 'pagezed@example.org' });
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await api.get(`/api/v1/users?q=page&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
        expect(res.statusCode).toBe(200);
        const body = res.json();
        expect(body.items.length).toBeLessThanOrEqual(3);
        seen.push(...body.items.map((u: { email: string }) => u.email));
        cursor = body.nextCursor;
        pages++;
      } while (cursor && pages < 10);
      expect(seen).toEqual([...Array.from({ length: 7 }, (_, i) => `page${i}@example.org`), 'pagezed@example.org']);
      // Without a query, everyone by name, once each.
      const all: string[] = [];
      cursor = null;
      do {
        const body: { items: { id: string }[]; nextCursor: string | null } = (await api.get(`/api/v1/users?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json();
        all.push(...body.items.map((u) => u.id));
        cursor = body.nextCursor;
      } while (cursor);
      expect(new Set(all).size).toBe(all.length);
      expect(all.length).toBe(await t.app.latchkey.store.users.count());

      const badCursor = await api.get('/api/v1/users?cursor=bm90LWEtY3Vyc29y');
      expect(badCursor.statusCode).toBe(400);
      expect(badCursor.json().error.fields).toEqual([{ field: 'cursor', message: expect.stringMatching(/not valid/) }]);
      const badLimit = await api.get('/api/v1/users?limit=1000');
      expect(badLimit.statusCode).toBe(400);
      expect(badLimit.json().error.fields[0].field).toBe('limit');
    });

    it('lists the roles, and sets a user’s roles as an RA Manager does', async () => {
      const { api, id } = await tokenFor(t, 'ra_manager');
      const roles = (await api.get('/api/v1/roles')).json().items;
      expect(roles.map((r: { role: string }) => r.role)).toEqual(['ra_manager', 'ra_agent_advanced', 'ra_agent', 'auditor']);
      expect(roles.find((r: { role: string }) => r.role === 'auditor').permissions).toEqual(['audit.read']);
      const user = (await api.post('/api/v1/users', { name: 'Role Person', email: 'role@example.org' })).json();
      const set = await api.put(`/api/v1/users/${user.id}/roles`, { roles: ['ra_agent', 'auditor', 'ra_agent'] });
      expect(set.statusCode).toBe(200);
      expect(set.json()).toEqual({ roles: ['auditor', 'ra_agent'] });
      expect((await api.get(`/api/v1/users/${user.id}/roles`)).json()).toEqual({ roles: ['auditor', 'ra_agent'] });
      expect((await api.get(`/api/v1/users/${user.id}`)).json().roles).toEqual(['auditor', 'ra_agent']);
      const unknown = await api.put(`/api/v1/users/${user.id}/roles`, { roles: ['superuser'] });
      expect(unknown.statusCode).toBe(400);
      expect(unknown.json().error.fields).toEqual([{ field: 'roles', message: 'Choose roles from the list' }]);
      const [changed] = await t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'roles.changed').where('subject_user_id', '=', user.id).execute();
      expect(changed).toMatchObject({ actor_token_id: id, actor_user_id: null });
      expect(await t.db.kysely.selectFrom('roles').select('granted_by').where('user_id', '=', user.id).execute()).toEqual([{ granted_by: null }, { granted_by: null }]);
    });
  });
});

describe('enrolments, authenticators and audit over the API', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ LATCHKEY_SMTP_URL: sink.url, LATCHKEY_ORGANISATION: 'St Elsewhere NHS Trust' });
  });
  afterAll(() => t.close());
  afterEach(() => sink.clear());

  async function newUser(email: string) {
    const { api } = await tokenFor(t, 'ra_agent_advanced');
    return (await api.post('/api/v1/users', { name: 'Mary Seacole', email })).json() as { id: string };
  }

  it('issues a link that works at /enrol, and reports its status from pending to enrolled', async () => {
    const { api, id } = await tokenFor(t, 'ra_agent_advanced');
    const user = await newUser('link@example.org');
    const issued = await api.post(`/api/v1/users/${user.id}/enrolments`, { method: 'link' });
    expect(issued.statusCode).toBe(201);
    const body = issued.json();
    expect(body).toMatchObject({ userId: user.id, method: 'link', status: 'pending', securityKey: false });
    expect(body.url).toMatch(/^http:\/\/localhost:3000\/enrol\/[A-Za-z0-9_-]{43}$/);
    expect(body.code).toBeUndefined();
    // Shown once: the status never carries the link.
    const status = await api.get(`/api/v1/enrolments/${body.id}`);
    expect(status.json()).toEqual({ id: body.id, userId: user.id, method: 'link', status: 'pending', securityKey: false, issuedAt: body.issuedAt, expiresAt: body.expiresAt });

    const path = new URL(body.url).pathname;
    const browser = new TestBrowser(t.app);
    expect((await browser.get(path)).statusCode).toBe(200);
    const opts = await browser.postJson(`${path}/options`, { name: 'My phone', placement: 'this-device' });
    const done = await browser.postJson(`${path}/verify`, { response: authenticator().createCredential(opts.json().options), name: 'My phone' });
    expect(done.statusCode).toBe(200);
    expect((await api.get(`/api/v1/enrolments/${body.id}`)).json().status).toBe('enrolled');
    expect((await api.get(`/api/v1/users/${user.id}`)).json().status).toBe('enrolled');
    const [record] = await t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'enrolment.link_issued').where('subject_user_id', '=', user.id).execute();
    expect(record).toMatchObject({ actor_token_id: id, actor_user_id: null });
  });

  it('issues a 9-character code, revokes it, and lists it as revoked', async () => {
    const { api } = await tokenFor(t, 'ra_agent_advanced');
    const user = await newUser('code@example.org');
    const issued = (await api.post(`/api/v1/users/${user.id}/enrolments`, { method: 'code' })).json();
    expect(issued.code).toMatch(/^[0-9A-HJKMNP-TV-Z]{9}$/);
    expect(issued.url).toBeUndefined();
    const revoked = await api.post(`/api/v1/enrolments/${issued.id}/revoke`);
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json().status).toBe('revoked');
    const again = await api.post(`/api/v1/enrolments/${issued.id}/revoke`);
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('enrolment_not_active');
    const list = (await api.get(`/api/v1/users/${user.id}/enrolments`)).json().items;
    expect(list).toEqual([expect.objectContaining({ id: issued.id, method: 'code', status: 'revoked' })]);
    expect((await api.get('/api/v1/enrolments/nope')).statusCode).toBe(404);
  });

  it('sends an enrolment email from a template, through a real SMTP server', async () => {
    const { api } = await tokenFor(t, 'ra_agent_advanced');
    const user = await newUser('email@example.org');
    const issued = await api.post(`/api/v1/users/${user.id}/enrolments`, { method: 'email' });
    expect(issued.statusCode).toBe(201);
    expect(issued.json()).toMatchObject({ method: 'email', status: 'pending', emailedTo: 'email@example.org' });
    expect(issued.json().url).toBeUndefined();
    const mail = await sink.waitFor((m) => m.to.includes('email@example.org'));
    expect(mail.text).toMatch(/http:\/\/localhost:3000\/enrol\/[A-Za-z0-9_-]{43}/);
    const unknownTemplate = await api.post(`/api/v1/users/${user.id}/enrolments`, { method: 'email', templateId: 'nope' });
    expect(unknownTemplate.statusCode).toBe(400);
    expect(unknownTemplate.json().error.fields).toEqual([{ field: 'templateId', message: 'That email template was not found' }]);
  });

  it('suspends (signing the person out, revoking their link) and reactivates; a suspended person gets no enrolment', async () => {
    const { api } = await tokenFor(t, 'ra_agent_advanced');
    const browser = await signUp(t.app, authenticator(), 'suspend@example.org', 'Sue Spend');
    expect((await browser.get('/settings')).statusCode).toBe(200);
    const user = (await t.app.latchkey.store.users.findByEmail('suspend@example.org'))!;
    const suspended = await api.post(`/api/v1/users/${user.id}/suspend`);
    expect(suspended.statusCode).toBe(200);
    expect(suspended.json().status).toBe('suspended');
    expect((await browser.get('/settings')).statusCode).not.toBe(200);
    const refused = await api.post(`/api/v1/users/${user.id}/enrolments`, { method: 'link' });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe('user_suspended');
    const back = await api.post(`/api/v1/users/${user.id}/reactivate`);
    expect(back.json().status).toBe('enrolled');
  });

  it('lists authenticators as the console describes them, and removes one: sessions end, the person is told', async () => {
    const { api, id } = await tokenFor(t, 'ra_agent_advanced');
    const browser = await signUp(t.app, authenticator(), 'remove@example.org', 'Rita Moved');
    const user = (await t.app.latchkey.store.users.findByEmail('remove@example.org'))!;
    const list = await api.get(`/api/v1/users/${user.id}/authenticators`);
    expect(list.statusCode).toBe(200);
    const [passkey] = list.json().items;
    expect(passkey).toMatchObject({ kind: 'passkey', kindLabel: 'Passkey', synced: expect.any(Boolean), aal: expect.any(Number), createdAt: expect.any(String) });
    const stored = (await t.app.latchkey.store.authenticators.listForUser(user.id))[0]!;
    expect(passkey.synced).toBe(stored.backup_eligible === 1);
    expect(passkey.aal).toBe(t.app.latchkey.kinds.assuranceOf(stored, user)!.aal);

    const removed = await api.delete(`/api/v1/users/${user.id}/authenticators/${passkey.id}`);
    expect(removed.statusCode).toBe(204);
    expect((await browser.get('/settings')).statusCode).not.toBe(200);
    expect((await api.get(`/api/v1/users/${user.id}`)).json().status).toBe('pending');
    const notice = await sink.waitFor((m) => m.to.includes('remove@example.org'));
    expect(notice.subject).toBe('A passkey was removed from your St Elsewhere NHS Trust account');
    const again = await api.delete(`/api/v1/users/${user.id}/authenticators/${passkey.id}`);
    expect(again.statusCode).toBe(404);
    const [record] = await t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'authenticator.removed').where('subject_user_id', '=', user.id).execute();
    expect(record).toMatchObject({ actor_token_id: id, actor_user_id: null });
  });

  it('never lets a token change the account of the person who made it, but lets it read it', async () => {
    await signUp(t.app, authenticator(), 'maker@example.org', 'Maker');
    const maker = (await t.app.latchkey.store.users.findByEmail('maker@example.org'))!;
    // A token works only while its maker may make tokens (guard.ts).
    await t.app.latchkey.store.roles.set(maker.id, ['ra_manager'], null, Date.now());
    const { api } = await tokenFor(t, 'ra_manager', maker.id);
    expect((await api.get(`/api/v1/users/${maker.id}`)).statusCode).toBe(200);
    const [passkey] = await t.app.latchkey.store.authenticators.listForUser(maker.id);
    for (const res of [
      await api.put(`/api/v1/users/${maker.id}/roles`, { roles: ['ra_manager', 'auditor'] }),
      await api.post(`/api/v1/users/${maker.id}/suspend`),
      await api.post(`/api/v1/users/${maker.id}/enrolments`, { method: 'link' }),
      await api.delete(`/api/v1/users/${maker.id}/authenticators/${passkey!.id}`),
    ]) {
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('own_account');
    }
    expect(await t.app.latchkey.store.roles.listForUser(maker.id)).toEqual(['ra_manager']);
    expect((await t.app.latchkey.store.users.findById(maker.id))!.status).toBe('enrolled');
  });

  it('searches the audit log by filters and by token, pages it, and exports the console’s CSV (audited)', async () => {
    const { api: adder, id: adderId } = await tokenFor(t, 'ra_agent_advanced');
    for (let i = 0; i < 5; i++) await adder.post('/api/v1/users', { name: `Audit Person ${i}`, email: `audit${i}@example.org` });
    const { api, id } = await tokenFor(t, 'auditor');
    const byToken = (await api.get(`/api/v1/audit?actor=${adderId}&event=user.created&limit=2`)).json();
    expect(byToken.items).toHaveLength(2);
    expect(byToken.items[0]).toMatchObject({ event: 'user.created', actor: null, actorTokenId: adderId, subject: { email: 'audit4@example.org' }, detail: { via: 'api' } });
    const emails: string[] = byToken.items.map((e: { subject: { email: string } }) => e.subject.email);
    let cursor = byToken.nextCursor;
    while (cursor) {
      const page = (await api.get(`/api/v1/audit?actor=${adderId}&event=user.created&limit=2&cursor=${cursor}`)).json();
      emails.push(...page.items.map((e: { subject: { email: string } }) => e.subject.email));
      cursor = page.nextCursor;
    }
    expect(emails).toEqual(['audit4', 'audit3', 'audit2', 'audit1', 'audit0'].map((e) => `${e}@example.org`));
    const bySubject = (await api.get('/api/v1/audit?subject=audit2@example.org')).json().items;
    expect(bySubject.map((e: { event: string }) => e.event)).toEqual(['user.created']);
    const badDay = await api.get('/api/v1/audit?from=yesterday');
    expect(badDay.statusCode).toBe(400);
    expect(badDay.json().error.fields).toEqual([{ field: 'from', message: 'Enter a date like 2026-11-22' }]);

    const csv = await api.get(`/api/v1/audit.csv?actor=${adderId}&event=user.created`);
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    const lines = csv.body.trim().split('\r\n');
    expect(lines[0]).toBe('time,event,outcome,actor_email,actor_name,actor_token_id,actor_token_name,subject_email,subject_name,authenticator_id,ip,user_agent,detail');
    expect(lines).toHaveLength(6);
    // As the cell is written (an id that starts with - is defused against spreadsheet formulas).
    expect(lines[1]!.split(',')[5]).toBe(csvCell(adderId));
    const [exported] = await t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'audit.exported').where('actor_token_id', '=', id).execute();
    expect(JSON.parse(exported!.detail)).toMatchObject({ rows: 5, via: 'api' });
  });
});

describe('bulk import over the API', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  const post = (token: string, query: string, csv: string, type = 'text/csv') =>
    t.app.inject({ method: 'POST', url: `/api/v1/users/import${query}`, payload: csv, headers: { authorization: `Bearer ${token}`, 'content-type': type } });

  it('checks every line before writing, reports by line, and writes with skipInvalid; roles only for a token that may grant them', async () => {
    const { store } = t.app.latchkey;
    const { token, record } = await createApiToken(store, { name: 'HR feed', role: 'ra_agent_advanced', days: 30, createdBy: null }, Date.now());
    const csv = 'name,email\nAda Lovelace,ada.import@example.org\nBad,not-an-email\n';
    const refused = await post(token, '', csv);
    expect(refused.statusCode).toBe(200);
    expect(refused.json()).toMatchObject({ written: false, created: 1, refusedLines: 1, refused: [{ line: 3, field: 'email' }] });
    expect(await store.users.findByEmail('ada.import@example.org')).toBeUndefined();
    const done = await post(token, '?skipInvalid=true&fileName=staff.csv', csv);
    expect(done.json()).toMatchObject({ written: true, created: 1 });
    const ada = await store.users.findByEmail('ada.import@example.org');
    expect(ada?.status).toBe('pending');
    const [created] = await t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'user.created').where('subject_user_id', '=', ada!.id).execute();
    expect(created).toMatchObject({ actor_token_id: record.id, actor_user_id: null });
    const [summary] = await t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'users.imported').where('outcome', '=', 'success').execute();
    expect(summary).toMatchObject({ actor_token_id: record.id });
    expect(JSON.parse(summary!.detail)).toMatchObject({ source: 'api', fileName: 'staff.csv', created: 1 });

    const roles = await post(token, '', 'name,email,roles\nGrace Hopper,grace.import@example.org,auditor\n');
    expect(roles.json()).toMatchObject({ written: false, refused: [{ line: 2, field: 'roles' }] });
    const manager = (await createApiToken(store, { name: 'Manager', role: 'ra_manager', days: 30, createdBy: null }, Date.now())).token;
    expect((await post(manager, '', 'name,email,roles\nGrace Hopper,grace.import@example.org,auditor\n')).json()).toMatchObject({ written: true, created: 1 });
    expect(await store.roles.listForUser((await store.users.findByEmail('grace.import@example.org'))!.id)).toEqual(['auditor']);
  });

  it('refuses a file it cannot read, JSON instead of CSV, and a token without users.add', async () => {
    const { store } = t.app.latchkey;
    const { token } = await createApiToken(store, { name: 'Importer', role: 'ra_agent_advanced', days: 30, createdBy: null }, Date.now());
    const unreadable = await post(token, '', 'name,phone\nA,1\n');
    expect(unreadable.statusCode).toBe(400);
    expect(unreadable.json().error).toMatchObject({ code: 'validation_failed' });
    expect(unreadable.json().error.message).toContain('Nothing was imported');
    expect((await post(token, '', '{"name":"x"}', 'application/json')).statusCode).toBe(400);
    const reader = (await createApiToken(store, { name: 'Reader', role: 'ra_agent', days: 30, createdBy: null }, Date.now())).token;
    const forbidden = await post(reader, '', 'name,email\nX,x.import@example.org\n');
    expect(forbidden.statusCode).toBe(403);
    expect(await store.users.findByEmail('x.import@example.org')).toBeUndefined();
  });
});
