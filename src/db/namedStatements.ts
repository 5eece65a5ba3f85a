/**
 * PostgreSQL: the hot queries (src/db/preparedQuery.ts) as named prepared
 * statements. pg sends an unnamed statement's text with every call, and
 * PostgreSQL parses, analyses and plans it every time; a named one is parsed
 * once per pooled connection and then only bound and executed (BENCHMARKS.md,
 * "PostgreSQL at SQLite's cost"). Kysely's driver calls `client.query(text,
 * values)`, so the pool's client class gives registered texts their name
 * there; every other query is sent as before.
 */
import pg from 'pg';

const names = new Map<string, string>();

/** Give this SQL text a statement name (idempotent). Texts are the prepared queries' compiled SQL: a bounded set. */
export function nameStatement(sql: string): void {
  if (!names.has(sql)) names.set(sql, `latchkey_${names.size + 1}`);
}

/** The statement name for a text, if it has one (tests). */
export function statementName(sql: string): string | undefined {
  return names.get(sql);
}

/** A pg client that sends registered texts as named statements; give it to `new pg.Pool({ Client })`. */
export class NamedStatementClient extends pg.Client {
  // pg's overloads can't be restated in a subclass; the one Kysely uses is (text, values) → Promise.
  override query(...args: any[]): any {
    const [text, values] = args;
    if (typeof text === 'string' && Array.isArray(values) && args.length === 2) {
      const name = names.get(text);
      if (name) return super.query({ name, text, values });
    }
    return (super.query as (...a: unknown[]) => unknown)(...args);
  }
}
