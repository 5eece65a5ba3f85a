/**
 * The whole passkey journey over HTTP on each database: the same routes and
 * persisters on SQLite and PostgreSQL.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser } from './support/app.js';
import { testDatabases } from './support/databases.js';
import { createUser } from '../src/users/createUser.js';
import { issueInvite } from '../src/flows/enrolment/invites.js';

const databases = await testDatabases();

describe.each(databases)('passkey journey on $name', (target) => {
  afterAll(() => target.cleanup());

  it.skipIf(target.skipReason !== undefined)('signs up, signs in, adds, renames and removes passkeys, and enrols by invite', async () => {
    const db = await target.open();
    const t = await createTestApp({}, { db });
    try {
      const phone = authenticator({ backupEligible: true, backedUp: true });
      const first = await signUp(t.app, phone, 'Ada@Example.com');

      const browser = new TestBrowser(t.app);
      await browser.get('/signin');
      const o = (await browser.postJson('/signin/options', { mode: 'email', email: 'ada@example.com' })).json().options;
      const response = phone.getAssertion(o);
      const [a, b] = await Promise.all([browser.postJson('/signin/verify', { response }), browser.postJson('/signin/verify', { response })]);
      expect([a.statusCode, b.statusCode].sort()).toEqual([200, 400]);

      const key = authenticator({ transports: ['usb'] });
      const ro = (await browser.postJson('/settings/passkeys/options', { name: 'YubiKey', placement: 'security-key' })).json().options;
      expect((await browser.postJson('/settings/passkeys/verify', { response: key.createCredential(ro) })).statusCode).toBe(200);
      const ids = [...(await browser.get('/settings')).body.matchAll(/data-passkey-id="([^"]+)"/g)].map((m) => m[1]!);
      expect(ids).toHaveLength(2);
      expect((await browser.postForm(`/settings/passkeys/${ids[1]}/rename`, { name: 'Blue key' })).statusCode).toBe(303);
      expect((await browser.postForm(`/settings/passkeys/${ids[0]}/remove`, { confirm: 'yes' })).statusCode).toBe(303);
      expect((await browser.postForm(`/settings/passkeys/${ids[1]}/remove`, { confirm: 'yes' })).statusCode).toBe(409);
      const settings = (await first.get('/settings')).body;
      expect(settings).toContain('Blue key');

      const user = await createUser(t.app.latchkey.store, { email: 'mary@example.com', displayName: 'Mary' }, Date.now());
      const path = new URL((await issueInvite(t.app.latchkey.store, t.config, user, Date.now())).url).pathname;
      const invited = new TestBrowser(t.app);
      await invited.get(path);
      const eo = (await invited.postJson(`${path}/options`, { placement: 'another-device' })).json().options;
      expect((await invited.postJson(`${path}/verify`, { response: authenticator().createCredential(eo) })).statusCode).toBe(200);
      expect((await t.app.latchkey.store.users.findById(user.id))?.status).toBe('enrolled');
      expect((await new TestBrowser(t.app).get(path)).statusCode).toBe(410);
    } finally {
      await t.close();
      await db.close();
    }
  });
  it.skipIf(target.skipReason !== undefined)('refuses U+0000 in any field with 400 validation_failed, never a 5xx', async () => {
    const db = await target.open();
    const t = await createTestApp({ LATCHKEY_FIDO_CONFORMANCE: 'true' }, { db });
    try {
      await signUp(t.app, authenticator(), 'grace@example.com');
      const browser = new TestBrowser(t.app);
      await browser.get('/signin');
      const nul = 'n\u0000ul';
      const answers = [
        await browser.postJson('/signup/options', { displayName: 'Grace', email: `${nul}@example.com`, placement: 'this-device' }),
        await browser.postJson('/signup/options', { displayName: nul, email: 'new@example.com', placement: 'this-device' }),
        await browser.postJson('/signin/options', { mode: 'email', email: `${nul}@example.com` }),
        await browser.postJson('/enrol', { email: `${nul}@example.com`, code: 'ABCD-EFGH-J' }),
        await browser.postJson(`/enrol/${encodeURIComponent(nul)}/options`, { placement: 'this-device' }),
        await browser.get(`/signin?email=${encodeURIComponent(nul)}`, 'application/json'),
        await browser.postJson('/signin/password', { email: `${nul}@example.com`, password: 'pw', code: '123456' }),
      ];
      for (const answer of answers) {
        expect(answer.statusCode).toBe(400);
        expect(answer.json().error.code).toBe('validation_failed');
      }
      const page = await browser.get(`/signin?email=${encodeURIComponent(nul)}`);
      expect(page.statusCode).toBe(400);
      expect(page.body).toContain('There is a problem');
      const fido = await t.app.inject({ method: 'POST', url: '/fido2/attestation/options', payload: { username: nul, displayName: 'Grace', attestation: 'none' } });
      expect(fido.statusCode).toBe(400);
      expect(fido.json()).toMatchObject({ status: 'failed' });
      expect(fido.json().errorMessage).toBeTruthy();
      const token = await t.app.inject({
        method: 'POST',
        url: '/oidc/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: `grant_type=authorization_code&code=${encodeURIComponent(nul)}&client_id=${encodeURIComponent(nul)}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb`,
      });
      expect(token.statusCode).toBeGreaterThanOrEqual(400);
      expect(token.statusCode).toBeLessThan(500);
    } finally {
      await t.close();
      await db.close();
    }
  });
});
