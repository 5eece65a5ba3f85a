/**
 * `npm run bench:import`: bulk import of users (src/users/import) from a generated CSV file of 100,000 people into a
 * fresh SQLite file database and, when it answers, a fresh PostgreSQL schema. Prints each phase (read the CSV,
 * check every row and look up existing addresses, write) and the total, beside a floor measured in the same run on
 * another fresh database: the same users inserted by bare multi-row INSERTs in transactions of the same size, with
 * no checks, no roles and no audit records.
 *
 * Settings: BENCH_IMPORT_ROWS (100000), BENCH_PG_URL (postgres://127.0.0.1:5432/test; `off` skips PostgreSQL).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import pg from 'pg';
import { loadConfig } from '../src/config/index.js';
import { openDatabase, postgresConnectionString, type Db } from '../src/db/connect.js';
import { normalizeEmail, normalizeName } from '../src/db/persisters/users.js';
import { Store } from '../src/db/store.js';
import type { NewUser } from '../src/db/schema.js';
import { randomToken } from '../src/crypto.js';
import { IMPORT_BATCH_SIZE, planUserImport, writeUserImport } from '../src/users/import/importUsers.js';
import { readUserCsv } from '../src/users/import/readUserCsv.js';
import { nationalIdFormat } from '../src/users/nationalId.js';

const ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? 100_000);
// 'off', or a URL that names a user (the operating system's when it names none, as libpq does: postgresConnectionString).
const PG_SETTING = process.env.BENCH_PG_URL ?? 'postgres://127.0.0.1:5432/test';
const PG_URL = PG_SETTING === 'off' ? 'off' : postgresConnectionString(PG_SETTING);
const PG_SCHEMA = 'latchkey_bench_import';
const config = loadConfig({ LATCHKEY_ORIGIN: 'http://localhost:3000' });
const SECRET = 'bench-secret';

/** The file an HR export would give: a tenth with a National Insurance number, one in a hundred with a role. */
function generateCsv(rows: number): string {
  const lines = ['name,email,national insurance number,roles'];
  for (let i = 0; i < rows; i++) {
    const nino = i % 10 === 0 ? `QQ ${String(i % 100).padStart(2, '0')} ${String(Math.floor(i / 100) % 100).padStart(2, '0')} ${String(Math.floor(i / 10_000) % 100).padStart(2, '0')} C` : '';
    lines.push(`Person ${i} Example,person.${i}@staff.example.org,${nino},${i % 100 === 0 ? 'ra_agent' : ''}`);
  }
  return lines.join('\n') + '\n';
}

interface Figures {
  read: number;
  check: number;
  write: number;
  total: number;
  floor: number;
}

async function importOnce(db: Db, text: string): Promise<Omit<Figures, 'floor'>> {
  await db.migrate();
  const store = new Store(db.kysely);
  const t0 = performance.now();
  const csv = readUserCsv(text, nationalIdFormat(config));
  const t1 = performance.now();
  const plan = await planUserImport(store, csv, { secret: SECRET, config, canGrantRoles: true });
  const t2 = performance.now();
  const { created } = await writeUserImport(store, plan.toCreate, { now: Date.now, actor: { userId: null, ip: null, userAgent: null }, importId: 'bench' });
  const t3 = performance.now();
  if (created.length !== ROWS || plan.refusedLines) throw new Error(`expected ${ROWS} users, created ${created.length}, refused ${plan.refusedLines}`);
  const counted = await sql<{ n: number | string }>`select count(*) as n from users`.execute(db.kysely);
  if (Number(counted.rows[0]!.n) !== ROWS) throw new Error(`the users table holds ${counted.rows[0]!.n} rows`);
  return { read: t1 - t0, check: t2 - t1, write: t3 - t2, total: t3 - t0 };
}

/** The floor: the same users, bare multi-row INSERTs in transactions of the same size; nothing read, checked or audited. */
async function floorOnce(db: Db): Promise<number> {
  await db.migrate();
  const now = Date.now();
  const t0 = performance.now();
  for (let i = 0; i < ROWS; i += IMPORT_BATCH_SIZE) {
    const rows: NewUser[] = [];
    for (let k = i; k < Math.min(i + IMPORT_BATCH_SIZE, ROWS); k++) {
      const email = `person.${k}@staff.example.org`;
      const name = `Person ${k} Example`;
      rows.push({ id: randomToken(16), email, email_normalized: normalizeEmail(email), display_name: name, name_search: normalizeName(name), status: 'pending' as const, created_at: now, updated_at: now });
    }
    await db.kysely.transaction().execute((trx) => trx.insertInto('users').values(rows).execute());
  }
  return performance.now() - t0;
}

function print(label: string, f: Figures): void {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`  read CSV            ${s(f.read)}`);
  console.log(`  check rows          ${s(f.check)}  (every row with the console's rules; existing addresses in batches of 1,000)`);
  console.log(`  write               ${s(f.write)}  (batches of ${IMPORT_BATCH_SIZE}: users, roles, one audit record per user)`);
  console.log(`  total               ${s(f.total)}  = ${Math.round(ROWS / (f.total / 1000)).toLocaleString('en')} rows/s`);
  console.log(`  floor (bare INSERT) ${s(f.floor)}  = ${Math.round(ROWS / (f.floor / 1000)).toLocaleString('en')} rows/s`);
  console.log(`  ${label} import / floor  ${(f.total / f.floor).toFixed(2)}×`);
}

function machine(): string {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  return `nproc ${cpus().length}, ${model}, Node ${process.version}; load average ${loadavg()[0]!.toFixed(2)}`;
}

async function pgAdmin(query: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('show server_version');
    await client.query(query);
    return rows[0]!.server_version;
  } catch (err) {
    console.log(`PostgreSQL: skipped (${PG_URL} did not answer: ${err instanceof Error ? err.message : String(err)})`);
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

async function main(): Promise<void> {
  console.log(`Bulk import of ${ROWS.toLocaleString('en')} users — ${machine()}`);
  const text = generateCsv(ROWS);
  console.log(`CSV file: ${(Buffer.byteLength(text) / 2 ** 20).toFixed(1)} MiB`);

  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-import-'));
  try {
    console.log('\nSQLite (file, WAL, synchronous=NORMAL)');
    const a = openDatabase(`sqlite:${join(dir, 'import.db')}`);
    const b = openDatabase(`sqlite:${join(dir, 'floor.db')}`);
    try {
      const run = await importOnce(a, text);
      print('SQLite', { ...run, floor: await floorOnce(b) });
    } finally {
      await a.close();
      await b.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (PG_URL === 'off') return;
  for (const schema of [PG_SCHEMA, `${PG_SCHEMA}_floor`]) if (!(await pgAdmin(`drop schema if exists ${schema} cascade; create schema ${schema}`))) return;
  const version = await pgAdmin('select 1');
  console.log(`\nPostgreSQL ${version} (schema ${PG_SCHEMA})`);
  const a = openDatabase(PG_URL, { searchPath: PG_SCHEMA });
  const b = openDatabase(PG_URL, { searchPath: `${PG_SCHEMA}_floor` });
  try {
    const run = await importOnce(a, text);
    print('PostgreSQL', { ...run, floor: await floorOnce(b) });
  } finally {
    await a.close();
    await b.close();
    await pgAdmin(`drop schema if exists ${PG_SCHEMA} cascade; drop schema if exists ${PG_SCHEMA}_floor cascade`);
  }
}

await main();
