/**
 * Where WebAuthn challenges live between the options and the verify request:
 * each one a flow record (id, ceremony type, browser binding, user, expiry),
 * server-side, found by its challenge and consumed once.
 *
 * - `database`: the flows table. Every server process sharing the database
 *   shares the challenges, so any instance can finish a ceremony another began.
 *   The default on PostgreSQL, where several instances are the point.
 * - `memory`: a bounded map in this server process. No writes: a sign-in then
 *   commits once (the use, the session and the audit record) instead of three
 *   times (BENCHMARKS.md). The default on SQLite, whose file belongs to one
 *   server process. A restart forgets ceremonies in progress (they start again).
 *
 * Both consume with one indivisible step (a conditional `UPDATE … RETURNING`,
 * or a map check-and-delete with no `await` between), so of concurrent
 * submissions of one response exactly one gets the flow.
 */
import type { Flow } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { NewFlow } from '../db/persisters/flows.js';

export type ChallengeStoreKind = 'memory' | 'database';

export interface ChallengeStore {
  readonly kind: ChallengeStoreKind;
  save(flow: NewFlow): Promise<void>;
  /** The active, unexpired flow for this challenge if its type and binding match, consumed; else undefined (and nothing changes). */
  consume(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined>;
  /** The flow for this challenge in whatever state, without consuming it. */
  peek(lookup: string): Promise<Flow | undefined>;
}

export class DatabaseChallengeStore implements ChallengeStore {
  readonly kind = 'database';
  constructor(private readonly store: Store) {}

  async save(flow: NewFlow): Promise<void> {
    await this.store.flows.insert(flow);
  }

  consume(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined> {
    return this.store.flows.consumeByLookup(lookup, type, bindingHash, now);
  }

  peek(lookup: string): Promise<Flow | undefined> {
    return this.store.flows.findByLookup(lookup);
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

  get size(): number {
    return this.current.size + this.previous.size;
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
