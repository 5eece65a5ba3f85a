/**
 * Opens the database named by DATABASE_URL: SQLite through better-sqlite3 (WAL,
 * synchronous=NORMAL: every committed transaction survives a process crash
 * without an fsync on the event loop per write) or PostgreSQL through pg.
 */
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, type DatabaseConnection, type Dialect as KyselyDialect, type SqliteDatabase } from 'kysely';
import type pg from 'pg';
import type { Database } from './schema.js';
import { CurrentSchemaPostgresDialect } from './currentSchemaIntrospector.js';
import { type Dialect, migrateToLatest } from './migrations.js';
import { registerDirectShared, registerDirectSqlite } from './preparedQuery.js';
import { startBackgroundCheckpoints, type BackgroundCheckpoints } from './backgroundCheckpoints.js';
import { pgClientClass } from './pgClient.js';
import { withSharedConnection, type SharedConnectionOptions } from './sharedConnection.js';

/**
 * pg, loaded when a PostgreSQL database is first opened: a server on SQLite never holds its code (about 2.5 MiB of
 * heap). It is CommonJS, so require() loads it synchronously.
 */
function loadPg(): typeof pg {
  const pgModule = createRequire(import.meta.url)('pg') as typeof pg;
  // bigint (int8) columns hold millisecond times and counters, all below 2^53.
  pgModule.types.setTypeParser(20, (v: string) => Number(v));
  return pgModule;
}

export interface Db {
  kysely: Kysely<Database>;
  dialect: Dialect;
  migrate(): Promise<string[]>;
  close(): Promise<void>;
  /** PostgreSQL: the connection pool (its total, idle and waiting counts are metrics); SQLite: undefined. */
  pool?: pg.Pool;
  /**
   * Call `listener` with the seconds each COMMIT takes from now on (the metrics); returns how to stop. Commits are
   * timed only while someone listens.
   */
  observeCommits(listener: (seconds: number) => void): () => void;
}

export interface OpenOptions {
  /** PostgreSQL only: connections in the pool (default 10). */
  poolSize?: number;
  /**
   * PostgreSQL only, for measurements (bench/pgRoundTrips.ts): pg's own client, every statement unnamed and awaited,
   * instead of PgClient's named statements and deferred writes (src/db/pgClient.ts).
   */
  plainPostgresClient?: boolean;
  /**
   * PostgreSQL only: the hot autocommit statements of concurrent requests pipelined on one shared connection
   * (src/db/sharedConnection.ts; default on, with its default options). Needs PgClient and a pool of at least two.
   */
  sharedConnection?: boolean | SharedConnectionOptions;
  /**
   * PostgreSQL only: the schema(s) to use, comma-separated, set per connection
   * as `search_path`. Tests use it to give each suite a schema of its own.
   */
  searchPath?: string;
  /**
   * SQLite files only: WAL checkpoints on a worker thread instead of the event
   * loop (src/db/backgroundCheckpoints.ts). For the server; one-shot commands
   * don't need it.
   */
  backgroundCheckpoints?: boolean | { intervalMs?: number; backstopPages?: number };
  /**
   * SQLite only: the page cache, in MiB (config.sqliteCacheMiB for the server). Unset: better-sqlite3's build
   * default, 16 MiB, right for one-shot commands such as a bulk import.
   */
  cacheMiB?: number;
}

export function openDatabase(url: string, options: OpenOptions = {}): Db {
  let kysely: Kysely<Database>;
  let dialect: Dialect;
  let checkpoints: BackgroundCheckpoints | undefined;
  let pool: pg.Pool | undefined;
  const commitListeners = new Set<(seconds: number) => void>();
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    const sqlite = new SQLite(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    // Negative: a size in KiB rather than in pages.
    if (options.cacheMiB !== undefined) sqlite.pragma(`cache_size = -${Math.round(options.cacheMiB * 1024)}`);
    if (options.backgroundCheckpoints && file !== ':memory:') {
      // Truncate the WAL to this size whenever it is emptied, so a burst of writes doesn't leave a large file.
      sqlite.pragma('journal_size_limit = 67108864');
      checkpoints = startBackgroundCheckpoints(sqlite, file, typeof options.backgroundCheckpoints === 'object' ? options.backgroundCheckpoints : {});
    }
    const statements = withStatementCache(sqlite);
    kysely = new Kysely<Database>({ dialect: withTimedCommits(new SqliteDialect({ database: statements }), commitListeners) });
    registerDirectSqlite(kysely, { sqlite, prepare: (text) => statements.prepare(text) as SQLite.Statement });
    dialect = 'sqlite';
  } else {
    const connectionString = postgresConnectionString(url, options.searchPath);
    const pgModule = loadPg();
    const poolSize = options.poolSize ?? 10;
    // keepAlive: a connection whose network silently went away (a failover, a dropped NAT entry) is found within
    // minutes rather than the kernel's retransmission limit, so statements waiting on it (the shared connection's
    // pipeline) get their error instead of hanging.
    pool = new pgModule.Pool({ connectionString, max: poolSize, keepAlive: true, Client: options.plainPostgresClient ? pgModule.Client : pgClientClass() });
    // An idle client that loses its connection must not crash the process.
    pool.on('error', () => {});
    const sharing = options.sharedConnection ?? true;
    const postgres = new CurrentSchemaPostgresDialect({ pool });
    const shared = sharing && !options.plainPostgresClient && poolSize >= 2 ? withSharedConnection(postgres, pool, sharing === true ? {} : sharing) : undefined;
    kysely = new Kysely<Database>({ dialect: withTimedCommits(shared?.dialect ?? postgres, commitListeners) });
    if (shared) registerDirectShared(kysely, shared.executeIfStarted);
    dialect = 'postgres';
  }
  return {
    kysely,
    dialect,
    migrate: () => migrateToLatest(kysely, dialect),
    pool,
    observeCommits(listener) {
      commitListeners.add(listener);
      return () => void commitListeners.delete(listener);
    },
    close: async () => {
      await checkpoints?.stop();
      await kysely.destroy();
    },
  };
}

/**
 * `dialect` with its driver's COMMIT timed for `listeners` (performance.now() around the COMMIT alone: what a
 * transaction's statements cost is the caller's, what the commit costs is the database's; on PostgreSQL a transaction
 * whose statements were held until its commit is sent then, so its time includes them, src/db/pgClient.ts). With no
 * listener the commit runs as it would unwrapped.
 */
function withTimedCommits(dialect: KyselyDialect, listeners: ReadonlySet<(seconds: number) => void>): KyselyDialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createDriver() {
      const driver = dialect.createDriver();
      const commit = driver.commitTransaction.bind(driver);
      driver.commitTransaction = async (connection: DatabaseConnection) => {
        if (listeners.size === 0) return commit(connection);
        const start = performance.now();
        await commit(connection);
        const seconds = (performance.now() - start) / 1000;
        for (const listener of listeners) listener(seconds);
      };
      return driver;
    },
  };
}

/**
 * Kysely's SQLite driver prepares every query anew; preparing costs more than
 * running most of ours (BENCHMARKS.md). Statements are reusable, so keep them
 * by SQL text. Bounded: queries with IN lists of varying length make new texts.
 */
export function withStatementCache(database: SQLite.Database, max = 500): SqliteDatabase {
  const statements = new Map<string, SQLite.Statement>();
  return {
    close: () => database.close(),
    prepare(sql: string) {
      let statement = statements.get(sql);
      if (!statement) {
        statement = database.prepare(sql);
        if (statements.size >= max) statements.delete(statements.keys().next().value!);
        statements.set(sql, statement);
      }
      return statement;
    },
  };
}

/**
 * The URL handed to pg, with two gaps filled the way libpq (psql) fills them:
 * - no user name in the URL, PGUSER or USER (cron, containers, systemd units):
 *   pg would send none and the server refuses the connection, so use the
 *   operating-system account's name;
 * - a search path: `-c search_path=…` is added to the startup options, keeping
 *   any the URL already has (the URL's `options` would override a Pool option).
 */
export function postgresConnectionString(url: string, searchPath?: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    // Leave a URL only pg can read to pg, unless it has to carry a search path.
    if (searchPath) throw error;
    return url;
  }
  let changed = false;
  if (!parsed.username && !process.env.PGUSER && !process.env.USER) {
    const name = osUserName();
    if (name) {
      parsed.username = name; // the setter percent-encodes
      changed = true;
    }
  }
  if (searchPath) {
    // Plain lower-case identifiers only: the value goes into a startup option unquoted.
    if (!/^[a-z_][a-z0-9_]*(,[a-z_][a-z0-9_]*)*$/.test(searchPath)) throw new Error(`invalid search path: "${searchPath}"`);
    const previous = parsed.searchParams.get('options');
    parsed.searchParams.set('options', [previous, `-c search_path=${searchPath}`].filter(Boolean).join(' '));
    changed = true;
  }
  return changed ? parsed.toString() : url;
}

function osUserName(): string | undefined {
  try {
    return userInfo().username || undefined;
  } catch {
    // No passwd entry for this uid.
    return undefined;
  }
}
