import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresTestDatabase, postgresUnavailableReason } from '../../test/support/databases.js';
import type { Db } from './connect.js';
import { statementName } from './pgClient.js';
import { createStore, type Store } from './store.js';
import type { NewUser } from './schema.js';

const target = postgresTestDatabase(await postgresUnavailableReason());
const T0 = 1_700_000_000_000;

function newUser(id: string): NewUser {
  return { id, email: `${id}@example.org`, email_normalized: `${id}@example.org`, display_name: 'Ada', name_search: 'ada', status: 'enrolled', created_at: T0, updated_at: T0 };
}

function session(idHash: string, userId: string) {
  return { id_hash: idHash, public_id: `p-${idHash}`, user_id: userId, created_at: T0, last_seen_at: T0, authenticated_at: T0, expires_at: T0 + 1000, aal: 1, ip: '127.0.0.1', user_agent: 'test', authenticator_id: null };
}

const signin = (userId: string) => ({ event: 'signin', outcome: 'success' as const, subjectUserId: userId, actorUserId: userId, at: T0 });

describe.skipIf(target.skipReason !== undefined)('PgClient (PostgreSQL)', () => {
  let db: Db;
  let store: Store;
  beforeAll(async () => {
    // One connection, so the statements it has prepared are the ones pg_prepared_statements lists.
    db = await target.open({ poolSize: 1 });
    await db.migrate();
    store = createStore(db);
  });
  afterAll(() => target.cleanup());

  it('sends the prepared hot queries as named statements, prepared once on the connection', async () => {
    await store.users.insert(newUser('u-named') as never);
    await store.sessions.insert(session('h-named-1', 'u-named'));
    await store.sessions.insert(session('h-named-2', 'u-named'));
    expect(await store.sessions.findWithUser('h-named-2')).toBeDefined();
    const { rows } = await sql<{ name: string; statement: string }>`select name, statement from pg_prepared_statements`.execute(db.kysely);
    const named = rows.filter((r) => r.name.startsWith('latchkey_'));
    expect(named.length).toBeGreaterThanOrEqual(2);
    for (const r of named) expect(statementName(r.statement)).toBe(r.name);
    // Each text once, however often it ran.
    expect(new Set(named.map((r) => r.statement)).size).toBe(named.length);
  });

  it('lands a transaction with deferred writes whole, in order, and a read in it sees them', async () => {
    await store.users.insert(newUser('u-tx') as never);
    const seen = await store.transaction(async (tx) => {
      await tx.sessions.insert(session('h-tx', 'u-tx'));
      await tx.audit.record(signin('u-tx'));
      return tx.sessions.findWithUser('h-tx');
    });
    expect(seen?.user.id).toBe('u-tx');
    expect(await store.sessions.findWithUser('h-tx')).toBeDefined();
    expect((await store.audit.listForSubject('u-tx')).map((e) => e.event)).toEqual(['signin']);
  });

  it('fails the commit with a deferred write’s own error and rolls the whole transaction back', async () => {
    await store.users.insert(newUser('u-fail') as never);
    let insertResolved = false;
    const failing = store.transaction(async (tx) => {
      await tx.users.resetFailedSignins('u-fail');
      await tx.audit.record(signin('u-fail'));
      // A session for a user that does not exist: the foreign key refuses it, but only PostgreSQL knows that.
      await tx.sessions.insert(session('h-fail', 'no-such-user'));
      insertResolved = true;
    });
    await expect(failing).rejects.toMatchObject({ code: '23503' });
    // The insert was not waited for: its error came with the commit.
    expect(insertResolved).toBe(true);
    expect(await store.sessions.findWithUser('h-fail')).toBeUndefined();
    expect(await store.audit.listForSubject('u-fail')).toEqual([]);
    // The connection is usable afterwards, outside any transaction.
    await store.sessions.insert(session('h-after', 'u-fail'));
    expect(await store.sessions.findWithUser('h-after')).toBeDefined();
  });

  it('rejects the next awaited statement with a deferred write’s error, not with “transaction aborted”', async () => {
    await store.users.insert(newUser('u-next') as never);
    const failing = store.transaction(async (tx) => {
      await tx.sessions.insert(session('h-next', 'no-such-user'));
      await tx.users.findById('u-next');
    });
    await expect(failing).rejects.toMatchObject({ code: '23503' });
    expect(await store.sessions.findWithUser('h-next')).toBeUndefined();
  });

  it('writes a deferrable statement at once outside a transaction, failing where it is called', async () => {
    await expect(store.sessions.insert(session('h-auto', 'no-such-user'))).rejects.toMatchObject({ code: '23503' });
  });
});
