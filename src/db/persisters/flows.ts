import type { Kysely } from 'kysely';
import type { Database, Flow } from '../schema.js';

export type NewFlow = Omit<Flow, 'state' | 'consumed_at' | 'failed_attempts'>;

export class FlowPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(flow: NewFlow): Promise<void> {
    await this.db.insertInto('flows').values({ ...flow, state: 'active', consumed_at: null, failed_attempts: 0 }).execute();
  }

  findByLookup(lookup: string): Promise<Flow | undefined> {
    return this.db.selectFrom('flows').selectAll().where('lookup', '=', lookup).executeTakeFirst();
  }

  findById(id: string): Promise<Flow | undefined> {
    return this.db.selectFrom('flows').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * Consume a flow once: of any number of concurrent callers exactly one gets
   * true, because the state check and the update are one statement.
   */
  async consume(id: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('flows')
      .set({ state: 'consumed', consumed_at: now })
      .where('id', '=', id)
      .where('state', '=', 'active')
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
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
  async consumeByLookup(lookup: string, type: string, bindingHash: string, now: number): Promise<Flow | undefined> {
    return this.db
      .updateTable('flows')
      .set({ state: 'consumed', consumed_at: now })
      .where('lookup', '=', lookup)
      .where('type', '=', type)
      .where('binding_hash', '=', bindingHash)
      .where('state', '=', 'active')
      .where('expires_at', '>', now)
      .returningAll()
      .executeTakeFirst();
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
