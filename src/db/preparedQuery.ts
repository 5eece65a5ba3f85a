/**
 * Hot queries built and compiled by Kysely once, then run with fresh
 * parameters. Building and compiling a query (operation nodes, freezing, the
 * visitor) cost about as much CPU as SQLite takes to run most of ours
 * (BENCHMARKS.md); the sign-in path runs about ten queries per ceremony.
 *
 * The query is still written with Kysely's builder, so it stays typed and
 * dialect-neutral: `build` receives stand-ins for the parameters, the query is
 * compiled once per dialect, and each stand-in's position in the compiled
 * parameters is remembered. `build` must use each parameter only as a value
 * (never branch on it, spread it or inline it as a literal); values the query
 * writes itself (`state: 'active'`) stay constants. Used by the persisters
 * only, so flows never see SQL.
 */
import { CompiledQuery, type Compilable, type Kysely, type QueryResult } from 'kysely';
import type SQLite from 'better-sqlite3';
import type { Database } from './schema.js';
import { nameStatement, type StatementOptions } from './pgClient.js';

/**
 * SQLite only: the connection and statement cache behind a Kysely handle's
 * adapter, registered by `openDatabase`. A prepared query then runs its
 * statement directly, without Kysely's executor, connection provider and
 * mutex (a few microseconds and several promise hops per query), when that
 * is the same as going through Kysely:
 *
 * - on a transaction handle: Kysely's connection mutex is held by that
 *   transaction for its whole callback, so its statements are the only ones
 *   on the connection;
 * - on the database handle, when no transaction is open on the connection
 *   (better-sqlite3's `inTransaction`): the statement runs in autocommit, as it
 *   would after Kysely's mutex. While one is open, the query goes through
 *   Kysely and waits for it, so it never runs inside someone else's transaction.
 */
export interface DirectSqlite {
  sqlite: SQLite.Database;
  prepare(sql: string): SQLite.Statement;
}

const directSqlite = new WeakMap<object, DirectSqlite>();

/**
 * Whether the SQLite connection behind this handle is inside a transaction (false after an error that rolled the
 * whole transaction back); undefined where it cannot tell (not SQLite, or not opened through openDatabase).
 */
export function sqliteInTransaction(db: Kysely<Database>): boolean | undefined {
  return directSqlite.get(dialectKey(db))?.sqlite.inTransaction;
}

/** Let prepared queries on this Kysely handle (and its transactions) run their SQLite statements directly. */
export function registerDirectSqlite(db: Kysely<Database>, direct: DirectSqlite): void {
  directSqlite.set(dialectKey(db), direct);
}

/**
 * PostgreSQL only: the shared connection behind a database handle (src/db/sharedConnection.ts), registered by
 * `openDatabase`. A prepared query on that handle itself (never a transaction's, nor a single connection's: those
 * are other handles) then goes to the shared connection directly, without Kysely's executor, connection provider and
 * driver (several allocations and promise hops per query) that would take it to the same place; undefined sends it
 * through Kysely. Kysely has no plugin or query log here (`openDatabase`) that this would skip.
 */
export type DirectShared = <R>(query: CompiledQuery) => Promise<QueryResult<R>> | undefined;

const directShared = new WeakMap<Kysely<Database>, DirectShared>();

/** Let prepared queries on this Kysely handle (only this one) go to its shared connection directly. */
export function registerDirectShared(db: Kysely<Database>, execute: DirectShared): void {
  directShared.set(db, execute);
}

const STAND_IN = '\u0000latchkey-parameter:';

type Slot = { name: string } | { value: unknown };

interface Template {
  sql: string;
  slots: Slot[];
}

/** Something that identifies the SQL dialect a Kysely handle compiles for (a transaction shares its database's). */
function dialectKey(db: Kysely<Database>): object {
  // getExecutor() is marked internal in Kysely 0.28, but it is how Kysely itself reaches the adapter, which a
  // transaction shares with its database. Without it every handle counts as its own dialect: still correct.
  return (db as { getExecutor?: () => { adapter: object } }).getExecutor?.().adapter ?? db;
}

/**
 * A query that only reads (no `for update`, no function that writes): on PostgreSQL's shared connection it may commit
 * with the turn's other statements of its group (src/db/pgClient.ts, StatementOptions.group).
 */
export const READ: StatementOptions = Object.freeze({ group: 'withoutFlush' });
/**
 * A WebAuthn challenge's insert or consume, committed without waiting for the WAL flush (ChallengePersister's
 * withoutSyncCommit sets that for its whole transaction): in the reads' group, which holds only reads and such
 * writes, none of which needs more.
 */
export const CHALLENGE_WRITE: StatementOptions = Object.freeze({ group: 'withoutFlush' });
/**
 * A durable write of one row of the caller's own (oidc-provider's models: a code or refresh token spent, a token
 * saved): on PostgreSQL's shared connection it may commit with the turn's other such writes, sharing their WAL flush
 * (StatementOptions.group).
 */
export const DURABLE_WRITE: StatementOptions = Object.freeze({ group: 'durable' });

export class PreparedQuery<P extends object, R> {
  private readonly templates = new WeakMap<object, Template>();

  constructor(
    private readonly build: (db: Kysely<Database>, params: P) => Compilable<R>,
    /** How PostgreSQL may send it (src/db/pgClient.ts): deferred inside a transaction, grouped outside one. */
    private readonly options: StatementOptions = {},
  ) {}

  /** The compiled SQL and parameters for `params` (tests and debugging). */
  compile(db: Kysely<Database>, params: P): CompiledQuery<R> {
    const template = this.templateFor(db);
    return CompiledQuery.raw(template.sql, fill(template, params)) as CompiledQuery<R>;
  }

  execute(db: Kysely<Database>, params: P): Promise<QueryResult<R>> {
    const key = dialectKey(db);
    const template = this.templateFor(db, key);
    const direct = directSqlite.get(key);
    if (direct && (db.isTransaction || !direct.sqlite.inTransaction)) {
      try {
        return Promise.resolve(runDirect<R>(direct, template.sql, fill(template, params)));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const query = CompiledQuery.raw(template.sql, fill(template, params)) as CompiledQuery<R>;
    return directShared.get(db)?.<R>(query) ?? db.executeQuery(query);
  }

  /** Run and return the first row, like `executeTakeFirst()` on a select or a `returning` query. */
  async takeFirst(db: Kysely<Database>, params: P): Promise<R | undefined> {
    return (await this.execute(db, params)).rows[0];
  }

  /** Run and return how many rows were inserted, updated or deleted. */
  async affectedRows(db: Kysely<Database>, params: P): Promise<number> {
    return Number((await this.execute(db, params)).numAffectedRows ?? 0n);
  }

  private templateFor(db: Kysely<Database>, key = dialectKey(db)): Template {
    let template = this.templates.get(key);
    if (!template) {
      const standIns = new Proxy({} as P, { get: (_target, name) => (typeof name === 'string' ? STAND_IN + name : undefined) });
      const compiled = this.build(db, standIns).compile();
      if (compiled.sql.includes(STAND_IN)) throw new Error('PreparedQuery: a parameter was inlined into the SQL text');
      const slots = compiled.parameters.map((value): Slot =>
        typeof value === 'string' && value.startsWith(STAND_IN) ? { name: value.slice(STAND_IN.length) } : { value },
      );
      template = { sql: compiled.sql, slots };
      // PostgreSQL sends it as a named statement, parsed once per connection (pgClient.ts); SQLite ignores it.
      nameStatement(compiled.sql, this.options);
      this.templates.set(key, template);
    }
    return template;
  }
}

/** What Kysely's SQLite driver returns for the statement, without going through it. */
function runDirect<R>(direct: DirectSqlite, sql: string, parameters: unknown[]): QueryResult<R> {
  const statement = direct.prepare(sql);
  if (statement.reader) return { rows: statement.all(parameters) as R[] };
  const { changes, lastInsertRowid } = statement.run(parameters);
  return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
}

function fill(template: Template, params: object): unknown[] {
  const values = params as Record<string, unknown>;
  return template.slots.map((slot) => {
    if (!('name' in slot)) return slot.value;
    const value = values[slot.name];
    if (value === undefined) throw new Error(`PreparedQuery: no value for parameter "${slot.name}"`);
    return value;
  });
}
