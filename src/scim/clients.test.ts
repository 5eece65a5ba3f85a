/**
 * The request sequences Entra ID's and Okta's provisioning services send, with the bodies their documentation shows
 * (Microsoft: "Tutorial: Develop and plan provisioning for a SCIM endpoint"; Okta: "SCIM 2.0 protocol reference"),
 * on SQLite and PostgreSQL.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { testDatabases } from '../../test/support/databases.js';
import { createApiToken } from '../api/apiTokens.js';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ENTERPRISE_USER = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const LIST = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

const databases = await testDatabases();

describe.each(databases)('SCIM clients on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    afterAll(() => target.cleanup());
    let t: TestApp;
    let token: string;
    afterEach(async () => t?.close());
    const open = async () => {
      t = await createTestApp({}, { db: await target.open() });
      ({ token } = await createApiToken(t.app.latchkey.store, { name: 'Provisioning', role: 'ra_agent_advanced', days: 30, createdBy: null }, Date.now()));
    };
    // Both clients send application/scim+json (Entra ID adds a charset) and read the same back.
    const scim = async (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, body?: unknown, contentType = 'application/scim+json; charset=utf-8'): Promise<LightMyRequestResponse> => {
      const res = await t.app.inject({
        method,
        url: `/scim/v2${url}`,
        headers: { authorization: `Bearer ${token}`, accept: 'application/scim+json', ...(body !== undefined ? { 'content-type': contentType } : {}) },
        ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
      });
      if (res.statusCode !== 204) expect(res.headers['content-type']).toBe('application/scim+json; charset=utf-8');
      return res;
    };
    const query = (filter: string, extra = '') => `/Users?filter=${encodeURIComponent(filter)}${extra}`;
    const stored = (id: string) => t.app.latchkey.store.users.findById(id);

    it('Entra ID: probe, create, match, patch multi- and single-valued attributes, disable, delete', async () => {
      await open();
      // Entra ID checks the endpoint with a user that cannot exist, expecting an empty list, not a 404.
      const probe = await scim('GET', query('userName eq "non-existent user"'));
      expect(probe.statusCode).toBe(200);
      expect(probe.json()).toMatchObject({ schemas: [LIST], totalResults: 0, Resources: [], startIndex: 1 });
      expect((await scim('GET', query('userName eq "non-existent-user-5e3b2f0a-6c2b-4b6a-9a8e-1f2d3c4b5a69"'))).json().totalResults).toBe(0);

      const created = await scim('POST', '/Users', {
        schemas: [CORE_USER, ENTERPRISE_USER],
        externalId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef',
        userName: 'Test_User_ab6490ee@testuser.com',
        active: true,
        emails: [{ primary: true, type: 'work', value: 'Test_User_ab6490ee@testuser.com' }],
        meta: { resourceType: 'User' },
        name: { formatted: 'givenName familyName', familyName: 'familyName', givenName: 'givenName' },
        roles: [],
        [ENTERPRISE_USER]: { employeeNumber: '701984', department: 'Tour Operations' },
      });
      expect(created.statusCode, created.body).toBe(201);
      const user = created.json();
      expect(user).toMatchObject({ userName: 'Test_User_ab6490ee@testuser.com', externalId: '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef', displayName: 'givenName familyName', active: true });
      expect(created.body).not.toContain('701984');

      // Matching, by userName and by externalId (Entra ID's two matching attributes), and emails[type eq "work"].value.
      expect((await scim('GET', query('userName eq "Test_User_ab6490ee@testuser.com"'))).json()).toMatchObject({ totalResults: 1, Resources: [{ id: user.id }] });
      expect((await scim('GET', query('externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"'))).json()).toMatchObject({ totalResults: 1, Resources: [{ id: user.id }] });
      expect((await scim('GET', query('emails[type eq "work"].value eq "test_user_ab6490ee@testuser.com"'))).json()).toMatchObject({ totalResults: 1 });
      expect((await scim('GET', query('emails[type eq "home"].value eq "test_user_ab6490ee@testuser.com"'))).json()).toMatchObject({ totalResults: 0 });
      // A second create of the same person is refused as SCIM requires, so Entra ID matches instead.
      const again = await scim('POST', '/Users', { schemas: [CORE_USER], userName: 'test_user_ab6490ee@testuser.com', name: { formatted: 'Again' } });
      expect(again.statusCode).toBe(409);
      expect(again.json()).toMatchObject({ status: '409', scimType: 'uniqueness' });

      // Multi-valued properties: capitalised ops, a filtered path, and a sub-attribute alone.
      const multi = await scim('PATCH', `/Users/${user.id}`, {
        schemas: [PATCH_OP],
        Operations: [
          { op: 'Replace', path: 'emails[type eq "work"].value', value: 'updatedEmail@microsoft.com' },
          { op: 'Replace', path: 'name.familyName', value: 'updatedFamilyName' },
        ],
      });
      expect(multi.statusCode, multi.body).toBe(200);
      expect(multi.json()).toMatchObject({ userName: 'updatedEmail@microsoft.com', displayName: 'givenName updatedFamilyName', emails: [{ value: 'updatedEmail@microsoft.com', type: 'work', primary: true }] });
      expect(await stored(user.id)).toMatchObject({ email: 'updatedEmail@microsoft.com', display_name: 'givenName updatedFamilyName' });

      // Single-valued properties, with "Add" for one it may not know is set, and the enterprise extension.
      const single = await scim('PATCH', `/Users/${user.id}`, {
        schemas: [PATCH_OP],
        Operations: [
          { op: 'Replace', path: 'userName', value: '5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com' },
          { op: 'Add', path: 'displayName', value: 'Adele Vance' },
          { op: 'Add', path: 'externalId', value: '1f4a9c2e-0000-4000-8000-000000000001' },
          { op: 'Add', path: `${ENTERPRISE_USER}:manager`, value: '26118915-6090-4c8d-aaaa-000000000000' },
        ],
      });
      expect(single.statusCode, single.body).toBe(200);
      expect(await stored(user.id)).toMatchObject({ email: '5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com', scim_external_id: '1f4a9c2e-0000-4000-8000-000000000001' });

      // An object value without a path, with a dotted key, as Entra ID sends several attributes at once.
      const noPath = await scim('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'Replace', value: { 'name.givenName': 'Adele', 'name.familyName': 'Vance-Smith' } }] });
      expect(noPath.statusCode, noPath.body).toBe(200);
      expect((await stored(user.id))!.display_name).toBe('Adele Vance-Smith');

      // Disable: Entra ID without its 2020 compliance fixes sends the boolean as a string.
      const disabled = await scim('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] });
      expect(disabled.statusCode, disabled.body).toBe(200);
      expect(disabled.json().active).toBe(false);
      expect((await stored(user.id))!.status).toBe('suspended');
      // Then a GET by filter shows the user disabled (the SCIM validator's check).
      expect((await scim('GET', query('userName eq "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"'))).json().Resources[0].active).toBe(false);
      const enabled = await scim('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'Replace', path: 'active', value: true }] });
      expect(enabled.json().active).toBe(true);

      const deleted = await scim('DELETE', `/Users/${user.id}`);
      expect(deleted.statusCode).toBe(204);
      expect((await stored(user.id))!.status).toBe('suspended');

      const events = await t.db.kysely.selectFrom('audit_events').select(['event', 'detail']).where('subject_user_id', '=', user.id).orderBy('id').execute();
      expect(events.map((e) => e.event)).toEqual(['user.created', 'user.updated', 'user.updated', 'user.updated', 'user.suspended', 'user.reactivated', 'user.suspended']);
      expect(events.map((e) => JSON.parse(e.detail).fields).filter(Boolean)).toEqual([['name', 'email'], ['name', 'email', 'externalId'], ['name']]);
    });

    it('Okta: match with startIndex and count, create with a password it never keeps, PUT the full user, deactivate and reactivate', async () => {
      await open();
      const none = await scim('GET', query('userName eq "test.user@okta.local"', '&startIndex=1&count=100'));
      expect(none.json()).toMatchObject({ schemas: [LIST], totalResults: 0, startIndex: 1, itemsPerPage: 0, Resources: [] });

      const created = await scim(
        'POST',
        '/Users',
        {
          schemas: [CORE_USER],
          userName: 'test.user@okta.local',
          name: { givenName: 'Test', familyName: 'User' },
          emails: [{ primary: true, value: 'test.user@okta.local', type: 'work' }],
          displayName: 'Test User',
          locale: 'en-US',
          externalId: '00ujl29u0le5T6Aj10h7',
          groups: [],
          password: '1mz050nq',
          active: true,
        },
        'application/json',
      );
      expect(created.statusCode, created.body).toBe(201);
      const user = created.json();
      expect(user).toMatchObject({ userName: 'test.user@okta.local', displayName: 'Test User', externalId: '00ujl29u0le5T6Aj10h7', active: true });
      expect(created.body).not.toContain('1mz050nq');
      expect((await stored(user.id))!.password_hash).toBeNull();

      const matched = await scim('GET', query('userName eq "test.user@okta.local"', '&startIndex=1&count=100'));
      expect(matched.json()).toMatchObject({ totalResults: 1, startIndex: 1, itemsPerPage: 1, Resources: [{ id: user.id, userName: 'test.user@okta.local' }] });
      expect((await scim('GET', `/Users/${user.id}`)).json()).toEqual(user);

      // Okta changes a profile with PUT and the whole user, as it read it (id and meta included).
      const replaced = await scim('PUT', `/Users/${user.id}`, {
        schemas: [CORE_USER],
        id: user.id,
        userName: 'test.user@okta.local',
        name: { givenName: 'Another', familyName: 'User' },
        emails: [{ primary: true, value: 'test.user@okta.local', type: 'work' }],
        displayName: 'Another User',
        locale: 'en-US',
        externalId: '00ujl29u0le5T6Aj10h7',
        groups: [],
        password: 't1meMa$heen',
        active: true,
        meta: user.meta,
      });
      expect(replaced.statusCode, replaced.body).toBe(200);
      expect(replaced.json()).toMatchObject({ id: user.id, displayName: 'Another User', name: { givenName: 'Another', familyName: 'User' }, active: true });
      expect((await stored(user.id))!.password_hash).toBeNull();

      // A PUT that repeats what is held changes nothing and records nothing.
      const before = await t.db.kysely.selectFrom('audit_events').select('id').where('subject_user_id', '=', user.id).execute();
      expect((await scim('PUT', `/Users/${user.id}`, { ...(replaced.json() as object), password: 'again' })).statusCode).toBe(200);
      expect(await t.db.kysely.selectFrom('audit_events').select('id').where('subject_user_id', '=', user.id).execute()).toHaveLength(before.length);

      const deactivated = await scim('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: false } }] });
      expect(deactivated.statusCode, deactivated.body).toBe(200);
      expect(deactivated.json().active).toBe(false);
      expect((await stored(user.id))!.status).toBe('suspended');
      const reactivated = await scim('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { active: true } }] });
      expect(reactivated.json().active).toBe(true);
      expect((await stored(user.id))!.status).toBe('pending');

      // Okta's password sync, which ServiceProviderConfig says is not supported: answered, and nothing kept.
      const password = await scim('PATCH', `/Users/${user.id}`, { schemas: [PATCH_OP], Operations: [{ op: 'replace', value: { password: 'New-Passw0rd' } }] });
      expect(password.statusCode).toBe(200);
      expect((await stored(user.id))!.password_hash).toBeNull();

      // Okta lists everyone when it imports users, a page at a time.
      for (const n of [2, 3]) await scim('POST', '/Users', { schemas: [CORE_USER], userName: `user${n}@okta.local`, name: { givenName: 'User', familyName: String(n) } });
      const first = (await scim('GET', '/Users?startIndex=1&count=2')).json();
      const second = (await scim('GET', '/Users?startIndex=3&count=2')).json();
      expect(first).toMatchObject({ totalResults: 3, startIndex: 1, itemsPerPage: 2 });
      expect(second).toMatchObject({ totalResults: 3, startIndex: 3, itemsPerPage: 1 });
      expect(new Set([...first.Resources, ...second.Resources].map((u: { id: string }) => u.id)).size).toBe(3);
    });
  });
});
