/**
 * One contract for every challenge store: in the server process, in the
 * database's challenges table on SQLite and PostgreSQL, and in Redis.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../../test/support/databases.js';
import type { NewFlow } from '../db/persisters/flows.js';
import { createStore } from '../db/store.js';
import { loadConfig, unsafeSettings } from '../config/index.js';
import { DatabaseChallengeStore, MemoryChallengeStore, RedisChallengeStore, type ChallengeStore } from './challengeStore.js';
import { deleteRedisKeys, redisUnavailableReason, testRedisClient, uniqueRedisPrefix } from '../../test/support/redis.js';
import type { Redis } from 'ioredis';

const T0 = Date.UTC(2026, 11, 1, 9);
const MINUTE = 60_000;
const rid = (n = 16) => randomBytes(n).toString('base64url');

function newChallenge(overrides: Partial<NewFlow> = {}): NewFlow {
  return { id: rid(), type: 'signin', binding_hash: rid(32), user_id: null, lookup: rid(32), data: '{"mode":"discoverable"}', created_at: T0, expires_at: T0 + 5 * MINUTE, ...overrides };
}

const databases = await testDatabases();
const redisSkip = await redisUnavailableReason();
const redisPrefix = uniqueRedisPrefix();
let redis: Redis | undefined;
const targets: { name: string; skipReason?: string; open(): Promise<ChallengeStore>; cleanup(): Promise<void> }[] = [
  { name: 'memory', open: async () => new MemoryChallengeStore(), cleanup: async () => {} },
  ...databases.map((d) => ({
    name: `database on ${d.name}`,
    skipReason: d.skipReason,
    async open() {
      const db = await d.open({ poolSize: 10 });
      await db.migrate();
      return new DatabaseChallengeStore(createStore(db));
    },
    cleanup: () => d.cleanup(),
  })),
  {
    name: 'redis',
    skipReason: redisSkip,
    open: async () => new RedisChallengeStore((redis = testRedisClient(redisPrefix))),
    async cleanup() {
      await redis?.quit();
      await deleteRedisKeys(redisPrefix);
    },
  },
];

describe.each(targets)('challenge store: $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)(target.skipReason ?? 'contract', () => {
    let challenges: ChallengeStore;
    beforeAll(async () => {
      challenges = await target.open();
    });
    afterAll(() => target.cleanup());

    it('gives a challenge back once, consumed, with what was saved', async () => {
      const c = newChallenge({ user_id: null, data: '{"mode":"email","decoy":true}' });
      await challenges.save(c);
      const flow = await challenges.consume(c.lookup, c.type, c.binding_hash!, T0 + MINUTE);
      expect(flow).toMatchObject({ ...c, state: 'consumed', consumed_at: T0 + MINUTE });
      expect(await challenges.consume(c.lookup, c.type, c.binding_hash!, T0 + MINUTE)).toBeUndefined();
    });

    it('refuses another ceremony type, another browser or an expired challenge, and consumes nothing then', async () => {
      const c = newChallenge();
      await challenges.save(c);
      expect(await challenges.consume(c.lookup, 'reauth', c.binding_hash!, T0)).toBeUndefined();
      expect(await challenges.consume(c.lookup, c.type, rid(32), T0)).toBeUndefined();
      expect(await challenges.consume(c.lookup, c.type, c.binding_hash!, c.expires_at)).toBeUndefined();
      expect(await challenges.consume(rid(32), c.type, c.binding_hash!, T0)).toBeUndefined();
      expect((await challenges.peek(c.lookup))?.state).toBe('active');
      expect(await challenges.consume(c.lookup, c.type, c.binding_hash!, c.expires_at - 1)).toBeDefined();
    });

    it('peeks without consuming', async () => {
      const c = newChallenge();
      await challenges.save(c);
      expect(await challenges.peek(c.lookup)).toMatchObject({ id: c.id, state: 'active', data: c.data });
      expect(await challenges.peek(c.lookup)).toMatchObject({ state: 'active' });
      expect(await challenges.consume(c.lookup, c.type, c.binding_hash!, T0)).toBeDefined();
      expect((await challenges.peek(c.lookup))?.state ?? 'gone').not.toBe('active');
      expect(await challenges.peek(rid(32))).toBeUndefined();
    });

    it('lets exactly one of 50 concurrent submissions consume a challenge', async () => {
      const c = newChallenge();
      await challenges.save(c);
      const results = await Promise.all(Array.from({ length: 50 }, () => challenges.consume(c.lookup, c.type, c.binding_hash!, T0)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('counts the ceremonies in progress for /metrics: saved and not yet consumed', async () => {
      const before = await challenges.size(T0);
      const saved = [newChallenge(), newChallenge(), newChallenge()];
      for (const c of saved) await challenges.save(c);
      expect(await challenges.size(T0)).toBe(before + 3);
      expect(await challenges.consume(saved[0]!.lookup, 'signin', saved[0]!.binding_hash!, T0)).toBeDefined();
      expect(await challenges.size(T0)).toBe(before + 2);
    });
  });
});

describe.each(databases)('the challenge store in the database on $name', (d) => {
  it.skipIf(d.skipReason !== undefined)('counts only unexpired challenges as ceremonies in progress, and deletes each when used', async () => {
    const db = await d.open();
    try {
      await db.migrate();
      const store = createStore(db);
      const challenges = new DatabaseChallengeStore(store);
      await challenges.save(newChallenge());
      await challenges.save(newChallenge({ expires_at: T0 + MINUTE }));
      expect(await challenges.size(T0)).toBe(2);
      expect(await challenges.size(T0 + MINUTE)).toBe(1);
      const used = newChallenge();
      await challenges.save(used);
      expect(await challenges.consume(used.lookup, used.type, used.binding_hash!, T0)).toMatchObject({ id: used.id, state: 'consumed' });
      expect(await store.challenges.find(used.lookup)).toBeUndefined();
      expect(await challenges.size(T0)).toBe(2);
    } finally {
      await d.cleanup();
    }
  });
});

describe('the in-process challenge store', () => {
  it('forgets challenges older than their lifetime as new ones are saved', async () => {
    const store = new MemoryChallengeStore();
    const at = (minutes: number) => newChallenge({ created_at: T0 + minutes * MINUTE, expires_at: T0 + (minutes + 5) * MINUTE });
    const old = at(0);
    await store.save(old);
    await store.save(at(1));
    await store.save(at(5));
    expect(await store.peek(old.lookup)).toBeDefined();
    await store.save(at(10));
    expect(await store.peek(old.lookup)).toBeUndefined();
    expect(store.held).toBe(2);
  });

  it('keeps at most its limit, dropping the oldest', async () => {
    const store = new MemoryChallengeStore(4);
    const saved = Array.from({ length: 9 }, () => newChallenge());
    for (const c of saved) await store.save(c);
    expect(store.held).toBeLessThanOrEqual(4);
    expect(await store.peek(saved[0]!.lookup)).toBeUndefined();
    expect(await store.peek(saved[8]!.lookup)).toBeDefined();
  });

  it('consumes a challenge from the older generation once', async () => {
    const store = new MemoryChallengeStore(4);
    const [a, b, c] = [newChallenge(), newChallenge(), newChallenge()];
    for (const x of [a, b, c]) await store.save(x); // c starts a new generation: a and b are the older one
    expect(await store.consume(a.lookup, a.type, a.binding_hash!, T0)).toMatchObject({ id: a.id, state: 'consumed' });
    expect(await store.consume(a.lookup, a.type, a.binding_hash!, T0)).toBeUndefined();
    expect(await store.consume(c.lookup, c.type, c.binding_hash!, T0)).toMatchObject({ id: c.id });
    expect(store.held).toBe(1);
  });

  it('is the default on SQLite; PostgreSQL keeps challenges in the database; LATCHKEY_CHALLENGE_STORE chooses', () => {
    expect(loadConfig({}).challengeStore).toBe('memory');
    expect(loadConfig({ DATABASE_URL: 'postgres://127.0.0.1/test' }).challengeStore).toBe('database');
    expect(loadConfig({ LATCHKEY_CHALLENGE_STORE: 'database' }).challengeStore).toBe('database');
    expect(() => loadConfig({ LATCHKEY_CHALLENGE_STORE: 'disk' })).toThrow(/LATCHKEY_CHALLENGE_STORE: must be "memory", "database" or "redis"/);
  });

  it('stays in the database or the process when Redis is configured, unless redis is chosen; redis needs LATCHKEY_REDIS_URL', () => {
    const redisUrl = 'redis://127.0.0.1:6379';
    expect(loadConfig({ LATCHKEY_REDIS_URL: redisUrl }).challengeStore).toBe('memory');
    expect(loadConfig({ LATCHKEY_REDIS_URL: redisUrl, DATABASE_URL: 'postgres://127.0.0.1/test' }).challengeStore).toBe('database');
    expect(loadConfig({ LATCHKEY_REDIS_URL: redisUrl, LATCHKEY_CHALLENGE_STORE: 'redis' }).challengeStore).toBe('redis');
    expect(() => loadConfig({ LATCHKEY_CHALLENGE_STORE: 'redis' })).toThrow(/^LATCHKEY_CHALLENGE_STORE: "redis" needs LATCHKEY_REDIS_URL$/);
  });

  it('warns at start when in-process challenges meet a database several instances may share', () => {
    const warns = (env: Record<string, string>) => unsafeSettings(loadConfig(env)).some((w) => w.startsWith('LATCHKEY_CHALLENGE_STORE=memory'));
    expect(warns({ DATABASE_URL: 'postgres://127.0.0.1/test', LATCHKEY_CHALLENGE_STORE: 'memory' })).toBe(true);
    expect(warns({ DATABASE_URL: 'postgres://127.0.0.1/test' })).toBe(false);
    expect(warns({})).toBe(false);
  });
});
