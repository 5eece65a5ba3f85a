/**
 * `npm run bench:search`: the registration-authority console's user search
 * (UserPersister.search, case-insensitive prefix of name or email, or the start
 * of the id) over 1,000,000 users on SQLite, and on PostgreSQL when
 * BENCH_PG_URL answers. Prints the time per search, median and p99, for broad
 * and narrow prefixes, a status filter and the last page a search can reach.
 *
 * Settings: BENCH_SEARCH_USERS (1000000), BENCH_SEARCH_RUNS (200 per query),
 * BENCH_PG_URL (postgres://127.0.0.1:5432/test; `off` skips PostgreSQL).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { openDatabase, type Db } from '../src/db/connect.js';
import type { NewUser, UserStatus } from '../src/db/schema.js';
import { Store } from '../src/db/store.js';
import type { UserSearch } from '../src/db/persisters/users.js';

const USERS = Number(process.env.BENCH_SEARCH_USERS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_SEARCH_RUNS ?? 200);
const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://127.0.0.1:5432/test';

const FIRST = ['Ada', 'Mary', 'Grace', 'John', 'Jo', 'Mohammed', 'Aisha', 'Oliver', 'Amelia', 'Zoë', 'Chen', 'Priya', 'Ravi', 'Siobhan', 'Ángel', 'Fatima', 'George', 'Olivia', 'Noah', 'Isla'];
const LAST = ['Lovelace', 'Seacole', 'Hopper', 'Smith', 'Jones', 'Khan', 'Patel', 'Williams', 'Brown', 'Taylor', 'Davies', 'Evans', 'Wilson', 'Thomas', 'Roberts', 'Nowak', 'Murphy', 'O’Brien', 'García', 'Nguyen'];
const STATUSES: UserStatus[] = ['enrolled', 'enrolled', 'enrolled', 'pending', 'suspended'];

function userRow(i: number, now: number): NewUser {
  const first = FIRST[i % FIRST.length]!;
  const last = LAST[Math.floor(i / FIRST.length) % LAST.length]!;
  const email = `${first}.${last}.${i}@example.org`.toLowerCase().normalize('NFD').replace(/[^\x20-\x7e]/g, '');
  return {
    id: `u${i.toString(36).padStart(8, '0')}${(i * 2654435761 % 2 ** 32).toString(36)}`,
    email,
    email_normalized: email,
    display_name: `${first} ${last}`,
    status: STATUSES[i % STATUSES.length]!,
    created_at: now,
    updated_at: now,
  };
}

async function seed(db: Db): Promise<number> {
  const store = new Store(db.kysely);
  const started = performance.now();
  const now = Date.now();
  const batch = db.dialect === 'sqlite' ? 400 : 1000;
  for (let from = 0; from < USERS; from += batch * 50) {
    await store.transaction(async (tx) => {
      for (let b = from; b < Math.min(from + batch * 50, USERS); b += batch) {
        const rows = [];
        for (let i = b; i < Math.min(b + batch, USERS); i++) {
          const row = userRow(i, now);
          rows.push({ ...row, name_search: row.display_name.toLowerCase(), national_id_hash: null });
        }
        await tx.kysely.insertInto('users').values(rows).execute();
      }
    });
  }
  if (db.dialect === 'postgres') await sql`analyze users`.execute(db.kysely);
  else await sql`analyze`.execute(db.kysely);
  return (performance.now() - started) / 1000;
}

const queries: [string, Omit<UserSearch, 'limit'>][] = [
  ['broad name prefix "m" (1 in 10 users)', { query: 'm', offset: 0 }],
  ['name prefix "mary s"', { query: 'mary s', offset: 0 }],
  ['email prefix "grace.hopper.9"', { query: 'grace.hopper.9', offset: 0 }],
  ['exact email', { query: 'ada.lovelace.500000@example.org', offset: 0 }],
  ['user id prefix', { query: 'u0000a', offset: 0 }],
  ['no match "zzzz"', { query: 'zzzz', offset: 0 }],
  ['status Suspended + "jo"', { query: 'jo', status: 'suspended', offset: 0 }],
  ['status Pending, no query', { status: 'pending', offset: 0 }],
  ['page 40 of "a" (the last page)', { query: 'a', offset: 39 * 25 }],
];

async function measure(label: string, db: Db): Promise<void> {
  const store = new Store(db.kysely);
  console.log(`\n${label}`);
  for (const [name, q] of queries) {
    const times: number[] = [];
    let found = 0;
    for (let r = 0; r < RUNS; r++) {
      const t = performance.now();
      found = (await store.users.search({ ...q, limit: 25 })).length;
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const p50 = times[Math.floor(times.length / 2)]!;
    const p99 = times[Math.floor(times.length * 0.99)]!;
    console.log(`  ${name.padEnd(38)} p50 ${p50.toFixed(2).padStart(6)} ms  p99 ${p99.toFixed(2).padStart(6)} ms  (${found} rows)`);
  }
}

console.log(`User search benchmark: ${USERS.toLocaleString('en')} users, ${RUNS} runs per query; ${cpus().length} CPU (${cpus()[0]?.model.trim()}), Node ${process.version}`);

const dir = mkdtempSync(join(tmpdir(), 'latchkey-search-'));
const sqlite = openDatabase(`sqlite:${join(dir, 'search.db')}`);
try {
  await sqlite.migrate();
  const seconds = await seed(sqlite);
  console.log(`SQLite: seeded in ${seconds.toFixed(1)} s`);
  await measure('SQLite', sqlite);
} finally {
  await sqlite.close();
  rmSync(dir, { recursive: true, force: true });
}

if (PG_URL !== 'off') {
  const schema = 'latchkey_search_bench';
  const admin = openDatabase(PG_URL);
  let reachable = true;
  try {
    await sql.raw(`drop schema if exists ${schema} cascade; create schema ${schema}`).execute(admin.kysely);
  } catch (err) {
    reachable = false;
    console.log(`\nPostgreSQL skipped: ${(err as Error).message}`);
  }
  if (reachable) {
    const pg = openDatabase(PG_URL, { searchPath: schema });
    try {
      await pg.migrate();
      const seconds = await seed(pg);
      console.log(`\nPostgreSQL: seeded in ${seconds.toFixed(1)} s`);
      await measure('PostgreSQL', pg);
    } finally {
      await pg.close();
      await sql.raw(`drop schema if exists ${schema} cascade`).execute(admin.kysely);
    }
  }
  await admin.close();
}
