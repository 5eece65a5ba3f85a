import { createRequire } from 'node:module';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { postgresTestDatabase, postgresUnavailableReason } from '../../test/support/databases.js';
import type { Db } from './connect.js';
import pg from 'pg';
import { implicitTransactions, nameStatement, rolledBackByServer, statementName } from './pgClient.js';
import { isCounterDidNotMove } from './persisters/authenticators.js';
import { PreparedQuery } from './preparedQuery.js';
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

describe('rolledBackByServer', () => {
  it('is true only for an error PostgreSQL answered on a connection it keeps', () => {
    for (const code of ['23505', '55P03', '22P02', '40P01', '57014', '0A000', '42P01']) expect(rolledBackByServer({ code, severity: 'ERROR' })).toBe(true);
    // The severity is in the server's language.
    expect(rolledBackByServer({ code: '40P01', severity: 'FEHLER' })).toBe(true);
    // Ended by PostgreSQL, or resources, I/O or an internal error: whether a commit landed first is not known.
    expect(rolledBackByServer({ code: '57P01', severity: 'FATAL' })).toBe(false);
    expect(rolledBackByServer({ code: '57P01', severity: 'SCHWERWIEGEND' })).toBe(false);
    expect(rolledBackByServer({ code: '08006', severity: 'ERROR' })).toBe(false);
    expect(rolledBackByServer({ code: '23505', severity: 'PANIC' })).toBe(false);
    expect(rolledBackByServer({ code: 'XX000', severity: 'PANIK' })).toBe(false);
    for (const code of ['58030', '53100', 'XX001']) expect(rolledBackByServer({ code, severity: 'ERROR' })).toBe(false);
    // The connection failed: no SQLSTATE.
    expect(rolledBackByServer(new Error('Connection terminated unexpectedly'))).toBe(false);
    expect(rolledBackByServer(undefined)).toBe(false);
  });
});

describe('nameStatement', () => {
  it('refuses a text named again with other options', () => {
    nameStatement('select 1 as latchkey_named_twice', { group: 'withoutFlush' });
    nameStatement('select 1 as latchkey_named_twice', { group: 'withoutFlush' });
    expect(() => nameStatement('select 1 as latchkey_named_twice', { deferrable: true })).toThrow(/named again with other options/);
    expect(() => nameStatement('select 1 as latchkey_named_twice', { group: 'durable' })).toThrow(/named again with other options/);
  });
});

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

  it('parses each named statement’s rows by its own columns, building them once per statement', async () => {
    // Two statements with a column of the same name and other types, run in turn.
    const asNumber = new PreparedQuery<{ n: number }, { v: number; at: Date }>((k, p) =>
      k.selectNoFrom([sql<number>`${p.n}::int4`.as('v'), sql<Date>`'2026-12-07T00:00:00Z'::timestamptz`.as('at')]),
    );
    const asText = new PreparedQuery<{ n: number }, { v: string }>((k, p) => k.selectNoFrom(sql<string>`${p.n}::text || '!'`.as('v')));
    const Result = createRequire(import.meta.url)('pg/lib/result.js') as { prototype: { addFields(fields: unknown[]): void } };
    const addFields = vi.spyOn(Result.prototype, 'addFields');
    try {
      for (const n of [1, 2, 3]) {
        expect(await asNumber.takeFirst(db.kysely, { n })).toEqual({ v: n, at: new Date('2026-12-07T00:00:00Z') });
        expect(await asText.takeFirst(db.kysely, { n })).toEqual({ v: `${n}!` });
      }
      // Built at each statement's first answer only.
      expect(addFields).toHaveBeenCalledTimes(2);
    } finally {
      addFields.mockRestore();
    }
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
    // The connection is usable afterwards, outside any transaction: a statement's transaction starts with it.
    const { rows } = await sql<{ fresh: boolean }>`select now() = statement_timestamp() as fresh`.execute(db.kysely);
    expect(rows[0]!.fresh).toBe(true);
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

  /** Statements handed to pg while `run` runs (an implicit transaction is one), and the implicit transactions among them. */
  async function sent(run: () => Promise<unknown>): Promise<{ queries: string[]; implicit: number; statements: number; outcome: PromiseSettledResult<unknown> }> {
    const query = vi.spyOn(pg.Client.prototype, 'query');
    const before = { ...implicitTransactions };
    try {
      const [outcome] = await Promise.allSettled([run()]);
      const queries = query.mock.calls.map(([q]) => (typeof q === 'string' ? q : (q as { text?: string }).text ?? ''));
      return { queries, implicit: implicitTransactions.count - before.count, statements: implicitTransactions.statements - before.statements, outcome: outcome! };
    } finally {
      query.mockRestore();
    }
  }

  /** A sign-in's writes: the use of a passkey, a session, an audit record (all deferrable). */
  const signInWrites = (userId: string, authenticatorId: string, counter: number, idHash: string) => (tx: Store) =>
    tx.transaction(async (t) => {
      await t.authenticators.recordUseOrFail(authenticatorId, { counter, backedUp: false, backupEligible: false, at: T0 });
      await t.sessions.insert(session(idHash, userId));
      await t.audit.record(signin(userId));
    });

  async function userWithPasskey(id: string): Promise<string> {
    await store.users.insert(newUser(id) as never);
    const authenticatorId = `a-${id}`;
    await store.authenticators.insert({ id: authenticatorId, user_id: id, type: 'passkey', credential_id: `c-${id}`, public_key: 'k', counter: 0, transports: '[]', aaguid: '00000000-0000-0000-0000-000000000000', backup_eligible: 0, backed_up: 0, attestation_format: 'none', name: 'Passkey', created_at: T0, last_used_at: null });
    return authenticatorId;
  }

  it('sends a transaction of deferrable writes at its commit as one implicit transaction: no BEGIN, no COMMIT, one Sync', async () => {
    const passkey = await userWithPasskey('u-implicit');
    // The first time, the statements are not yet prepared on the connection: they go out begun and committed.
    const first = await sent(() => signInWrites('u-implicit', passkey, 1, 'h-implicit-1')(store));
    expect(first.outcome.status).toBe('fulfilled');
    expect(first.implicit).toBe(0);
    expect(first.queries).toContain('begin');
    expect(first.queries).toContain('commit');
    const second = await sent(() => signInWrites('u-implicit', passkey, 2, 'h-implicit-2')(store));
    expect(second.outcome.status).toBe('fulfilled');
    expect(second).toMatchObject({ implicit: 1, statements: 3 });
    // One query handed to pg, neither BEGIN nor COMMIT.
    expect(second.queries).toHaveLength(1);
    expect(await store.sessions.findWithUser('h-implicit-2')).toBeDefined();
    expect(await store.authenticators.findForUser('u-implicit', passkey)).toMatchObject({ counter: 2 });
    expect((await store.audit.listForSubject('u-implicit')).map((e) => e.event)).toEqual(['signin', 'signin']);
  });

  it('lands none of an implicit transaction’s writes when one fails, and its commit rejects with that statement’s error', async () => {
    const passkey = await userWithPasskey('u-implicit-fail');
    await signInWrites('u-implicit-fail', passkey, 5, 'h-implicit-warm')(store);
    // The same counter again: the use did not move it (a replay, or a clone), so recordUseOrFail fails.
    const lost = await sent(() => signInWrites('u-implicit-fail', passkey, 5, 'h-implicit-lost')(store));
    expect(lost).toMatchObject({ implicit: 1, statements: 3 });
    // Only the implicit transaction went out: PostgreSQL rolled it back itself, so Kysely's ROLLBACK is answered here.
    expect(lost.queries).toHaveLength(1);
    expect(lost.outcome.status).toBe('rejected');
    expect(isCounterDidNotMove((lost.outcome as PromiseRejectedResult).reason)).toBe(true);
    // A later statement of the transaction fails (a foreign key): the writes before it are rolled back too.
    const refused = await sent(() =>
      store.transaction(async (tx) => {
        await tx.authenticators.recordUseOrFail(passkey, { counter: 6, backedUp: false, backupEligible: false, at: T0 });
        await tx.sessions.insert(session('h-implicit-ok', 'u-implicit-fail'));
        await tx.sessions.insert(session('h-implicit-fk', 'no-such-user'));
      }),
    );
    expect(refused.implicit).toBe(1);
    expect(refused.outcome).toMatchObject({ status: 'rejected', reason: { code: '23503' } });
    expect(await store.sessions.findWithUser('h-implicit-lost')).toBeUndefined();
    expect(await store.sessions.findWithUser('h-implicit-ok')).toBeUndefined();
    expect(await store.authenticators.findForUser('u-implicit-fail', passkey)).toMatchObject({ counter: 5 });
    expect(await store.audit.listForSubject('u-implicit-fail')).toHaveLength(1);
    // The connection is usable afterwards.
    await signInWrites('u-implicit-fail', passkey, 6, 'h-implicit-after')(store);
    expect(await store.sessions.findWithUser('h-implicit-after')).toBeDefined();
  });

  it('sends the held writes after a BEGIN when a statement needs an answer, so a later failure undoes them too', async () => {
    await store.users.insert(newUser('u-begun') as never);
    const failing = await sent(() =>
      store.transaction(async (tx) => {
        await tx.sessions.insert(session('h-begun-1', 'u-begun'));
        // A read: the held insert goes out first, in the transaction, and the read sees it.
        expect(await tx.sessions.findWithUser('h-begun-1')).toBeDefined();
        await tx.sessions.insert(session('h-begun-2', 'no-such-user'));
      }),
    );
    expect(failing.outcome).toMatchObject({ status: 'rejected', reason: { code: '23503' } });
    expect(failing.queries[0]).toBe('begin');
    expect(failing.implicit).toBe(0);
    expect(await store.sessions.findWithUser('h-begun-1')).toBeUndefined();
  });

  it('commits an implicit transaction whose statements answer with rows it never asked to describe', async () => {
    await store.users.insert(newUser('u-rows') as never);
    const setting = "select set_config('application_name', 'latchkey-rows', true) as previous";
    nameStatement(setting, { deferrable: true });
    const write = (idHash: string) =>
      store.transaction(async (tx) => {
        await sql.raw(setting).execute(tx.kysely);
        await tx.sessions.insert(session(idHash, 'u-rows'));
      });
    await write('h-rows-1');
    const second = await sent(() => write('h-rows-2'));
    expect(second).toMatchObject({ implicit: 1, statements: 2, outcome: { status: 'fulfilled' } });
    expect(await store.sessions.findWithUser('h-rows-2')).toBeDefined();
  });

  it('refuses a value pg cannot write where it is passed, and sends nothing of that transaction', async () => {
    await store.users.insert(newUser('u-unwritable') as never);
    const unwritable = {
      toPostgres() {
        throw new Error('cannot be written');
      },
    };
    const refused = await sent(() =>
      store.transaction(async (tx) => {
        await tx.sessions.insert(session('h-unwritable-1', 'u-unwritable'));
        await tx.sessions.insert({ ...session('h-unwritable-2', 'u-unwritable'), user_agent: unwritable as never });
      }),
    );
    expect(refused.outcome).toMatchObject({ status: 'rejected', reason: { message: 'cannot be written' } });
    expect(refused.queries).toEqual([]);
    expect(await store.sessions.findWithUser('h-unwritable-1')).toBeUndefined();
    // The connection is usable afterwards.
    await store.sessions.insert(session('h-unwritable-3', 'u-unwritable'));
    expect(await store.sessions.findWithUser('h-unwritable-3')).toBeDefined();
  });

  it('sends nothing for a transaction rolled back before any of it was sent', async () => {
    await store.users.insert(newUser('u-unsent') as never);
    const rolledBack = await sent(() =>
      store.transaction(async (tx) => {
        await tx.sessions.insert(session('h-unsent', 'u-unsent'));
        throw new Error('changed its mind');
      }),
    );
    expect(rolledBack.outcome).toMatchObject({ status: 'rejected', reason: { message: 'changed its mind' } });
    expect(rolledBack.queries).toEqual([]);
    expect(await store.sessions.findWithUser('h-unsent')).toBeUndefined();
  });

  it('writes a deferrable statement at once outside a transaction, failing where it is called', async () => {
    await expect(store.sessions.insert(session('h-auto', 'no-such-user'))).rejects.toMatchObject({ code: '23503' });
  });
});
