import pg from 'pg';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { postgresTestDatabase, postgresUnavailableReason, testPostgresUrl } from '../../test/support/databases.js';
import { openDatabase, postgresConnectionString, type Db } from './connect.js';
import { DURABLE_WRITE, PreparedQuery, READ } from './preparedQuery.js';
import { autocommitGroups } from './pgClient.js';
import { sharedStatements } from './sharedConnection.js';
import { createStore, type Store } from './store.js';
import type { NewUser } from './schema.js';

const target = postgresTestDatabase(await postgresUnavailableReason());
const T0 = 1_700_000_000_000;

// Hot queries of the tests' own, prepared like the persisters' (so they share): which backend answers, and one that
// takes a while (the one a killed backend is running).
const backendPid = new PreparedQuery<object, { pid: number }>((db) => db.selectNoFrom(sql<number>`pg_backend_pid()`.as('pid')));
const touchUser = new PreparedQuery<{ id: string; at: number }, never>((db, p) => db.updateTable('users').set({ updated_at: p.at }).where('id', '=', p.id));
const sleepThenPid = new PreparedQuery<{ seconds: number }, { pid: number }>((db, p) =>
  db.selectNoFrom(sql<number>`case when pg_sleep(${p.seconds}) is null then pg_backend_pid() end`.as('pid')),
);

// Groupable (READ): the transaction each runs in (txid_current() gives the id it assigns: a test's stand-in for a
// read, since it makes the transaction write a commit record), and a tag to tell the callers' rows apart; one that
// takes a while. Not groupable: how many challenges have a lookup.
const transactionOf = new PreparedQuery<{ tag: string }, { xid: string; tag: string }>(
  (db, p) => db.selectNoFrom([sql<string>`txid_current()::text`.as('xid'), sql<string>`${p.tag}::text`.as('tag')]),
  READ,
);
const sleepThenTag = new PreparedQuery<{ seconds: number; tag: string }, { tag: string }>(
  (db, p) => db.selectNoFrom(sql<string>`case when pg_sleep(${p.seconds}) is null then ${p.tag}::text end`.as('tag')),
  READ,
);
const challengesWithLookup = new PreparedQuery<{ lookup: string }, { n: string }>((db, p) =>
  db.selectFrom('challenges').select((eb) => eb.fn.countAll<string>().as('n')).where('lookup', '=', p.lookup),
);
// Groupable (READ): the synchronous_commit of the transaction it runs in.
const syncCommitSetting = new PreparedQuery<object, { value: string }>((db) => db.selectNoFrom(sql<string>`current_setting('synchronous_commit')`.as('value')), READ);
// Not groupable: the transaction it runs in.
const ownTransaction = new PreparedQuery<object, { xid: string }>((db) => db.selectNoFrom(sql<string>`txid_current()::text || ''`.as('xid')));

// A stand-in for a durable write (DURABLE_WRITE: txid_current() makes its transaction write a commit record, which
// waits for the WAL flush): the transaction it runs in, its synchronous_commit, and a tag, or a division by zero when
// `divisor` is 0.
const durableTransactionOf = new PreparedQuery<{ tag: string; divisor: number }, { xid: string; tag: string; syncCommit: string }>(
  (db, p) =>
    db.selectNoFrom([
      sql<string>`txid_current()::text`.as('xid'),
      sql<string>`${p.tag}::text || (1 / ${p.divisor}::int)::text`.as('tag'),
      sql<string>`current_setting('synchronous_commit')`.as('syncCommit'),
    ]),
  DURABLE_WRITE,
);

// Tables and a function the tests create: a unique key checked only at the commit, and a read that fails once with a
// serialization failure (a sequence, which no rollback undoes, counts its calls).
const insertDeferredKey = new PreparedQuery<{ k: string }, never>(
  (db, p) => (db as unknown as Kysely<{ deferred_keys: { k: string } }>).insertInto('deferred_keys').values({ k: p.k }) as never,
  DURABLE_WRITE,
);
const failsOnce = new PreparedQuery<{ tag: string }, { tag: string }>((db, p) => db.selectNoFrom(sql<string>`fails_once(${p.tag}::text)`.as('tag')), READ);
// A read that fails with an internal error (XX000), after which a commit's outcome would not be known.
const failsInternally = new PreparedQuery<object, { tag: string }>((db) => db.selectNoFrom(sql<string>`fails_internally()`.as('tag')), READ);

function oidcModel(id: string) {
  return { kind: 'RefreshToken', id, payload: '{}', grantId: `grant-${id}`, expiresAt: null };
}

function challenge(id: string, lookup = `lookup-${id}`) {
  return { id, type: 'signin', binding_hash: 'b', user_id: null, lookup, data: '{}', created_at: T0, expires_at: T0 + 60_000 };
}

function newUser(id: string): NewUser {
  return { id, email: `${id}@example.org`, email_normalized: `${id}@example.org`, display_name: 'Ada', name_search: 'ada', status: 'enrolled', created_at: T0, updated_at: T0 };
}

function session(idHash: string, userId: string) {
  return { id_hash: idHash, public_id: `p-${idHash}`, user_id: userId, created_at: T0, last_seen_at: T0, authenticated_at: T0, expires_at: T0 + 1000, aal: 1, ip: '127.0.0.1', user_agent: 'test', authenticator_id: null };
}

async function pid(db: Db): Promise<number> {
  return (await backendPid.takeFirst(db.kysely, {}))!.pid;
}

/** Wait until backend `pid` is running a pg_sleep, then end it (as an operator's pg_terminate_backend would). */
async function endWhileSleeping(pid: number): Promise<void> {
  const admin = new pg.Client({ connectionString: postgresConnectionString(testPostgresUrl()) });
  await admin.connect();
  try {
    for (;;) {
      const { rows } = await admin.query<{ state: string; query: string }>('select state, query from pg_stat_activity where pid = $1', [pid]);
      if (rows[0]?.state === 'active' && rows[0].query.includes('pg_sleep')) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await admin.query('select pg_terminate_backend($1)', [pid]);
  } finally {
    await admin.end();
  }
}

describe.skipIf(target.skipReason !== undefined)('the shared connection (PostgreSQL)', () => {
  let db: Db;
  let store: Store;
  beforeAll(async () => {
    db = await target.open({ poolSize: 4 });
    await db.migrate();
    store = createStore(db);
  });
  afterAll(() => target.cleanup());

  it('runs concurrent callers’ hot statements pipelined on one connection, held from the pool', async () => {
    const before = sharedStatements.count;
    const pids = await Promise.all(Array.from({ length: 12 }, () => pid(db)));
    expect(new Set(pids).size).toBe(1);
    expect(sharedStatements.count - before).toBe(12);
    // Twelve statements at once took one connection; the pool counts it as in use.
    expect(db.pool!.totalCount - db.pool!.idleCount).toBe(1);
  });

  it('fails only the statement that fails; the others in the same write commit', async () => {
    await store.users.insert(newUser('u-shared') as never);
    const first = await pid(db);
    const results = await Promise.allSettled([
      store.sessions.insert(session('h-ok-1', 'u-shared')),
      // A session for a user that does not exist: the foreign key refuses it.
      store.sessions.insert(session('h-bad', 'no-such-user')),
      store.sessions.insert(session('h-ok-2', 'u-shared')),
      store.sessions.findWithUser('h-ok-1'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: '23503' });
    // Pipelined behind the insert, the read saw it committed.
    expect((results[3] as PromiseFulfilledResult<unknown>).value).toMatchObject({ user: { id: 'u-shared' } });
    expect(await store.sessions.findWithUser('h-ok-2')).toBeDefined();
    expect(await store.sessions.findWithUser('h-bad')).toBeUndefined();
    // Still the same connection: a failed statement does not break it.
    expect(await pid(db)).toBe(first);
  });

  it('takes a prepared query on the database handle to the shared connection without Kysely’s executor', async () => {
    const shared = await pid(db);
    const executor = vi.spyOn(db.kysely, 'executeQuery');
    try {
      expect(await pid(db)).toBe(shared);
      expect(executor).not.toHaveBeenCalled();
      // A transaction's handle is another: its statements go through Kysely, on a connection of their own.
      const before = sharedStatements.count;
      const inside = await db.kysely.transaction().execute(async (trx) => {
        const trxExecutor = vi.spyOn(trx, 'executeQuery');
        const found = await backendPid.takeFirst(trx, {});
        expect(trxExecutor).toHaveBeenCalledTimes(1);
        return found;
      });
      expect(inside!.pid).not.toBe(shared);
      expect(sharedStatements.count).toBe(before);
    } finally {
      executor.mockRestore();
    }
  });

  it('goes through Kysely until Kysely has started its driver, so closing the database ends the shared connection', async () => {
    const url = (db.pool!.options as { connectionString: string }).connectionString;
    const fresh = openDatabase(url, { poolSize: 3 });
    try {
      const executor = vi.spyOn(fresh.kysely, 'executeQuery');
      // Two at once on a database that has not started: both through Kysely, in order, on the one shared connection.
      const [first, second] = await Promise.all([pid(fresh), pid(fresh)]);
      expect(executor).toHaveBeenCalledTimes(2);
      expect(second).toBe(first);
      expect(await pid(fresh)).toBe(first);
      expect(executor).toHaveBeenCalledTimes(2);
    } finally {
      await fresh.close();
    }
    expect(fresh.pool!.totalCount).toBe(0);
    // Closed: refused, not sent and not hanging.
    await expect(pid(fresh)).rejects.toThrow(/destroyed/);
  });

  it('gives a transaction a connection of its own, which the shared statements never enter', async () => {
    await store.users.insert(newUser('u-tx') as never);
    const shared = await pid(db);
    let sawOutside: unknown = 'not read';
    const failing = store.transaction(async (tx) => {
      expect((await backendPid.takeFirst(tx.kysely, {}))!.pid).not.toBe(shared);
      await tx.sessions.insert(session('h-tx', 'u-tx'));
      // Read outside the transaction while it is open: the shared connection does not see its write.
      sawOutside = await store.sessions.findWithUser('h-tx');
      throw new Error('roll back');
    });
    await expect(failing).rejects.toThrow('roll back');
    expect(sawOutside).toBeUndefined();
    expect(await store.sessions.findWithUser('h-tx')).toBeUndefined();
    expect(await pid(db)).toBe(shared);
  });

  it('runs ad hoc statements on a pooled connection, not on the shared one', async () => {
    const shared = await pid(db);
    const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db.kysely);
    expect(rows[0]!.pid).not.toBe(shared);
  });

  it('rejects the statements on a killed backend and opens a new connection for the next', async () => {
    const killed = await pid(db);
    const sleeping = sleepThenPid.takeFirst(db.kysely, { seconds: 30 });
    const queued = [pid(db), store.sessions.findWithUser('h-ok-1')];
    const settling = Promise.allSettled([sleeping, ...queued]);
    await endWhileSleeping(killed);
    const settled = await settling;
    expect(settled.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    const next = await pid(db);
    expect(next).not.toBe(killed);
    expect(await store.sessions.findWithUser('h-ok-1')).toBeDefined();
    // The broken connection left the pool: one shared connection in use again, none waiting.
    expect(db.pool!.totalCount - db.pool!.idleCount).toBe(1);
    expect(db.pool!.waitingCount).toBe(0);
  });

  it('fails a statement that waits for a row lock past lockTimeoutMs; the statements behind it go on', async () => {
    await store.users.insert(newUser('u-lock') as never);
    const url = (db.pool!.options as { connectionString: string }).connectionString;
    const other = openDatabase(url, { poolSize: 3, sharedConnection: { lockTimeoutMs: 200 } });
    try {
      let locked!: () => void;
      const holding = new Promise<void>((resolve) => (locked = resolve));
      let finish!: () => void;
      const finished = new Promise<void>((resolve) => (finish = resolve));
      const transaction = other.kysely.transaction().execute(async (trx) => {
        await touchUser.execute(trx, { id: 'u-lock', at: 1 });
        locked();
        await finished;
      });
      await holding;
      // On the shared connection: the update waits for the transaction's row lock, the read is pipelined behind it.
      const waiting = Promise.allSettled([touchUser.execute(other.kysely, { id: 'u-lock', at: 2 }), pid(other)]);
      const [update, read] = await waiting;
      expect(update.status).toBe('rejected');
      expect((update as PromiseRejectedResult).reason).toMatchObject({ code: '55P03' });
      expect(read.status).toBe('fulfilled');
      finish();
      await transaction;
    } finally {
      await other.close();
    }
  });

  it('opens a new shared connection when the idle one is killed', async () => {
    const killed = await pid(db);
    const admin = new pg.Client({ connectionString: postgresConnectionString(testPostgresUrl()) });
    await admin.connect();
    try {
      await admin.query('select pg_terminate_backend($1)', [killed]);
      // Until PostgreSQL has closed it.
      while ((await admin.query('select 1 from pg_stat_activity where pid = $1', [killed])).rowCount) await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      await admin.end();
    }
    // The client may learn of it only when it next writes; either way the caller gets an answer or an error, and
    // the statement after that one a new connection.
    const first = await pid(db).catch(() => undefined);
    const next = first ?? (await pid(db));
    expect(next).not.toBe(killed);
  });
});

describe.skipIf(target.skipReason !== undefined)('groups of autocommit statements on the shared connection (PostgreSQL)', () => {
  let db: Db;
  let store: Store;
  beforeAll(async () => {
    db = await target.open({ poolSize: 4 });
    await db.migrate();
    store = createStore(db);
    await store.users.insert(newUser('u-group') as never);
    // Each statement once, alone: a statement goes in a group only once it is prepared on the connection.
    await transactionOf.takeFirst(db.kysely, { tag: 'warm' });
    await sleepThenTag.takeFirst(db.kysely, { seconds: 0, tag: 'warm' });
    await store.users.findById('u-group');
    await store.sessions.findWithUser('none');
    await store.challenges.insert(challenge('warm'));
    await store.challenges.consumeWithCredential('none', 'signin', 'b', T0, 'none');
    await ownTransaction.takeFirst(db.kysely, {});
    await syncCommitSetting.takeFirst(db.kysely, {});
    await store.challenges.consume('none', 'signin', 'b', T0);
    await durableTransactionOf.takeFirst(db.kysely, { tag: 'warm', divisor: 1 });
    await store.oidcModels.upsert(oidcModel('warm'));
    await store.oidcModels.consume('RefreshToken', 'none', T0);
    await sql`create table deferred_keys (k text unique deferrable initially deferred)`.execute(db.kysely);
    await sql`create sequence fails_once_calls`.execute(db.kysely);
    await sql
      .raw(
        `create function fails_once(tag text) returns text language plpgsql as $$ begin
           if nextval('fails_once_calls') = 2 then raise exception 'serialization failure' using errcode = '40001'; end if;
           return tag;
         end $$`,
      )
      .execute(db.kysely);
    await sql.raw(`create function fails_internally() returns text language plpgsql as $$ begin raise exception 'internal' using errcode = 'XX000'; end $$`).execute(db.kysely);
    await failsInternally.takeFirst(db.kysely, {}).catch(() => undefined);
    await insertDeferredKey.execute(db.kysely, { k: 'warm' });
    await failsOnce.takeFirst(db.kysely, { tag: 'warm' });
  });
  afterAll(() => target.cleanup());

  it('runs a turn’s groupable statements in one transaction, each caller getting its own rows', async () => {
    const before = { ...autocommitGroups };
    const [a, user, b, none, c] = await Promise.all([
      transactionOf.takeFirst(db.kysely, { tag: 'a' }),
      store.users.findById('u-group'),
      transactionOf.takeFirst(db.kysely, { tag: 'b' }),
      store.sessions.findWithUser('none'),
      transactionOf.takeFirst(db.kysely, { tag: 'c' }),
    ]);
    expect([a!.tag, b!.tag, c!.tag]).toEqual(['a', 'b', 'c']);
    expect(new Set([a!.xid, b!.xid, c!.xid]).size).toBe(1);
    expect(user).toMatchObject({ id: 'u-group', email: 'u-group@example.org' });
    expect(none).toBeUndefined();
    expect(autocommitGroups.count - before.count).toBe(1);
    expect(autocommitGroups.statements - before.statements).toBe(5);
    // A statement of the next turn is in a transaction of its own.
    expect((await transactionOf.takeFirst(db.kysely, { tag: 'd' }))!.xid).not.toBe(a!.xid);
  });

  it('runs a group that failed again one by one: only the statement that fails fails, and nothing lands twice', async () => {
    const before = autocommitGroups.reruns;
    const results = await Promise.allSettled([
      store.challenges.insert(challenge('g-1')),
      // The warm-up's challenge again: the primary key refuses it, which rolls back the whole group.
      store.challenges.insert(challenge('other', 'lookup-warm')),
      store.challenges.insert(challenge('g-2')),
      transactionOf.takeFirst(db.kysely, { tag: 'after' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: '23505' });
    expect((results[3] as PromiseFulfilledResult<{ tag: string }>).value.tag).toBe('after');
    expect(autocommitGroups.reruns - before).toBe(1);
    // Run again, an insert whose first run had landed would have met its own row (23505) instead.
    expect(await store.challenges.find('lookup-g-1')).toMatchObject({ id: 'g-1', state: 'active' });
    expect(await store.challenges.find('lookup-g-2')).toMatchObject({ id: 'g-2' });
    expect(await store.challenges.find('lookup-warm')).toMatchObject({ id: 'warm' });
  });

  it('commits a group’s challenge writes with its reads, and keeps a statement that is not groupable out of it', async () => {
    await store.challenges.insert(challenge('w-0'));
    const before = { ...autocommitGroups };
    const [, consumed, read, own] = await Promise.all([
      store.challenges.insert(challenge('w-1')),
      store.challenges.consumeWithCredential('lookup-w-0', 'signin', 'b', T0, 'none'),
      transactionOf.takeFirst(db.kysely, { tag: 'w' }),
      ownTransaction.takeFirst(db.kysely, {}),
      transactionOf.takeFirst(db.kysely, { tag: 'w-after' }),
    ]);
    expect(consumed).toMatchObject({ flow: { id: 'w-0', state: 'consumed' }, credential: undefined });
    // The statement that is not groupable split the turn: the three before it a group, itself alone in its own
    // transaction, and the one after it a group of one, sent as itself.
    expect(autocommitGroups.count - before.count).toBe(1);
    expect(autocommitGroups.statements - before.statements).toBe(3);
    expect(own!.xid).not.toBe(read!.xid);
    expect(await store.challenges.find('lookup-w-1')).toMatchObject({ id: 'w-1', state: 'active' });
    // Consumed once: a second use finds nothing.
    expect(await store.challenges.consumeWithCredential('lookup-w-0', 'signin', 'b', T0, 'none')).toBeUndefined();
  });

  it('commits a challenge’s insert, use, and use with its credential without waiting for the WAL flush: each turns it off for its group’s transaction only', async () => {
    await store.challenges.insert(challenge('s-1'));
    await store.challenges.insert(challenge('s-2'));
    const setting = async (write: () => Promise<unknown>) => {
      const [, read] = await Promise.all([write(), syncCommitSetting.takeFirst(db.kysely, {})]);
      return read!.value;
    };
    expect(await setting(async () => undefined)).toBe('on');
    expect(await setting(() => store.challenges.insert(challenge('s-3')))).toBe('off');
    expect(await setting(() => store.challenges.consume('lookup-s-1', 'signin', 'b', T0))).toBe('off');
    expect(await setting(() => store.challenges.consumeWithCredential('lookup-s-2', 'signin', 'b', T0, 'none'))).toBe('off');
    // Nothing to use: nothing written, nothing turned off.
    expect(await setting(() => store.challenges.consume('lookup-s-1', 'signin', 'b', T0))).toBe('on');
    expect((await syncCommitSetting.takeFirst(db.kysely, {}))!.value).toBe('on');
    expect(await store.challenges.find('lookup-s-1')).toBeUndefined();
    expect(await store.challenges.find('lookup-s-3')).toMatchObject({ id: 's-3', state: 'active' });
  });

  it('commits a turn’s durable writes in a group of their own, sent after the group of reads', async () => {
    await store.oidcModels.upsert(oidcModel('d-0'));
    const before = { ...autocommitGroups };
    const [, write, read, , consumed, consumedAgain, otherRead] = await Promise.all([
      // A challenge write in the reads' group turns synchronous_commit off for that group's transaction only.
      store.challenges.insert(challenge('d-challenge')),
      durableTransactionOf.takeFirst(db.kysely, { tag: 'write', divisor: 1 }),
      transactionOf.takeFirst(db.kysely, { tag: 'read' }),
      store.oidcModels.upsert(oidcModel('d-1')),
      store.oidcModels.consume('RefreshToken', 'd-0', T0),
      store.oidcModels.consume('RefreshToken', 'd-0', T0),
      transactionOf.takeFirst(db.kysely, { tag: 'other read' }),
    ]);
    expect(autocommitGroups.count - before.count).toBe(2);
    expect(autocommitGroups.durable - before.durable).toBe(1);
    expect(autocommitGroups.statements - before.statements).toBe(7);
    expect([write!.tag, read!.tag, otherRead!.tag]).toEqual(['write1', 'read', 'other read']);
    expect(read!.xid).toBe(otherRead!.xid);
    // The durable group went out after the reads' group, so its transaction began after theirs, and it waits for the
    // WAL flush.
    expect(BigInt(write!.xid)).toBeGreaterThan(BigInt(read!.xid));
    expect(write!.syncCommit).toBe('on');
    // Spent once, by the first.
    expect([consumed, consumedAgain]).toEqual([true, false]);
    expect(await store.oidcModels.find('RefreshToken', 'd-0', T0)).toMatchObject({ consumedAt: T0 });
    expect(await store.oidcModels.find('RefreshToken', 'd-1', T0)).toMatchObject({ payload: '{}', consumedAt: null });
  });

  it('runs a durable group that failed again one by one: only the write that fails fails', async () => {
    const before = { ...autocommitGroups };
    const results = await Promise.allSettled([
      store.oidcModels.upsert(oidcModel('f-1')),
      durableTransactionOf.takeFirst(db.kysely, { tag: 'fails', divisor: 0 }),
      store.oidcModels.upsert(oidcModel('f-2')),
      transactionOf.takeFirst(db.kysely, { tag: 'read' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: '22012' });
    // The durable group failed and ran again; the read, alone in the turn's other group, was sent as itself.
    expect(autocommitGroups.count - before.count).toBe(1);
    expect(autocommitGroups.durable - before.durable).toBe(1);
    expect(autocommitGroups.reruns - before.reruns).toBe(1);
    expect(await store.oidcModels.find('RefreshToken', 'f-1', T0)).toMatchObject({ payload: '{}' });
    expect(await store.oidcModels.find('RefreshToken', 'f-2', T0)).toMatchObject({ payload: '{}' });
  });

  it('runs every member of a group that failed at its commit again, alone', async () => {
    const before = { ...autocommitGroups };
    // The second 'c-1' breaks the key only at the commit, so no member was the one that failed: all run again.
    const results = await Promise.allSettled([
      insertDeferredKey.execute(db.kysely, { k: 'c-1' }),
      insertDeferredKey.execute(db.kysely, { k: 'c-1' }),
      insertDeferredKey.execute(db.kysely, { k: 'c-2' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: '23505' });
    expect(autocommitGroups.count - before.count).toBe(1);
    expect(autocommitGroups.reruns - before.reruns).toBe(1);
    const { rows } = await sql<{ k: string }>`select k from deferred_keys where k like 'c-%' order by k`.execute(db.kysely);
    expect(rows.map((r) => r.k)).toEqual(['c-1', 'c-2']);
  });

  it('runs a member that met a serialization failure in a group again too, since the group may have caused it', async () => {
    const before = { ...autocommitGroups };
    const [a, failed, b] = await Promise.all([
      transactionOf.takeFirst(db.kysely, { tag: 'a' }),
      failsOnce.takeFirst(db.kysely, { tag: 'once' }),
      transactionOf.takeFirst(db.kysely, { tag: 'b' }),
    ]);
    expect([a!.tag, failed!.tag, b!.tag]).toEqual(['a', 'once', 'b']);
    expect(autocommitGroups.count - before.count).toBe(1);
    expect(autocommitGroups.reruns - before.reruns).toBe(1);
    // Run again each alone: the two reads in transactions of their own.
    expect(new Set([a!.xid, b!.xid]).size).toBe(2);
  });

  it('runs the rest of a group again after an internal error before its commit, which it certainly did not reach', async () => {
    const before = { ...autocommitGroups };
    const results = await Promise.allSettled([
      transactionOf.takeFirst(db.kysely, { tag: 'a' }),
      failsInternally.takeFirst(db.kysely, {}),
      transactionOf.takeFirst(db.kysely, { tag: 'b' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'XX000' });
    expect(autocommitGroups.count - before.count).toBe(1);
    expect(autocommitGroups.reruns - before.reruns).toBe(1);
  });

  it('sends a statement that is not groupable after the group before it', async () => {
    const [, , seen] = await Promise.all([
      store.challenges.insert(challenge('o-1')),
      store.challenges.insert(challenge('o-2')),
      challengesWithLookup.takeFirst(db.kysely, { lookup: 'lookup-o-2' }),
    ]);
    expect(Number(seen!.n)).toBe(1);
  });

  it('fails only the statement that waited past the lock timeout; the rest of its group runs again and commits', async () => {
    const url = (db.pool!.options as { connectionString: string }).connectionString;
    const other = openDatabase(url, { poolSize: 3, sharedConnection: { lockTimeoutMs: 200 } });
    const otherStore = createStore(other);
    try {
      await otherStore.challenges.insert(challenge('locked'));
      await otherStore.challenges.consumeWithCredential('none', 'signin', 'b', T0, 'none');
      await transactionOf.takeFirst(other.kysely, { tag: 'warm' });
      let locked!: () => void;
      const holding = new Promise<void>((resolve) => (locked = resolve));
      let finish!: () => void;
      const finished = new Promise<void>((resolve) => (finish = resolve));
      const transaction = other.kysely.transaction().execute(async (trx) => {
        await sql`select 1 from challenges where lookup = 'lookup-locked' for update`.execute(trx);
        locked();
        await finished;
      });
      await holding;
      const before = { ...autocommitGroups };
      // What is handed to pg: the group, then each member run again, but not the one that gave up (it would wait again).
      const sent = vi.spyOn(pg.Client.prototype, 'query');
      let results: PromiseSettledResult<unknown>[];
      let calls: number;
      try {
        results = await Promise.allSettled([
          otherStore.challenges.insert(challenge('l-1')),
          otherStore.challenges.consumeWithCredential('lookup-locked', 'signin', 'b', T0, 'none'),
          transactionOf.takeFirst(other.kysely, { tag: 'l' }),
        ]);
        calls = sent.mock.calls.length;
      } finally {
        sent.mockRestore();
        finish();
        await transaction;
      }
      expect(calls).toBe(3);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: '55P03' });
      expect(autocommitGroups.count - before.count).toBe(1);
      expect(autocommitGroups.reruns - before.reruns).toBe(1);
      expect(await otherStore.challenges.find('lookup-l-1')).toMatchObject({ id: 'l-1' });
      // The consume that gave up changed nothing.
      expect(await otherStore.challenges.find('lookup-locked')).toMatchObject({ state: 'active' });
    } finally {
      await other.close();
    }
  });

  it('keeps the shared connection when pg’s query_timeout is set and groups answer in time, or fail', async () => {
    const url = (db.pool!.options as { connectionString: string }).connectionString;
    const other = openDatabase(`${url}${url.includes('?') ? '&' : '?'}query_timeout=1500`, { poolSize: 3 });
    const otherStore = createStore(other);
    try {
      await transactionOf.takeFirst(other.kysely, { tag: 'warm' });
      await otherStore.challenges.insert(challenge('t-0'));
      const { pid: shared } = (await backendPid.takeFirst(other.kysely, {}))!;
      const before = autocommitGroups.count;
      await Promise.all([transactionOf.takeFirst(other.kysely, { tag: 'a' }), transactionOf.takeFirst(other.kysely, { tag: 'b' })]);
      // A group that fails (the same challenge again) and runs again.
      const failed = await Promise.allSettled([otherStore.challenges.insert(challenge('t-again', 'lookup-t-0')), transactionOf.takeFirst(other.kysely, { tag: 'c' })]);
      expect(failed.map((r) => r.status)).toEqual(['rejected', 'fulfilled']);
      expect(autocommitGroups.count - before).toBe(2);
      // Past the timeout: a timer left running would have ended the connection by now.
      await new Promise((resolve) => setTimeout(resolve, 1_700));
      expect((await backendPid.takeFirst(other.kysely, {}))!.pid).toBe(shared);
    } finally {
      await other.close();
    }
  });

  it('rejects every statement of a group whose connection is lost, and runs none again', async () => {
    const { pid: killed } = (await backendPid.takeFirst(db.kysely, {}))!;
    const before = { ...autocommitGroups };
    const settling = Promise.allSettled([
      store.challenges.insert(challenge('k-1')),
      sleepThenTag.takeFirst(db.kysely, { seconds: 30, tag: 'sleeping' }),
      transactionOf.takeFirst(db.kysely, { tag: 'k' }),
    ]);
    await endWhileSleeping(killed);
    expect((await settling).map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(autocommitGroups.count - before.count).toBe(1);
    expect(autocommitGroups.reruns).toBe(before.reruns);
    // Rolled back with its group when the backend ended, and not written again. (The first statement after may still
    // meet the ended connection: the client learns it is closed when it next reads from it.)
    const find = () => store.challenges.find('lookup-k-1');
    expect(await find().catch(find)).toBeUndefined();
  });
});

describe.skipIf(target.skipReason !== undefined)('the shared connection with a pool of one (PostgreSQL)', () => {
  afterAll(() => target.cleanup());

  it('is not used: transactions would wait for the one connection for ever', async () => {
    const db = await target.open({ poolSize: 1 });
    const before = sharedStatements.count;
    const [a, b] = await Promise.all([pid(db), db.kysely.transaction().execute((trx) => backendPid.takeFirst(trx, {}))]);
    expect(a).toBe(b!.pid);
    expect(sharedStatements.count).toBe(before);
  });
});
