import type { Kysely } from 'kysely';
import type { Database, SigningKey } from '../schema.js';

export class SigningKeyPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(key: SigningKey): Promise<void> {
    await this.db.insertInto('signing_keys').values(key).execute();
  }

  /** Keys still published at `now`, newest first: the first is the one that signs. */
  listPublished(now: number): Promise<SigningKey[]> {
    return this.db
      .selectFrom('signing_keys')
      .selectAll()
      .where((eb) => eb.or([eb('retires_at', 'is', null), eb('retires_at', '>', now)]))
      .orderBy('created_at', 'desc')
      .orderBy('kid', 'desc')
      .execute();
  }

  /** Stop every current key from signing; each stays published until `retiresAt`. */
  async retireCurrent(retiresAt: number): Promise<number> {
    const r = await this.db.updateTable('signing_keys').set({ retires_at: retiresAt }).where('retires_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /** Current keys (of one algorithm, when given). */
  async countCurrent(alg?: string): Promise<number> {
    let query = this.db
      .selectFrom('signing_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('retires_at', 'is', null);
    if (alg !== undefined) query = query.where('alg', '=', alg);
    const row = await query.executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
