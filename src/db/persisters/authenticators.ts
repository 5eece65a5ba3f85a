import { type Kysely, PostgresAdapter, sql } from 'kysely';
import { PreparedQuery, READ } from '../preparedQuery.js';
import { joinedUserColumns, normalizeEmail, splitJoinedUser } from './users.js';
import type { Authenticator, Database, NewAuthenticator, User } from '../schema.js';

// The sign-in path runs these (src/db/preparedQuery.ts).
const selectByCredentialIdWithUser = new PreparedQuery<{ credentialId: string }, Authenticator & Parameters<typeof splitJoinedUser>[0]>((db, p) =>
  db
    .selectFrom('authenticators')
    .innerJoin('users', 'users.id', 'authenticators.user_id')
    .selectAll('authenticators')
    .select(joinedUserColumns)
    .where('authenticators.credential_id', '=', p.credentialId),
  READ,
);
const selectForUser = new PreparedQuery<{ userId: string }, Authenticator>((db, p) =>
  db.selectFrom('authenticators').selectAll().where('user_id', '=', p.userId).orderBy('created_at', 'asc').orderBy('id'),
  READ,
);
// Email-first sign-in's options: the account's id and the ids and transports of its authenticators of one kind, in
// one query (one round trip on PostgreSQL), and no more than the options need (reading the whole rows instead measured
// no different within its error: BENCHMARKS.md, 2026-12-07 14:30 UTC).
const selectOfTypeByEmail = new PreparedQuery<
  { emailNormalized: string; type: string },
  { owner_id: string; credential_id: string | null; transports: string | null }
>((db, p) =>
  db
    .selectFrom('users')
    .leftJoin('authenticators', (join) => join.onRef('authenticators.user_id', '=', 'users.id').on('authenticators.type', '=', p.type))
    .select(['users.id as owner_id', 'authenticators.credential_id', 'authenticators.transports'])
    .where('users.email_normalized', '=', p.emailNormalized)
    .orderBy('authenticators.created_at', 'asc')
    .orderBy('authenticators.id'),
  READ,
);
type Use = { id: string; counter: number; backedUp: number; backupEligible: number; at: number };
const recordUse = (operator: '<' | '=') =>
  new PreparedQuery<Use, never>((db, p) =>
    db
      .updateTable('authenticators')
      .set({ counter: p.counter, backed_up: p.backedUp, backup_eligible: p.backupEligible, last_used_at: p.at })
      .where('id', '=', p.id)
      .where('counter', operator, p.counter),
  );
// WebAuthn L3 §7.2 step 22: a counter of 0 on both sides means the authenticator has none.
const recordUseWithoutCounter = recordUse('=');
const recordUseWithCounter = recordUse('<');

/** What the statement below fails with (in its message) when it changed no row. */
const COUNTER_DID_NOT_MOVE = 'latchkey: counter did not move';
/**
 * PostgreSQL: recordUse as a statement that fails when it changes no row, so nothing needs its answer: in a
 * transaction it goes out deferred with the writes after it and the commit, in one round trip (src/db/pgClient.ts),
 * and a use that lost aborts the transaction. The UPDATE is a data-modifying CTE; the SELECT yields no row when it
 * changed one, else casts a marked text (non-constant, so only then, never at planning) to int, which fails.
 */
const recordUseOrFail = (operator: '<' | '=') =>
  new PreparedQuery<Use, never>(
    (db, p) =>
      db
        .with('used', (qb) =>
          qb
            .updateTable('authenticators')
            .set({ counter: p.counter, backed_up: p.backedUp, backup_eligible: p.backupEligible, last_used_at: p.at })
            .where('id', '=', p.id)
            .where('counter', operator, p.counter)
            .returning('id'),
        )
        .selectFrom('used')
        .select(sql<number>`(${sql.lit(COUNTER_DID_NOT_MOVE + ': ')} || count(*))::int`.as('failed'))
        .having(sql`count(*)`, '=', sql.lit(0)) as never,
    { deferrable: true },
  );
const recordUseWithoutCounterOrFail = recordUseOrFail('=');
const recordUseWithCounterOrFail = recordUseOrFail('<');

/** A use recordUseOrFail refused: the counter did not move (a concurrent or replayed use got there first). */
export class CounterDidNotMove extends Error {
  constructor() {
    super('the signature counter did not move');
  }
}

/** Whether `error` is recordUseOrFail's refusal: thrown by it, or by the statement or commit after it on PostgreSQL. */
export function isCounterDidNotMove(error: unknown): boolean {
  return error instanceof CounterDidNotMove || (error instanceof Error && (error as { code?: unknown }).code === '22P02' && error.message.includes(COUNTER_DID_NOT_MOVE));
}

export class AuthenticatorPersister {
  private readonly postgres: boolean;

  constructor(private readonly db: Kysely<Database>) {
    this.postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  }

  async insert(authenticator: NewAuthenticator): Promise<void> {
    await this.db.insertInto('authenticators').values(authenticator).execute();
  }

  findByCredentialId(credentialId: string): Promise<Authenticator | undefined> {
    return this.db.selectFrom('authenticators').selectAll().where('credential_id', '=', credentialId).executeTakeFirst();
  }

  /** A credential and its owner in one query: the sign-in path needs both. */
  async findByCredentialIdWithUser(credentialId: string): Promise<{ authenticator: Authenticator; user: User } | undefined> {
    const row = await selectByCredentialIdWithUser.takeFirst(this.db, { credentialId });
    if (!row) return undefined;
    const { own, user } = splitJoinedUser(row);
    return { authenticator: own, user };
  }

  /**
   * The id of the account with this email address (compared as stored, normalised) and the credential ids and
   * transports of its authenticators of `type`, oldest first, in one query. No account: no id and none listed.
   */
  async listForEmail(email: string, type: string): Promise<{ userId: string | undefined; authenticators: Pick<Authenticator, 'credential_id' | 'transports'>[] }> {
    const { rows } = await selectOfTypeByEmail.execute(this.db, { emailNormalized: normalizeEmail(email), type });
    const authenticators: Pick<Authenticator, 'credential_id' | 'transports'>[] = [];
    // An account with none of that kind comes back as one row with the authenticator's columns null.
    for (const row of rows) if (row.credential_id !== null) authenticators.push({ credential_id: row.credential_id, transports: row.transports! });
    return { userId: rows[0]?.owner_id, authenticators };
  }

  findForUser(userId: string, id: string): Promise<Authenticator | undefined> {
    return this.db.selectFrom('authenticators').selectAll().where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
  }

  async listForUser(userId: string): Promise<Authenticator[]> {
    return (await selectForUser.execute(this.db, { userId })).rows;
  }

  async countForUser(userId: string, type = 'passkey'): Promise<number> {
    const row = await this.db
      .selectFrom('authenticators')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .where('type', '=', type)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /**
   * Record a successful use. The counter only moves forward: the WHERE clause
   * makes a concurrent, older assertion lose instead of rolling the counter back.
   */
  async recordUse(id: string, fields: { counter: number; backedUp: boolean; backupEligible: boolean; at: number }): Promise<boolean> {
    const query = fields.counter === 0 ? recordUseWithoutCounter : recordUseWithCounter;
    return (await query.affectedRows(this.db, { id, counter: fields.counter, backedUp: fields.backedUp ? 1 : 0, backupEligible: fields.backupEligible ? 1 : 0, at: fields.at })) === 1;
  }

  /**
   * recordUse for a transaction that must not go on when the use is not recorded: instead of false, the
   * transaction fails with an error `isCounterDidNotMove` recognises. On SQLite (and on PostgreSQL outside a
   * transaction) this call throws it; in a transaction on PostgreSQL it may come from a later statement of the
   * transaction or its commit instead, so the transaction's writes after it need no round trip of their own.
   */
  async recordUseOrFail(id: string, fields: { counter: number; backedUp: boolean; backupEligible: boolean; at: number }): Promise<void> {
    const params = { id, counter: fields.counter, backedUp: fields.backedUp ? 1 : 0, backupEligible: fields.backupEligible ? 1 : 0, at: fields.at };
    if (!this.postgres) {
      if (!(await this.recordUse(id, fields))) throw new CounterDidNotMove();
      return;
    }
    try {
      await (fields.counter === 0 ? recordUseWithoutCounterOrFail : recordUseWithCounterOrFail).execute(this.db, params);
    } catch (error) {
      throw isCounterDidNotMove(error) ? new CounterDidNotMove() : error;
    }
  }

  /**
   * Replace a kind's configuration only if it is still `from` (compare and set): of two requests that read the
   * same configuration and both try to move it on (an app's last used step), one wins.
   */
  async swapConfig(id: string, from: string, to: string, lastUsedAt?: number): Promise<boolean> {
    const result = await this.db
      .updateTable('authenticators')
      .set({ config: to, ...(lastUsedAt === undefined ? {} : { last_used_at: lastUsedAt }) })
      .where('id', '=', id)
      .where('config', '=', from)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Every authenticator made by one model (its AAGUID, lower case as stored), with its owner: the people to tell
   * when the FIDO metadata marks that model compromised. Rare, so no index on aaguid: a scan is fine.
   */
  async listOfModelWithUser(aaguid: string): Promise<{ authenticator: Authenticator; user: User }[]> {
    const rows = await this.db
      .selectFrom('authenticators')
      .innerJoin('users', 'users.id', 'authenticators.user_id')
      .selectAll('authenticators')
      .select(joinedUserColumns)
      .where('authenticators.aaguid', '=', aaguid.toLowerCase())
      .orderBy('authenticators.created_at')
      .orderBy('authenticators.id')
      .execute();
    return rows.map((row) => {
      const { own, user } = splitJoinedUser(row);
      return { authenticator: own, user };
    });
  }

  async rename(userId: string, id: string, name: string): Promise<boolean> {
    const result = await this.db.updateTable('authenticators').set({ name }).where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async remove(userId: string, id: string): Promise<boolean> {
    const result = await this.db.deleteFrom('authenticators').where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) === 1;
  }
}
