/**
 * The admin API's gate: a bearer token, never a cookie; expired and revoked tokens refused; a token acts with its role
 * only; every use and refusal recorded with the token as actor.
 */
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, type TestApp } from '../../test/support/app.js';
import { createApiToken } from './apiTokens.js';
import { createUser } from '../users/createUser.js';
import { guardApi } from './guard.js';

const DAY = 24 * 60 * 60 * 1000;

describe('admin API gate', () => {
  let t: TestApp;
  let clock = Date.now();
  beforeAll(async () => {
    t = await createTestApp({}, { now: () => clock });
  });
  afterAll(() => t.close());

  const make = (role: 'ra_manager' | 'ra_agent' | 'auditor' = 'ra_agent', days = 30) =>
    createApiToken(t.app.latchkey.store, { name: `${role} token`, role, days, createdBy: null }, clock);
  const get = (authorization?: string, url = '/api/v1/token') =>
    t.app.inject({ method: 'GET', url, headers: authorization === undefined ? {} : { authorization } });

  it('answers the token with its name and role, and records the read with the token as actor', async () => {
    const { token, record } = await make('auditor');
    const res = await get(`Bearer ${token}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ id: record.id, name: 'auditor token', role: 'auditor' });
    const [read] = await t.app.latchkey.store.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'api.read').where('actor_token_id', '=', record.id).execute();
    expect(read).toMatchObject({ actor_user_id: null, outcome: 'success' });
    expect(JSON.parse(read!.detail)).toMatchObject({ action: 'GET /api/v1/token' });
    expect((await t.app.latchkey.store.apiTokens.findById(record.id))!.last_used_at).toBe(clock);
  });

  it('refuses a request without a token with 401, a challenge and the registry shape', async () => {
    for (const header of [undefined, '', 'Basic dXNlcjpwYXNz', 'Bearer', 'Bearer  ']) {
      const res = await get(header);
      expect(res.statusCode, String(header)).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="latchkey"');
      expect(res.json().error.code).toBe('api_token_required');
    }
  });

  it('refuses unknown, expired and revoked tokens alike, and audits the refusal', async () => {
    const expired = await make('ra_manager', 1);
    const revoked = await make('ra_manager');
    await t.app.latchkey.store.apiTokens.revoke(revoked.record.id, clock);
    clock += DAY + 1;
    for (const token of ['lk_' + 'x'.repeat(43), expired.token, revoked.token, 'not-a-token']) {
      const res = await get(`Bearer ${token}`);
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('api_token_invalid');
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
    }
    const refusals = await t.app.latchkey.store.kysely.selectFrom('audit_events').selectAll().where('event', '=', 'api.refused').execute();
    const invalid = refusals.filter((r) => JSON.parse(r.detail).reason === 'api_token_invalid');
    expect(invalid).toHaveLength(4);
    expect(invalid[0]).toMatchObject({ outcome: 'refused', actor_user_id: null, actor_token_id: null });
  });

  it('never lets a console session cookie stand in for a token', async () => {
    const browser = await signUp(t.app, authenticator(), 'cookie@example.com');
    const res = await browser.get('/api/v1/token');
    expect(res.statusCode).toBe(401);
    expect(res.json().error.code).toBe('api_token_required');
  });
});

describe('guardApi', () => {
  it('refuses to register an API route that declares no permission', async () => {
    const t = await createTestApp();
    try {
      const app = Fastify();
      app.decorate('latchkey', t.app.latchkey);
      let refused: unknown;
      await app.register(async (scope) => {
        guardApi(scope, { area: 'api' });
        try {
          scope.get('/api/v1/open', async () => 'open');
        } catch (error) {
          refused = error;
        }
      });
      await app.ready();
      expect(String(refused)).toMatch(/API route GET \/api\/v1\/open declares no permission/);
      await app.close();
    } finally {
      await t.close();
    }
  });
});

describe('a token and the person who made it', () => {
  it('stops working while its maker is suspended or no longer may make tokens, and never changes its maker over SCIM', async () => {
    const t = await createTestApp();
    try {
      const { store } = t.app.latchkey;
      const maker = await createUser(store, { email: 'maker@example.org', displayName: 'Token Maker' }, Date.now());
      await store.roles.set(maker.id, ['ra_manager'], null, Date.now());
      const { token } = await createApiToken(store, { name: 'HR feed', role: 'ra_agent_advanced', days: 30, createdBy: maker.id }, Date.now());
      const get = () => t.app.inject({ method: 'GET', url: '/api/v1/token', headers: { authorization: `Bearer ${token}` } });
      expect((await get()).statusCode).toBe(200);
      await store.users.setStatus(maker.id, 'suspended', Date.now());
      expect((await get()).json().error.code).toBe('api_token_invalid');
      await store.users.setStatus(maker.id, 'pending', Date.now());
      expect((await get()).statusCode).toBe(200);
      await store.roles.set(maker.id, ['ra_agent_advanced'], null, Date.now());
      expect((await get()).statusCode).toBe(401);
      await store.roles.set(maker.id, ['ra_manager'], null, Date.now());
      expect((await get()).statusCode).toBe(200);

      const patch = await t.app.inject({
        method: 'PATCH',
        url: `/scim/v2/Users/${maker.id}`,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
        payload: { schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'replace', path: 'active', value: false }] },
      });
      expect(patch.statusCode).toBe(403);
      expect((await store.users.findById(maker.id))!.status).toBe('pending');
      const other = await createUser(store, { email: 'other@example.org', displayName: 'Other Person' }, Date.now());
      const deleted = await t.app.inject({ method: 'DELETE', url: `/scim/v2/Users/${other.id}`, headers: { authorization: `Bearer ${token}` } });
      expect(deleted.statusCode).toBe(204);
    } finally {
      await t.close();
    }
  });
});
