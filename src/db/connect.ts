/**
 * Opens the database named by DATABASE_URL: SQLite through better-sqlite3 (WAL,
 * synchronous=NORMAL: every committed transaction survives a process crash
 * without an fsync on the event loop per write) or PostgreSQL through pg.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';
import { type Dialect, migrateToLatest } from './migrations.js';

// bigint (int8) columns hold millisecond times and counters, all below 2^53.
pg.types.setTypeParser(20, (v: string) => Number(v));

export interface Db {
  kysely: Kysely<Database>;
  dialect: Dialect;
  migrate(): Promise<string[]>;
  close(): Promise<void>;
}

export function openDatabase(url: string, options: { poolSize?: number } = {}): Db {
  let kysely: Kysely<Database>;
  let dialect: Dialect;
  if (url.startsWith('sqlite:')) {
    const file = url.slice('sqlite:'.length);
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    const sqlite = new SQLite(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
    dialect = 'sqlite';
  } else {
    const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10 });
    // An idle client that loses its connection must not crash the process.
    pool.on('error', () => {});
    kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    dialect = 'postgres';
  }
  return {
    kysely,
    dialect,
    migrate: () => migrateToLatest(kysely, dialect),
    close: () => kysely.destroy(),
  };
}
