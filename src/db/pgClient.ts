/**
 * The pg client Latchkey's PostgreSQL pool uses (`new pg.Pool({ Client: pgClientClass() })`). Kysely's driver calls
 * `client.query(text, values)` and awaits each statement; this client makes two things cheaper underneath it
 * (BENCHMARKS.md, "PostgreSQL at SQLite's cost"):
 *
 * - **Named statements.** The hot queries (src/db/preparedQuery.ts) register their SQL text here and go out as
 *   named prepared statements: PostgreSQL parses, analyses and plans each once per pooled connection, then only
 *   binds and executes it. An unnamed statement's text is sent, parsed and planned every time.
 * - **Deferred writes in a transaction.** Inside `begin` … `commit`, a statement registered as deferrable (an insert
 *   whose result no caller reads: a session, an audit record) answers at once, unsent. A transaction made only of
 *   such statements goes out at its commit as the extended protocol's implicit transaction: each statement's Bind
 *   and Execute, then one Sync, with no BEGIN and no COMMIT. PostgreSQL runs everything up to a Sync in one
 *   transaction, commits it there when all succeeded, and after a failure skips the rest and rolls it back; it
 *   answers once. A sign-in's transaction (counter update, session insert, audit insert), or a group of them
 *   (src/db/groupCommit.ts), is then one round trip and one answer: its counter update is deferrable too, written to
 *   fail when it changes no row (`authenticators.recordUseOrFail`), so the transaction needs no answer before its
 *   commit. When a statement that needs an answer comes first, the held ones go out ahead of it after a BEGIN, each
 *   without waiting for its answer, and the transaction goes on as any other. Nothing is weakened: the statements
 *   run in order in the one transaction, and when one fails, the commit (or the next awaited statement) rejects with
 *   its error and none of the transaction's writes land. A rollback before anything was sent sends nothing.
 *
 * - **Groups of autocommit statements** (the shared connection only, `groupAutocommit()`). Outside a transaction, the
 *   statements of a group (StatementOptions.group: reads, and writes that commit without waiting for the WAL flush)
 *   that concurrent requests send in one turn of the event loop go out as one implicit transaction: Bind, Describe
 *   and Execute each, one Sync. The turn's durable single-row writes (oidc-provider's models) go out the same way, as
 *   a second group after it, so they share one WAL flush and the first group's reads do not wait for it. Each caller
 *   gets its own rows. When PostgreSQL fails a statement of a group, that statement's caller gets the error and the
 *   others run again one at a time (the failure rolled back the whole group, so none of its writes lands twice),
 *   after whatever was sent behind the group: the callers are independent requests, so their statements have no
 *   order to keep.
 *
 * The connection runs in pg's pipeline mode, which lets a statement be sent before the previous one's answer is
 * back; outside a transaction each statement not in a group has its own Sync, so it commits on its own as before.
 * That is also what lets concurrent requests' hot statements share one connection (src/db/sharedConnection.ts).
 */
import { createRequire } from 'node:module';
import type pg from 'pg';

interface Statement {
  name: string;
  deferrable: boolean;
  group: StatementOptions['group'];
}

const statements = new Map<string, Statement>();

/**
 * Give this SQL text a statement name (idempotent). Texts are the prepared queries' compiled SQL, a bounded set.
 * `deferrable`: inside a transaction the caller never reads its result, and it may fail at the commit instead.
 * `group`: outside a transaction, the group of the turn's statements it may share one implicit transaction with
 * (see {@link StatementOptions}).
 */
export function nameStatement(sql: string, options: StatementOptions = {}): void {
  const deferrable = options.deferrable ?? false;
  const group = options.group;
  const named = statements.get(sql);
  if (!named) statements.set(sql, { name: `latchkey_${statements.size + 1}`, deferrable, group });
  // Two prepared queries with one text share its name: they must agree on how it may be sent.
  else if (named.deferrable !== deferrable || named.group !== group) throw new Error(`statement ${named.name} named again with other options: ${sql}`);
}

export interface StatementOptions {
  /** Inside a transaction no caller reads its result (not even the affected rows): it may fail at the commit instead. */
  deferrable?: boolean;
  /**
   * On the shared connection (src/db/sharedConnection.ts), outside a transaction: the statement may run in one
   * implicit transaction with the other statements of the same turn of the event loop in the same group, and commit
   * with them, each group committing as its members would alone.
   * - `withoutFlush`: a statement that reads, or writes what may commit without waiting for the WAL flush (a WebAuthn
   *   challenge's insert or consume, which set synchronous_commit off for their transaction).
   * - `durable`: a write whose commit waits for the WAL flush (synchronous_commit on, the default). Its group is sent
   *   after the turn's `withoutFlush` one, so that group's reads are answered without waiting for a flush, and the
   *   durable writes of concurrent requests share one commit and one flush instead of waiting for one each, one after
   *   another, on the one connection. PostgreSQL answers the group's Sync once its commit is flushed.
   *
   * A write's row locks are held until its group's commit, and the statements before one that waits for a lock get
   * their answer when it does: only short statements on their own request's rows belong in a group.
   */
  group?: 'withoutFlush' | 'durable';
}

/** The statement name for a text, if it has one (tests). */
export function statementName(sql: string): string | undefined {
  return statements.get(sql)?.name;
}

/**
 * The benchmarks count statements and round trips with these: statements sent deferred (without waiting for their
 * own answer) so far in this process, and implicit transactions sent, with the statements in them.
 */
export const deferredStatements = { count: 0 };
export const implicitTransactions = { count: 0, statements: 0 };
/**
 * Groups of autocommit statements sent on the shared connection, the statements in them, and groups run again one by
 * one; `durable`: how many of the groups were durable writes (StatementOptions.group).
 */
export const autocommitGroups = { count: 0, statements: 0, reruns: 0, durable: 0 };

/**
 * An error PostgreSQL answered with on a connection it keeps, so the transaction it ended was rolled back and nothing
 * of it committed (PostgreSQL never answers ERROR once a commit has landed: that would be a PANIC). Not a connection
 * that failed (no SQLSTATE), nor one PostgreSQL ends (severity FATAL or PANIC; the severity is in the server's
 * language, so also by SQLSTATE: connection errors 08, shutdowns 57P), nor resources, I/O or an internal error (53,
 * 58, XX), after which whether a commit landed is not known.
 */
export function rolledBackByServer(error: unknown): boolean {
  return answeredOnKeptConnection(error) && !/^(53|58|XX)/.test((error as { code: string }).code);
}

/** An error PostgreSQL answered with (it has a SQLSTATE) on a connection it keeps (not FATAL or PANIC, not 08 or 57P). */
function answeredOnKeptConnection(error: unknown): boolean {
  const { code, severity } = (error ?? {}) as { code?: unknown; severity?: unknown };
  if (typeof code !== 'string' || typeof severity !== 'string' || severity === 'FATAL' || severity === 'PANIC') return false;
  return !/^(08|57P)/.test(code);
}

/** A statement and its caller's settlement; in a group, one waiting for the end of the turn (PgClient.groupAutocommit). */
interface Member {
  config: QueryConfig;
  resolve(result: unknown): void;
  reject(error: unknown): void;
}

type QueryConfig = { text: string; values: unknown[]; name?: string };

/** A column of a RowDescription, as pg-protocol parses it (the parts a row's parsing depends on). */
interface Field {
  name: string;
  dataTypeID: number;
  format?: string;
}

/** What pg's Result builds from a RowDescription to parse rows with: a parser per column and an empty row to copy. */
interface RowShape {
  fields: readonly Field[];
  parsers: unknown[];
  emptyRow: object;
}

/** pg's Result, with the parts RowShape reuses (@types/pg declares none of them). */
interface PgResult {
  fields: readonly Field[];
  _parsers: unknown[];
  _prebuiltEmptyResultObject: object;
  addFields(fields: readonly Field[]): void;
}

function sameShape(a: readonly Field[], b: readonly Field[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.name !== b[i]!.name || a[i]!.dataTypeID !== b[i]!.dataTypeID || a[i]!.format !== b[i]!.format) return false;
  }
  return true;
}

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

/** What PgClient and its queries use of pg's Connection (the methods pg's own Query and pg-cursor write with). */
interface Connection {
  parsedStatements: Record<string, string>;
  stream: { cork(): void; uncork(): void };
  bind(config: { statement: string; values: unknown[] }): void;
  describe(config: { type: 'P'; name: string }): void;
  execute(config: { portal: string; rows: number }): void;
  sync(): void;
}

const definePgClient = (pgModule: typeof pg) => {
  const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as { prepareValue(value: unknown): unknown };
  // pg's Query, as the base of one of our own (@types/pg declares its submit as a property of another shape).
  const QueryBase = pgModule.Query as unknown as new (text: string, values: unknown[], callback: (error: Error | undefined) => void) => object;

  /**
   * Named statements already prepared on the connection, their values already in pg's text form, sent as one
   * implicit transaction (above): Bind and Execute each, then one Sync. No Describe is sent, so rows (a
   * `set_config`'s, a RETURNING's) come without a description, and nothing reads them or their completions; the
   * first error ends it. pg's client hands every message up to the Sync's answer to this query, and the callback
   * settles once.
   */
  class ImplicitTransaction extends QueryBase {
    constructor(
      private readonly batch: readonly QueryConfig[],
      callback: (error: Error | undefined) => void,
    ) {
      super('', [], callback);
    }

    submit(connection: Connection): null {
      connection.stream.cork();
      try {
        for (const statement of this.batch) {
          connection.bind({ statement: statement.name!, values: statement.values });
          connection.execute({ portal: '', rows: 0 });
        }
        connection.sync();
      } finally {
        connection.stream.uncork();
      }
      return null;
    }

    handleDataRow(): void {}
    handleCommandComplete(): void {}
  }

  /** What AutocommitGroup hands each member's own Query, as pg's client would (@types/pg does not declare them). */
  interface MemberQuery {
    handleRowDescription(message: unknown): void;
    handleDataRow(message: unknown): void;
    handleCommandComplete(message: unknown, connection: Connection): void;
    handleReadyForQuery(connection: Connection): void;
  }

  /**
   * Autocommit statements of several callers, each prepared on the connection, as one implicit transaction: Bind,
   * Describe and Execute each, then one Sync. PostgreSQL runs them in order and commits them together at the Sync,
   * answering once. Each member's own pg Query (`queries`, made by the client as it makes any) gets its messages: its
   * row description (or none: pg ignores NoData), rows and completion, in the order the members were sent; at the
   * Sync's answer each settles its caller.
   *
   * An error PostgreSQL answers with (rolledBackByServer), or any error it answers on a connection it keeps before
   * the last member's completion (the commit not reached yet: a resource or internal error too), rolled back the
   * whole group. The member it came in (no completion yet) gets it, as it would have alone; the others are run
   * again, each alone (`runAlone`), after whatever was already sent behind the group. A deadlock or serialization failure (class 40) may be the group's
   * own doing, so that member is run again too, and so is every member when the error came at the commit. (A lock
   * timeout can be the group's own doing too, where it is shorter than deadlock_timeout: the shared connection's is
   * 5 s against PostgreSQL's 1 s default, so a deadlock is reported as one first.) Any other error (the connection
   * lost or ended, or a resource or internal error at the commit, when the commit may have landed) rejects every
   * member, and none runs twice.
   */
  class AutocommitGroup extends QueryBase {
    private index = 0;
    declare callback: (error?: Error) => void;

    constructor(
      private readonly members: readonly Member[],
      private readonly queries: readonly MemberQuery[],
      private readonly runAlone: (members: readonly Member[]) => void,
    ) {
      // The callback settles nothing (the members' queries do), but pg's client wraps it with its query_timeout
      // timer, which only the callback clears: it is called once the group is over.
      super('', [], () => {});
    }

    submit(connection: Connection): null {
      connection.stream.cork();
      try {
        for (const { config } of this.members) {
          connection.bind({ statement: config.name!, values: config.values });
          connection.describe({ type: 'P', name: '' });
          connection.execute({ portal: '', rows: 0 });
        }
        connection.sync();
      } finally {
        connection.stream.uncork();
      }
      return null;
    }

    handleRowDescription(message: unknown): void {
      this.queries[this.index]?.handleRowDescription(message);
    }

    handleDataRow(message: unknown): void {
      this.queries[this.index]?.handleDataRow(message);
    }

    handleCommandComplete(message: unknown, connection: Connection): void {
      this.queries[this.index++]?.handleCommandComplete(message, connection);
    }

    handleReadyForQuery(connection: Connection): void {
      for (const query of this.queries) query.handleReadyForQuery(connection);
      this.callback();
    }

    handleError(error: Error): void {
      // Before the last member's completion the group had not reached its commit: any error PostgreSQL answered on a
      // connection it keeps (a resource or internal error too) rolled it back.
      const beforeCommit = this.index < this.members.length && answeredOnKeptConnection(error);
      if (!beforeCommit && !rolledBackByServer(error)) {
        for (const member of this.members) member.reject(error);
      } else {
        autocommitGroups.reruns++;
        const failed = (error as { code?: string }).code?.startsWith('40') ? undefined : this.members[this.index];
        failed?.reject(error);
        this.runAlone(this.members.filter((member) => member !== failed));
      }
      this.callback(error);
    }
  }

  return class PgClient extends pgModule.Client {
    private inTransaction = false;
    /** The open transaction's deferrable statements, unsent while none of its statements has needed an answer. */
    private held: QueryConfig[] | undefined;
    /** A commit just failed: the transaction is over, so the rollback Kysely sends next has nothing to do. */
    private commitFailed = false;
    /** Deferred statements of the open transaction not yet answered; each settles to undefined. */
    private deferred: Promise<void>[] = [];
    /** The first deferred statement's failure in the open transaction. */
    private deferredFailure: { error: unknown } | undefined;
    private corked = false;
    /** groupAutocommit() was called: this turn's autocommit statements of each group go out together. */
    private groupsAutocommit = false;
    /** Each named statement's last row shape (reuseRowShape), by statement name: as bounded as the named texts. */
    private readonly rowShapes = new Map<string, RowShape>();
    /** This turn's autocommit statements of each group (StatementOptions.group), unsent. */
    private group: Member[] | undefined;
    private durableGroup: Member[] | undefined;

    constructor(config?: string | pg.ClientConfig) {
      super({ ...(typeof config === 'string' ? { connectionString: config } : config), pipeline: true } as pg.ClientConfig);
      // A connection lost while the pool has it lent out: pg rejects the statements on it, then emits 'error', to
      // which no one listens then (pg-pool listens to idle clients only), so the process would die of it. The
      // rejections are what callers need, and the pool drops the client when it comes back unqueryable.
      this.on('error', () => {});
    }

    // pg's overloads can't be restated in a subclass; the one Kysely uses is (text, values) → Promise.
    override query(...args: any[]): any {
      const [text, given] = args;
      if (this.commitFailed) {
        this.commitFailed = false;
        if (text === 'rollback') return Promise.resolve(DEFERRED_RESULT);
      }
      if (typeof text !== 'string' || args.length !== 2 || !Array.isArray(given)) {
        this.sendGroups();
        if (this.held) this.sendHeld();
        return (super.query as (...a: unknown[]) => unknown)(...args);
      }
      // In pg's text form before anything is sent: a value pg cannot write fails here, at its call. (pg's own
      // Query.prepare, meeting one, closes the named statement on the server and sends a Sync: in a transaction, the
      // rest would then commit without that statement.) pg's second pass over them changes nothing.
      const values = given.map((value: unknown) => prepareValue(value));
      const statement = statements.get(text);
      const config: QueryConfig = statement ? { name: statement.name, text, values } : { text, values };
      if (this.groupsAutocommit && !this.inTransaction) {
        if (statement?.group && this.prepared()[statement.name] === text) return this.joinGroup(config, statement.group);
        // Anything else goes out after the statements before it.
        this.sendGroups();
      }
      if (text === 'begin' && !this.inTransaction) {
        this.inTransaction = true;
        this.held = [];
        return Promise.resolve(DEFERRED_RESULT);
      }
      if (this.inTransaction && statement?.deferrable) {
        if (!this.held) return this.defer(config);
        this.held.push(config);
        return Promise.resolve(DEFERRED_RESULT);
      }
      if (this.held) {
        if (text === 'commit' || text === 'rollback') {
          const ended = this.endUnsent(this.held, text);
          if (ended) return ended;
        }
        // Needed now (a read, or a statement not yet prepared here): the transaction goes out begun, as any other.
        this.sendHeld();
      }
      const answer = this.send(config);
      if (!this.inTransaction) return answer;
      if (text === 'commit') return this.endTransaction(answer).catch((error: unknown) => this.failCommit(error));
      if (text === 'rollback') return this.endTransaction(answer);
      return this.deferred.length ? this.afterDeferred(answer) : answer;
    }

    /**
     * pg's query(config) copies the config object property by property (its cloneQueryConfig, ~2 % of a sign-in on
     * PostgreSQL) and wraps its promise in another; a Query made from the text is submitted as it is.
     */
    private send(config: QueryConfig): Promise<unknown> {
      return new Promise((resolve, reject) => super.query(this.queryFor({ config, resolve, reject })));
    }

    /** The statement as pg's own Query, settling its caller, with this client's type parsers (as pg's query() sets). */
    private queryFor(member: Member): pg.Query {
      const query = new pgModule.Query(member.config.text, member.config.values, (error: Error | undefined, result: unknown) => {
        if (error) member.reject(error);
        else member.resolve(result);
      });
      const result = (query as unknown as { _result: PgResult & { _types: unknown } })._result;
      // Read when it is sent (pg's Query.prepare); @types/pg declares neither.
      if (member.config.name) {
        (query as { name?: string }).name = member.config.name;
        this.reuseRowShape(result, member.config.name);
      }
      result._types = (this as unknown as { _types: unknown })._types;
      return query;
    }

    /**
     * pg's Result builds a parser per column and an empty row at every RowDescription, which for the sign-in's
     * statement of fifty columns costs more than parsing its one row (about 2.5 % of Latchkey's CPU per sign-in on
     * PostgreSQL). A named statement answers with the same description each time: what was built for it is reused
     * while the columns' names, types and formats are the same (a guard only: PostgreSQL refuses to run a prepared
     * statement whose result type changed, "cached plan must not change result type").
     */
    private reuseRowShape(result: PgResult, name: string): void {
      const shapes = this.rowShapes;
      const addFields = result.addFields;
      result.addFields = (fields) => {
        const shape = shapes.get(name);
        if (shape && sameShape(shape.fields, fields)) {
          result.fields = fields;
          result._parsers = shape.parsers;
          result._prebuiltEmptyResultObject = shape.emptyRow;
          return;
        }
        addFields.call(result, fields);
        shapes.set(name, { fields, parsers: result._parsers, emptyRow: result._prebuiltEmptyResultObject });
      };
    }

    /**
     * The end of a transaction nothing of which was sent yet: a rollback has nothing to undo, and a commit sends its
     * statements as one implicit transaction when all are prepared on this connection (undefined when not: the caller
     * sends them the usual way, which prepares them).
     */
    private endUnsent(held: QueryConfig[], end: 'commit' | 'rollback'): Promise<unknown> | undefined {
      const prepared = this.prepared();
      if (end === 'commit' && !held.every((c) => prepared[c.name!] === c.text)) return undefined;
      this.held = undefined;
      this.inTransaction = false;
      if (end === 'rollback' || held.length === 0) return Promise.resolve(DEFERRED_RESULT);
      implicitTransactions.count++;
      implicitTransactions.statements += held.length;
      return new Promise<unknown>((resolve, reject) => {
        super.query(new ImplicitTransaction(held, (error) => (error ? reject(error) : resolve(DEFERRED_RESULT))) as never);
      }).catch((error: unknown) => this.failCommit(error));
    }

    /**
     * From now on, the autocommit statements of each group (StatementOptions.group) of each turn of the event loop go
     * out as one implicit transaction (AutocommitGroup). For the shared connection (src/db/sharedConnection.ts), whose
     * callers are concurrent requests, none waiting for another's statement.
     */
    groupAutocommit(): void {
      this.groupsAutocommit = true;
    }

    /** Named statements prepared on this connection (pg notes each at its ParseComplete), by name. */
    private prepared(): Record<string, string> {
      return (this as unknown as { connection: Connection }).connection.parsedStatements;
    }

    /** Wait for the end of the turn, then go out with the turn's other statements of its group (sendGroups). */
    private joinGroup(config: QueryConfig, group: NonNullable<StatementOptions['group']>): Promise<unknown> {
      this.corkUntilNextTurn();
      return new Promise((resolve, reject) => {
        const member = { config, resolve, reject };
        if (group === 'durable') (this.durableGroup ??= []).push(member);
        else (this.group ??= []).push(member);
      });
    }

    /** The turn's groups of statements, the one that commits without a flush first (StatementOptions.group). */
    private sendGroups(): void {
      const { group, durableGroup } = this;
      this.group = this.durableGroup = undefined;
      if (group) this.sendGroup(group, false);
      if (durableGroup) this.sendGroup(durableGroup, true);
    }

    /** One alone as itself, several as one AutocommitGroup. */
    private sendGroup(group: Member[], durable: boolean): void {
      if (group.length === 1) return this.sendAlone(group);
      autocommitGroups.count++;
      autocommitGroups.statements += group.length;
      if (durable) autocommitGroups.durable++;
      const queries = group.map((member) => this.queryFor(member) as unknown as MemberQuery);
      super.query(new AutocommitGroup(group, queries, (members) => this.sendAlone(members)) as never);
    }

    private sendAlone(members: readonly Member[]): void {
      for (const member of members) this.send(member.config).then(member.resolve, member.reject);
    }

    /** The held statements, after a BEGIN, each without waiting for its answer: the transaction goes on as any other. */
    private sendHeld(): void {
      const held = this.held!;
      this.held = undefined;
      this.defer({ text: 'begin', values: [] });
      for (const c of held) this.defer(c);
    }

    /** A commit that failed ended its transaction (PostgreSQL rolled it back, or the connection is gone). */
    private failCommit(error: unknown): never {
      this.commitFailed = true;
      throw error;
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
      const stream = (this as unknown as { connection: Connection }).connection.stream;
      stream.cork();
      this.corked = true;
      setImmediate(() => {
        this.corked = false;
        this.sendGroups();
        stream.uncork();
      });
    }
  };
};
