/**
 * The pg client Latchkey's PostgreSQL pool uses (`new pg.Pool({ Client: pgClientClass() })`). Kysely's driver calls
 * `client.query(text, values)` and awaits each statement; this client makes two things cheaper underneath it
 * (BENCHMARKS.md, "PostgreSQL at SQLite's cost"):
 *
 * - **Named statements.** The hot queries (src/db/preparedQuery.ts) register their SQL text here and go out as
 *   named prepared statements: PostgreSQL parses, analyses and plans each once per pooled connection, then only
 *   binds and executes it. An unnamed statement's text is sent, parsed and planned every time.
 * - **Deferred writes in a transaction.** Inside `begin` … `commit`, a statement registered as deferrable (an insert
 *   whose result no caller reads: a session, an audit record) is sent without waiting for its answer, and so is the
 *   `begin` itself; they go out in one write with the next statement whose answer is needed, or with the `commit`.
 *   A sign-in's transaction (begin, counter update, session insert, audit insert, commit) then takes one round trip
 *   instead of five: its counter update is deferrable too, written to fail when it changes no row
 *   (`authenticators.recordUseOrFail`), so the transaction needs no answer before its commit. Nothing is weakened: the statements still run in order in the one transaction, and when a
 *   deferred one fails, the next awaited statement or the commit rejects with its error (PostgreSQL has aborted the
 *   transaction, so the commit rolls it back).
 *
 * The connection runs in pg's pipeline mode, which lets a statement be sent before the previous one's answer is
 * back; each statement still has its own Sync, so outside a transaction each one commits on its own as before. That
 * is also what lets concurrent requests' hot statements share one connection (src/db/sharedConnection.ts).
 */
import { createRequire } from 'node:module';
import type pg from 'pg';

interface Statement {
  name: string;
  deferrable: boolean;
}

const statements = new Map<string, Statement>();

/**
 * Give this SQL text a statement name (idempotent). Texts are the prepared queries' compiled SQL, a bounded set.
 * `deferrable`: inside a transaction the caller never reads its result, and it may fail at the commit instead.
 */
export function nameStatement(sql: string, options: { deferrable?: boolean } = {}): void {
  if (!statements.has(sql)) statements.set(sql, { name: `latchkey_${statements.size + 1}`, deferrable: options.deferrable ?? false });
}

/** The statement name for a text, if it has one (tests). */
export function statementName(sql: string): string | undefined {
  return statements.get(sql)?.name;
}

/** Statements sent deferred so far in this process (the benchmarks count round trips with it). */
export const deferredStatements = { count: 0 };

type QueryConfig = { text: string; values: unknown[]; name?: string };

/** What Kysely reads from a deferred statement's answer: no rows, and no command, so no affected-row count. */
const DEFERRED_RESULT = Object.freeze({ command: '', rowCount: null, rows: [], fields: [] });

/**
 * The PgClient class, made on first use: pg is loaded only when a PostgreSQL database is opened, so a server on
 * SQLite never holds its code (about 2.5 MiB of heap). pg is CommonJS, so require() loads it synchronously.
 */
export function pgClientClass(): typeof pg.Client {
  return (defined ??= definePgClient(createRequire(import.meta.url)('pg') as typeof pg));
}

let defined: typeof pg.Client | undefined;

const definePgClient = (pgModule: typeof pg) => class PgClient extends pgModule.Client {
  private inTransaction = false;
  /** Deferred statements of the open transaction not yet answered; each settles to undefined. */
  private deferred: Promise<void>[] = [];
  /** The first deferred statement's failure in the open transaction. */
  private deferredFailure: { error: unknown } | undefined;
  private corked = false;

  constructor(config?: string | pg.ClientConfig) {
    super({ ...(typeof config === 'string' ? { connectionString: config } : config), pipeline: true } as pg.ClientConfig);
  }

  // pg's overloads can't be restated in a subclass; the one Kysely uses is (text, values) → Promise.
  override query(...args: any[]): any {
    const [text, values] = args;
    if (typeof text !== 'string' || args.length !== 2 || !Array.isArray(values)) return (super.query as (...a: unknown[]) => unknown)(...args);
    const statement = statements.get(text);
    const config: QueryConfig = statement ? { name: statement.name, text, values } : { text, values };
    if (text === 'begin' && !this.inTransaction) {
      this.inTransaction = true;
      return this.defer(config);
    }
    if (this.inTransaction && statement?.deferrable) return this.defer(config);
    const answer = this.send(config);
    if (!this.inTransaction) return answer;
    if (text === 'commit' || text === 'rollback') return this.endTransaction(answer);
    return this.deferred.length ? this.afterDeferred(answer) : answer;
  }

  /**
   * pg's query(config) copies the config object property by property (its cloneQueryConfig, ~2 % of a sign-in on
   * PostgreSQL) and wraps its promise in another; a Query made from the text is submitted as it is.
   */
  private send(config: QueryConfig): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const query = new pgModule.Query(config.text, config.values, (error: Error | undefined, result: unknown) => {
        if (error) reject(error);
        else resolve(result);
      });
      // Read when it is sent (pg's Query.prepare); @types/pg does not declare it.
      if (config.name) (query as { name?: string }).name = config.name;
      super.query(query);
    });
  }

  /** Send now, answer at once; the real answer is checked by the next awaited statement or the commit. */
  private defer(config: QueryConfig): Promise<unknown> {
    this.corkUntilNextTurn();
    deferredStatements.count++;
    this.deferred.push(
      this.send(config).then(
        () => undefined,
        (error: unknown) => {
          this.deferredFailure ??= { error };
        },
      ),
    );
    return Promise.resolve(DEFERRED_RESULT);
  }

  /** The answer to a statement sent after deferred ones; a deferred one's failure comes first (it aborted the transaction). */
  private async afterDeferred(answer: Promise<unknown>): Promise<unknown> {
    const settled = await Promise.allSettled([answer, ...this.deferred]);
    this.deferred = [];
    if (this.deferredFailure) throw this.deferredFailure.error;
    const [first] = settled;
    if (first!.status === 'rejected') throw first!.reason;
    return first!.value;
  }

  private async endTransaction(answer: Promise<unknown>): Promise<unknown> {
    try {
      return await this.afterDeferred(answer);
    } finally {
      this.inTransaction = false;
      this.deferred = [];
      this.deferredFailure = undefined;
    }
  }

  /**
   * Hold this turn of the event loop's statements in the socket's buffer and send them in one write: the deferred
   * ones and the statement that follows them (Kysely issues it a few promise hops later, in the same turn), or on
   * the shared connection every request's statements of this turn (src/db/sharedConnection.ts).
   */
  corkUntilNextTurn(): void {
    if (this.corked) return;
    const stream = (this as unknown as { connection: { stream: { cork(): void; uncork(): void } } }).connection.stream;
    stream.cork();
    this.corked = true;
    setImmediate(() => {
      this.corked = false;
      stream.uncork();
    });
  }
};
