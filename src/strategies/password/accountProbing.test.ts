/**
 * Password + app sign-in must not tell who has an account by its throttle: an
 * address without an account (or an account with no password or app) is
 * counted, delayed and locked exactly as an account with both is — the same
 * status, code, message and headers at every step, for pages and for JSON,
 * after the same queries — while a real person still signs in after the wait
 * and is unlocked by an agent as before, and an unknown address's count is
 * pruned after it is forgotten.
 */
import { Secret, TOTP } from 'otpauth';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { authenticator, createTestApp, insertApp, signUp, TestBrowser, type TestApp } from '../../../test/support/app.js';
import { testDatabases } from '../../../test/support/databases.js';
import { pruneExpired } from '../../maintenance.js';
import { createUser } from '../../users/createUser.js';
import { newTotpSecret } from '../totp/totp.js';
import { MAX_FAILED_SIGNINS, signinDelayMs, UNKNOWN_ADDRESS_FAILURES_KEPT_MS } from '../throttle.js';
import { hashPassword } from './passwords.js';

const T0 = Date.UTC(2026, 10, 22, 9, 0, 10);
const PASSWORD = 'correct horse battery';
const DAY = 24 * 3600_000;

const databases = await testDatabases();

describe.each(databases)('password + app sign-in on $name, to someone guessing', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    afterAll(() => target.cleanup());
    let t: TestApp;
    let clock: number;
    afterEach(async () => {
      vi.restoreAllMocks();
      await t?.close();
    });
    const open = async () => {
      clock = T0;
      t = await createTestApp({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0' }, { db: await target.open(), now: () => clock });
      return t.app.latchkey.store;
    };

    /** An enrolled account with a password and an authenticator app; returns the app. */
    const appPerson = async (email: string) => {
      const { store, secretBox } = t.app.latchkey;
      const user = await createUser(store, { email, displayName: 'App Person' }, clock);
      await store.users.setPasswordHash(user.id, await hashPassword(PASSWORD), clock);
      const secret = newTotpSecret();
      const id = `app-${user.id}`;
      await insertApp(store, secretBox, { id, user_id: user.id, name: 'App', created_at: clock }, secret);
      await store.users.setStatus(user.id, 'enrolled', clock);
      return { user, app: new TOTP({ secret: Secret.fromBase32(secret) }) };
    };

    /** A signed-out browser on /signin, and one wrong attempt at an address as a page (form) or as JSON. */
    const signedOut = async () => {
      const browser = new TestBrowser(t.app);
      await browser.get('/signin');
      return browser;
    };
    const wrong = (browser: TestBrowser, email: string, as: 'page' | 'json', password = 'wrong horse battery', code = '123456') =>
      as === 'json' ? browser.postJson('/signin/password', { email, password, code }) : browser.postForm('/signin/password', { email, password, code });

    it('counts, delays and locks an address without an account exactly as an account with a password and an app', async () => {
      const store = await open();
      // Every address the same length, so pages that show it back are the same length too.
      await appPerson('app-page@example.org');
      await appPerson('app-json@example.org');
      // An account with neither password nor app (it signs in with passkeys) is counted the same way, as today.
      await store.users.setStatus((await createUser(store, { email: 'passkey1@example.org', displayName: 'Pat' }, clock)).id, 'enrolled', clock);
      const addresses: { email: string; as: 'page' | 'json' }[] = [
        { email: 'app-page@example.org', as: 'page' },
        { email: 'passkey1@example.org', as: 'page' },
        { email: 'nobody01@example.org', as: 'page' },
        { email: 'NoBody02@example.org', as: 'page' },
        { email: 'app-json@example.org', as: 'json' },
        { email: 'nobody03@example.org', as: 'json' },
      ];

      const queries = {
        account: vi.spyOn(store.users, 'findByEmail'),
        addressCount: vi.spyOn(store.signinFailures, 'find'),
        apps: vi.spyOn(store.authenticators, 'listForUser'),
        accountFailure: vi.spyOn(store.users, 'recordFailedSignin'),
        addressFailure: vi.spyOn(store.signinFailures, 'recordFailure'),
        audit: vi.spyOn(store.audit, 'record'),
      };
      const browser = await signedOut();
      const trace: string[] = [];
      /** One attempt at every address at the same instant: each kind of client gets one answer, after the same work. */
      const step = async () => {
        const answers = { page: new Set<string>(), json: new Set<string>() };
        const work = new Set<string>();
        let shown = '';
        for (const { email, as } of addresses) {
          for (const q of Object.values(queries)) q.mockClear();
          const res = await wrong(browser, email, as);
          const { date: _date, ...headers } = res.headers;
          answers[as].add(JSON.stringify({ status: res.statusCode, headers, body: res.body.replaceAll(email, '<email>').replaceAll(encodeURIComponent(email), '<email>') }));
          // Writes to the account's count and to the address's are one kind of work: a failure written.
          work.add(`${queries.account.mock.calls.length} account, ${queries.addressCount.mock.calls.length} address-count, ${queries.apps.mock.calls.length} app lookups; ` +
            `${queries.accountFailure.mock.calls.length + queries.addressFailure.mock.calls.length} failures written; ${queries.audit.mock.calls.length} audited`);
          if (as === 'json') shown = `${res.statusCode} ${res.json().error.code}: ${res.json().error.message}`;
        }
        expect([...answers.page], `page answers at step ${trace.length + 1}`).toHaveLength(1);
        expect([...answers.json], `JSON answers at step ${trace.length + 1}`).toHaveLength(1);
        expect([...work], `work at step ${trace.length + 1}`).toHaveLength(1);
        trace.push(shown);
        return shown;
      };

      // 1 … 7 at once: five free failures, then a wait (which is not a failure).
      for (let i = 0; i < 7; i++) await step();
      const failed = '400 signin_failed: The email address, password or code is not right. Check them and try again.';
      const wait = (s: number) => `429 signin_throttled: Too many failed attempts to sign in to this account. Wait ${s} second${s === 1 ? '' : 's'} and try again.`;
      expect(trace).toEqual([failed, failed, failed, failed, failed, wait(1), wait(1)]);

      // Then on to 100, each attempt 1 ms before its wait is over (refused) and once it is (a failure).
      for (let failures = 5; failures < MAX_FAILED_SIGNINS; failures++) {
        const delay = signinDelayMs(failures);
        clock += delay - 1;
        expect(await step()).toBe(wait(1));
        clock += 1;
        expect(await step()).toBe(failed);
      }
      // Locked at 100, for every kind of address, and still after a day and more tries.
      const locked = '403 account_locked: This account is locked after too many failed attempts to sign in. Contact your registration authority to unlock it.';
      expect(await step()).toBe(locked);
      clock += DAY;
      for (let i = 0; i < 3; i++) expect(await step()).toBe(locked);
    }, 120_000);

    it('a person still signs in after the wait, and an agent unlocks a locked account as before', async () => {
      const store = await open();
      const { user, app } = await appPerson('ada@example.org');
      const browser = await signedOut();
      for (let i = 0; i < 5; i++) expect((await wrong(browser, user.email, 'page')).statusCode).toBe(400);
      const code = () => app.generate({ timestamp: clock });
      // Even the right password and code wait their turn; after it they sign in and the count starts again.
      expect((await browser.postForm('/signin/password', { email: user.email, password: PASSWORD, code: code() })).statusCode).toBe(429);
      clock += 1000;
      const ok = await browser.postForm('/signin/password', { email: user.email, password: PASSWORD, code: code() });
      expect(ok.statusCode).toBe(303);
      expect((await store.users.findById(user.id))!.failed_signins).toBe(0);
      // Nothing was written under the address's key for a real account.
      expect(await t.db.kysely.selectFrom('signin_failures').selectAll().execute()).toEqual([]);

      // Locked at 100; an agent clears it in the console and the person signs in.
      clock += 60_000;
      const elsewhere = await signedOut();
      for (let failures = 0; failures < MAX_FAILED_SIGNINS; failures++) {
        clock += signinDelayMs(failures);
        expect((await wrong(elsewhere, user.email, 'json')).statusCode).toBe(400);
      }
      expect((await elsewhere.postForm('/signin/password', { email: user.email, password: PASSWORD, code: code() })).statusCode).toBe(403);
      // Forgetting the runs of unknown addresses never unlocks an account.
      clock += UNKNOWN_ADDRESS_FAILURES_KEPT_MS + DAY;
      await pruneExpired(store, t.config, clock);
      expect((await elsewhere.postForm('/signin/password', { email: user.email, password: PASSWORD, code: code() })).statusCode).toBe(403);
      const agent = await signUp(t.app, authenticator(), 'agent@example.org', 'Agent');
      await store.roles.set((await store.users.findByEmail('agent@example.org'))!.id, ['ra_agent_advanced'], null, clock);
      expect((await agent.postForm(`/admin/users/${user.id}/status`, { action: 'unlock' })).statusCode).toBe(303);
      clock += 30_000;
      expect((await elsewhere.postForm('/signin/password', { email: user.email, password: PASSWORD, code: code() })).statusCode).toBe(303);
    }, 60_000);

    it('keeps an unknown address’s count under an HMAC, not the address, and prunes it once forgotten', async () => {
      const store = await open();
      const browser = await signedOut();
      const email = 'Nobody@Example.org';
      for (let i = 0; i < 5; i++) expect((await wrong(browser, email, 'page')).statusCode).toBe(400);
      // The same address typed another way is the same count.
      expect((await wrong(browser, ' nobody@example.ORG ', 'json')).statusCode).toBe(429);
      const rows = await t.db.kysely.selectFrom('signin_failures').selectAll().execute();
      expect(rows).toEqual([{ key: expect.any(String), failed_signins: 5, last_failed_signin_at: T0 }]);
      expect(JSON.stringify(rows).toLowerCase()).not.toContain('nobody');

      // Kept for as long as it is remembered (the maintenance job runs every few minutes) …
      clock = T0 + UNKNOWN_ADDRESS_FAILURES_KEPT_MS;
      expect((await pruneExpired(store, t.config, clock)).signinFailures).toBe(0);
      expect(await t.db.kysely.selectFrom('signin_failures').selectAll().execute()).toHaveLength(1);
      // … then deleted, and the address starts again with five free failures.
      clock += 1;
      expect((await pruneExpired(store, t.config, clock)).signinFailures).toBe(1);
      expect(await t.db.kysely.selectFrom('signin_failures').selectAll().execute()).toEqual([]);
      for (let i = 0; i < 5; i++) expect((await wrong(browser, email, 'page')).statusCode).toBe(400);
      expect((await wrong(browser, email, 'page')).statusCode).toBe(429);
    });
  });
});
