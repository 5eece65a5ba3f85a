/**
 * The admin API as a whole: every route refuses a request without a token (401) and a token whose role lacks the
 * route's permission (403, exactly there and nowhere else, as the console's roles say), and the OpenAPI document is
 * valid OpenAPI 3.1 and describes exactly the routes the app serves.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, insertPasskey, type TestApp } from '../../test/support/app.js';
import { randomToken } from '../crypto.js';
import { can, ROLES, type Role } from '../admin/roles.js';
import { ANY_ROLE } from '../admin/guard.js';
import { createUser } from '../users/createUser.js';
import { issueInvite } from '../flows/enrolment/invites.js';
import { createApiToken } from './apiTokens.js';
import { apiRoutes } from './guard.js';

interface Target {
  userId: string;
  authenticatorId: string;
  flowId: string;
}

/** A request for each route, by `METHOD url` as registered; a new route must be added here (the test says so). */
const requests: Record<string, (x: Target) => { url: string; payload?: unknown }> = {
  'GET /api/v1/token': () => ({ url: '/api/v1/token' }),
  'POST /api/v1/users': () => ({ url: '/api/v1/users', payload: { name: 'New Person', email: `new-${randomToken(6)}@example.org` } }),
  'GET /api/v1/users': () => ({ url: '/api/v1/users?q=person' }),
  'GET /api/v1/users/:id': (x) => ({ url: `/api/v1/users/${x.userId}` }),
  'POST /api/v1/users/:id/suspend': (x) => ({ url: `/api/v1/users/${x.userId}/suspend` }),
  'POST /api/v1/users/:id/reactivate': (x) => ({ url: `/api/v1/users/${x.userId}/reactivate` }),
  'POST /api/v1/users/:id/enrolments': (x) => ({ url: `/api/v1/users/${x.userId}/enrolments`, payload: { method: 'link' } }),
  'GET /api/v1/users/:id/enrolments': (x) => ({ url: `/api/v1/users/${x.userId}/enrolments` }),
  'GET /api/v1/enrolments/:id': (x) => ({ url: `/api/v1/enrolments/${x.flowId}` }),
  'POST /api/v1/enrolments/:id/revoke': (x) => ({ url: `/api/v1/enrolments/${x.flowId}/revoke` }),
  'GET /api/v1/users/:id/authenticators': (x) => ({ url: `/api/v1/users/${x.userId}/authenticators` }),
  'DELETE /api/v1/users/:id/authenticators/:authenticatorId': (x) => ({ url: `/api/v1/users/${x.userId}/authenticators/${x.authenticatorId}` }),
  'GET /api/v1/roles': () => ({ url: '/api/v1/roles' }),
  'GET /api/v1/users/:id/roles': (x) => ({ url: `/api/v1/users/${x.userId}/roles` }),
  'PUT /api/v1/users/:id/roles': (x) => ({ url: `/api/v1/users/${x.userId}/roles`, payload: { roles: ['ra_agent'] } }),
  'GET /api/v1/audit': () => ({ url: '/api/v1/audit?event=user.created' }),
  'GET /api/v1/audit.csv': () => ({ url: '/api/v1/audit.csv?event=user.created' }),
  'POST /api/v1/users/import': () => ({ url: '/api/v1/users/import', payload: `name,email\nImported Person,imported-${randomToken(6)}@example.org\n` }),
};

describe('admin API access', () => {
  let t: TestApp;
  const tokens = new Map<Role, string>();

  beforeAll(async () => {
    t = await createTestApp();
    for (const role of ROLES) tokens.set(role, (await createApiToken(t.app.latchkey.store, { name: role, role, days: 30, createdBy: null }, Date.now())).token);
  });
  afterAll(() => t.close());

  /** A fresh enrolled person with a passkey and an outstanding link, so every allowed request finds what it acts on. */
  async function target(): Promise<Target> {
    const { store, config } = t.app.latchkey;
    const user = await createUser(store, { email: `person-${randomToken(6)}@example.org`, displayName: 'Person Example' }, Date.now());
    const authenticatorId = randomToken(8);
    await insertPasskey(store, { id: authenticatorId, user_id: user.id, credential_id: randomToken(16), public_key: 'x', transports: '[]' });
    await store.users.setStatus(user.id, 'enrolled', Date.now());
    const { flowId } = await issueInvite(store, config, user, Date.now());
    return { userId: user.id, authenticatorId, flowId };
  }

  const send = (route: { method: string; url: string }, x: Target, authorization?: string) => {
    const { url, payload } = requests[`${route.method} ${route.url}`]!(x);
    const type = typeof payload === 'string' ? { 'content-type': 'text/csv' } : {};
    return t.app.inject({ method: route.method as 'GET', url, payload: payload as object | undefined, headers: authorization ? { authorization, ...type } : type });
  };

  it('has a request in this test for every API route, and every route declares a console permission', () => {
    const registered = apiRoutes(t.app).map((r) => `${r.method} ${r.url}`).filter((r) => r.startsWith('GET /api/v1') || !r.startsWith('GET'));
    expect(registered.filter((r) => r.includes('/api/v1/')).sort()).toEqual(Object.keys(requests).sort());
  });

  it('refuses every route without a token, or with one that is not valid, with 401', async () => {
    const x = await target();
    for (const route of apiRoutes(t.app)) {
      for (const authorization of [undefined, 'Bearer lk_not-a-token']) {
        const res = await send(route, x, authorization);
        expect(res.statusCode, `${route.method} ${route.url} ${authorization ?? 'no token'}`).toBe(401);
        expect(res.json().error.code).toBe(authorization ? 'api_token_invalid' : 'api_token_required');
      }
    }
  });

  for (const role of ROLES) {
    it(`lets a ${role} token do exactly what the role may do in the console`, async () => {
      for (const route of apiRoutes(t.app)) {
        const allowed = route.permission === ANY_ROLE || can([role], route.permission as Parameters<typeof can>[1]);
        const res = await send(route, await target(), `Bearer ${tokens.get(role)}`);
        const label = `${role} ${route.method} ${route.url}: ${res.body.slice(0, 200)}`;
        if (allowed) {
          expect(res.statusCode, label).toBeLessThan(300);
        } else {
          expect(res.statusCode, label).toBe(403);
          expect(res.json().error.code, label).toBe('forbidden');
        }
      }
    });
  }
});

describe('the OpenAPI document', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('is served without a token, is valid OpenAPI 3.1, and describes exactly the registered API routes', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toContain('public');
    const doc = res.json();
    expect(doc.openapi).toBe('3.1.0');

    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 1)?.slice(0, 2000)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');

    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const registered = apiRoutes(t.app).map((r) => `${r.method} ${r.url.replace(/:([A-Za-z]+)/g, '{$1}')}`);
    expect(documented.sort()).toEqual(registered.sort());
    // Nothing but the API: no console, sign-in or provider route is described.
    expect(Object.keys(doc.paths).every((p) => p.startsWith('/api/v1/'))).toBe(true);
  });

  it('gives every operation an id, a summary, tags, the bearer scheme and the error shape', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/api/openapi.json' })).json();
    expect(doc.components.securitySchemes.apiToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    const ids = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const [method, op] of Object.entries(item)) {
        const where = `${method} ${path}`;
        expect(op.operationId, where).toBeTruthy();
        expect(ids.has(op.operationId), `${where}: operationId repeated`).toBe(false);
        ids.add(op.operationId);
        expect(op.summary, where).toBeTruthy();
        expect(op.tags?.length, where).toBeGreaterThan(0);
        expect(op.security, where).toEqual([{ apiToken: [] }]);
        for (const status of ['400', '401', '403']) {
          const schema = op.responses[status]?.content?.['application/json']?.schema;
          expect(schema?.properties?.error?.required, `${where} ${status}`).toEqual(['code', 'message']);
        }
      }
    }
  });
});
