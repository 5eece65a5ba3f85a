import type { Insertable, Kysely } from 'kysely';
import { PreparedQuery, READ } from '../preparedQuery.js';
import { joinedUserColumns, splitJoinedUser } from './users.js';
import type { Database, Session, SessionsTable, User } from '../schema.js';

// Every signed-in request, and every sign-in, runs these (src/db/preparedQuery.ts).
const insertSession = new PreparedQuery<Insertable<SessionsTable>, never>((db, s) =>
  db.insertInto('sessions').values({
    id_hash: s.id_hash,
    public_id: s.public_id,
    user_id: s.user_id,
    created_at: s.created_at,
    last_seen_at: s.last_seen_at,
    authenticated_at: s.authenticated_at,
    expires_at: s.expires_at,
    aal: s.aal,
    ip: s.ip,
    user_agent: s.user_agent,
    authenticator_id: s.authenticator_id ?? null,
  }),
  // Nothing reads its result: in a sign-in's transaction on PostgreSQL it goes out with the commit (src/db/pgClient.ts).
  { deferrable: true },
);
const selectWithUser = new PreparedQuery<{ idHash: string }, Session & Parameters<typeof splitJoinedUser>[0]>((db, p) =>
  db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .selectAll('sessions')
    .select(joinedUserColumns)
    .where('sessions.id_hash', '=', p.idHash),
  READ,
);
const touchSession = new PreparedQuery<{ idHash: string; at: number }, never>((db, p) =>
  db.updateTable('sessions').set({ last_seen_at: p.at }).where('id_hash', '=', p.idHash),
);
const deleteSession = new PreparedQuery<{ idHash: string }, never>((db, p) => db.deleteFrom('sessions').where('id_hash', '=', p.idHash));

export class SessionPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(session: Insertable<SessionsTable>): Promise<void> {
    await insertSession.execute(this.db, session);
  }

  findByHash(idHash: string): Promise<Session | undefined> {
    return this.db.selectFrom('sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
  }

  /** The session and its user in one query: every signed-in request needs both. */
  async findWithUser(idHash: string): Promise<{ session: Session; user: User } | undefined> {
    const row = await selectWithUser.takeFirst(this.db, { idHash });
    if (!row) return undefined;
    const { own, user } = splitJoinedUser(row);
    return { session: own, user };
  }

  async touch(idHash: string, at: number): Promise<void> {
    await touchSession.execute(this.db, { idHash, at });
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

  /** The user's sessions still in force: before their absolute expiry and, given `idleMs`, used within it. */
  listForUser(userId: string, now: number, idleMs?: number): Promise<Session[]> {
    let query = this.db.selectFrom('sessions').selectAll().where('user_id', '=', userId).where('expires_at', '>', now);
    if (idleMs !== undefined) query = query.where('last_seen_at', '>', now - idleMs);
    return query.orderBy('last_seen_at', 'desc').execute();
  }

  async delete(idHash: string): Promise<void> {
    await deleteSession.execute(this.db, { idHash });
  }

  async deleteByPublicId(userId: string, publicId: string): Promise<boolean> {
    const r = await this.db.deleteFrom('sessions').where('user_id', '=', userId).where('public_id', '=', publicId).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  /** End every session of this user that signed in with this authenticator (it was removed). Returns how many ended. */
  async deleteForAuthenticator(userId: string, authenticatorId: string): Promise<number> {
    // Found through the user's sessions (sessions_user_id): no index on authenticator_id to write at every sign-in.
    const r = await this.db.deleteFrom('sessions').where('user_id', '=', userId).where('authenticator_id', '=', authenticatorId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /**
   * Lower to `aal` the sessions of this user that rest on this authenticator (its model was reported compromised):
   * a sign-in is worth what its authenticator is worth now. Returns how many were lowered.
   */
  async lowerForAuthenticator(userId: string, authenticatorId: string, aal: number): Promise<number> {
    const r = await this.db.updateTable('sessions').set({ aal }).where('user_id', '=', userId).where('authenticator_id', '=', authenticatorId).where('aal', '>', aal).executeTakeFirst();
    return Number(r.numUpdatedRows);
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
