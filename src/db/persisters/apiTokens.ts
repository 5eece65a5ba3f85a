import type { Kysely } from 'kysely';
import type { ApiToken, Database } from '../schema.js';

/** Admin API and SCIM tokens, found by the hash of the bearer value. */
export class ApiTokenPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(token: ApiToken): Promise<void> {
    await this.db.insertInto('api_tokens').values(token).execute();
  }

  findByHash(tokenHash: string): Promise<ApiToken | undefined> {
    return this.db.selectFrom('api_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  }

  findById(id: string): Promise<ApiToken | undefined> {
    return this.db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * The ids of the tokens the audit log's "By" filter names: the one with this id, or every one with this name
   * (any case: names need not be unique). Empty when none match.
   */
  async idsByIdOrName(value: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('api_tokens')
      .select('id')
      .where((eb) => eb.or([eb('id', '=', value), eb(eb.fn('lower', ['name']), '=', value.toLowerCase())]))
      .execute();
    return rows.map((r) => r.id);
  }

  /** Every token, newest first (there are few: one per integration). */
  list(): Promise<ApiToken[]> {
    return this.db.selectFrom('api_tokens').selectAll().orderBy('created_at', 'desc').orderBy('id').execute();
  }

  /** Revoke once; false when it was already revoked or does not exist. */
  async revoke(id: string, now: number): Promise<boolean> {
    const result = await this.db.updateTable('api_tokens').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async touch(id: string, now: number): Promise<void> {
    await this.db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', id).execute();
  }
}
