import type { Kysely } from 'kysely';
import { PreparedQuery, READ } from '../preparedQuery.js';
import type { Database, Flow } from '../schema.js';

export type NewFlow = Omit<Flow, 'state' | 'consumed_at' | 'failed_attempts'>;

const insertFlow = new PreparedQuery<NewFlow, never>((db, f) =>
  db.insertInto('flows').values({ id: f.id, type: f.type, state: 'active', binding_hash: f.binding_hash, user_id: f.user_id, lookup: f.lookup, data: f.data, created_at: f.created_at, expires_at: f.expires_at, consumed_at: null, failed_attempts: 0 }),
);
const selectByLookup = new PreparedQuery<{ lookup: string }, Flow>((db, p) => db.selectFrom('flows').selectAll().where('lookup', '=', p.lookup), READ);
const consumeById = new PreparedQuery<{ id: string; now: number }, never>((db, p) =>
  db
    .updateTable('flows')
    .set({ state: 'consumed', consumed_at: p.now })
    .where('id', '=', p.id)
    .where('state', '=', 'active')
    .where('expires_at', '>', p.now),
);
/** Consume the active, unexpired flow with this lookup, type and binding, returning it. */
const consumeByLookup = new PreparedQuery<{ lookup: string; type: string; bindingHash: string; now: number }, Flow>((db, p) =>
  db
    .updateTable('flows')
    .set({ state: 'consumed', consumed_at: p.now })
    .where('lookup', '=', p.lookup)
    .where('type', '=', p.type)
    .where('binding_hash', '=', p.bindingHash)
    .where('state', '=', 'active')
    .where('expires_at', '>', p.now)
    .returningAll(),
);

export class FlowPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(flow: NewFlow): Promise<void> {
    await insertFlow.execute(this.db, flow);
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
