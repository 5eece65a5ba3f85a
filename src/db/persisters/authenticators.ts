import type { Kysely } from 'kysely';
import { joinedUserColumns, splitJoinedUser } from './users.js';
import type { Authenticator, Database, NewAuthenticator, User } from '../schema.js';

export class AuthenticatorPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(authenticator: NewAuthenticator): Promise<void> {
    await this.db.insertInto('authenticators').values(authenticator).execute();
  }

  findByCredentialId(credentialId: string): Promise<Authenticator | undefined> {
    return this.db.selectFrom('authenticators').selectAll().where('credential_id', '=', credentialId).executeTakeFirst();
  }

  /** A credential and its owner in one query: the sign-in path needs both. */
  async findByCredentialIdWithUser(credentialId: string): Promise<{ authenticator: Authenticator; user: User } | undefined> {
    const row = await this.db
      .selectFrom('authenticators')
      .innerJoin('users', 'users.id', 'authenticators.user_id')
      .selectAll('authenticators')
      .select(joinedUserColumns)
      .where('authenticators.credential_id', '=', credentialId)
      .executeTakeFirst();
    if (!row) return undefined;
    const { own, user } = splitJoinedUser(row);
    return { authenticator: own, user };
  }

  findForUser(userId: string, id: string): Promise<Authenticator | undefined> {
    return this.db.selectFrom('authenticators').selectAll().where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
  }

  listForUser(userId: string): Promise<Authenticator[]> {
    return this.db.selectFrom('authenticators').selectAll().where('user_id', '=', userId).orderBy('created_at', 'asc').orderBy('id').execute();
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
  async recordUse(id: string, fields: { counter: number; backedUp: boolean; at: number }): Promise<boolean> {
    const result = await this.db
      .updateTable('authenticators')
      .set({ counter: fields.counter, backed_up: fields.backedUp ? 1 : 0, last_used_at: fields.at })
      .where('id', '=', id)
      // WebAuthn L3 §7.2 step 22: a counter of 0 on both sides means the authenticator has none.
      .where('counter', fields.counter === 0 ? '=' : '<', fields.counter)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
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
