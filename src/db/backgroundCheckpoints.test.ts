import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from './connect.js';

const pragma = async (db: Db, name: string) => Object.values((await sql.raw(`pragma ${name}`).execute(db.kysely)).rows[0] as object)[0];

async function eventually(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('WAL checkpoints on a worker thread', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-ckpt-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('take checkpoints off the connection, copy every commit into the database file, and lose nothing on close', async () => {
    const file = join(dir, 'a.db');
    const db = openDatabase(`sqlite:${file}`, { backgroundCheckpoints: { intervalMs: 50 } });
    await db.migrate();
    await eventually(async () => (await pragma(db, 'wal_autocheckpoint')) === 10_000);
    await new Promise((resolve) => setTimeout(resolve, 150));
    const before = statSync(file).size;
    for (let i = 0; i < 200; i++) {
      await db.kysely.insertInto('settings').values({ key: `k${i}`, value: 'x'.repeat(500) }).execute();
    }
    // In WAL mode the database file changes only at a checkpoint, and the connection's own (at 10,000 pages) is far off.
    await eventually(async () => statSync(file).size >= before + 100_000);
    await db.close();

    const reopened = openDatabase(`sqlite:${file}`);
    expect(await reopened.kysely.selectFrom('settings').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).toEqual({ n: 200 });
    // Without the worker the connection checkpoints itself, as SQLite does by default.
    expect(await pragma(reopened, 'wal_autocheckpoint')).toBe(1000);
    await reopened.close();
  });

  it('keep the WAL bounded under a steady stream of commits (the connection\'s backstop checkpoint)', async () => {
    const file = join(dir, 'c.db');
    const db = openDatabase(`sqlite:${file}`, { backgroundCheckpoints: { intervalMs: 50, backstopPages: 100 } });
    await db.migrate();
    await eventually(async () => (await pragma(db, 'wal_autocheckpoint')) === 100);
    // 3,000 rows of 3 KB committed one after another (about 50 MB of WAL frames), with no pause for a passive
    // checkpoint to catch up in.
    for (let i = 0; i < 3000; i++) {
      await db.kysely.insertInto('settings').values({ key: `k${i}`, value: 'x'.repeat(3000) }).execute();
    }
    // The WAL file only grows to its high-water mark. Without the backstop it takes every frame (about 50 MB here);
    // with it, it starts over again and again: the backstop plus what was committed while the worker held the
    // checkpoint lock (a backstop that finds it busy is retried at the next commit), a few MB on a busy machine.
    expect(statSync(`${file}-wal`).size).toBeLessThan(25_000_000);
    await db.close();
  });

  it('are not used for one-shot connections or in-memory databases', async () => {
    const plain = openDatabase(`sqlite:${join(dir, 'b.db')}`);
    const memory = openDatabase('sqlite::memory:', { backgroundCheckpoints: true });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await pragma(plain, 'wal_autocheckpoint')).toBe(1000);
    expect(await pragma(memory, 'journal_mode')).toBe('memory');
    await plain.close();
    await memory.close();
  });
});
