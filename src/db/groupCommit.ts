/**
 * Group commit: transactions that ask for it and start in the same turn of the
 * event loop run one after another inside one transaction and commit together.
 *
 * On SQLite, a commit in WAL mode appends every page the transaction changed
 * to the WAL. Concurrent sign-ins change some of the same pages (the sessions
 * and audit tables' last leaves, `sqlite_sequence`), so one commit for several
 * writes each of those once (BENCHMARKS.md). Each caller runs in a savepoint of
 * its own: when its callback throws, only its savepoint is rolled back.
 *
 * On PostgreSQL, a sign-in's writes go out without waiting for their answers
 * (src/db/pgClient.ts), so a group's are one round trip, one backend wake-up
 * and one WAL flush, where each transaction of its own would cost those each.
 * A savepoint cannot be rolled back without first waiting for the answers
 * before it, so there are none: when anything in the group fails (a callback
 * throws, a statement fails, as a use that lost fails by design, or the
 * commit), none of its writes land, and every caller runs again in a
 * transaction of its own, concurrently, as if the group had never been. Only
 * the one that fails then fails.
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
import { PreparedQuery } from './preparedQuery.js';

const statement = (text: string) => new PreparedQuery<object, never>((db) => ({ compile: () => sql.raw<never>(text).compile(db) }));
const savepoint = statement('savepoint latchkey_group');
const release = statement('release savepoint latchkey_group');
const rollbackTo = statement('rollback to savepoint latchkey_group');

interface Queued {
  fn: (trx: Transaction<Database>) => Promise<unknown>;
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
   * that failed, whose callers each ran again alone.
   */
  readonly stats = { commits: 0, transactions: 0, reruns: 0 };

  constructor(
    private readonly db: Kysely<Database>,
    /** false on PostgreSQL (above). */
    readonly savepoints: boolean,
  ) {}

  /** Run `fn` in a transaction that may commit together with others started in this turn of the event loop. */
  run<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    // PostgreSQL: one group at a time. Those that start meanwhile go together once it has committed (so two groups
    // never hold rows the other waits for, which PostgreSQL would resolve only after deadlock_timeout).
    if (this.inFlight) return;
    this.scheduled = false;
    const group = this.queue;
    this.queue = [];
    this.stats.commits++;
    this.stats.transactions += group.length;
    if (!this.savepoints) {
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
    try {
      await this.db.transaction().execute(async (trx) => {
        for (const queued of group) {
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
      for (const queued of group) queued.reject(error);
      return;
    }
    group.forEach((queued, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) queued.resolve(outcome.value);
      else queued.reject(outcome.error);
    });
  }

  /** PostgreSQL: the group in one transaction; when it fails, each caller alone. */
  private async flushWithoutSavepoints(group: Queued[]): Promise<void> {
    if (group.length === 1) {
      const [only] = group as [Queued];
      await this.db.transaction().execute(only.fn).then(only.resolve, only.reject);
      return;
    }
    const values: unknown[] = [];
    try {
      await this.db.transaction().execute(async (trx) => {
        for (const queued of group) values.push(await queued.fn(trx));
      });
    } catch {
      // Concurrently, as transactions of their own would have run; the next group waits for them, so no group ever
      // runs beside another transaction of this GroupCommit.
      this.stats.reruns++;
      await Promise.all(group.map((queued) => this.db.transaction().execute(queued.fn).then(queued.resolve, queued.reject)));
      return;
    }
    group.forEach((queued, i) => queued.resolve(values[i]));
  }
}
