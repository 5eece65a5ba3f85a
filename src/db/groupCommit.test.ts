/**
 * Transactions that share a commit (src/db/groupCommit.ts) behave, for each
 * caller, like transactions of their own run one after another, on SQLite
 * (each caller in a savepoint) and on PostgreSQL (a group that fails runs
 * again, each caller alone).
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../../test/support/databases.js';
import type { Db } from './connect.js';
import type { NewAuthenticator } from './schema.js';
import { isCounterDidNotMove } from './persisters/authenticators.js';
import { GroupCommit } from './groupCommit.js';
import { createStore, Store } from './store.js';

const T0 = Date.UTC(2026, 11, 1, 9);
const rid = (n = 16) => randomBytes(n).toString('base64url');

const databases = await testDatabases();

describe.each(databases)('group commit on $name', (database) => {
  describe.skipIf(database.skipReason !== undefined)(database.skipReason ?? 'transactions', () => {
    let db: Db;
    let store: Store;
    beforeAll(async () => {
      db = await database.open();
      await db.migrate();
      store = createStore(db);
    });
    afterAll(() => database.cleanup());

    async function userWithPasskey(): Promise<{ userId: string; authenticatorId: string }> {
      const userId = rid();
      const email = `${userId.toLowerCase()}@example.test`;
      await store.users.insert({ id: userId, email, email_normalized: email, display_name: 'Group Commit', status: 'enrolled', created_at: T0, updated_at: T0 });
      const authenticator: NewAuthenticator = {
        id: rid(12),
        user_id: userId,
        type: 'passkey',
        credential_id: rid(32),
        public_key: rid(77),
        counter: 0,
        transports: '[]',
        aaguid: '00000000-0000-0000-0000-000000000000',
        backup_eligible: 0,
        backed_up: 0,
        attestation_format: 'none',
        name: 'Passkey',
        created_at: T0,
        last_used_at: null,
      };
      await store.authenticators.insert(authenticator);
      return { userId, authenticatorId: authenticator.id };
    }

    function session(userId: string, at = T0) {
      return { id_hash: rid(32), public_id: rid(12), user_id: userId, created_at: at, last_seen_at: at, authenticated_at: at, expires_at: at + 3_600_000, aal: 2, ip: '127.0.0.1', user_agent: 'test', authenticator_id: null };
    }

    async function sessionCount(userId: string): Promise<number> {
      return (await store.sessions.listForUser(userId, T0)).length;
    }

    it('commits transactions started in the same turn once, and every one of them lands', async () => {
      const people = await Promise.all([1, 2, 3, 4, 5].map(() => userWithPasskey()));
      const before = store.groupCommitStats && { ...store.groupCommitStats };
      const results = await Promise.all(
        people.map(({ userId, authenticatorId }, i) =>
          store.transaction(async (tx) => {
            const used = await tx.authenticators.recordUse(authenticatorId, { counter: i + 1, backedUp: false, backupEligible: false, at: T0 });
            await tx.sessions.insert(session(userId));
            await tx.audit.record({ at: T0, event: 'signin', outcome: 'success', actorUserId: userId, subjectUserId: userId, authenticatorId });
            return used;
          }, { groupCommit: true }),
        ),
      );
      expect(results).toEqual([true, true, true, true, true]);
      for (const { userId } of people) expect(await sessionCount(userId)).toBe(1);
      for (const [i, { userId, authenticatorId }] of people.entries()) expect((await store.authenticators.findForUser(userId, authenticatorId))?.counter).toBe(i + 1);
      expect(store.groupCommitStats).toEqual({ commits: before!.commits + 1, transactions: before!.transactions + 5, reruns: before!.reruns });
      expect(store.groupCommitKind).toBe(database.name === 'sqlite' ? 'savepoints' : 'rerun');
    });

    it('runs them one after another, so of two uses of a passkey with the same counter one loses', async () => {
      const { userId, authenticatorId } = await userWithPasskey();
      const use = () =>
        store.transaction(async (tx) => {
          if (!(await tx.authenticators.recordUse(authenticatorId, { counter: 7, backedUp: false, backupEligible: false, at: T0 }))) return false;
          await tx.sessions.insert(session(userId));
          return true;
        }, { groupCommit: true });
      const results = await Promise.all([use(), use()]);
      // In a shared commit they run in the order they were started.
      expect(results).toEqual([true, false]);
      expect(await sessionCount(userId)).toBe(1);
    });

    it('undoes only the transaction whose callback throws, and rejects only its promise', async () => {
      const [a, b, c] = await Promise.all([userWithPasskey(), userWithPasskey(), userWithPasskey()]);
      const write = (userId: string, fail: boolean) =>
        store.transaction(async (tx) => {
          await tx.sessions.insert(session(userId));
          await tx.users.resetFailedSignins(userId);
          if (fail) throw new Error('refused after writing');
          return userId;
        }, { groupCommit: true });
      const reruns = store.groupCommitStats!.reruns;
      const settled = await Promise.allSettled([write(a!.userId, false), write(b!.userId, true), write(c!.userId, false)]);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      // PostgreSQL has no savepoint to roll back to: the group ran again, each alone.
      expect(store.groupCommitStats!.reruns).toBe(reruns + (database.name === 'postgres' ? 1 : 0));
      expect((settled[1] as PromiseRejectedResult).reason).toMatchObject({ message: 'refused after writing' });
      expect(await sessionCount(a!.userId)).toBe(1);
      expect(await sessionCount(b!.userId)).toBe(0);
      expect(await sessionCount(c!.userId)).toBe(1);
    });

    it('undoes a transaction whose statement fails (a duplicate key) and keeps the others', async () => {
      const [a, b] = await Promise.all([userWithPasskey(), userWithPasskey()]);
      const taken = session(a!.userId);
      await store.sessions.insert(taken);
      const reruns = store.groupCommitStats!.reruns;
      const settled = await Promise.allSettled([
        store.transaction(async (tx) => {
          await tx.sessions.insert(session(a!.userId));
          await tx.sessions.insert({ ...session(a!.userId), id_hash: taken.id_hash });
        }, { groupCommit: true }),
        store.transaction((tx) => tx.sessions.insert(session(b!.userId)), { groupCommit: true }),
      ]);
      expect(settled.map((s) => s.status)).toEqual(['rejected', 'fulfilled']);
      expect(await sessionCount(a!.userId)).toBe(1);
      expect(await sessionCount(b!.userId)).toBe(1);
      expect(store.groupCommitStats!.reruns).toBe(reruns + (database.name === 'postgres' ? 1 : 0));
    });

    it('of one-statement transactions sharing a commit, the one whose statement fails is undone alone', async () => {
      const [a, b, c] = await Promise.all([userWithPasskey(), userWithPasskey(), userWithPasskey()]);
      const taken = session(b!.userId);
      await store.sessions.insert(taken);
      const before = { ...store.groupCommitStats! };
      const settled = await Promise.allSettled([
        store.transaction((tx) => tx.sessions.insert(session(a!.userId)), { groupCommit: true, oneStatement: true }),
        store.transaction((tx) => tx.sessions.insert({ ...session(b!.userId), id_hash: taken.id_hash }), { groupCommit: true, oneStatement: true }),
        store.transaction((tx) => tx.sessions.insert(session(c!.userId)), { groupCommit: true, oneStatement: true }),
      ]);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(await sessionCount(a!.userId)).toBe(1);
      expect(await sessionCount(b!.userId)).toBe(1);
      expect(await sessionCount(c!.userId)).toBe(1);
      // SQLite: one commit for the three; PostgreSQL: the group ran again, each alone.
      if (database.name === 'sqlite') expect(store.groupCommitStats!.commits).toBe(before.commits + 1);
      else expect(store.groupCommitStats!.reruns).toBe(before.reruns + 1);
    });

    it.runIf(database.name === 'sqlite')('a one-statement failure that ends the transaction fails its whole group with its error, and none of it lands', async () => {
      const [a, b, c] = await Promise.all([userWithPasskey(), userWithPasskey(), userWithPasskey()]);
      const taken = session(b!.userId);
      await store.sessions.insert(taken);
      const settled = await Promise.allSettled([
        store.transaction((tx) => tx.sessions.insert(session(a!.userId)), { groupCommit: true, oneStatement: true }),
        // `or rollback`: SQLite ends the whole transaction, as it may at a full disk or an I/O error.
        store.transaction((tx) => tx.kysely.insertInto('sessions').orRollback().values({ ...session(b!.userId), id_hash: taken.id_hash }).execute(), { groupCommit: true, oneStatement: true }),
        store.transaction((tx) => tx.sessions.insert(session(c!.userId)), { groupCommit: true, oneStatement: true }),
      ]);
      expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
      for (const s of settled) expect((s as PromiseRejectedResult).reason).toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
      expect(await sessionCount(a!.userId)).toBe(0);
      expect(await sessionCount(c!.userId)).toBe(0);
      // The connection is usable afterwards.
      await store.transaction((tx) => tx.sessions.insert(session(c!.userId)), { groupCommit: true, oneStatement: true });
      expect(await sessionCount(c!.userId)).toBe(1);
    });

    it('fails only the sign-in whose use lost (recordUseOrFail) and commits the others of its group', async () => {
      const people = await Promise.all([1, 2, 3].map(() => userWithPasskey()));
      const signIn = ({ userId, authenticatorId }: { userId: string; authenticatorId: string }, counter: number) =>
        store.transaction(async (tx) => {
          await tx.authenticators.recordUseOrFail(authenticatorId, { counter, backedUp: false, backupEligible: false, at: T0 });
          await tx.sessions.insert(session(userId));
          await tx.audit.record({ at: T0, event: 'signin', outcome: 'success', actorUserId: userId, subjectUserId: userId, authenticatorId });
        }, { groupCommit: true });
      // Each passkey's counter is 0; the second's has since moved to 4, and it presents 4 again: a use that lost.
      await store.authenticators.recordUse(people[1]!.authenticatorId, { counter: 4, backedUp: false, backupEligible: false, at: T0 });
      const settled = await Promise.allSettled([signIn(people[0]!, 1), signIn(people[1]!, 4), signIn(people[2]!, 1)]);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(isCounterDidNotMove((settled[1] as PromiseRejectedResult).reason)).toBe(true);
      expect(await Promise.all(people.map(({ userId }) => sessionCount(userId)))).toEqual([1, 0, 1]);
      expect(await Promise.all(people.map(async ({ userId }) => (await store.audit.listForSubject(userId)).length))).toEqual([1, 0, 1]);
    });

    it('runs what waits for the commit once, for the run that committed, when a callback runs again', async () => {
      const [a, b] = await Promise.all([userWithPasskey(), userWithPasskey()]);
      const runs: string[] = [];
      const afterCommits: string[] = [];
      const settled = await Promise.allSettled([
        store.transaction(async (tx) => {
          const mine = session(a!.userId);
          runs.push(mine.id_hash);
          await tx.sessions.insert(mine);
          tx.afterCommit(() => afterCommits.push(mine.id_hash));
        }, { groupCommit: true }),
        store.transaction(async (tx) => {
          await tx.sessions.insert(session(b!.userId));
          throw new Error('refused after writing');
        }, { groupCommit: true }),
      ]);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected']);
      // On PostgreSQL the first callback ran twice: in the group, rolled back, then alone.
      expect(runs).toHaveLength(database.name === 'postgres' ? 2 : 1);
      expect(afterCommits).toEqual([runs.at(-1)]);
      const stored = await store.sessions.listForUser(a!.userId, T0);
      expect(stored).toHaveLength(1);
      expect(await store.sessions.findWithUser(runs.at(-1)!)).toBeDefined();
      expect(await sessionCount(b!.userId)).toBe(0);
    });

    it.runIf(database.name === 'sqlite')('rejects every transaction of a group whose commit fails, and keeps none of their writes', async () => {
      const [a, b] = await Promise.all([userWithPasskey(), userWithPasskey()]);
      const settled = await Promise.allSettled([
        store.transaction((tx) => tx.sessions.insert(session(a!.userId)), { groupCommit: true }),
        store.transaction(async (tx) => {
          // A foreign key checked at commit: the statement passes, the commit fails.
          await sql`pragma defer_foreign_keys = on`.execute(tx.kysely);
          await tx.sessions.insert(session('no-such-user'));
        }, { groupCommit: true }),
      ]);
      expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
      for (const s of settled) expect((s as PromiseRejectedResult).reason).toMatchObject({ code: 'SQLITE_CONSTRAINT_FOREIGNKEY' });
      expect(await sessionCount(a!.userId)).toBe(0);
      // The connection is usable afterwards, outside any transaction.
      await store.transaction((tx) => tx.sessions.insert(session(b!.userId)), { groupCommit: true });
      expect(await sessionCount(b!.userId)).toBe(1);
    });

    it.runIf(database.name === 'postgres')('on PostgreSQL, gathers the transactions that start while a group is in flight into the next group', async () => {
      const people = await Promise.all([1, 2, 3, 4, 5].map(() => userWithPasskey()));
      const before = { ...store.groupCommitStats! };
      const write = (i: number, wait = false) =>
        store.transaction(async (tx) => {
          if (wait) await sql`select pg_sleep(0.2)`.execute(tx.kysely);
          await tx.sessions.insert(session(people[i]!.userId));
        }, { groupCommit: true });
      const first = [write(0, true), write(1)];
      // Three more, each in a later turn of the event loop, while the first group waits on PostgreSQL.
      const later: Promise<void>[] = [];
      for (const i of [2, 3, 4]) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        later.push(write(i));
      }
      await Promise.all([...first, ...later]);
      expect(store.groupCommitStats).toEqual({ commits: before.commits + 2, transactions: before.transactions + 5, reruns: before.reruns });
      for (const { userId } of people) expect(await sessionCount(userId)).toBe(1);
    });

    it.runIf(database.name === 'postgres')('on PostgreSQL, a group kept waiting on a row lock gives up and runs one by one: the others and the next group go on, and the one whose row is held gives up alone', async () => {
      const [held, free, next] = await Promise.all([userWithPasskey(), userWithPasskey(), userWithPasskey()]);
      const group = new GroupCommit(db.kysely, 'rerun', { lockTimeoutMs: 200 });
      // Someone else's transaction holds the first passkey's row until it is let go.
      let letGo!: () => void;
      const lettingGo = new Promise<void>((resolve) => (letGo = resolve));
      let locked!: () => void;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      const blocker = db.kysely.connection().execute(async (conn) => {
        await sql`begin`.execute(conn);
        await sql`update authenticators set counter = counter where id = ${held!.authenticatorId}`.execute(conn);
        locked();
        await lettingGo;
        await sql`rollback`.execute(conn);
      });
      await isLocked;
      try {
        const settled: string[] = [];
        const write = ({ userId, authenticatorId }: { userId: string; authenticatorId: string }, counter: number, label: string) =>
          group
            .run(async (trx) => {
              const tx = new Store(trx, { inTransaction: true });
              await tx.authenticators.recordUseOrFail(authenticatorId, { counter, backedUp: false, backupEligible: false, at: T0 });
              await tx.sessions.insert(session(userId));
            })
            .then(() => settled.push(label));
        const waiting = write(held!, 1, 'held');
        const other = write(free!, 1, 'free');
        await other;
        // The group gave up after 200 ms; alone, the other sign-in committed, and a later one is not held up either.
        await write(next!, 1, 'next');
        expect(settled).toEqual(['free', 'next']);
        expect(group.stats.reruns).toBe(1);
        // Alone it waited its own lock timeout for the row still held, then failed: it held no pooled connection longer.
        await expect(waiting).rejects.toMatchObject({ code: '55P03' });
        letGo();
        expect(await Promise.all([held!, free!, next!].map(({ userId }) => sessionCount(userId)))).toEqual([0, 1, 1]);
      } finally {
        letGo();
        await blocker;
      }
    });

    it.runIf(database.name === 'postgres')('on PostgreSQL, rejects every caller of a group whose commit got no answer, and runs none of them again', async () => {
      const [a, b] = await Promise.all([userWithPasskey(), userWithPasskey()]);
      const before = { ...store.groupCommitStats! };
      // The connection the group's transaction takes is cut right after its commit is written: it may have landed.
      let armed = true;
      const cut = (client: { query: (...args: unknown[]) => unknown; connection: { stream: { destroy(): void } } }) => {
        if (!armed) return;
        armed = false;
        const query = client.query;
        client.query = function (this: typeof client, ...args: unknown[]) {
          const answer = query.apply(this, args);
          if (args[0] === 'commit') this.connection.stream.destroy();
          return answer;
        };
      };
      db.pool!.on('acquire', cut as never);
      try {
        const settled = await Promise.allSettled([a!, b!].map(({ userId }) => store.transaction((tx) => tx.sessions.insert(session(userId)), { groupCommit: true })));
        expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
        expect(armed).toBe(false);
      } finally {
        db.pool!.off('acquire', cut as never);
      }
      expect(store.groupCommitStats!.reruns).toBe(before.reruns);
      // Landed or not, never twice; the other connections go on.
      for (const { userId } of [a!, b!]) expect(await sessionCount(userId)).toBeLessThanOrEqual(1);
      await store.transaction((tx) => tx.sessions.insert(session(a!.userId, T0 + 1)), { groupCommit: true });
    });

    it.runIf(database.name === 'postgres')('on PostgreSQL, leaves no lock timeout on the connection after a group', async () => {
      const one = await database.open({ poolSize: 1 });
      await one.migrate();
      const alone = createStore(one);
      await alone.users.insert({ id: 'u-timeout', email: 'u-timeout@example.test', email_normalized: 'u-timeout@example.test', display_name: 'Group Commit', status: 'enrolled', created_at: T0, updated_at: T0 });
      await Promise.all([1, 2].map(() => alone.transaction((tx) => tx.sessions.insert(session('u-timeout')), { groupCommit: true })));
      expect(alone.groupCommitStats).toMatchObject({ commits: 1, transactions: 2 });
      // The pool's one connection, which ran the group.
      const { rows } = await sql<{ lock_timeout: string }>`show lock_timeout`.execute(one.kysely);
      expect(rows[0]!.lock_timeout).toBe('0');
    });

    it('joins the surrounding transaction instead when there is one', async () => {
      const { userId } = await userWithPasskey();
      await expect(
        store.transaction(async (outer) => {
          await outer.transaction((inner) => inner.sessions.insert(session(userId)), { groupCommit: true });
          throw new Error('outer fails');
        }),
      ).rejects.toThrow('outer fails');
      expect(await sessionCount(userId)).toBe(0);
    });
  });
});
