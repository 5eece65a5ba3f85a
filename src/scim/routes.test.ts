/**
 * SCIM at /scim/v2 through the real app: a user's whole life (create, read, find, replace, suspend and reactivate,
 * delete), the discovery endpoints, errors in RFC 7644 §3.12's shape, the gate's 401 and 403, and the audit records
 * that name the token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { authenticator, createTestApp, signUp, TEST_ORIGIN, type TestApp } from '../../test/support/app.js';
import { createApiToken } from '../api/apiTokens.js';
import type { Role } from '../db/schema.js';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const LATCHKEY_EXTENSION = 'urn:ietf:params:scim:schemas:extension:latchkey:2.0:User';

describe('SCIM /scim/v2', () => {
  let t: TestApp;
  let token: string;
  let tokenId: string;
  beforeAll(async () => {
    t = await createTestApp();
    ({ token, record: { id: tokenId } } = await makeToken('ra_agent_advanced'));
  });
  afterAll(() => t.close());

  const makeToken = (role: Role) => createApiToken(t.app.latchkey.store, { name: `SCIM ${role}`, role, days: 30, createdBy: null }, Date.now());
  const scim = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown, bearer: string | null = token): Promise<LightMyRequestResponse> =>
    t.app.inject({
      method,
      url: `/scim/v2${url}`,
      headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(body !== undefined ? { 'content-type': 'application/scim+json' } : {}) },
      ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    });
  const expectScimError = (res: LightMyRequestResponse, status: number, scimType?: string) => {
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toBe('application/scim+json; charset=utf-8');
    const body = res.json();
    expect(body.schemas).toEqual([ERROR]);
    expect(body.status).toBe(String(status));
    if (scimType) expect(body.scimType).toBe(scimType);
    else expect(body.scimType).toBeUndefined();
    expect(body.detail).toEqual(expect.any(String));
    return body as { detail: string };
  };
  const audits = (event: string) => t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', event).orderBy('id').execute();

  it('creates, reads, finds, replaces, suspends, reactivates and deletes a user', async () => {
    const created = await scim('POST', '/Users', {
      schemas: [CORE_USER],
      userName: 'Grace.Hopper@Example.org',
      name: { givenName: 'Grace', familyName: 'Hopper' },
      externalId: 'hr-1906',
      active: true,
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.headers['content-type']).toBe('application/scim+json; charset=utf-8');
    const user = created.json();
    expect(user).toMatchObject({
      schemas: [CORE_USER],
      userName: 'Grace.Hopper@Example.org',
      externalId: 'hr-1906',
      displayName: 'Grace Hopper',
      name: { formatted: 'Grace Hopper', givenName: 'Grace', familyName: 'Hopper' },
      emails: [{ value: 'Grace.Hopper@Example.org', type: 'work', primary: true }],
      active: true,
      meta: { resourceType: 'User', location: `${TEST_ORIGIN}/scim/v2/Users/${user.id}` },
    });
    expect(created.headers.location).toBe(user.meta.location);
    expect(new Date(user.meta.created).getTime()).toBeGreaterThan(0);
    const stored = (await t.app.latchkey.store.users.findById(user.id))!;
    expect(stored).toMatchObject({ email: 'Grace.Hopper@Example.org', display_name: 'Grace Hopper', status: 'pending', scim_external_id: 'hr-1906' });

    expect((await scim('GET', `/Users/${user.id}`)).json()).toEqual(user);

    // userName eq is how provisioning clients match people: case-insensitive, as addresses are.
    const found = await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "grace.hopper@example.ORG"')}`);
    expect(found.statusCode).toBe(200);
    expect(found.json()).toEqual({ schemas: [LIST], totalResults: 1, startIndex: 1, itemsPerPage: 1, Resources: [user] });
    expect((await scim('GET', `/Users?filter=${encodeURIComponent('externalId eq "hr-1906"')}`)).json().Resources.map((u: { id: string }) => u.id)).toEqual([user.id]);
    expect((await scim('GET', `/Users?filter=${encodeURIComponent('emails.value eq "grace.hopper@example.org"')}`)).json().totalResults).toBe(1);
    expect((await scim('GET', `/Users?filter=${encodeURIComponent('externalId eq "HR-1906"')}`)).json().totalResults).toBe(0);

    const replaced = await scim('PUT', `/Users/${user.id}`, {
      schemas: [CORE_USER],
      id: user.id,
      userName: 'grace@example.org',
      name: { givenName: 'Grace', familyName: 'Brewster Hopper' },
      externalId: 'hr-1906',
      active: true,
    });
    expect(replaced.statusCode, replaced.body).toBe(200);
    expect(replaced.json()).toMatchObject({ userName: 'grace@example.org', displayName: 'Grace Brewster Hopper', active: true });
    const [updated] = await audits('user.updated');
    expect(updated).toMatchObject({ subject_user_id: user.id, actor_token_id: tokenId, actor_user_id: null });
    expect(JSON.parse(updated!.detail)).toEqual({ fields: ['name', 'email'], via: 'scim' });

    const suspended = await scim('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: false }] });
    expect(suspended.statusCode, suspended.body).toBe(200);
    expect(suspended.json()).toMatchObject({ id: user.id, active: false });
    expect((await t.app.latchkey.store.users.findById(user.id))!.status).toBe('suspended');
    // Saying it again changes nothing and records nothing.
    expect((await scim('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: false }] })).statusCode).toBe(200);
    expect(await audits('user.suspended')).toHaveLength(1);

    const reactivated = await scim('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: true }] });
    expect(reactivated.json()).toMatchObject({ active: true });
    expect((await t.app.latchkey.store.users.findById(user.id))!.status).toBe('pending');

    const deleted = await scim('DELETE', `/Users/${user.id}`);
    expect(deleted.statusCode).toBe(204);
    expect(deleted.body).toBe('');
    // DELETE suspends: the person is still there, inactive, with their history.
    const after = await scim('GET', `/Users/${user.id}`);
    expect(after.statusCode).toBe(200);
    expect(after.json()).toMatchObject({ id: user.id, active: false, userName: 'grace@example.org' });
    expect((await audits('user.suspended')).map((e) => JSON.parse(e.detail).via)).toEqual(['scim', 'scim']);
    expect((await audits('user.created')).filter((e) => e.subject_user_id === user.id)).toMatchObject([{ actor_token_id: tokenId, actor_user_id: null }]);
    // Reads are recorded too, naming the token.
    const reads = await t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'scim.read').where('actor_token_id', '=', tokenId).execute();
    expect(reads.map((r) => JSON.parse(r.detail).action)).toContain('GET /scim/v2/Users/:id');
  });

  it('suspending through SCIM signs the person out', async () => {
    const browser = await signUp(t.app, authenticator(), 'signed.in@example.org', 'Signed In');
    expect((await browser.get('/settings')).statusCode).toBe(200);
    const [found] = (await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "signed.in@example.org"')}`)).json().Resources;
    expect(found).toMatchObject({ active: true, displayName: 'Signed In' });
    expect((await scim('PATCH', `/Users/${found.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: false } }] })).statusCode).toBe(200);
    expect((await browser.get('/settings')).statusCode).toBe(302);
  });

  it('creates someone already disabled as a suspended user, as providers do for a soft-deleted account', async () => {
    const res = await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'left@example.org', displayName: 'Already Left', active: false });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().active).toBe(false);
    expect((await t.app.latchkey.store.users.findById(res.json().id))!.status).toBe('suspended');
  });

  it('takes a National Insurance number through the latchkey extension and never returns it', async () => {
    const res = await scim('POST', '/Users', {
      schemas: [CORE_USER, LATCHKEY_EXTENSION],
      userName: 'ni@example.org',
      displayName: 'Nia Insurance',
      [LATCHKEY_EXTENSION]: { nationalInsuranceNumber: 'qq 12 34 56 c' },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.body).not.toMatch(/QQ123456C|nationalInsuranceNumber/i);
    expect((await t.app.latchkey.store.users.findById(res.json().id))!.national_id_hash).toMatch(/.+/);
    const bad = await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'ni2@example.org', displayName: 'Bad Number', [LATCHKEY_EXTENSION]: { nationalInsuranceNumber: '12345' } });
    expect(expectScimError(bad, 400, 'invalidValue').detail).toMatch(/National Insurance number/);
  });

  it('pages through everyone with startIndex and count', async () => {
    for (const n of [1, 2, 3]) expect((await scim('POST', '/Users', { schemas: [CORE_USER], userName: `page${n}@example.org`, displayName: `Zz Page ${n}` })).statusCode).toBe(201);
    const total = await t.app.latchkey.store.users.count();
    const all = (await scim('GET', '/Users?startIndex=1&count=200')).json();
    expect(all).toMatchObject({ totalResults: total, startIndex: 1, itemsPerPage: total });
    const second = (await scim('GET', '/Users?startIndex=2&count=2')).json();
    expect(second).toMatchObject({ totalResults: total, startIndex: 2, itemsPerPage: 2 });
    expect(second.Resources.map((u: { id: string }) => u.id)).toEqual(all.Resources.slice(1, 3).map((u: { id: string }) => u.id));
    // count=0 asks only how many (RFC 7644 §3.4.2.4); a start below 1 is 1.
    expect((await scim('GET', '/Users?count=0')).json()).toMatchObject({ totalResults: total, itemsPerPage: 0, Resources: [] });
    expect((await scim('GET', '/Users?startIndex=-5&count=1')).json()).toMatchObject({ startIndex: 1, itemsPerPage: 1 });
    // attributes narrows what comes back; id and schemas always come.
    const narrow = (await scim('GET', `/Users?filter=${encodeURIComponent('userName eq "page1@example.org"')}&attributes=userName`)).json().Resources[0];
    expect(narrow).toEqual({ schemas: [CORE_USER], id: expect.any(String), userName: 'page1@example.org' });
    const without = (await scim('GET', `/Users/${narrow.id}?excludedAttributes=emails,name`)).json();
    expect(without).toMatchObject({ schemas: [CORE_USER], id: narrow.id, userName: 'page1@example.org', displayName: 'Zz Page 1' });
    expect(without.emails).toBeUndefined();
    expect(without.name).toBeUndefined();
  });

  it('describes itself: ServiceProviderConfig, ResourceTypes and Schemas with the RFC’s URNs', async () => {
    const config = await scim('GET', '/ServiceProviderConfig');
    expect(config.statusCode).toBe(200);
    expect(config.json()).toMatchObject({
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig'],
      patch: { supported: true },
      filter: { supported: true, maxResults: 200 },
      bulk: { supported: false },
      sort: { supported: false },
      etag: { supported: false },
      changePassword: { supported: false },
      authenticationSchemes: [{ type: 'oauthbearertoken', name: 'API token' }],
    });

    const types = (await scim('GET', '/ResourceTypes')).json();
    expect(types).toMatchObject({ schemas: [LIST], totalResults: 1 });
    expect(types.Resources[0]).toMatchObject({
      schemas: ['urn:ietf:params:scim:schemas:core:2.0:ResourceType'],
      id: 'User',
      endpoint: '/Users',
      schema: CORE_USER,
      meta: { location: `${TEST_ORIGIN}/scim/v2/ResourceTypes/User` },
    });
    expect(types.Resources[0].schemaExtensions).toEqual(
      expect.arrayContaining([
        { schema: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User', required: false },
        { schema: LATCHKEY_EXTENSION, required: false },
      ]),
    );
    expect((await scim('GET', '/ResourceTypes/User')).json()).toEqual(types.Resources[0]);

    const schemas = (await scim('GET', '/Schemas')).json();
    expect(schemas.Resources.map((s: { id: string }) => s.id)).toEqual(expect.arrayContaining([CORE_USER, LATCHKEY_EXTENSION]));
    const user = (await scim('GET', `/Schemas/${CORE_USER}`)).json();
    expect(user).toMatchObject({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Schema'], id: CORE_USER, name: 'User' });
    expect(user.attributes.map((a: { name: string }) => a.name)).toEqual(expect.arrayContaining(['userName', 'name', 'displayName', 'emails', 'active']));
    const extension = (await scim('GET', `/Schemas/${LATCHKEY_EXTENSION}`)).json();
    expect(extension.attributes).toMatchObject([{ name: 'nationalInsuranceNumber', returned: 'never', mutability: 'writeOnly' }]);

    expectScimError(await scim('GET', '/ResourceTypes/Group'), 404);
    expectScimError(await scim('GET', '/Schemas/urn:nope'), 404);
    expectScimError(await scim('GET', '/Groups'), 404);
  });

  it('answers mistakes in SCIM’s error shape with a scimType where the RFC has one', async () => {
    const existing = (await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'taken@example.org', displayName: 'Taken' })).json();
    // 409 uniqueness for a userName in use, whatever its case.
    expectScimError(await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'TAKEN@example.org', displayName: 'Again' }), 409, 'uniqueness');
    const other = (await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'other@example.org', displayName: 'Other' })).json();
    expectScimError(await scim('PUT', `/Users/${other.id}`, { schemas: [CORE_USER], userName: 'taken@example.org', displayName: 'Other' }), 409, 'uniqueness');
    expect((await t.app.latchkey.store.users.findById(other.id))!.email).toBe('other@example.org');

    // 400 invalidFilter: unparseable, or an attribute or operator Latchkey does not filter by.
    for (const filter of ['userName eq', 'displayName eq "Taken"', 'userName sw "t"', 'userName eq "a" or userName eq "b"']) {
      expect(expectScimError(await scim('GET', `/Users?filter=${encodeURIComponent(filter)}`), 400, 'invalidFilter').detail, filter).toMatch(/./);
    }
    // 400 invalidValue: not an email address, no name, a wrong type.
    expect(expectScimError(await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'not-an-email', displayName: 'X' }), 400, 'invalidValue').detail).toMatch(/email address/);
    expect(expectScimError(await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'noname@example.org' }), 400, 'invalidValue').detail).toMatch(/name/);
    expectScimError(await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'x@example.org', displayName: 'X', active: 'perhaps' }), 400, 'invalidValue');
    expectScimError(await scim('PATCH', `/Users/${existing.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'nickName.nope', value: 1 }] }), 400, 'invalidPath');
    expectScimError(await scim('PATCH', `/Users/${existing.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'explode', path: 'active', value: false }] }), 400, 'invalidSyntax');
    // 404 for no such user (and for ids Latchkey never makes).
    for (const id of ['nobody', 'a%22b', 'x'.repeat(70)]) {
      expectScimError(await scim('GET', `/Users/${id}`), 404);
      expectScimError(await scim('PATCH', `/Users/${id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', path: 'active', value: false }] }), 404);
      expectScimError(await scim('DELETE', `/Users/${id}`), 404);
    }
    // Not JSON, and over the app's body limit.
    const broken = await t.app.inject({ method: 'POST', url: '/scim/v2/Users', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' }, payload: '{"userName":' });
    expectScimError(broken, 400, 'invalidSyntax');
    expectScimError(await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'big@example.org', displayName: 'x'.repeat(70_000) }), 413);
    // count must be a number.
    expect(expectScimError(await scim('GET', '/Users?count=lots'), 400, 'invalidValue').detail).toContain('count must be integer');
  });

  it('refuses without a token (401) and beyond the token’s role (403), in SCIM’s shape, and audits the refusal', async () => {
    const missing = await scim('GET', '/Users', undefined, null);
    expect(expectScimError(missing, 401).detail).toMatch(/Authorization: Bearer/);
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="latchkey"');
    expectScimError(await scim('GET', '/ServiceProviderConfig', undefined, 'lk_' + 'x'.repeat(43)), 401);
    expectScimError(await scim('GET', '/Nowhere', undefined, null), 401);

    const auditor = await makeToken('auditor');
    const refused = await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'auditor-made@example.org', displayName: 'Nope' }, auditor.token);
    expect(expectScimError(refused, 403).detail).toMatch(/Auditor/);
    expect(await t.app.latchkey.store.users.findByEmail('auditor-made@example.org')).toBeUndefined();
    const refusals = await audits('scim.refused');
    expect(refusals.find((r) => r.actor_token_id === auditor.record.id)).toMatchObject({ outcome: 'refused' });
    expect(JSON.parse(refusals.find((r) => r.actor_token_id === auditor.record.id)!.detail)).toMatchObject({ action: 'POST /scim/v2/Users', reason: 'forbidden' });
    // Discovery is open to any role; users are not.
    expect((await scim('GET', '/ServiceProviderConfig', undefined, auditor.token)).statusCode).toBe(200);
    expectScimError(await scim('GET', '/Users', undefined, auditor.token), 403);

    // An RA Agent may look but not change.
    const agent = await makeToken('ra_agent');
    expect((await scim('GET', '/Users?count=1', undefined, agent.token)).statusCode).toBe(200);
    const someone = (await scim('GET', '/Users?count=1')).json().Resources[0];
    expectScimError(await scim('DELETE', `/Users/${someone.id}`, undefined, agent.token), 403);
  });
});

describe('SCIM when Latchkey itself fails', () => {
  it('answers 500 in SCIM’s shape with nothing of the cause, not the 404 SCIMMY would make of it', async () => {
    const t = await createTestApp();
    try {
      const { token } = await createApiToken(t.app.latchkey.store, { name: 'SCIM', role: 'ra_agent_advanced', days: 1, createdBy: null }, Date.now());
      // A real database failure inside SCIMMY's read handler: the table the users query reads is gone.
      await t.db.kysely.schema.alterTable('users').renameTo('users_gone').execute();
      const res = await t.app.inject({ method: 'GET', url: '/scim/v2/Users/abcdefghijklmnop', headers: { authorization: `Bearer ${token}` } });
      expect(res.statusCode).toBe(500);
      expect(res.headers['content-type']).toBe('application/scim+json; charset=utf-8');
      expect(res.json()).toEqual({ schemas: [ERROR], status: '500', detail: expect.stringMatching(/went wrong/) });
      expect(res.body).not.toMatch(/users|sqlite|table/i);
    } finally {
      await t.close();
    }
  });
});
