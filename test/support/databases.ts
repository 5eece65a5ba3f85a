/**
 * Test databases: SQLite in a temporary file (so WAL is exercised, unlike
 * `:memory:`) and PostgreSQL in a fresh schema of its own. Every `open()` gives
 * an isolated, empty, unmigrated database; `cleanup()` closes what that target
 * opened and removes it (temporary directory, or `DROP SCHEMA … CASCADE`).
 *
 * PostgreSQL is `postgres://127.0.0.1:5432/test` unless TEST_DATABASE_URL is
 * set. When it cannot be reached the PostgreSQL target carries a `skipReason`
 * (printed once), except with CI=true, where `testDatabases()` throws: CI must
 * not pass by skipping.
 *
 * ```ts
 * const databases = await testDatabases();
 * describe.each(databases)('sign-in on $name', (target) => {
 *   describe.skipIf(target.skipReason !== undefined)('', () => {
 *     afterAll(() => target.cleanup());
 *     it('…', async () => { const db = await target.open(); await db.migrate(); … });
 *   });
 * });
 * ```
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openDatabase, postgresConnectionString, type Db } from '../../src/db/connect.js';

export const DEFAULT_TEST_POSTGRES_URL = 'postgres://127.0.0.1:5432/test';

export interface TestDatabase {
  name: 'sqlite' | 'postgres';
  /** Set when this database is unavailable here and its suites should skip. */
  skipReason?: string;
  /** A fresh, empty database (not yet migrated). */
  open(options?: { poolSize?: number }): Promise<Db>;
  /** Close every database this target opened and remove its files or schemas. */
  cleanup(): Promise<void>;
}

/** The PostgreSQL URL tests use. */
export function testPostgresUrl(): string {
  return process.env.TEST_DATABASE_URL || DEFAULT_TEST_POSTGRES_URL;
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

let probe: Promise<string | undefined> | undefined;

/**
 * Resolves to undefined when PostgreSQL answers, else to the reason it does not.
 * Throws instead when CI=true. Cached per process.
 */
export function postgresUnavailableReason(): Promise<string | undefined> {
  probe ??= (async () => {
    const url = testPostgresUrl();
    const client = new pg.Client({ connectionString: postgresConnectionString(url), connectionTimeoutMillis: 2_000 });
    client.on('error', () => {});
    let reason: string | undefined;
    try {
      await client.connect();
      await client.query('select 1');
    } catch (error) {
      reason = `PostgreSQL not reachable at ${redact(url)} (${error instanceof Error ? error.message || error.name : String(error)})`;
    } finally {
      await client.end().catch(() => {});
    }
    if (reason === undefined) return undefined;
    if (process.env.CI === 'true') throw new Error(`${reason}: CI=true requires the PostgreSQL suites to run`);
    console.warn(`${reason}: skipping PostgreSQL suites`);
    return reason;
  })();
  return probe;
}

/** A closable Db whose close() may be called more than once (pg's Pool.end() may not). */
function closeOnce(db: Db): Db {
  let closing: Promise<void> | undefined;
  return { ...db, close: () => (closing ??= db.close()) };
}

/** SQLite in a temporary directory; each open() is a new file. */
export function sqliteTestDatabase(): TestDatabase {
  let dir: string | undefined;
  const opened: Db[] = [];
  return {
    name: 'sqlite',
    async open() {
      dir ??= await mkdtemp(join(tmpdir(), 'latchkey-test-'));
      const db = closeOnce(openDatabase(`sqlite:${join(dir, `${opened.length}.db`)}`));
      opened.push(db);
      return db;
    },
    async cleanup() {
      await Promise.all(opened.splice(0).map((db) => db.close()));
      if (dir) await rm(dir, { recursive: true, force: true });
      dir = undefined;
    },
  };
}

/** PostgreSQL; each open() is a new schema `lk_test_<random>`, dropped by cleanup(). */
export function postgresTestDatabase(skipReason?: string): TestDatabase {
  const url = testPostgresUrl();
  const opened: { db: Db; schema: string }[] = [];
  const admin = async <T>(fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: postgresConnectionString(url), connectionTimeoutMillis: 5_000 });
    client.on('error', () => {});
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => {});
    }
  };
  return {
    name: 'postgres',
    skipReason,
    async open(options = {}) {
      if (skipReason) throw new Error(skipReason);
      const schema = `lk_test_${randomBytes(6).toString('hex')}`;
      await admin((c) => c.query(`create schema ${schema}`));
      const db = closeOnce(openDatabase(url, { poolSize: options.poolSize ?? 5, searchPath: schema }));
      opened.push({ db, schema });
      return db;
    },
    async cleanup() {
      const all = opened.splice(0);
      await Promise.all(all.map(({ db }) => db.close()));
      if (all.length) await admin(async (c) => {
        for (const { schema } of all) await c.query(`drop schema if exists ${schema} cascade`);
      });
    },
  };
}

/**
 * Every database the suites run on: SQLite always, PostgreSQL when reachable
 * (or else with a skipReason; with CI=true an unreachable PostgreSQL throws).
 */
export async function testDatabases(): Promise<TestDatabase[]> {
  return [sqliteTestDatabase(), postgresTestDatabase(await postgresUnavailableReason())];
}
