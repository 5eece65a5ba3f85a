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

/** At most this many ceremonies in progress per process (about 400 bytes each); past it the oldest is dropped. */
export const MEMORY_CHALLENGE_LIMIT = 100_000;

export class MemoryChallengeStore implements ChallengeStore {
  readonly kind = 'memory';
  // Insertion order is creation order, and every challenge lives equally long: the oldest expire first.
  private readonly flows = new Map<string, Flow>();
  private sweptAt = -Infinity;

  constructor(private readonly limit = MEMORY_CHALLENGE_LIMIT) {}

  get size(): number {
    return this.flows.size;
  }

  async save(flow: NewFlow): Promise<void> {
    this.sweep(flow.created_at);
    // Challenges are 32 random bytes: a repeat is a caller's bug, never a collision to tolerate.
    if (this.flows.has(flow.lookup)) throw new Error('challenge already stored');
    while (this.flows.size >= this.limit) this.flows.delete(this.flows.keys().next().value!);
    this.flows.set(flow.lookup, { ...flow, state: 'active', consumed_at: null, failed_attempts: 0 });
  }

  async consume(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined> {
    const flow = this.flows.get(lookup);
    if (!flow || flow.type !== type || flow.binding_hash !== bindingHash || flow.expires_at <= now) return undefined;
    this.flows.delete(lookup);
    return { ...flow, state: 'consumed', consumed_at: now };
  }

  async peek(lookup: string): Promise<Flow | undefined> {
    const flow = this.flows.get(lookup);
    return flow && { ...flow };
  }

  /** Drop expired challenges from the oldest on, at most once a second; stops at the first live one. */
  private sweep(now: number): void {
    if (now - this.sweptAt < 1000) return;
    this.sweptAt = now;
    for (const [lookup, flow] of this.flows) {
      if (flow.expires_at > now) break;
      this.flows.delete(lookup);
    }
  }
}
