/**
 * The database side of a passkey sign-in on PostgreSQL, alone: the statements a ceremony sends (options: store the
 * challenge; verify: consume it and read the credential with its user in one statement, then one transaction with
 * the counter update, the session and the audit record), run through the persisters by `concurrency` callers at once, without HTTP or
 * signatures. It alternates pg's own client (every statement unnamed and awaited) with Latchkey's (PgClient: named
 * statements, deferred writes) in windows of BENCH_SECONDS (3), and reports per ceremony: statements, round trips,
 * this process's CPU (Latchkey's side: Kysely, pg, the event loop's socket work) and PostgreSQL's.
 *
 * `npm run bench:pg-path` (BENCH_PG_URL, BENCH_SECONDS, BENCH_ROUNDS (2), BENCH_CONCURRENCY (16), BENCH_POOL: connections (10),
 * BENCH_PG_CLIENTS: the windows of a round (plain,pgclient,shared: pg's client, PgClient, PgClient with the shared
 * connection of src/db/sharedConnection.ts),
 * BENCH_PG_OPTIONS: server settings for the connections, e.g. " -c synchronous_commit=off").
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openDatabase, postgresConnectionString } from '../src/db/connect.js';
import { autocommitGroups, deferredStatements, implicitTransactions } from '../src/db/pgClient.js';
import { sharedStatements } from '../src/db/sharedConnection.js';
import { createStore } from '../src/db/store.js';
import { insertUsers, makeUsers } from './seed.js';
import { postgresCpuMs } from './serverProcess.js';

const env = process.env;
const SECONDS = Number(env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 2);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 16);
const POOL = Number(env.BENCH_POOL ?? 10);
const SCHEMA = 'latchkey_bench_path';
/** The windows of each round: pg's own client, PgClient from the pool, PgClient with the shared connection (src/db/sharedConnection.ts). */
const CLIENTS = (env.BENCH_PG_CLIENTS ?? 'plain,pgclient,shared').split(',') as Client[];

let statements = 0;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  statements++;
  return (query as (...a: unknown[]) => unknown).apply(this, args);
} as typeof query;

type Client = 'plain' | 'pgclient' | 'shared';

async function window(url: string, client: Client, rows: Awaited<ReturnType<typeof makeUsers>>['rows']) {
  const plain = client === 'plain';
  const db = openDatabase(url, { plainPostgresClient: plain, poolSize: POOL, sharedConnection: client === 'shared' });
  const store = createStore(db);
  const counters = new Map<string, number>();
  let ceremonies = 0;
  let stop = false;
  async function caller(slot: number) {
    const mine = rows.filter((_, i) => i % CONCURRENCY === slot);
    for (let n = 0; !stop; n++) {
      const { user, authenticator } = mine[n % mine.length]!;
      const now = Date.now();
      const lookup = randomBytes(32).toString('base64url');
      await store.challenges.insert({ id: randomBytes(16).toString('base64url'), type: 'signin', binding_hash: 'b', user_id: null, lookup, data: '{}', created_at: now, expires_at: now + 300_000 });
      const consumed = await store.challenges.consumeWithCredential(lookup, 'signin', 'b', now, authenticator.credential_id);
      const found = consumed?.credential;
      if (!found) throw new Error('flow or credential missing');
      const counter = (counters.get(authenticator.id as string) ?? found.authenticator.counter) + 1;
      counters.set(authenticator.id as string, counter);
      const recorded = await store.transaction(async (tx) => {
        await tx.authenticators.recordUseOrFail(found.authenticator.id, { counter, backedUp: false, backupEligible: false, at: now });
        await tx.sessions.insert({ id_hash: randomBytes(32).toString('base64url'), public_id: randomBytes(8).toString('hex'), user_id: user.id, created_at: now, last_seen_at: now, authenticated_at: now, expires_at: now + 3_600_000, aal: 1, ip: '127.0.0.1', user_agent: 'bench', authenticator_id: found.authenticator.id });
        await tx.audit.record({ event: 'signin', outcome: 'success', subjectUserId: user.id, actorUserId: user.id, authenticatorId: found.authenticator.id, ip: '127.0.0.1', userAgent: 'bench', detail: { mode: 'discoverable' }, at: now });
        return true;
      }, { groupCommit: true });
      if (!recorded) throw new Error('counter did not move');
      ceremonies++;
    }
  }
  const running = Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => caller(i)));
  await new Promise((r) => setTimeout(r, 1000)); // warm-up: connections opened, statements prepared
  // An implicit transaction, or a group of autocommit statements on the shared connection, is one query handed to pg
  // and one round trip, and as many statements as it carries.
  const grouped = () => implicitTransactions.statements - implicitTransactions.count + autocommitGroups.statements - autocommitGroups.count;
  const statementsSent = () => statements + grouped();
  const deferredSent = () => deferredStatements.count + grouped();
  const c0 = ceremonies, s0 = statementsSent(), d0 = deferredSent(), sh0 = sharedStatements.count, cpu0 = process.cpuUsage(), pg0 = postgresCpuMs(), t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const cpu = process.cpuUsage(cpu0), pgMs = postgresCpuMs() - pg0, seconds = (performance.now() - t0) / 1000;
  const n = ceremonies - c0, sent = statementsSent() - s0, deferred = deferredSent() - d0, shared = sharedStatements.count - sh0;
  stop = true;
  await running;
  await db.close();
  return { n, perSecond: n / seconds, statements: sent / n, roundTrips: (sent - deferred) / n, shared: shared / n, latchkeyUs: ((cpu.user + cpu.system) / 1000 / n) * 1000, postgresUs: (pgMs / n) * 1000 };
}

const base = env.BENCH_PG_URL ?? 'postgres://127.0.0.1:5432/test';
const admin = new pg.Client({ connectionString: postgresConnectionString(base) });
await admin.connect();
await admin.query(`drop schema if exists ${SCHEMA} cascade`);
await admin.query(`create schema ${SCHEMA}`);
try {
  // The URL's own options, then BENCH_PG_OPTIONS, then the search path (postgresConnectionString keeps the others).
  const withOptions = new URL(base);
  const options = [withOptions.searchParams.get('options'), env.BENCH_PG_OPTIONS?.trim()].filter(Boolean).join(' ');
  if (options) withOptions.searchParams.set('options', options);
  const url = postgresConnectionString(withOptions.toString(), SCHEMA);
  const seedDb = openDatabase(url);
  await seedDb.migrate();
  const { rows } = makeUsers(2000, 'http://localhost', 'localhost');
  await insertUsers(seedDb, rows);
  await seedDb.close();
  console.log(`the database side of a sign-in on PostgreSQL, ${CONCURRENCY} callers, pool of ${POOL}, ${SECONDS} s windows (µs per ceremony)`);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const client of CLIENTS) {
      const r = await window(url, client, rows);
      console.log(
        `  ${{ plain: "pg's client", pgclient: 'PgClient', shared: 'PgClient+shared' }[client].padEnd(15)} ${r.perSecond.toFixed(0).padStart(5)}/s  statements ${r.statements.toFixed(2)}  round trips ${r.roundTrips.toFixed(2)} (shared ${r.shared.toFixed(2)})  Latchkey ${r.latchkeyUs.toFixed(0).padStart(4)} µs  PostgreSQL ${r.postgresUs.toFixed(0).padStart(4)} µs  total ${(r.latchkeyUs + r.postgresUs).toFixed(0).padStart(4)} µs`,
      );
    }
  }
} finally {
  await admin.query(`drop schema if exists ${SCHEMA} cascade`);
  await admin.end();
}
