/**
 * PostgreSQL: the hot autocommit statements of concurrent requests share one pipelined connection.
 *
 * Each round trip to PostgreSQL costs more CPU than the statement it carries on a small machine (BENCHMARKS.md: a
 * socket write, loopback delivery, a backend's wake-up, Node's wake-up for the answer; ~300 µs on each side here).
 * At concurrency 16 several requests have a statement ready in the same turn of the event loop; from the pool each
 * would take a connection of its own and its own write, and wake its own backend. Here a Kysely query outside a
 * transaction whose SQL is one of the prepared hot queries (a named statement, src/db/preparedQuery.ts: short,
 * indexed) goes out on one connection held from the pool for the purpose, in pg's pipeline mode (PgClient), with
 * the socket corked until the turn ends (a prepared query on the database handle arrives without Kysely's executor:
 * registerDirectShared in src/db/preparedQuery.ts): the turn's statements leave in one write, one backend stays awake for
 * them, and their answers come back together. Measured (BENCHMARKS.md, "concurrent requests' statements on one shared
 * connection"): about a fifth to a quarter less CPU per sign-in ceremony on PostgreSQL, Latchkey's and PostgreSQL's.
 *
 * Of the turn's statements, the groupable ones (reads, and a WebAuthn challenge's writes, which commit without waiting
 * for the WAL flush: StatementOptions.group in src/db/pgClient.ts) go out as one implicit transaction with one Sync,
 * so PostgreSQL commits and answers once for them all (BENCHMARKS.md, "groups of autocommit statements"); the turn's
 * durable single-row writes (oidc-provider's models: DURABLE_WRITE) as a second one, so they wait for one WAL flush
 * together instead of one each in turn, the connection running nothing else meanwhile.
 *
 * What stays the same for each caller:
 * - a statement that is not groupable keeps its own Sync, so it runs in its own implicit transaction and commits on
 *   its own; one that fails (a unique violation) fails only its caller, and PostgreSQL goes on with the next one. In
 *   a group that fails, the statement that failed gets the error and the others run again one at a time, so there
 *   too only the one that fails fails. (What changes in a group: its statements answer together, so one waiting for
 *   a row lock holds up those before it as well as those behind it, and its writes' row locks last until the
 *   group's commit; a group's statements are short and touch their own request's rows);
 * - a transaction never shares: `begin` acquires a connection of its own from the pool (and so does anything a
 *   connection runs after a statement that does not share, e.g. `db.connection()`'s later statements), which it keeps
 *   until it is released, as before;
 * - any other statement (ad hoc SQL: an admin search, a count) takes a pooled connection as before, so a slow one
 *   never holds up the sign-ins queued behind it; so does a hot one when `maxPending` statements are already
 *   waiting on the shared connection (one backend runs them one after another; past that, spread them).
 *
 * A statement on the shared connection waits at most `lockTimeoutMs` (5 s) for a row lock, then fails: the statements
 * pipelined behind it wait as long, and a transaction holding that lock while it awaits one of them would otherwise
 * wait for ever (a deadlock PostgreSQL cannot see). The hot statements touch the rows of their own request's flow,
 * session or user, which other transactions hold for a round trip or two at most, so this bounds an accident, not a
 * normal wait.
 *
 * A shared connection that breaks (its backend killed, the socket closed) is given back to the pool as broken (the
 * pool ends it); pg rejects every statement waiting on it, so its callers get an error, never a hang, and the next
 * statement opens a new one. The pool's figures stay the connections' (`latchkey_db_pool_*`): the shared one is a
 * pooled connection permanently in use, so sharing needs a pool of at least two.
 */
import { CompiledQuery, type DatabaseConnection, type Dialect, type Driver, type QueryResult, type TransactionSettings } from 'kysely';
import type pg from 'pg';
import { statementName } from './pgClient.js';
import type { DirectShared } from './preparedQuery.js';

export interface SharedConnectionOptions {
  /** Statements waiting on the shared connection beyond which the next hot one takes a pooled connection (32). */
  maxPending?: number;
  /**
   * How long a statement on the shared connection may wait for a row lock before it fails (PostgreSQL's
   * lock_timeout, 5,000 ms): the statements pipelined behind it wait as long, and a transaction that holds the lock
   * while it awaits one of them would otherwise never end.
   */
  lockTimeoutMs?: number;
}

/** Statements sent on the shared connection so far in this process (the benchmarks report it). */
export const sharedStatements = { count: 0 };

type SharingClient = pg.PoolClient & { corkUntilNextTurn?: () => void; groupAutocommit?: () => void };

/**
 * `dialect` (Kysely's PostgresDialect over `pool`) with its hot autocommit statements on one shared connection, and
 * `executeIfStarted`, which sends one there without going through Kysely (src/db/preparedQuery.ts,
 * registerDirectShared). For one Kysely instance: its one driver owns the shared connection.
 */
export function withSharedConnection(dialect: Dialect, pool: pg.Pool, options: SharedConnectionOptions = {}): { dialect: Dialect; executeIfStarted: DirectShared } {
  const shared = new SharedConnection(pool, options.maxPending ?? 32, options.lockTimeoutMs ?? 5_000);
  let driver: SharingDriver | undefined;
  return {
    dialect: {
      createAdapter: () => dialect.createAdapter(),
      createIntrospector: (db) => dialect.createIntrospector(db),
      createQueryCompiler: () => dialect.createQueryCompiler(),
      createDriver: () => {
        if (driver) throw new Error('withSharedConnection: one Kysely instance per dialect (its driver owns the shared connection)');
        return (driver = new SharingDriver(dialect.createDriver(), shared));
      },
    },
    // A hot statement straight to the shared connection, as a query Kysely runs outside a transaction gets there
    // through its executor: undefined when it must take a connection of its own, and until Kysely has started its
    // driver (Kysely destroys only a driver whose start succeeded, and the driver's destroy closes the connection;
    // the statements sent while it starts wait for it in order, as before).
    executeIfStarted: (query) => (driver?.started ? shared.tryExecute(query) : undefined),
  };
}

class SharedConnection {
  private client: SharingClient | undefined;
  private connecting: Promise<SharingClient> | undefined;
  private pending = 0;
  private closed = false;
  private drained: (() => void) | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly maxPending: number,
    private readonly lockTimeoutMs: number,
  ) {}

  /** The statement's answer from the shared connection, or undefined when it must take a connection of its own. */
  tryExecute<R>(query: CompiledQuery): Promise<QueryResult<R>> | undefined {
    if (this.closed || this.pending >= this.maxPending || statementName(query.sql) === undefined) return undefined;
    this.pending++;
    sharedStatements.count++;
    const client = this.client;
    const answer = client ? this.send<R>(client, query) : this.connect().then((c) => this.send<R>(c, query));
    return answer.finally(() => this.settled());
  }

  /** Wait for the statements under way, then give the connection back (before the pool ends). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.pending > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    this.client = undefined;
    // Ended, not pooled: its lock_timeout is its own.
    client?.release(true);
  }

  private async send<R>(client: SharingClient, query: CompiledQuery): Promise<QueryResult<R>> {
    client.corkUntilNextTurn?.();
    const { command, rowCount, rows } = await client.query(query.sql, query.parameters as unknown[]);
    return {
      numAffectedRows: command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE' ? BigInt(rowCount ?? 0) : undefined,
      rows: (rows ?? []) as R[],
    };
  }

  private settled(): void {
    if (--this.pending === 0 && this.drained) this.drained();
  }

  private connect(): Promise<SharingClient> {
    this.connecting ??= this.pool.connect().then(
      async (client: SharingClient) => {
        // pg has already rejected every statement waiting on it when it reports the error.
        client.on('error', (error) => this.drop(client, error));
        try {
          // For this connection's life: it is never handed to anyone else (close() ends it with the pool).
          await client.query(`set lock_timeout = ${Math.max(1, Math.round(this.lockTimeoutMs))}`);
          // PgClient: a turn's statements of each group (reads and a challenge's writes; durable writes) commit together.
          client.groupAutocommit?.();
        } catch (error) {
          this.connecting = undefined;
          client.release(error instanceof Error ? error : new Error(String(error)));
          throw error;
        }
        this.connecting = undefined;
        this.client = client;
        return client;
      },
      (error: unknown) => {
        this.connecting = undefined;
        throw error;
      },
    );
    return this.connecting;
  }

  /** A broken connection back to the pool, which ends it; the next statement opens another. */
  private drop(client: SharingClient, error: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.release(error);
  }
}

/**
 * A connection that shares until it must not: its hot autocommit statements go to the shared connection; a
 * transaction, or any other statement, acquires a pooled connection, kept until Kysely releases this one.
 */
class LazyConnection implements DatabaseConnection {
  private own: Promise<DatabaseConnection> | undefined;

  constructor(
    private readonly driver: Driver,
    private readonly shared: SharedConnection,
  ) {}

  executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (!this.own) {
      const answer = this.shared.tryExecute<R>(query);
      if (answer) return answer;
    }
    return this.dedicated().then((connection) => connection.executeQuery<R>(query));
  }

  async *streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    yield* (await this.dedicated()).streamQuery<R>(query, chunkSize);
  }

  dedicated(): Promise<DatabaseConnection> {
    return (this.own ??= this.driver.acquireConnection());
  }

  async release(): Promise<void> {
    if (!this.own) return;
    const connection = await this.own.catch(() => undefined);
    if (connection) await this.driver.releaseConnection(connection);
  }
}

class SharingDriver implements Driver {
  constructor(
    private readonly inner: Driver,
    private readonly shared: SharedConnection,
  ) {}

  #started = false;

  /** Kysely's init() of this driver has succeeded, so Kysely's destroy() will call this driver's. */
  get started(): boolean {
    return this.#started;
  }

  async init(): Promise<void> {
    await this.inner.init();
    this.#started = true;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new LazyConnection(this.inner, this.shared);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    await this.inner.beginTransaction(await (connection as LazyConnection).dedicated(), settings);
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await this.inner.commitTransaction(await (connection as LazyConnection).dedicated());
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await this.inner.rollbackTransaction(await (connection as LazyConnection).dedicated());
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['savepoint']>>[2]): Promise<void> {
    await this.inner.savepoint!(await (connection as LazyConnection).dedicated(), name, compile);
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['savepoint']>>[2]): Promise<void> {
    await this.inner.rollbackToSavepoint!(await (connection as LazyConnection).dedicated(), name, compile);
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['savepoint']>>[2]): Promise<void> {
    await this.inner.releaseSavepoint!(await (connection as LazyConnection).dedicated(), name, compile);
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    await (connection as LazyConnection).release();
  }

  async destroy(): Promise<void> {
    await this.shared.close();
    await this.inner.destroy();
  }
}
