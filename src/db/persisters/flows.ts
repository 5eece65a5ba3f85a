import { type Kysely, PostgresAdapter, type QueryCreator, type RawBuilder, sql } from 'kysely';
import { CHALLENGE_WRITE, PreparedQuery, READ } from '../preparedQuery.js';
import type { Authenticator, Database, Flow, User } from '../schema.js';
import { AuthenticatorPersister } from './authenticators.js';
import { joinedUserColumns, splitJoinedUser } from './users.js';

export type NewFlow = Omit<Flow, 'state' | 'consumed_at' | 'failed_attempts'>;

/** A new flow's row, active; `state` is an expression where the caller needs one (insertChallenge). */
function newFlowRow<S>(f: NewFlow, state: S) {
  return { id: f.id, type: f.type, state, binding_hash: f.binding_hash, user_id: f.user_id, lookup: f.lookup, data: f.data, created_at: f.created_at, expires_at: f.expires_at, consumed_at: null, failed_attempts: 0 };
}

// Every WebAuthn ceremony runs these (src/db/preparedQuery.ts).
const insertFlow = new PreparedQuery<NewFlow, never>((db, f) => db.insertInto('flows').values(newFlowRow(f, 'active' as const)));
/**
 * PostgreSQL: `value`, having set synchronous_commit off for the statement's own transaction (set_config's is_local:
 * it ends with the transaction): its commit then returns without waiting for the WAL flush. For the WebAuthn
 * challenge's writes only, which need not survive a crash of the database server: a challenge lost before it was
 * used fails that ceremony, which starts again; a consume lost is made durable by the sign-in's own commit after it
 * (a commit flushes the WAL up to itself, so every earlier commit with it), and a consume without a sign-in after it
 * was one whose response failed. set_config is volatile, so it runs when the row is written, never at planning.
 */
function withoutSyncCommit<T extends string>(value: T) {
  return sql<T>`case when set_config('synchronous_commit', 'off', true) is not null then ${sql.lit(value)} end`;
}

/** insertFlow for a WebAuthn challenge on PostgreSQL: committed without waiting for the WAL flush (withoutSyncCommit). */
const insertChallenge = new PreparedQuery<NewFlow, never>((db, f) => db.insertInto('flows').values(newFlowRow(f, withoutSyncCommit('active'))), CHALLENGE_WRITE);
const selectByLookup = new PreparedQuery<{ lookup: string }, Flow>((db, p) => db.selectFrom('flows').selectAll().where('lookup', '=', p.lookup), READ);
const consumeById = new PreparedQuery<{ id: string; now: number }, never>((db, p) =>
  db
    .updateTable('flows')
    .set({ state: 'consumed', consumed_at: p.now })
    .where('id', '=', p.id)
    .where('state', '=', 'active')
    .where('expires_at', '>', p.now),
);
/** Consume the active, unexpired flow with this lookup, type and binding, returning it; `state` 'consumed', or withoutSyncCommit's. */
function consumeActive(qb: QueryCreator<Database>, p: { lookup: string; type: string; bindingHash: string; now: number }, state: 'consumed' | RawBuilder<'consumed'>) {
  return qb
    .updateTable('flows')
    .set({ state, consumed_at: p.now })
    .where('lookup', '=', p.lookup)
    .where('type', '=', p.type)
    .where('binding_hash', '=', p.bindingHash)
    .where('state', '=', 'active')
    .where('expires_at', '>', p.now)
    .returningAll();
}
const consumeByLookup = new PreparedQuery<{ lookup: string; type: string; bindingHash: string; now: number }, Flow>((db, p) => consumeActive(db, p, 'consumed'));

/** The flow's columns, prefixed, where they sit beside an authenticator's (same names: id, type, user_id …). */
const FLOW_COLUMNS = ['id', 'type', 'state', 'binding_hash', 'user_id', 'lookup', 'data', 'created_at', 'expires_at', 'consumed_at', 'failed_attempts'] as const;
type PrefixedFlow = { [K in (typeof FLOW_COLUMNS)[number] as `flow_${K}`]: Flow[K] };
type NullableRow<T> = { [K in keyof T]: T[K] | null };

/**
 * PostgreSQL only: consumeByLookup and the credential lookup in one statement (a data-modifying CTE), so a
 * WebAuthn verify takes one round trip before its transaction instead of two. The UPDATE runs whatever the
 * credential; its row comes back with the credential and its owner beside it, or with nulls there.
 */
const consumeByLookupWithCredential = new PreparedQuery<
  { lookup: string; type: string; bindingHash: string; now: number; credentialId: string },
  PrefixedFlow & NullableRow<Authenticator & Parameters<typeof splitJoinedUser>[0]>
>((db, p) =>
  db
    .with('consumed', (qb) => consumeActive(qb, p, withoutSyncCommit('consumed')))
    .selectFrom('consumed')
    .leftJoin('authenticators', (join) => join.on('authenticators.credential_id', '=', p.credentialId))
    .leftJoin('users', 'users.id', 'authenticators.user_id')
    .select(FLOW_COLUMNS.map((c) => `consumed.${c} as flow_${c}` as const))
    .selectAll('authenticators')
    .select(joinedUserColumns) as never,
  CHALLENGE_WRITE,
);

export class FlowPersister {
  private readonly postgres: boolean;

  constructor(private readonly db: Kysely<Database>) {
    this.postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  }

  async insert(flow: NewFlow): Promise<void> {
    await insertFlow.execute(this.db, flow);
  }

  /** Active, unexpired flows of these types (a gauge read on scrape; the expiry index bounds the scan). */
  async countActive(types: readonly string[], now: number): Promise<number> {
    if (types.length === 0) return 0;
    const row = await this.db
      .selectFrom('flows')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('expires_at', '>', now)
      .where('state', '=', 'active')
      .where('type', 'in', types)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /**
   * Store a WebAuthn challenge's flow: `insert`, except that on PostgreSQL its commit does not wait for the WAL flush
   * (withoutSyncCommit: a challenge lost in a crash of the database server fails only its ceremony). On its own
   * statement only, never inside `store.transaction`: the setting lasts until the transaction ends, so every write
   * of that transaction would commit without waiting for the flush too (DatabaseChallengeStore calls it on the root store).
   */
  async insertChallenge(flow: NewFlow): Promise<void> {
    await (this.postgres ? insertChallenge : insertFlow).execute(this.db, flow);
  }

  findByLookup(lookup: string): Promise<Flow | undefined> {
    return selectByLookup.takeFirst(this.db, { lookup });
  }

  findById(id: string): Promise<Flow | undefined> {
    return this.db.selectFrom('flows').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * Consume a flow once: of any number of concurrent callers exactly one gets
   * true, because the state check and the update are one statement.
   */
  async consume(id: string, now: number): Promise<boolean> {
    return (await consumeById.affectedRows(this.db, { id, now })) === 1;
  }

  /** Revoke a user's active flows of some type(s) (e.g. earlier invite links), except `exceptId`; returns how many. */
  async revokeActiveForUser(userId: string, type: string | string[], now: number, exceptId?: string): Promise<number> {
    let query = this.db
      .updateTable('flows')
      .set({ state: 'revoked', consumed_at: now })
      .where('user_id', '=', userId)
      .where('type', 'in', Array.isArray(type) ? type : [type])
      .where('state', '=', 'active')
      .where('expires_at', '>', now);
    if (exceptId) query = query.where('id', '!=', exceptId);
    const r = await query.executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /**
   * Find and consume, in one statement, the active flow with this lookup key,
   * type and browser binding. Returns it, or undefined when there is none (or
   * a concurrent caller consumed it first). A mismatched type or binding leaves
   * the flow untouched.
   */
  consumeByLookup(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined> {
    return consumeByLookup.takeFirst(this.db, { lookup, type, bindingHash, now });
  }

  /**
   * consumeByLookup, and the credential with this id with its owner (a WebAuthn verify needs both): undefined when
   * no flow was consumed, else the flow and the credential if there is one. On PostgreSQL one statement (one round
   * trip) whose commit does not wait for the WAL flush (withoutSyncCommit); on SQLite the two queries one after the
   * other. The credential is looked up only when a flow was consumed.
   */
  async consumeByLookupWithCredential(
    lookup: string,
    type: string,
    bindingHash: string,
    now: number,
    credentialId: string,
  ): Promise<{ flow: Flow; credential: { authenticator: Authenticator; user: User } | undefined } | undefined> {
    if (!this.postgres) {
      const flow = await this.consumeByLookup(lookup, type, bindingHash, now);
      return flow && { flow, credential: await new AuthenticatorPersister(this.db).findByCredentialIdWithUser(credentialId) };
    }
    const row = await consumeByLookupWithCredential.takeFirst(this.db, { lookup, type, bindingHash, now, credentialId });
    if (!row) return undefined;
    const flow = {} as Record<string, unknown>;
    const rest = { ...row } as Record<string, unknown>;
    for (const c of FLOW_COLUMNS) {
      flow[c] = rest[`flow_${c}`];
      delete rest[`flow_${c}`];
    }
    if (rest.id === null) return { flow: flow as Flow, credential: undefined };
    const { own, user } = splitJoinedUser(rest as unknown as Authenticator & Parameters<typeof splitJoinedUser>[0]);
    return { flow: flow as Flow, credential: { authenticator: own as Authenticator, user } };
  }

  /** A user's flows of some types, newest first (enrolment links and codes for the console). */
  listForUser(userId: string, types: string[], limit = 20): Promise<Flow[]> {
    return this.db
      .selectFrom('flows')
      .selectAll()
      .where('user_id', '=', userId)
      .where('type', 'in', types)
      .orderBy('created_at', 'desc')
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  /**
   * Count one wrong guess against an active flow; at `limit` wrong guesses the
   * flow is revoked (burned). One statement each, so concurrent guesses can't
   * slip past the limit. Returns the count after this guess.
   */
  async recordFailedAttempt(id: string, limit: number, now: number): Promise<number> {
    await this.db
      .updateTable('flows')
      .set((eb) => ({ failed_attempts: eb('failed_attempts', '+', 1) }))
      .where('id', '=', id)
      .where('state', '=', 'active')
      .execute();
    await this.db
      .updateTable('flows')
      .set({ state: 'revoked', consumed_at: now })
      .where('id', '=', id)
      .where('state', '=', 'active')
      .where('failed_attempts', '>=', limit)
      .execute();
    const row = await this.db.selectFrom('flows').select('failed_attempts').where('id', '=', id).executeTakeFirst();
    return row?.failed_attempts ?? limit;
  }

  /** Revoke one active flow (an agent cancels a link or code); false when it was no longer active. */
  async revoke(id: string, now: number): Promise<boolean> {
    const r = await this.db.updateTable('flows').set({ state: 'revoked', consumed_at: now }).where('id', '=', id).where('state', '=', 'active').executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Move an active flow on: new data and, once known, whose it is. False when it is no longer active. */
  async advance(id: string, fields: { data: string; user_id?: string | null }, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('flows')
      .set(fields)
      .where('id', '=', id)
      .where('state', '=', 'active')
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async updateData(id: string, data: string): Promise<void> {
    await this.db.updateTable('flows').set({ data }).where('id', '=', id).execute();
  }

  /**
   * Replace the data only if it is still `expected`: of concurrent callers that read the same data, exactly one gets
   * true (e.g. the one page load that shows an issued link once).
   */
  async swapData(id: string, expected: string, data: string): Promise<boolean> {
    const r = await this.db.updateTable('flows').set({ data }).where('id', '=', id).where('data', '=', expected).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Flows of some types still active when they expired, in (after, until]: links and codes that ran out unused. */
  listExpiredBetween(types: readonly string[], after: number, until: number): Promise<Flow[]> {
    return this.db
      .selectFrom('flows')
      .selectAll()
      .where('expires_at', '>', after)
      .where('expires_at', '<=', until)
      .where('type', 'in', [...types])
      .where('state', '=', 'active')
      .orderBy('expires_at')
      .execute();
  }

  /**
   * Drop flows that expired more than `graceMs` ago, optionally only of some
   * types or all but some: used and expired invites are kept longer than
   * ceremonies so their pages can say why they no longer work.
   */
  async deleteEnded(now: number, graceMs: number, filter: { types?: string[]; exceptTypes?: string[] } = {}): Promise<number> {
    let query = this.db.deleteFrom('flows').where('expires_at', '<=', now - graceMs);
    if (filter.types) query = query.where('type', 'in', filter.types);
    if (filter.exceptTypes) query = query.where('type', 'not in', filter.exceptTypes);
    const r = await query.executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
