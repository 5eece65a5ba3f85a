/**
 * WebAuthn challenges waiting between a ceremony's options and its verify, for the `database` challenge store
 * (src/webauthn/challengeStore.ts): one row per challenge, keyed by it, deleted when used.
 *
 * A table of their own rather than the flows table, because every sign-in writes one: a row here has one index (its
 * key) and no foreign key, where a flow's row has four indexes and checks its user on insert. Rows that are never
 * used (a ceremony abandoned) stay until they expire and maintenance deletes them; so the table holds ceremonies in
 * progress and few others, and the count and the purge scan it whole instead of keeping an index on expiry up to date
 * on every sign-in.
 */
import { type Kysely, PostgresAdapter, type QueryCreator, sql } from 'kysely';
import { CHALLENGE_WRITE, PreparedQuery, READ } from '../preparedQuery.js';
import type { Authenticator, Challenge, Database, Flow, User } from '../schema.js';
import { AuthenticatorPersister } from './authenticators.js';
import type { NewFlow } from './flows.js';
import { joinedUserColumns, splitJoinedUser } from './users.js';

/**
 * PostgreSQL: true, having set synchronous_commit off for the statement's own transaction (set_config's is_local: it
 * ends with the transaction), so its commit returns without waiting for the WAL flush. A challenge lost in a crash of
 * the database server fails that ceremony, which starts again; a use lost is made durable by the sign-in's own commit
 * after it (a commit flushes the WAL up to itself), and a use without a sign-in after it was one whose response
 * failed. set_config is volatile, so it runs when the row is written, never at planning. Only on statements of their
 * own (outside `store.transaction`), or every write of the caller's transaction would commit that way too.
 */
const WITHOUT_SYNC_COMMIT = sql<boolean>`set_config('synchronous_commit', 'off', true) is not null`;
/** `value` in an insert, having set synchronous_commit off (WITHOUT_SYNC_COMMIT). */
function withoutSyncCommit<T>(value: T) {
  return sql<T>`case when ${WITHOUT_SYNC_COMMIT} then ${value} end`;
}

type ConsumeParams = { lookup: string; type: string; bindingHash: string; now: number };

function row(c: NewFlow, type: string | ReturnType<typeof withoutSyncCommit<string>>) {
  return { lookup: c.lookup, id: c.id, type, binding_hash: c.binding_hash, user_id: c.user_id, data: c.data, created_at: c.created_at, expires_at: c.expires_at };
}

const insert = new PreparedQuery<NewFlow, never>((db, c) => db.insertInto('challenges').values(row(c, c.type)));
const insertWithoutFlush = new PreparedQuery<NewFlow, never>((db, c) => db.insertInto('challenges').values(row(c, withoutSyncCommit(c.type))), CHALLENGE_WRITE);
const selectByLookup = new PreparedQuery<{ lookup: string }, Challenge>((db, p) => db.selectFrom('challenges').selectAll().where('lookup', '=', p.lookup), READ);

/** Delete the usable challenge with this lookup, type and binding, returning it; with `withoutFlush`, WITHOUT_SYNC_COMMIT's. */
function deleteUsable(qb: QueryCreator<Database>, p: ConsumeParams, withoutFlush: boolean) {
  const query = qb
    .deleteFrom('challenges')
    .where('lookup', '=', p.lookup)
    .where('type', '=', p.type)
    .where('binding_hash', '=', p.bindingHash)
    .where('expires_at', '>', p.now);
  return (withoutFlush ? query.where(WITHOUT_SYNC_COMMIT) : query).returningAll();
}
const consume = new PreparedQuery<ConsumeParams, Challenge>((db, p) => deleteUsable(db, p, false));
const consumeWithoutFlush = new PreparedQuery<ConsumeParams, Challenge>((db, p) => deleteUsable(db, p, true), CHALLENGE_WRITE);

/** The challenge's columns, prefixed, where they sit beside an authenticator's (same names: id, type, user_id …). */
const CHALLENGE_COLUMNS = ['lookup', 'id', 'type', 'binding_hash', 'user_id', 'data', 'created_at', 'expires_at'] as const;
type PrefixedChallenge = { [K in (typeof CHALLENGE_COLUMNS)[number] as `challenge_${K}`]: Challenge[K] };
type NullableRow<T> = { [K in keyof T]: T[K] | null };

/**
 * PostgreSQL only: the use and the credential lookup in one statement (a data-modifying CTE), so a WebAuthn verify
 * takes one round trip before its transaction instead of two. The DELETE runs whatever the credential; its row comes
 * back with the credential and its owner beside it, or with nulls there.
 */
const consumeWithCredential = new PreparedQuery<ConsumeParams & { credentialId: string }, PrefixedChallenge & NullableRow<Authenticator & Parameters<typeof splitJoinedUser>[0]>>(
  (db, p) =>
    db
      .with('used', (qb) => deleteUsable(qb, p, true))
      .selectFrom('used')
      .leftJoin('authenticators', (join) => join.on('authenticators.credential_id', '=', p.credentialId))
      .leftJoin('users', 'users.id', 'authenticators.user_id')
      .select(CHALLENGE_COLUMNS.map((c) => `used.${c} as challenge_${c}` as const))
      .selectAll('authenticators')
      .select(joinedUserColumns) as never,
  CHALLENGE_WRITE,
);

/** A challenge as the flow the stores hand to ceremonies (src/webauthn/challengeStore.ts). */
function asFlow(c: Challenge, consumedAt: number | null): Flow {
  return { ...c, state: consumedAt === null ? 'active' : 'consumed', consumed_at: consumedAt, failed_attempts: 0 };
}

export class ChallengePersister {
  /**
   * On PostgreSQL outside a transaction, the challenge's insert and use commit without waiting for the WAL flush
   * (WITHOUT_SYNC_COMMIT); inside `store.transaction` they are durable like the rest of it.
   */
  private readonly withoutFlush: boolean;

  constructor(private readonly db: Kysely<Database>) {
    this.withoutFlush = db.getExecutor().adapter instanceof PostgresAdapter && !db.isTransaction;
  }

  /** Store a challenge (DatabaseChallengeStore calls it on the root store: see withoutFlush). */
  async insert(challenge: NewFlow): Promise<void> {
    await (this.withoutFlush ? insertWithoutFlush : insert).execute(this.db, challenge);
  }

  /** The challenge, unused and whatever its expiry, as an active flow; undefined when there is none. */
  async find(lookup: string): Promise<Flow | undefined> {
    const c = await selectByLookup.takeFirst(this.db, { lookup });
    return c && asFlow(c, null);
  }

  /**
   * Use a challenge once: of any number of concurrent callers at most one gets it (the check and the delete are one
   * statement). Undefined when there is none, it has expired, or its type or binding differ (it then stays).
   */
  async consume(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined> {
    const c = await (this.withoutFlush ? consumeWithoutFlush : consume).takeFirst(this.db, { lookup, type, bindingHash, now });
    return c && asFlow(c, now);
  }

  /**
   * consume, and the credential with this id with its owner (a WebAuthn verify needs both): undefined when no
   * challenge was used, else its flow and the credential if there is one. On PostgreSQL outside a transaction one
   * statement (one round trip); else the two queries one after the other, the credential looked up only when a
   * challenge was used.
   */
  async consumeWithCredential(
    lookup: string,
    type: string,
    bindingHash: string,
    now: number,
    credentialId: string,
  ): Promise<{ flow: Flow; credential: { authenticator: Authenticator; user: User } | undefined } | undefined> {
    if (!this.withoutFlush) {
      const flow = await this.consume(lookup, type, bindingHash, now);
      return flow && { flow, credential: await new AuthenticatorPersister(this.db).findByCredentialIdWithUser(credentialId) };
    }
    const found = await consumeWithCredential.takeFirst(this.db, { lookup, type, bindingHash, now, credentialId });
    if (!found) return undefined;
    const challenge = {} as Record<string, unknown>;
    const rest = { ...found } as Record<string, unknown>;
    for (const c of CHALLENGE_COLUMNS) {
      challenge[c] = rest[`challenge_${c}`];
      delete rest[`challenge_${c}`];
    }
    const flow = asFlow(challenge as Challenge, now);
    if (rest.id === null) return { flow, credential: undefined };
    const { own, user } = splitJoinedUser(rest as unknown as Authenticator & Parameters<typeof splitJoinedUser>[0]);
    return { flow, credential: { authenticator: own as Authenticator, user } };
  }

  /** Challenges not yet used nor expired: ceremonies in progress (a gauge read on scrape). */
  async countActive(now: number): Promise<number> {
    const r = await this.db
      .selectFrom('challenges')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('expires_at', '>', now)
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  /** Delete the challenges that expired unused; returns how many. */
  async deleteExpired(now: number): Promise<number> {
    const r = await this.db.deleteFrom('challenges').where('expires_at', '<=', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
