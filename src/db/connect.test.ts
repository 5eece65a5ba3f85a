import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, postgresConnectionString } from './connect.js';

const searchPathOf = (url: string) => new URL(url).searchParams.get('options');

describe('postgresConnectionString', () => {
  const saved = { USER: process.env.USER, PGUSER: process.env.PGUSER };
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('leaves a URL with a user name alone', () => {
    expect(postgresConnectionString('postgres://app:secret@db.example:5432/latchkey')).toBe('postgres://app:secret@db.example:5432/latchkey');
  });

  it('uses the operating-system account when neither the URL nor PGUSER nor USER names a user, like libpq', () => {
    delete process.env.USER;
    delete process.env.PGUSER;
    expect(new URL(postgresConnectionString('postgres://127.0.0.1:5432/test')).username).not.toBe('');
    process.env.PGUSER = 'app';
    expect(postgresConnectionString('postgres://127.0.0.1:5432/test')).toBe('postgres://127.0.0.1:5432/test');
  });

  it('adds the search path to the startup options, keeping options already there', () => {
    expect(searchPathOf(postgresConnectionString('postgres://u@h/test', 'lk_test_1'))).toBe('-c search_path=lk_test_1');
    expect(searchPathOf(postgresConnectionString('postgres://u@h/test?options=-c%20statement_timeout%3D5000', 'a,public'))).toBe(
      '-c statement_timeout=5000 -c search_path=a,public',
    );
  });

  it('refuses a search path that is not plain identifiers', () => {
    expect(() => postgresConnectionString('postgres://u@h/test', 'x; drop')).toThrow(/invalid search path/);
    expect(() => postgresConnectionString('postgres://u@h/test', 'x -c role=admin')).toThrow(/invalid search path/);
  });
});

describe('openDatabase on SQLite', () => {
  it('sizes the page cache when told to, and leaves better-sqlite3\'s 16 MiB otherwise', async () => {
    const cacheOf = async (cacheMiB?: number) => {
      const db = openDatabase('sqlite::memory:', { cacheMiB });
      try {
        const { rows } = await sql<{ cache_size: number }>`pragma cache_size`.execute(db.kysely);
        return rows[0]!.cache_size;
      } finally {
        await db.close();
      }
    };
    expect(await cacheOf(4)).toBe(-4096);
    expect(await cacheOf()).toBe(-16000);
  });
});
