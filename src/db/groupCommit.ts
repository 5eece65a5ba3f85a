/**
 * Group commit on SQLite: transactions that ask for it and start in the same
 * turn of the event loop run one after another inside one SQLite transaction,
 * each in a savepoint of its own, and commit together.
 *
 * A commit in WAL mode appends every page the transaction changed to the WAL.
 * Concurrent sign-ins change some of the same pages (the sessions and audit
 * tables' last leaves, `sqlite_sequence`), so one commit for several writes
 * each of those once (BENCHMARKS.md).
 *
 * For each caller this is the same as its own transaction after the previous
 * one: its statements see the earlier ones' writes; when its callback throws,
 * its savepoint is rolled back and only its promise rejects; nobody's promise
 * settles before the commit, and a failed commit rejects every one of them.
 * The callbacks must only run database statements (no timers, no network),
 * so the group stays open for one turn of the event loop at most.
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
  /** How many transactions the last commits carried (tests and the benchmark). */
  readonly stats = { commits: 0, transactions: 0 };

  constructor(private readonly db: Kysely<Database>) {}

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
    this.scheduled = false;
    const group = this.queue;
    this.queue = [];
    this.stats.commits++;
    this.stats.transactions += group.length;
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
}
