/**
 * Group commit: transactions that ask for it and start in the same turn of the
 * event loop run one after another inside one transaction and commit together.
 *
 * On SQLite, a commit in WAL mode appends every page the transaction changed
 * to the WAL. Concurrent sign-ins change some of the same pages (the sessions
 * and audit tables' last leaves, `sqlite_sequence`), so one commit for several
 * writes each of those once (BENCHMARKS.md). Each caller runs in a savepoint of
 * its own: when its callback throws, only its savepoint is rolled back; a caller
 * of one statement needs none (`oneStatement`, run()).
 *
 * On PostgreSQL, a sign-in's writes need no answer, so a transaction of them
 * is sent whole at its commit (src/db/pgClient.ts): a group's are one round
 * trip, one backend wake-up and one WAL flush, where each transaction of its
 * own would cost those each (a member whose statement needs an answer costs a
 * round trip of its own inside the group). A savepoint cannot be rolled back
 * without first waiting for the answers before it, so there are none: when the
 * group is known to have rolled back (a callback throws, or PostgreSQL answers
 * with an error, as a use that lost does by design), every caller runs again in
 * a transaction of its own, concurrently, as if the group had never been, and
 * only the one that fails then fails. A commit whose answer never came (the
 * connection lost), or that PostgreSQL answered with an error after which it
 * is not known whether the commit landed (rolledBackByServer in
 * src/db/pgClient.ts: a FATAL or PANIC, a connection, resource, I/O or
 * internal error), may have landed, so no one runs again: every caller gets
 * the error. One group is in flight at a time, and those that start meanwhile
 * go together next: in one process, two groups never wait for rows the other
 * holds (a group and the previous group's callers running alone can, and two
 * instances' groups can, as any two transactions can, until PostgreSQL's
 * deadlock_timeout fails one of them). Every transaction it runs waits at
 * most LOCK_TIMEOUT_MS for a row lock (a transaction left open elsewhere): a
 * group that gives up runs again one by one, and a caller alone that gives up
 * fails, so no sign-in waits on someone else's lock, or holds a pooled
 * connection, for longer.
 *
 * For each caller this is the same as its own transaction after the previous
 * one: its statements see the earlier ones' writes; nobody's promise settles
 * before its commit. On SQLite a failed commit rejects every one of them. The
 * callbacks must only run database statements and compute (no timers, no
 * network, nothing done outside the database that a second run would repeat),
 * so the group stays open for one turn of the event loop at most, and on
 * PostgreSQL a callback may run twice.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from './schema.js';
import { PreparedQuery, sqliteInTransaction } from './preparedQuery.js';
import { rolledBackByServer } from './pgClient.js';

const statement = (text: string) => new PreparedQuery<object, never>((db) => ({ compile: () => sql.raw<never>(text).compile(db) }));
const savepoint = statement('savepoint latchkey_group');
const release = statement('release savepoint latchkey_group');
const rollbackTo = statement('rollback to savepoint latchkey_group');
/** PostgreSQL: how long a group may wait for a row lock before it gives up and its callers run one by one. */
export const LOCK_TIMEOUT_MS = 5_000;
// Nothing reads its answer: it goes out with the group's statements (src/db/pgClient.ts).
const setLockTimeout = new PreparedQuery<{ ms: string }, never>(
  (db, p) => ({ compile: () => sql<never>`select set_config('lock_timeout', ${p.ms}, true)`.compile(db) }),
  { deferrable: true },
);

interface Queued {
  fn: (trx: Transaction<Database>) => Promise<unknown>;
  /** `fn` runs one statement (run()). */
  oneStatement: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled = false;
  /** PostgreSQL: a group's transaction has not settled yet. */
  private inFlight = false;
  /**
   * How many transactions the commits so far carried (tests and the benchmark); on PostgreSQL, `reruns`: the groups
   * that rolled back, whose callers each ran again alone (each such run counted as a commit of its own).
   */
  readonly stats = { commits: 0, transactions: 0, reruns: 0 };

  constructor(
    private readonly db: Kysely<Database>,
    /** How one caller's writes are undone: 'savepoints' on SQLite, 'rerun' on PostgreSQL (above). */
    readonly kind: 'savepoints' | 'rerun',
    private readonly options: { lockTimeoutMs?: number } = {},
  ) {}

  /**
   * Run `fn` in a transaction that may commit together with others started in this turn of the event loop.
   * `oneStatement`: `fn` runs a single statement. On SQLite it then needs no savepoint of its own: a statement that
   * fails is undone alone (its statement journal), the transaction staying open for the others. Where SQLite ends the
   * whole transaction instead (sqlite.org/lang_transaction.html, "Response To Errors Within A Transaction": a full
   * disk, an I/O error, `or rollback` …), checked after the error, every caller gets that error, as at a failed
   * commit. It saves six statements per refresh grant, a savepoint and a release around each of its three writes
   * (with the service metadata kept, −8.6 % ± 2.2 per grant: BENCHMARKS.md, 2026-12-07 14:30 UTC).
   */
  run<T>(fn: (trx: Transaction<Database>) => Promise<T>, { oneStatement = false }: { oneStatement?: boolean } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, oneStatement, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    // PostgreSQL: one group at a time; those that start meanwhile go together once it has settled (above).
    if (this.inFlight) return;
    this.scheduled = false;
    // A turn scheduled while a group was in flight, whose callers went with the next group already.
    if (this.queue.length === 0) return;
    const group = this.queue;
    this.queue = [];
    this.stats.commits++;
    this.stats.transactions += group.length;
    if (this.kind === 'rerun') {
      this.inFlight = true;
      try {
        await this.flushWithoutSavepoints(group);
      } finally {
        this.inFlight = false;
        if (this.queue.length) void this.flush();
      }
      return;
    }
    if (group.length === 1) {
      // Alone: a plain transaction, no savepoint.
      const [only] = group as [Queued];
      this.db.transaction().execute(only.fn).then(only.resolve, only.reject);
      return;
    }
    const outcomes: Outcome[] = [];
    // The error that ended the transaction, which Kysely's own rollback after it would hide ("no transaction is active").
    let ended: { error: unknown } | undefined;
    try {
      await this.db.transaction().execute(async (trx) => {
        for (const queued of group) {
          if (queued.oneStatement && sqliteInTransaction(trx) !== undefined) {
            try {
              outcomes.push({ ok: true, value: await queued.fn(trx) });
            } catch (error) {
              // Undone alone, unless it ended the transaction: then the others' writes are gone too.
              if (sqliteInTransaction(trx) === false) {
                ended = { error };
                throw error;
              }
              outcomes.push({ ok: false, error });
            }
            continue;
          }
          await savepoint.execute(trx, {});
          try {
            const value = await queued.fn(trx);
            await release.execute(trx, {});
            outcomes.push({ ok: true, value });
          } catch (error) {
            // Undo this caller's writes only; the others' stay in the transaction.
            await rollbackTo.execute(trx, {});
            await release.execute(trx, {});
            outcomes.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      for (const queued of group) queued.reject(ended ? ended.error : error);
      return;
    }
    group.forEach((queued, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) queued.resolve(outcome.value);
      else queued.reject(outcome.error);
    });
  }

  /** PostgreSQL: the group in one transaction; when it is known to have rolled back, each caller alone. */
  private async flushWithoutSavepoints(group: Queued[]): Promise<void> {
    const values: unknown[] = [];
    let committing = false;
    try {
      await this.transaction(async (trx) => {
        for (const queued of group) values.push(await queued.fn(trx));
        committing = true;
      });
    } catch (error) {
      // Alone, a caller has no one else's failure to be spared from; a commit whose answer never came may have landed.
      if (group.length === 1 || (committing && !rolledBackByServer(error))) {
        for (const queued of group) queued.reject(error);
        return;
      }
      // Each alone, as transactions of their own would have run, concurrently and without waiting for one another:
      // the next group goes ahead.
      this.stats.reruns++;
      this.stats.commits += group.length - 1;
      for (const queued of group) this.transaction(queued.fn).then(queued.resolve, queued.reject);
      return;
    }
    group.forEach((queued, i) => queued.resolve(values[i]));
  }

  /** PostgreSQL: a transaction that waits at most the lock timeout for a row lock. */
  private transaction<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(async (trx) => {
      await setLockTimeout.execute(trx, { ms: String(this.options.lockTimeoutMs ?? LOCK_TIMEOUT_MS) });
      return fn(trx);
    });
  }
}
