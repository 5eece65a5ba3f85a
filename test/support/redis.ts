/**
 * Test Redis: `redis://127.0.0.1:6379` unless TEST_REDIS_URL is set. When it
 * does not answer, suites skip with {@link redisUnavailableReason} (printed
 * once), except with CI=true, where it throws: CI must not pass by skipping
 * (as test/support/databases.ts does for PostgreSQL).
 *
 * Every test takes its own key prefix ({@link uniqueRedisPrefix}): test files
 * run in parallel against one Redis and must never share counters or challenges.
 *
 * ```ts
 * const redisSkip = await redisUnavailableReason();
 * describe.skipIf(redisSkip !== undefined)('…', () => {
 *   it('…', async () => { const config = testConfig({ LATCHKEY_REDIS_URL: testRedisUrl(), LATCHKEY_REDIS_PREFIX: uniqueRedisPrefix() }); … });
 * });
 * ```
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describeRedisUrl } from '../../src/redis/openRedis.js';

export const DEFAULT_TEST_REDIS_URL = 'redis://127.0.0.1:6379';

export function testRedisUrl(): string {
  return process.env.TEST_REDIS_URL || DEFAULT_TEST_REDIS_URL;
}

/** A key prefix no other test uses. */
export function uniqueRedisPrefix(): string {
  return `latchkey-test:${randomBytes(6).toString('hex')}:`;
}

/** A plain client on the test Redis with this key prefix (close it with `quit()`). */
export function testRedisClient(keyPrefix: string): Redis {
  return new Redis(testRedisUrl(), { keyPrefix, maxRetriesPerRequest: 1 });
}

/** Remove every key under this prefix (counters and challenges expire by themselves; this keeps Redis tidy). */
export async function deleteRedisKeys(keyPrefix: string): Promise<void> {
  const client = new Redis(testRedisUrl(), { maxRetriesPerRequest: 1 });
  try {
    const keys = await client.keys(`${keyPrefix}*`);
    if (keys.length) await client.del(...keys);
  } finally {
    await client.quit();
  }
}

let probe: Promise<string | undefined> | undefined;

/** Resolves to undefined when Redis answers, else to the reason it does not. Throws instead when CI=true. Cached per process. */
export function redisUnavailableReason(): Promise<string | undefined> {
  probe ??= (async () => {
    const client = new Redis(testRedisUrl(), { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2_000, retryStrategy: () => null });
    client.on('error', () => {});
    let reason: string | undefined;
    try {
      await client.connect();
      await client.ping();
    } catch (error) {
      reason = `Redis not reachable at ${describeRedisUrl(testRedisUrl())} (${error instanceof Error ? error.message || error.name : String(error)})`;
    } finally {
      client.disconnect();
    }
    if (reason === undefined) return undefined;
    if (process.env.CI === 'true') throw new Error(`${reason}: CI=true requires the Redis suites to run`);
    console.warn(`${reason}: skipping Redis suites`);
    return reason;
  })();
  return probe;
}
