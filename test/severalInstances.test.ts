/**
 * Several instances, one Redis (LATCHKEY_REDIS_URL): the per-IP request limits are counted once for all of them,
 * and with LATCHKEY_CHALLENGE_STORE=redis a passkey ceremony begun on one instance finishes on another. Each test
 * shows the contrast without Redis, so it fails if the sharing does not happen.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Db } from '../src/db/connect.js';
import { authenticator, createTestApp, TestBrowser, type TestApp } from './support/app.js';
import { sqliteTestDatabase } from './support/databases.js';
import { deleteRedisKeys, redisUnavailableReason, testRedisClient, testRedisUrl, uniqueRedisPrefix } from './support/redis.js';

const redisSkip = await redisUnavailableReason();

const opened: TestApp[] = [];
const prefixes: string[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
  await Promise.all(prefixes.splice(0).map((p) => deleteRedisKeys(p)));
});

/** Two instances with one environment; `redis`: sharing one Redis under one fresh key prefix. */
async function twoInstances(env: Record<string, string>, options: { redis: boolean; db?: Db }): Promise<[TestApp, TestApp]> {
  const prefix = uniqueRedisPrefix();
  prefixes.push(prefix);
  const shared = options.redis ? { LATCHKEY_REDIS_URL: testRedisUrl(), LATCHKEY_REDIS_PREFIX: prefix, ...env } : env;
  const pair = [await createTestApp(shared, { db: options.db }), await createTestApp(shared, { db: options.db })] as [TestApp, TestApp];
  opened.push(...pair);
  return pair;
}

/** Ask for sign-in options `count` times from one IP, alternating between the instances; the status codes in order. */
async function alternate(instances: TestApp[], count: number): Promise<number[]> {
  const browsers = instances.map((t) => new TestBrowser(t.app));
  for (const b of browsers) await b.get('/signin');
  const codes: number[] = [];
  for (let i = 0; i < count; i++) codes.push((await browsers[i % browsers.length]!.postJson('/signin/options', { mode: 'discoverable' })).statusCode);
  return codes;
}

describe.skipIf(redisSkip !== undefined)('several instances sharing one Redis', () => {
  it('reach the per-IP limit at N requests in all, where each instance on its own allows N', async () => {
    const env = { LATCHKEY_RATE_LIMIT_PER_MINUTE: '4' };
    expect(await alternate(await twoInstances(env, { redis: true }), 6)).toEqual([200, 200, 200, 200, 429, 429]);
    // Without Redis each instance counts its own four: eight pass before either refuses.
    expect(await alternate(await twoInstances(env, { redis: false }), 10)).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 429, 429]);
  });

  it('count every per-IP-limited route in Redis, and answer each as without Redis', async () => {
    // Each limited route once, with a body it accepts or refuses: the answer must not depend on where counts live.
    const requests: { method: 'GET' | 'POST'; url: string; body?: object }[] = [
      { method: 'POST', url: '/signin/options', body: { mode: 'discoverable' } },
      { method: 'POST', url: '/signin/verify', body: {} },
      { method: 'POST', url: '/signup/options', body: { displayName: 'Ada Lovelace', email: 'ada@example.com', placement: 'this-device' } },
      { method: 'POST', url: '/signup/verify', body: {} },
      { method: 'POST', url: '/signin/password', body: { email: 'ada@example.com', password: 'not the password' } },
      { method: 'POST', url: '/enrol', body: { email: 'ada@example.com', code: 'ABCD-EFGH-J' } },
      { method: 'POST', url: '/enrol/no-such-invite/options', body: { placement: 'this-device' } },
      { method: 'POST', url: '/enrol/no-such-invite/verify', body: {} },
      { method: 'GET', url: '/signin/linked/no-such-provider' },
      { method: 'GET', url: '/signin/linked/no-such-provider/callback' },
      { method: 'GET', url: '/.well-known/openid-configuration' },
      { method: 'GET', url: '/oidc/jwks' },
    ];
    const answers = async (t: TestApp) => {
      const b = new TestBrowser(t.app);
      await b.get('/signin');
      const codes: number[] = [];
      for (const r of requests) codes.push((r.method === 'GET' ? await b.get(r.url, 'application/json') : await b.postJson(r.url, r.body)).statusCode);
      return codes;
    };
    const env = { LATCHKEY_RATE_LIMIT_PER_MINUTE: '100' };
    const [withRedis] = await twoInstances(env, { redis: true });
    const [alone] = await twoInstances(env, { redis: false });
    const counted = await answers(withRedis);
    expect(counted).toEqual(await answers(alone));
    expect(counted).not.toContain(500);
    const prefix = withRedis.config.redisKeyPrefix;
    const redis = testRedisClient('');
    try {
      const keys = (await redis.keys(`${prefix}rate-limit:*`)).map((k) => k.slice(prefix.length));
      // One counter per route and IP (the two /oidc/* requests share the provider's catch-all route), each at one.
      expect(keys).toHaveLength(12);
      expect(keys).toEqual(
        expect.arrayContaining([
          'rate-limit:GET,OPTIONS/.well-known/openid-configuration-127.0.0.1',
          'rate-limit:GET/signin/linked/:provider-127.0.0.1',
          'rate-limit:GET/signin/linked/:provider/callback-127.0.0.1',
          // scope.all: every method Fastify knows, listed in the key.
          expect.stringMatching(/^rate-limit:GET,[A-Z,]+\/oidc\/\*-127\.0\.0\.1$/),
          'rate-limit:POST/enrol-127.0.0.1',
          'rate-limit:POST/enrol/:token/options-127.0.0.1',
          'rate-limit:POST/enrol/:token/verify-127.0.0.1',
          'rate-limit:POST/signin/options-127.0.0.1',
          'rate-limit:POST/signin/password-127.0.0.1',
          'rate-limit:POST/signin/verify-127.0.0.1',
          'rate-limit:POST/signup/options-127.0.0.1',
          'rate-limit:POST/signup/verify-127.0.0.1',
        ]),
      );
      for (const key of keys) expect(await redis.get(prefix + key), key).toBe('1');
    } finally {
      await redis.quit();
    }
  });

  describe('a passkey ceremony begun on one instance and finished on another', () => {
    const database = sqliteTestDatabase();
    afterAll(() => database.cleanup());

    /** Sign-up options from the first instance, the authenticator's answer to the second; the verify status. */
    async function signUpAcross([first, second]: [TestApp, TestApp]): Promise<{ status: number; code?: string }> {
      const a = new TestBrowser(first.app);
      await a.get('/signup');
      const options = await a.postJson('/signup/options', { displayName: 'Ada Lovelace', email: `ada.${Date.now()}@example.com`, placement: 'this-device' });
      expect(options.statusCode).toBe(200);
      // The same browser, its next request routed to the other instance.
      const b = new TestBrowser(second.app);
      for (const [name, value] of a.cookies) b.cookies.set(name, value);
      b.csrf = a.csrf;
      const verify = await b.postJson('/signup/verify', { response: authenticator().createCredential(options.json().options) });
      return { status: verify.statusCode, code: verify.json().error?.code };
    }

    it('succeeds with challenges in Redis, and fails with them in each process', async () => {
      const db = await database.open();
      await db.migrate();
      expect(await signUpAcross(await twoInstances({ LATCHKEY_CHALLENGE_STORE: 'redis' }, { redis: true, db }))).toEqual({ status: 200, code: undefined });
      expect(await signUpAcross(await twoInstances({ LATCHKEY_CHALLENGE_STORE: 'memory' }, { redis: true, db }))).toEqual({ status: 400, code: 'challenge_invalid' });
    });
  });
});
