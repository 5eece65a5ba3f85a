import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';

/**
 * Consecutive failed sign-ins at addresses without an account (src/strategies/throttle.ts), by key (an HMAC of the
 * address). A run whose last failure is before `forgetBefore` counts as no run: it reads as nothing and a new
 * failure starts again at 1, whether or not the maintenance job has deleted the row yet.
 */
export class SigninFailurePersister {
  constructor(private readonly db: Kysely<Database>) {}

  find(key: string, forgetBefore: number): Promise<{ failed_signins: number; last_failed_signin_at: number } | undefined> {
    return this.db
      .selectFrom('signin_failures')
      .select(['failed_signins', 'last_failed_signin_at'])
      .where('key', '=', key)
      .where('last_failed_signin_at', '>=', forgetBefore)
      .executeTakeFirst();
  }

  /** One more consecutive failure at `now`; returns the new count. */
  async recordFailure(key: string, now: number, forgetBefore: number): Promise<number> {
    await this.db
      .insertInto('signin_failures')
      .values({ key, failed_signins: 1, last_failed_signin_at: now })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet((eb) => ({
          failed_signins: eb
            .case()
            .when('signin_failures.last_failed_signin_at', '<', forgetBefore)
            .then(1)
            .else(eb('signin_failures.failed_signins', '+', 1))
            .end(),
          last_failed_signin_at: now,
        })),
      )
      .execute();
    const row = await this.db.selectFrom('signin_failures').select('failed_signins').where('key', '=', key).executeTakeFirst();
    return row?.failed_signins ?? 0;
  }

  /** Delete the runs whose last failure was before `forgetBefore`; returns how many. */
  async deleteBefore(forgetBefore: number): Promise<number> {
    const r = await this.db.deleteFrom('signin_failures').where('last_failed_signin_at', '<', forgetBefore).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
