/**
 * Two sign-ins at once with one passkey copied (the same counter) on each database, with the challenges where
 * production keeps them (PostgreSQL: the challenges table, where the counter update, the session and the audit record
 * go out together and a lost use fails only at the commit): one signs in, the other is refused as a possible clone
 * and gets no session, in the database or as a cookie.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { testDatabases } from '../../../test/support/databases.js';

const databases = await testDatabases();

describe.each(databases)('a copied passkey signing in twice at once on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    afterAll(() => target.cleanup());
    let t: TestApp;
    afterEach(async () => t?.close());

    it('signs in one and refuses the other as a possible clone, with no session for it', async () => {
      t = await createTestApp({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0', LATCHKEY_CHALLENGE_STORE: target.name === 'postgres' ? 'database' : 'memory' }, { db: await target.open() });
      const { store } = t.app.latchkey;
      const auth = authenticator({ counter: 'increment' });
      await signUp(t.app, auth);
      const userId = (await store.users.findByEmail('ada@example.com'))!.id;
      const copy = authenticator({ counter: 'increment' });
      for (const [id, credential] of auth.credentials) copy.credentials.set(id, { ...credential });
      const browsers = [new TestBrowser(t.app), new TestBrowser(t.app)];
      const options = [];
      for (const browser of browsers) {
        await browser.get('/signin');
        options.push((await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options);
      }
      const sessionsBefore = (await store.sessions.listForUser(userId, Date.now())).length;
      const results = await Promise.all([
        browsers[0]!.postJson('/signin/verify', { response: auth.getAssertion(options[0]) }),
        browsers[1]!.postJson('/signin/verify', { response: copy.getAssertion(options[1]) }),
      ]);
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 400]);
      const refused = results.findIndex((r) => r.statusCode === 400);
      expect(results[refused]!.json().error.code).toBe('counter_regressed');
      expect(browsers[refused]!.cookies.get('latchkey_session')).toBeUndefined();
      expect(browsers[1 - refused]!.cookies.get('latchkey_session')).toBeDefined();
      expect((await store.sessions.listForUser(userId, Date.now())).length).toBe(sessionsBefore + 1);
      expect(await store.audit.listByEvent('passkey.counter_regressed')).toHaveLength(1);
      expect(await store.audit.listByEvent('signin')).toHaveLength(1);
    });
  });
});
