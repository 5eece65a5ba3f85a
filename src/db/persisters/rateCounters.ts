import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';

/**
 * Fixed-window counters in the database, so a limit holds across every
 * instance (per account and per IP for self-service; the in-memory limiter
 * only sees one process).
 */
export class RateCounterPersister {
  constructor(private readonly db: Kysely<Database>) {}

  /** Count one hit on `key` in the window of `windowMs` that contains `now`; returns the count so far. */
  async hit(key: string, windowMs: number, now: number): Promise<number> {
    const windowStart = now - (now % windowMs);
    await this.db
      .insertInto('rate_counters')
      .values({ key, count: 1, window_start: windowStart })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet((eb) => ({
          // A new window starts the count again.
          count: eb.case().when('rate_counters.window_start', '=', windowStart).then(eb('rate_counters.count', '+', 1)).else(1).end(),
          window_start: windowStart,
        })),
      )
      .execute();
    const row = await this.db.selectFrom('rate_counters').select('count').where('key', '=', key).executeTakeFirst();
    return row?.count ?? 1;
  }

  /** The count in the current window without counting. */
  async peek(key: string, windowMs: number, now: number): Promise<number> {
    const row = await this.db.selectFrom('rate_counters').selectAll().where('key', '=', key).executeTakeFirst();
    return row && row.window_start === now - (now % windowMs) ? row.count : 0;
  }

  async deleteBefore(now: number): Promise<number> {
    const r = await this.db.deleteFrom('rate_counters').where('window_start', '<', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
