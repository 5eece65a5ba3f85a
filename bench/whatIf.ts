/**
 * What-if experiments for the benchmark's server, to size changes outside the
 * WebAuthn module before anyone makes them. Not product code: opt in with
 * BENCH_WHAT_IF (comma-separated) and read the figures as "what this change
 * would buy", never as Latchkey's own.
 *
 * - statement-cache: better-sqlite3 statements prepared once per SQL text.
 *   Kysely's SQLite driver calls `prepare()` for every query; this patches the
 *   prototype so the same SQL reuses its statement, which is what a caching
 *   wrapper around the database handed to `SqliteDialect` would do.
 */
import SQLite from 'better-sqlite3';

export function applyWhatIf(names: string[]): void {
  for (const name of names) {
    if (name === 'statement-cache') cacheStatements();
    else if (name) throw new Error(`unknown BENCH_WHAT_IF "${name}" (known: statement-cache)`);
  }
}

function cacheStatements(): void {
  const caches = new WeakMap<object, Map<string, SQLite.Statement>>();
  const prepare = SQLite.prototype.prepare;
  SQLite.prototype.prepare = function (this: SQLite.Database, source: string) {
    let cache = caches.get(this);
    if (!cache) caches.set(this, (cache = new Map()));
    let statement = cache.get(source);
    if (!statement) cache.set(source, (statement = prepare.call(this, source)));
    return statement;
  } as typeof SQLite.prototype.prepare;
}
