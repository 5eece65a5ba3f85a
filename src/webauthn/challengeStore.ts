/**
 * Where WebAuthn challenges live between the options and the verify request:
 * each one a flow record (id, ceremony type, browser binding, user, expiry),
 * server-side, found by its challenge and consumed once.
 *
 * - `database`: the database's challenges table (src/db/persisters/challenges.ts:
 *   one row per challenge, deleted when used). Every server process sharing the
 *   database shares the challenges, so any instance can finish a ceremony
 *   another began. The default on PostgreSQL, where several instances are the point.
 * - `memory`: a bounded map in this server process. No writes: a sign-in then
 *   commits once (the use, the session and the audit record) instead of three
 *   times (BENCHMARKS.md). The default on SQLite, whose file belongs to one
 *   server process. A restart forgets ceremonies in progress (they start again).
 *
 * - `redis`: one key per challenge in LATCHKEY_REDIS_URL's Redis, expiring
 *   with the challenge. Shared by every instance like `database`, with no
 *   database write like `memory`. Chosen, never a default.
 *
 * All consume with one indivisible step (a conditional `DELETE … RETURNING`,
 * a map check-and-delete with no `await` between, or a Lua script, which Redis
 * runs with nothing else between its commands), so of concurrent submissions
 * of one response exactly one gets the flow.
 */
import type { Redis, Result } from 'ioredis';
import type { Config } from '../config/index.js';
import type { Authenticator, Flow, User } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { NewFlow } from '../db/persisters/flows.js';

export type ChallengeStoreKind = 'memory' | 'database' | 'redis';

export interface ChallengeStore {
  readonly kind: ChallengeStoreKind;
  save(flow: NewFlow): Promise<void>;
  /** The active, unexpired flow for this challenge if its type and binding match, consumed; else undefined (and nothing changes). */
  consume(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined>;
  /** The flow for this challenge in whatever state, without consuming it. */
  peek(lookup: string): Promise<Flow | undefined>;
  /** Ceremonies begun and not yet finished or expired, for /metrics: this process's (memory) or every instance's. */
  size(now: number): Promise<number>;
  /**
   * `consume`, and the credential with this id with its owner, where the store can do both in one step (the
   * database: one statement on PostgreSQL). Undefined when no flow was consumed.
   */
  consumeWithCredential?(
    lookup: string,
    type: string,
    bindingHash: string,
    now: number,
    credentialId: string,
  ): Promise<{ flow: Flow; credential: { authenticator: Authenticator; user: User } | undefined } | undefined>;
}

export class DatabaseChallengeStore implements ChallengeStore {
  readonly kind = 'database';
  constructor(private readonly store: Store) {}

  async save(flow: NewFlow): Promise<void> {
    await this.store.challenges.insert(flow);
  }

  consume(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined> {
    return this.store.challenges.consume(lookup, type, bindingHash, now);
  }

  peek(lookup: string): Promise<Flow | undefined> {
    return this.store.challenges.find(lookup);
  }

  size(now: number): Promise<number> {
    return this.store.challenges.countActive(now);
  }

  consumeWithCredential(lookup: string, type: string, bindingHash: string, now: number, credentialId: string) {
    return this.store.challenges.consumeWithCredential(lookup, type, bindingHash, now, credentialId);
  }
}

/** At most this many ceremonies in progress per process (about 400 bytes each); past it the oldest are dropped. */
export const MEMORY_CHALLENGE_LIMIT = 100_000;

/**
 * Two generations of maps: new challenges go into the current one, which
 * becomes the previous one when it is a challenge lifetime old or holds half
 * the limit; the previous one is then dropped whole. Every operation is a map
 * lookup: nothing iterates, so a flood of options requests costs each request
 * the same (deleting the oldest entries of one large map one by one made every
 * later deletion slower, measured with 100,000 pending ceremonies). A challenge
 * dropped this way was expired, or was among the oldest when the limit was reached.
 */
export class MemoryChallengeStore implements ChallengeStore {
  readonly kind = 'memory';
  private current = new Map<string, Flow>();
  private previous = new Map<string, Flow>();
  private rotatedAt = -Infinity;

  constructor(private readonly limit = MEMORY_CHALLENGE_LIMIT) {}

  /** Challenges held, expired ones included until their generation is dropped (at most a lifetime later). */
  get held(): number {
    return this.current.size + this.previous.size;
  }

  async size(): Promise<number> {
    return this.held;
  }

  async save(flow: NewFlow): Promise<void> {
    const lifetime = flow.expires_at - flow.created_at;
    if (flow.created_at - this.rotatedAt >= lifetime || this.current.size >= Math.max(1, Math.floor(this.limit / 2))) {
      this.previous = this.current;
      this.current = new Map();
      this.rotatedAt = flow.created_at;
    }
    // Challenges are 32 random bytes: a repeat is a caller's bug, never a collision to tolerate.
    if (this.current.has(flow.lookup) || this.previous.has(flow.lookup)) throw new Error('challenge already stored');
    this.current.set(flow.lookup, { ...flow, state: 'active', consumed_at: null, failed_attempts: 0 });
  }

  async consume(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined> {
    const map = this.current.has(lookup) ? this.current : this.previous;
    const flow = map.get(lookup);
    if (!flow || flow.type !== type || flow.binding_hash !== bindingHash || flow.expires_at <= now) return undefined;
    map.delete(lookup);
    return { ...flow, state: 'consumed', consumed_at: now };
  }

  async peek(lookup: string): Promise<Flow | undefined> {
    const flow = this.current.get(lookup) ?? this.previous.get(lookup);
    return flow && { ...flow };
  }
}

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** RedisChallengeStore's consume script: the stored flow, deleted, if type, binding and expiry allow; else null. */
    latchkeyConsumeChallenge(key: string, type: string, bindingHash: string, now: number): Result<string | null, Context>;
  }
}

/**
 * GET, compare, DEL in one script: Redis runs a script with no other command
 * between its steps, so two submissions of one response cannot both read the
 * challenge before either deletes it. Expiry is compared with the caller's
 * clock (the key's own TTL only frees memory), as the other stores do.
 */
const CONSUME_CHALLENGE = `
local value = redis.call('GET', KEYS[1])
if not value then return false end
local flow = cjson.decode(value)
if flow.type ~= ARGV[1] or flow.binding_hash ~= ARGV[2] or flow.expires_at <= tonumber(ARGV[3]) then return false end
redis.call('DEL', KEYS[1])
return value
`;

/** Challenges in Redis, each a JSON string under `<LATCHKEY_REDIS_PREFIX>challenge:<challenge>` that expires with it. */
export class RedisChallengeStore implements ChallengeStore {
  readonly kind = 'redis';

  constructor(private readonly redis: Redis) {
    // ioredis sends the script by its SHA1 (EVALSHA) and the source only when Redis does not have it yet.
    redis.defineCommand('latchkeyConsumeChallenge', { numberOfKeys: 1, lua: CONSUME_CHALLENGE });
  }

  private static key(lookup: string): string {
    return `challenge:${lookup}`;
  }

  async save(flow: NewFlow): Promise<void> {
    // A lifetime, not the expiry instant: flows carry the app's clock (tests move it), Redis keeps its own.
    const lifetime = Math.max(1, flow.expires_at - flow.created_at);
    const stored = await this.redis.set(RedisChallengeStore.key(flow.lookup), JSON.stringify(flow), 'PX', lifetime, 'NX');
    // Challenges are 32 random bytes: a repeat is a caller's bug, never a collision to tolerate.
    if (stored !== 'OK') throw new Error('challenge already stored');
  }

  async consume(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined> {
    const value = await this.redis.latchkeyConsumeChallenge(RedisChallengeStore.key(lookup), type, bindingHash, now);
    return value === null ? undefined : { ...(JSON.parse(value) as NewFlow), state: 'consumed', consumed_at: now, failed_attempts: 0 };
  }

  /** Counted with SCAN over this prefix's challenge keys (Redis drops expired ones): a scrape's cost, never a sign-in's. */
  async size(): Promise<number> {
    const match = `${this.redis.options.keyPrefix ?? ''}${RedisChallengeStore.key('*')}`;
    let cursor = '0';
    let count = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
    return count;
  }

  async peek(lookup: string): Promise<Flow | undefined> {
    const value = await this.redis.get(RedisChallengeStore.key(lookup));
    return value === null ? undefined : { ...(JSON.parse(value) as NewFlow), state: 'active', consumed_at: null, failed_attempts: 0 };
  }
}

/** The store config.challengeStore names; `redis` needs the app's Redis connection (src/redis/openRedis.ts). */
export function createChallengeStore(config: Pick<Config, 'challengeStore'>, store: Store, redis?: Redis): ChallengeStore {
  switch (config.challengeStore) {
    case 'memory':
      return new MemoryChallengeStore();
    case 'database':
      return new DatabaseChallengeStore(store);
    case 'redis':
      if (!redis) throw new Error('LATCHKEY_CHALLENGE_STORE=redis needs a Redis connection (LATCHKEY_REDIS_URL)');
      return new RedisChallengeStore(redis);
  }
}
