import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../test/support/app.js';
import { testDatabases } from '../../test/support/databases.js';

// On both databases: PostgreSQL refuses values SQLite stores (a 20-digit number, U+0000), so a schema that
// lets one through answers 500 there only.
const databases = await testDatabases();

describe.each(databases)('security headers, CSRF and bad input on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    let t: TestApp;
    let signedIn: TestBrowser;
    let passkeyId: string;
    beforeAll(async () => {
      t = await createTestApp({}, { db: await target.open() });
      signedIn = await signUp(t.app, authenticator());
      passkeyId = /data-passkey-id="([^"]+)"/.exec((await signedIn.get('/settings')).body)![1]!;
      // An RA Manager: the console's pages take numbers in their links.
      const store = t.app.latchkey.store;
      await store.roles.set((await store.users.findByEmail('ada@example.com'))!.id, ['ra_manager'], null, Date.now());
    });
    afterAll(async () => {
      await t.close();
      await target.cleanup();
    });

    it('sends a strict CSP and the other security headers', async () => {
      const res = await new TestBrowser(t.app).get('/signin');
      const csp = String(res.headers['content-security-policy']);
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['referrer-policy']).toBe('same-origin');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.body).not.toMatch(/<script>(?!<\/script>)/);
      const cookie = String(res.headers['set-cookie']);
      expect(cookie).toContain('HttpOnly');
      expect(cookie).toContain('SameSite=Lax');
    });

    it('uses __Host- cookies with Secure on https', async () => {
      const https = await createTestApp({ LATCHKEY_ORIGIN: 'https://id.example.org' });
      try {
        const res = await new TestBrowser(https.app).get('/signin');
        const cookie = String(res.headers['set-cookie']);
        expect(cookie).toContain('__Host-latchkey_binding=');
        expect(cookie).toContain('Secure');
        expect(res.headers['strict-transport-security']).toContain('max-age=');
      } finally {
        await https.close();
      }
    });

    it('sets the binding cookie on the answers that use it, and on no other', async () => {
      const b = new TestBrowser(t.app);
      const bindingCookies = (res: { headers: Record<string, unknown> }) =>
        [res.headers['set-cookie'] ?? []].flat().filter((c) => String(c).startsWith('latchkey_binding='));
      // Nothing here reads the binding: a health check, an asset, a 404 as JSON and as a page (signed out, an error
      // page carries no token: it starts nothing that needs one).
      for (const [url, accept] of [
        ['/healthz', 'application/json'],
        ['/assets/favicon.svg', 'image/svg+xml'],
        ['/no-such-thing', 'application/json'],
        ['/no-such-thing', 'text/html'],
      ] as const) {
        const res = await b.get(url, accept);
        expect(res.statusCode, url).toBeLessThan(500);
        expect(res.headers['set-cookie'], `${url} as ${accept}`).toBeUndefined();
      }
      expect(b.cookies.has('latchkey_binding')).toBe(false);
      // The sign-in page renders a CSRF token and starts ceremonies: it sets the cookie, no cache may keep it, and the
      // ceremony it renders the token for goes through.
      const page = await b.get('/signin');
      expect(bindingCookies(page)).toHaveLength(1);
      expect(page.headers['cache-control']).toBe('no-store');
      expect((await b.postJson('/signin/options', { mode: 'discoverable' })).statusCode).toBe(200);
      expect(bindingCookies(await b.get('/signin'))).toHaveLength(0);
      // A browser without the cookie that posts anyway is refused, and gets a binding from the CSRF check.
      const refused = await new TestBrowser(t.app).postJson('/signin/options', { mode: 'discoverable' });
      expect(refused.json().error.code).toBe('csrf_failed');
      expect(bindingCookies(refused)).toHaveLength(1);
    });

    it('refuses state changes without the CSRF token or from another origin', async () => {
      const b = new TestBrowser(t.app);
      await b.get('/signin');
      const noToken = await b.postJson('/signin/options', { mode: 'discoverable' }, { 'x-csrf-token': '' });
      expect(noToken.statusCode).toBe(403);
      expect(noToken.json().error.code).toBe('csrf_failed');
      const crossSite = await b.postJson('/signin/options', { mode: 'discoverable' }, { origin: 'https://evil.example' });
      expect(crossSite.statusCode).toBe(403);
      const opaque = await b.postJson('/signin/options', { mode: 'discoverable' }, { origin: 'null', 'sec-fetch-site': 'cross-site' });
      expect(opaque.statusCode).toBe(403);
      const ownNull = await b.postJson('/signin/options', { mode: 'discoverable' }, { origin: 'null', 'sec-fetch-site': 'same-origin' });
      expect(ownNull.statusCode).toBe(200);
      const form = await t.app.inject({
        method: 'POST',
        url: '/signout',
        payload: '',
        headers: { cookie: [...signedIn.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
      });
      expect(form.statusCode).toBe(403);
      expect(form.body).toContain('There is a problem');
      expect((await signedIn.get('/settings')).statusCode).toBe(200);
    });

    it('answers bodies over 64 KiB with 413', async () => {
      const b = new TestBrowser(t.app);
      await b.get('/signin');
      const res = await b.postJson('/signin/options', { mode: 'discoverable', pad: 'x'.repeat(70 * 1024) });
      expect(res.statusCode).toBe(413);
      expect(res.json().error.code).toBe('payload_too_large');
      // Before any route's own checks: the console's sign-in and role checks come second, signed out or not.
      for (const url of ['/admin/users', '/admin/users/new', '/settings/passkeys/options', '/no/such/route']) {
        const big = await b.postJson(url, { pad: 'x'.repeat(70 * 1024) });
        expect(big.statusCode).toBe(413);
        expect(big.json().error.code).toBe('payload_too_large');
      }
      const form = await t.app.inject({ method: 'POST', url: '/admin/users/new', payload: `_csrf=${b.csrf}&email=${'x'.repeat(70 * 1024)}`, headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' } });
      expect(form.statusCode).toBe(413);
      expect(form.body).toContain('There is a problem');
    });

    it('answers malformed JSON and unknown media types with 4xx codes', async () => {
      const b = new TestBrowser(t.app);
      await b.get('/signin');
      const headers = { cookie: [...b.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'x-csrf-token': b.csrf, accept: 'application/json' };
      const bad = await t.app.inject({ method: 'POST', url: '/signin/options', payload: '{"mode":', headers: { ...headers, 'content-type': 'application/json' } });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error.code).toBe('bad_request');
      const xml = await t.app.inject({ method: 'POST', url: '/signin/options', payload: '<a/>', headers: { ...headers, 'content-type': 'application/xml' } });
      expect(xml.statusCode).toBe(415);
      expect(xml.json().error.code).toBe('unsupported_media_type');
    });

    it('answers errors raised before routing in the registry shape', async () => {
      const badUrl = await t.app.inject({ method: 'GET', url: '/settings/passkeys/%ff/remove', headers: { accept: 'application/json' } });
      expect(badUrl.statusCode).toBe(400);
      expect(badUrl.json().error.code).toBe('bad_request');
      expect(badUrl.headers['x-content-type-options']).toBe('nosniff');
      const page = await t.app.inject({ method: 'GET', url: '/enrol/%ff', headers: { accept: 'text/html' } });
      expect(page.statusCode).toBe(400);
      expect(page.body).toContain('There is a problem');
    });

    it('keeps invite tokens and query values other than OAuth request parameters out of request logs', async () => {
      const { redactUrl } = await import('../app.js');
      expect(redactUrl('/enrol/abcDEF123_-x/options?x=1')).toBe('/enrol/[redacted]/options?x=[redacted]');
      expect(redactUrl('/signin')).toBe('/signin');
      expect(redactUrl('/oidc/auth?client_id=svc&scope=openid%20email&state=s3cr3t&login_hint=ann%40example.org&prompt=login')).toBe(
        '/oidc/auth?client_id=svc&scope=openid%20email&state=[redacted]&login_hint=[redacted]&prompt=login',
      );
      // A name spelt another way, or a value with no name, is not on the list either.
      expect(redactUrl('/linked/callback?c%6Fde=abc&bare-token')).toBe('/linked/callback?c%6Fde=[redacted]&[redacted]');
    });

    it('answers form endpoints in JSON to API callers', async () => {
      const json = { accept: 'application/json' };
      const rename = await t.app.inject({
        method: 'POST',
        url: `/settings/passkeys/${passkeyId}/rename`,
        payload: { name: '  ' },
        headers: { ...json, cookie: [...signedIn.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'x-csrf-token': signedIn.csrf },
      });
      expect(rename.statusCode).toBe(400);
      expect(rename.json().error).toMatchObject({ code: 'validation_failed', fields: [{ field: 'name' }] });
      const remove = await signedIn.postJson(`/settings/passkeys/${passkeyId}/remove`, { confirm: 'yes' });
      expect(remove.statusCode).toBe(409);
      expect(remove.json().error.code).toBe('last_passkey');
    });

    it('answers unknown paths with 404 in JSON or HTML', async () => {
      const b = new TestBrowser(t.app);
      expect((await b.get('/nope', 'application/json')).json().error.code).toBe('not_found');
      for (const method of ['PUT', 'DELETE', 'PATCH'] as const) {
        const res = await t.app.inject({ method, url: '/nope', headers: { accept: 'application/json' } });
        expect(res.statusCode, method).toBe(404);
      }
      const html = await b.get('/nope');
      expect(html.statusCode).toBe(404);
      expect(html.body).toContain('Page not found');
    });

    const junk: unknown[] = [
      null,
      [],
      'text',
      42,
      {},
      { mode: 'email', email: 'x'.repeat(300) },
      { response: {} },
      { response: { id: 'a', rawId: 'a', type: 'public-key', response: { clientDataJSON: 'e30', authenticatorData: 'AA', signature: 'AA' } } },
      { response: { id: '!!', rawId: '!!', type: 'public-key', response: { clientDataJSON: '!!', attestationObject: '!!' } } },
      {
        response: {
          id: 'AAAA',
          rawId: 'AAAA',
          type: 'public-key',
          response: { clientDataJSON: Buffer.from('{"challenge":"nope","type":"webauthn.get"}').toString('base64url'), authenticatorData: 'AAAA', signature: 'AAAA', attestationObject: 'AAAA' },
        },
      },
      { name: { $gt: '' }, placement: 'moon' },
      { displayName: 'a'.repeat(10_000), email: 'a@b.c' },
    ];
    const endpoints = [
      '/signin/options',
      '/signin/verify',
      '/signup/options',
      '/signup/verify',
      '/settings/passkeys/options',
      '/settings/passkeys/verify',
      '/reauth/options',
      '/reauth/verify',
      `/enrol/${'A'.repeat(43)}/options`,
      `/enrol/${'A'.repeat(43)}/verify`,
    ];

    it('never answers client junk with a 5xx or a stack trace', async () => {
      for (const url of endpoints) {
        for (const body of junk) {
          // An empty object is a valid request for step-up options.
          if (url === '/reauth/options' && JSON.stringify(body) === '{}') continue;
          const res = await signedIn.postJson(url, body);
          expect(res.statusCode, `${url} ${JSON.stringify(body)?.slice(0, 80)}`).toBeGreaterThanOrEqual(400);
          expect(res.statusCode, `${url} ${JSON.stringify(body)?.slice(0, 80)}`).toBeLessThan(500);
          expect(res.body).not.toMatch(/at .*\.(ts|js):\d+/);
          expect(typeof res.json().error.code).toBe('string');
          expect(res.json().error.message.length).toBeGreaterThan(0);
        }
      }
      for (const url of [`/settings/passkeys/${passkeyId}/rename`, `/settings/passkeys/${passkeyId}/remove`, '/settings/sessions/x/end']) {
        for (const fields of [{ name: 'x'.repeat(5000) }, { confirm: 'maybe' }, { name: '' }] as Record<string, string>[]) {
          const res = await signedIn.postForm(url, fields);
          expect(res.statusCode, `${url} ${JSON.stringify(fields).slice(0, 60)}`).toBeLessThan(500);
        }
      }
      const poisoned = await t.app.inject({
        method: 'POST',
        url: '/signin/options',
        payload: '{"__proto__":{"polluted":true},"mode":"discoverable"}',
        headers: { cookie: [...signedIn.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'x-csrf-token': signedIn.csrf, 'content-type': 'application/json' },
      });
      expect(poisoned.statusCode).toBe(400);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      // Nothing junk produced was stored: one user, one passkey.
      expect(await t.app.latchkey.store.users.count()).toBe(1);
    });

    it('tells people without JavaScript why the passkey forms did nothing', async () => {
      const b = new TestBrowser(t.app);
      await b.get('/signin');
      for (const [path, fields] of [
        ['/signin', { email: 'ada@example.com' }],
        ['/signup', { displayName: 'Ada', email: 'ada@example.com', placement: 'this-device' }],
        [`/enrol/${'A'.repeat(43)}`, { name: 'Phone', placement: 'this-device' }],
      ] as const) {
        const res = await b.postForm(path, fields);
        expect(res.statusCode, path).toBe(303);
        expect(res.headers.location).toBe(`${path}?nojs=1`);
      }
      const page = await b.get('/signin?nojs=1');
      expect(/<div class="error-summary"[^>]*>/.exec(page.body)![0]).not.toContain('hidden');
      expect(page.body).toContain('Passkeys need JavaScript');
      expect((await signedIn.postForm('/settings', { name: 'x', placement: 'this-device' })).headers.location).toBe('/settings?nojs=1#add-passkey');
      expect((await signedIn.get('/settings?nojs=1')).body).toContain('Passkeys need JavaScript');
    });

    it('needs a session for settings routes', async () => {
      const b = new TestBrowser(t.app);
      await b.get('/signin');
      expect((await b.get('/settings')).headers.location).toBe('/signin');
      const res = await b.postJson('/settings/passkeys/options', { name: 'x', placement: 'this-device' });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('not_signed_in');
      expect((await b.get(`/settings/passkeys/${passkeyId}/remove`, 'application/json')).statusCode).toBe(401);
      expect((await b.get(`/settings/passkeys/${passkeyId}/remove`)).headers.location).toBe('/signin');
    });

    it('answers numbers out of range in links and bodies with 400, never 500', async () => {
      const { id: userId } = (await t.app.latchkey.store.users.findByEmail('ada@example.com'))!;
      const huge = '99999999999999999999';
      for (const url of [`/admin/audit?before=${huge}`, `/admin/audit.csv?before=${huge}`, `/admin/users/${userId}/activity?before=${huge}`, `/admin?before=${huge}`, '/admin/users?page=9999999']) {
        const page = await signedIn.get(url);
        expect(page.statusCode, url).toBe(400);
        expect(page.body, url).toContain('There is a problem');
        const json = await signedIn.get(url, 'application/json');
        expect(json.statusCode, url).toBe(400);
        expect(json.json().error.code, url).toBe('validation_failed');
        expect(json.json().error.fields[0].message, url).not.toMatch(/^(before|page) /);
      }
      // The largest id the schema takes still reaches the query: every event is older than it.
      const largest = await signedIn.get('/admin/audit?before=999999999999999');
      expect(largest.statusCode).toBe(200);
      expect(largest.body).toContain('data-event="signup"');
      const options = await signedIn.postJson('/settings/passkeys/options', { name: 'x', placement: 'this-device' });
      const response = { ...authenticator().createCredential(options.json().options) } as unknown as { response: Record<string, unknown> };
      response.response = { ...response.response, publicKeyAlgorithm: Number(huge) };
      const verify = await signedIn.postJson('/settings/passkeys/verify', { response, name: 'x' });
      expect(verify.statusCode).toBe(400);
      expect(verify.json().error.code).toBe('validation_failed');
    });
  });
});

describe('rate limits', () => {
  it('answers too many sign-in attempts from one IP with 429 and a clear message', async () => {
    const t = await createTestApp({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '3' });
    try {
      const b = new TestBrowser(t.app);
      await b.get('/signin');
      const codes: number[] = [];
      for (let i = 0; i < 4; i++) codes.push((await b.postJson('/signin/options', { mode: 'discoverable' })).statusCode);
      expect(codes).toEqual([200, 200, 200, 429]);
      const res = await b.postJson('/signin/options', { mode: 'discoverable' });
      expect(res.json().error.code).toBe('too_many_requests');
      // Pages are not limited.
      expect((await b.get('/signin')).statusCode).toBe(200);
    } finally {
      await t.close();
    }
  });
});
