import { Kysely, PostgresDialect, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from './connect.js';
import { PreparedQuery } from './preparedQuery.js';
import type { Database } from './schema.js';

// Compiles only: no connection is ever made.
const postgres = new Kysely<Database>({ dialect: new PostgresDialect({ pool: {} as never }) });

const consume = new PreparedQuery<{ lookup: string; type: string; now: number }, { id: string }>((db, p) =>
  db
    .updateTable('flows')
    .set({ state: 'consumed', consumed_at: p.now })
    .where('lookup', '=', p.lookup)
    .where('type', '=', p.type)
    .where('state', '=', 'active')
    .where('expires_at', '>', p.now)
    .returning('id'),
);

const built = (db: Kysely<Database>, lookup: string, type: string, now: number) =>
  db
    .updateTable('flows')
    .set({ state: 'consumed', consumed_at: now })
    .where('lookup', '=', lookup)
    .where('type', '=', type)
    .where('state', '=', 'active')
    .where('expires_at', '>', now)
    .returning('id')
    .compile();

describe('PreparedQuery', () => {
  let db: Db;
  beforeAll(async () => {
    db = openDatabase('sqlite::memory:');
    await db.migrate();
  });
  afterAll(async () => {
    await db.close();
    await postgres.destroy();
  });

  it('compiles to what the builder compiles, with fresh values in their places, on each dialect', () => {
    for (const handle of [db.kysely, postgres]) {
      for (const [lookup, type, now] of [['a', 'signin', 1], ['b', 'reauth', 2]] as const) {
        const prepared = consume.compile(handle, { lookup, type, now });
        const expected = built(handle, lookup, type, now);
        expect(prepared.sql).toBe(expected.sql);
        expect(prepared.parameters).toEqual(expected.parameters);
      }
    }
    expect(consume.compile(postgres, { lookup: 'a', type: 't', now: 1 }).sql).toContain('$5');
  });

  it('runs in a transaction and outside one alike', async () => {
    const insert = new PreparedQuery<{ key: string; value: string }, never>((k, p) => k.insertInto('settings').values({ key: p.key, value: p.value }));
    const select = new PreparedQuery<{ key: string }, { value: string }>((k, p) => k.selectFrom('settings').select('value').where('key', '=', p.key));
    await insert.execute(db.kysely, { key: 'outside', value: '1' });
    await db.kysely.transaction().execute(async (trx) => {
      expect(await insert.affectedRows(trx, { key: 'inside', value: '2' })).toBe(1);
      expect(await select.takeFirst(trx, { key: 'outside' })).toEqual({ value: '1' });
    });
    expect(await select.takeFirst(db.kysely, { key: 'inside' })).toEqual({ value: '2' });
    expect(await select.takeFirst(db.kysely, { key: 'missing' })).toBeUndefined();
  });

  it('on SQLite, waits for an open transaction instead of running inside it, and rolls back with its own', async () => {
    const insert = new PreparedQuery<{ key: string; value: string }, never>((k, p) => k.insertInto('settings').values({ key: p.key, value: p.value }));
    const select = new PreparedQuery<{ key: string }, { value: string }>((k, p) => k.selectFrom('settings').select('value').where('key', '=', p.key));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inside!: () => void;
    const opened = new Promise<void>((resolve) => (inside = resolve));
    const rolledBack = db.kysely.transaction().execute(async (trx) => {
      await insert.execute(trx, { key: 'in-tx', value: '1' });
      inside();
      await held;
      throw new Error('roll back');
    });
    await opened;
    let outsideDone = false;
    const outside = insert.execute(db.kysely, { key: 'beside-tx', value: '2' }).then(() => (outsideDone = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(outsideDone).toBe(false);
    release();
    await expect(rolledBack).rejects.toThrow('roll back');
    await outside;
    expect(await select.takeFirst(db.kysely, { key: 'in-tx' })).toBeUndefined();
    expect(await select.takeFirst(db.kysely, { key: 'beside-tx' })).toEqual({ value: '2' });
    // A constraint violation still rejects, as through Kysely.
    await expect(insert.execute(db.kysely, { key: 'beside-tx', value: '3' })).rejects.toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
  });

  it('refuses a missing value and a parameter inlined into the SQL', async () => {
    expect(() => consume.compile(db.kysely, { lookup: 'a', type: 't' } as never)).toThrow(/no value for parameter "now"/);
    const inlined = new PreparedQuery<{ key: string }, never>((k, p) => k.deleteFrom('settings').where('key', '=', sql.lit(p.key)));
    expect(() => inlined.compile(db.kysely, { key: 'x' })).toThrow(/inlined/);
  });
});
