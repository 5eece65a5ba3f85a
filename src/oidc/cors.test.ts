/**
 * CORS on the provider's endpoints, over app.inject: discovery and the JWKS for
 * any origin; token, userinfo and revocation only from a public service's
 * redirect URI origins, never for a confidential service.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { createUser } from '../users/createUser.js';
import { addService } from './services.js';

const SPA = 'https://spa.example';
const RP = 'https://rp.example';
const ELSEWHERE = 'https://evil.example';
const form = { 'content-type': 'application/x-www-form-urlencoded' };

describe('CORS on the OpenID Connect endpoints', () => {
  let t: TestApp;
  let spaId: string;
  let rpId: string;
  let rpSecret: string;
  let userId: string;

  beforeEach(async () => {
    t = await createTestApp();
    const { store, secretBox } = t.app.latchkey;
    const spa = await addService(store, secretBox, { name: 'Rota app', redirectUris: [`${SPA}/callback`], clientType: 'public', aal: 2, firstParty: true }, Date.now());
    const rp = await addService(store, secretBox, { name: 'Payroll', redirectUris: [`${RP}/callback`], clientType: 'confidential', aal: 2, firstParty: true }, Date.now());
    spaId = spa.service.client_id;
    rpId = rp.service.client_id;
    rpSecret = rp.clientSecret!;
    userId = (await createUser(store, { email: 'mary@example.com', displayName: 'Mary Seacole' }, Date.now())).id;
  });
  afterEach(() => t.close());

  /** An access token for the user, issued to that service (as the code flow would). */
  async function accessTokenFor(clientId: string): Promise<string> {
    const provider = t.app.latchkey.oidc!;
    const client = (await provider.Client.find(clientId))!;
    const grant = new provider.Grant({ accountId: userId, clientId });
    grant.addOIDCScope('openid email');
    const grantId = await grant.save();
    return new provider.AccessToken({ client, accountId: userId, grantId, scope: 'openid email', gty: 'authorization_code' }).save();
  }

  const preflight = (url: string, origin: string) =>
    t.app.inject({ method: 'OPTIONS', url, headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' } });

  it('discovery and the JWKS can be read from any origin', async () => {
    for (const url of ['/.well-known/openid-configuration', '/oidc/jwks']) {
      const res = await t.app.inject({ method: 'GET', url, headers: { origin: ELSEWHERE } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['access-control-allow-origin']).toBe(ELSEWHERE);
      expect((await preflight(url, ELSEWHERE)).headers['access-control-allow-origin']).toBe(ELSEWHERE);
    }
  });

  it('a public service’s origin may call the token, userinfo and revocation endpoints', async () => {
    for (const url of ['/oidc/token', '/oidc/me', '/oidc/token/revocation']) {
      const res = await preflight(url, SPA);
      expect(res.statusCode).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe(SPA);
    }
    const token = await t.app.inject({
      method: 'POST',
      url: '/oidc/token',
      headers: { ...form, origin: SPA },
      payload: new URLSearchParams({ grant_type: 'refresh_token', client_id: spaId, refresh_token: 'not-a-real-one' }).toString(),
    });
    // The grant is refused on its merits, and the page is allowed to read why.
    expect(token.json()).toMatchObject({ error: 'invalid_grant' });
    expect(token.headers['access-control-allow-origin']).toBe(SPA);
    const info = await t.app.inject({ method: 'GET', url: '/oidc/me', headers: { origin: SPA, authorization: `Bearer ${await accessTokenFor(spaId)}` } });
    expect(info.statusCode).toBe(200);
    expect(info.json()).toMatchObject({ sub: userId, email: 'mary@example.com' });
    expect(info.headers['access-control-allow-origin']).toBe(SPA);
    const revoked = await t.app.inject({
      method: 'POST',
      url: '/oidc/token/revocation',
      headers: { ...form, origin: SPA },
      payload: new URLSearchParams({ client_id: spaId, token: 'not-a-real-one' }).toString(),
    });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.headers['access-control-allow-origin']).toBe(SPA);
  });

  it('any other origin is refused: no preflight, and the request fails before the grant is looked at', async () => {
    for (const url of ['/oidc/token', '/oidc/me', '/oidc/token/revocation']) {
      const res = await preflight(url, ELSEWHERE);
      expect(res.statusCode).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    }
    const token = await t.app.inject({
      method: 'POST',
      url: '/oidc/token',
      headers: { ...form, origin: ELSEWHERE },
      payload: new URLSearchParams({ grant_type: 'refresh_token', client_id: spaId, refresh_token: 'not-a-real-one' }).toString(),
    });
    expect(token.statusCode).toBe(400);
    expect(token.json()).toMatchObject({ error: 'invalid_request', error_description: `origin ${ELSEWHERE} not allowed for client: ${spaId}` });
    expect(token.headers['access-control-allow-origin']).toBeUndefined();
    const info = await t.app.inject({ method: 'GET', url: '/oidc/me', headers: { origin: ELSEWHERE, authorization: `Bearer ${await accessTokenFor(spaId)}` } });
    expect(info.statusCode).toBe(400);
    expect(info.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('a confidential service gets no CORS at all, not even from its own redirect URIs’ origin', async () => {
    for (const url of ['/oidc/token', '/oidc/me', '/oidc/token/revocation']) {
      expect((await preflight(url, RP)).headers['access-control-allow-origin']).toBeUndefined();
    }
    const basic = `Basic ${Buffer.from(`${encodeURIComponent(rpId)}:${encodeURIComponent(rpSecret)}`).toString('base64')}`;
    const token = await t.app.inject({
      method: 'POST',
      url: '/oidc/token',
      headers: { ...form, origin: RP, authorization: basic },
      payload: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'not-a-real-one' }).toString(),
    });
    expect(token.json()).toMatchObject({ error: 'invalid_request' });
    expect(token.headers['access-control-allow-origin']).toBeUndefined();
    // oidc-provider's default would allow this one (userinfo from any client's redirect URI origin).
    const info = await t.app.inject({ method: 'GET', url: '/oidc/me', headers: { origin: RP, authorization: `Bearer ${await accessTokenFor(rpId)}` } });
    expect(info.statusCode).toBe(400);
    expect(info.headers['access-control-allow-origin']).toBeUndefined();
    // Server to server, with no Origin, is what a confidential service does: that still works.
    const direct = await t.app.inject({ method: 'GET', url: '/oidc/me', headers: { authorization: `Bearer ${await accessTokenFor(rpId)}` } });
    expect(direct.statusCode).toBe(200);
  });
});
