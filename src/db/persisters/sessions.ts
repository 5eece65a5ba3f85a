import type { Insertable, Kysely } from 'kysely';
import { joinedUserColumns, splitJoinedUser } from './users.js';
import type { Database, Session, SessionsTable, User } from '../schema.js';

export class SessionPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(session: Insertable<SessionsTable>): Promise<void> {
    await this.db.insertInto('sessions').values({ authenticator_id: null, ...session }).execute();
  }

  findByHash(idHash: string): Promise<Session | undefined> {
    return this.db.selectFrom('sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
  }

  /** The session and its user in one query: every signed-in request needs both. */
  async findWithUser(idHash: string): Promise<{ session: Session; user: User } | undefined> {
    const row = await this.db
      .selectFrom('sessions')
      .innerJoin('users', 'users.id', 'sessions.user_id')
      .selectAll('sessions')
      .select(joinedUserColumns)
      .where('sessions.id_hash', '=', idHash)
      .executeTakeFirst();
    if (!row) return undefined;
    const { own, user } = splitJoinedUser(row);
    return { session: own, user };
  }

  async touch(idHash: string, at: number): Promise<void> {
    await this.db.updateTable('sessions').set({ last_seen_at: at }).where('id_hash', '=', idHash).execute();
  }

  async markAuthenticated(idHash: string, at: number): Promise<void> {
    await this.db.updateTable('sessions').set({ authenticated_at: at, last_seen_at: at }).where('id_hash', '=', idHash).execute();
  }

  /**
   * A fresh check with `authenticatorId` that reached `aal`: the session's level rises to it (never falls), and
   * when it rises the session now rests on that authenticator (removing it ends the session).
   */
  async stepUp(idHash: string, at: number, aal: number, authenticatorId: string): Promise<void> {
    await this.db.updateTable('sessions').set({ authenticated_at: at, last_seen_at: at }).where('id_hash', '=', idHash).execute();
    await this.db
      .updateTable('sessions')
      .set({ aal, authenticator_id: authenticatorId })
      .where('id_hash', '=', idHash)
      .where('aal', '<', aal)
      .execute();
  }

  listForUser(userId: string, now: number): Promise<Session[]> {
    return this.db
      .selectFrom('sessions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('expires_at', '>', now)
      .orderBy('last_seen_at', 'desc')
      .execute();
  }

  async delete(idHash: string): Promise<void> {
    await this.db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
  }

  async deleteByPublicId(userId: string, publicId: string): Promise<boolean> {
    const r = await this.db.deleteFrom('sessions').where('user_id', '=', userId).where('public_id', '=', publicId).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  /** End every session that signed in with this passkey (it was removed). Returns how many ended. */
  async deleteForAuthenticator(authenticatorId: string): Promise<number> {
    const r = await this.db.deleteFrom('sessions').where('authenticator_id', '=', authenticatorId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async deleteForUser(userId: string): Promise<number> {
    const r = await this.db.deleteFrom('sessions').where('user_id', '=', userId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async deleteExpired(now: number, idleMs: number): Promise<number> {
    const r = await this.db
      .deleteFrom('sessions')
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<=', now - idleMs)]))
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
