/**
 * Two Latchkey processes on one PostgreSQL database behind HAProxy
 * (bench/balancer.ts), against one of them alone behind the same HAProxy.
 *
 * Both servers keep challenges in the database (the challenges table, the default on
 * PostgreSQL), and HAProxy balances each request on its own, so a ceremony's
 * options and verify requests usually reach different servers: every
 * ceremony then shows that one instance finishes what another began. The
 * servers' LATCHKEY_ORIGIN is the balancer's origin.
 *
 * Reported for each window: ceremonies/s, latency, and CPU per ceremony split
 * into Latchkey (both servers), PostgreSQL and HAProxy, which is what
 * BENCHMARKS.md's arithmetic for a machine with more cores needs.
 *
 * Run alone: `npm run bench:two` (BENCH_USERS, BENCH_SECONDS, BENCH_WARMUP_SECONDS, BENCH_CONCURRENCY,
 * BENCH_PG_URL as for `npm run bench`). From another benchmark: seed the users into a PostgreSQL schema, then
 * `await runTwoInstances({ databaseUrl, users, origin, … })` and `printBalancedRuns(result)`.
 */
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { openDatabase, postgresConnectionString } from '../src/db/connect.js';
import { HaproxyMissing, freePort, startHaproxy } from './balancer.js';
import { runLoad } from './load.js';
import { quantile } from './statistics.js';
import { insertUsers, makeUsers, type BenchUser } from './seed.js';
import { ServerProcess, machineBusyMs, postgresCpuMs } from './serverProcess.js';

export interface TwoInstancesOptions {
  /** PostgreSQL URL (with its search path), migrated and seeded with `users`. */
  databaseUrl: string;
  users: BenchUser[];
  /** `http://localhost:<port>`: HAProxy listens on this port; the users' authenticators sign for this origin. */
  origin: string;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

/** One measured window through HAProxy. CPU figures are µs per ceremony. */
export interface BalancedRun {
  instances: number;
  ceremoniesPerSecond: number;
  ceremonies: number;
  p50: number;
  p99: number;
  failures: Map<string, number>;
  latchkeyUs: number;
  postgresUs: number;
  haproxyUs: number;
  /** Latchkey + PostgreSQL + HAProxy. */
  totalUs: number;
  /** The load generator's, not in the total. */
  clientUs: number;
  /** Statements (round trips) the servers sent to PostgreSQL per ceremony. */
  statementsPerCeremony: number;
  /** Of them, those whose answer a server waited for (the rest went out with the next one: src/db/pgClient.ts). */
  roundTripsPerCeremony: number;
  /** CPU of every other process on the machine during the window, in cores. */
  otherCpu: number | undefined;
}

export type TwoInstancesResult = { skipped: string } | { one: BalancedRun; two: BalancedRun };

/**
 * Start two servers on `databaseUrl`; drive the load through HAProxy to the first alone, then to both. Resolves
 * `{ skipped }` when HAProxy is not installed.
 */
export async function runTwoInstances(options: TwoInstancesOptions): Promise<TwoInstancesResult> {
  const balancerPort = Number(new URL(options.origin).port);
  const servers = await Promise.all([0, 1].map(async () => ServerProcess.start(options.databaseUrl, await freePort(), options.origin)));
  try {
    const one = await balancedWindow(options, balancerPort, servers, [servers[0]!]);
    if ('skipped' in one) return one;
    const two = await balancedWindow(options, balancerPort, servers, servers);
    if ('skipped' in two) return two;
    return { one, two };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

async function balancedWindow(options: TwoInstancesOptions, port: number, all: ServerProcess[], behind: ServerProcess[]): Promise<BalancedRun | { skipped: string }> {
  let balancer;
  try {
    balancer = await startHaproxy(
      behind.map((s) => s.port),
      { port },
    );
  } catch (error) {
    if (error instanceof HaproxyMissing) return { skipped: error.message };
    throw error;
  }
  try {
    const readings = async () => {
      const usages = await Promise.all(all.map((s) => s.usage()));
      return {
        latchkey: usages.reduce((sum, u) => sum + u.cpuUserMs + u.cpuSystemMs, 0),
        statements: usages.reduce((sum, u) => sum + (u.pgStatements ?? 0), 0),
        deferred: usages.reduce((sum, u) => sum + (u.pgDeferred ?? 0), 0),
        postgres: postgresCpuMs(),
        haproxy: balancer.cpuMs(),
        busy: machineBusyMs(),
      };
    };
    let before: Awaited<ReturnType<typeof readings>> | undefined;
    let after: typeof before;
    const result = await runLoad({
      port,
      origin: options.origin,
      users: options.users,
      concurrency: options.concurrency,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      onWindow: async (edge) => {
        if (edge === 'start') before = await readings();
        else after = await readings();
      },
    });
    const n = Math.max(1, result.ceremonies);
    const perCeremony = (ms: number) => (ms * 1000) / n;
    const latchkeyMs = after!.latchkey - before!.latchkey;
    const postgresMs = after!.postgres - before!.postgres;
    const haproxyMs = after!.haproxy - before!.haproxy;
    const windowMs = result.seconds * 1000;
    const busyMs = before!.busy !== undefined && after!.busy !== undefined ? after!.busy - before!.busy : undefined;
    const sorted = result.latenciesMs.sort((a, b) => a - b);
    return {
      instances: behind.length,
      ceremoniesPerSecond: result.ceremonies / result.seconds,
      ceremonies: result.ceremonies,
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      failures: result.failures,
      latchkeyUs: perCeremony(latchkeyMs),
      postgresUs: perCeremony(postgresMs),
      haproxyUs: perCeremony(haproxyMs),
      totalUs: perCeremony(latchkeyMs + postgresMs + haproxyMs),
      clientUs: perCeremony(result.clientCpuMs),
      statementsPerCeremony: (after!.statements - before!.statements) / n,
      roundTripsPerCeremony: (after!.statements - before!.statements - (after!.deferred - before!.deferred)) / n,
      otherCpu: busyMs === undefined ? undefined : Math.max(0, busyMs - latchkeyMs - postgresMs - haproxyMs - result.clientCpuMs) / windowMs,
    };
  } finally {
    await balancer.stop();
  }
}

/** The result as the benchmark prints it. */
export function printBalancedRuns(result: TwoInstancesResult, log: (line: string) => void = console.log): void {
  if ('skipped' in result) {
    log(`  two instances behind HAProxy: ${result.skipped}`);
    return;
  }
  for (const r of [result.one, result.two]) {
    log(`  ${r.instances} instance${r.instances > 1 ? 's' : ' '} behind HAProxy  ${r.ceremoniesPerSecond.toFixed(0).padStart(5)} ceremonies/s  p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms`);
    log(
      `    CPU per ceremony    ${r.totalUs.toFixed(0)} µs = Latchkey ${r.latchkeyUs.toFixed(0)} + PostgreSQL ${r.postgresUs.toFixed(0)} + HAProxy ${r.haproxyUs.toFixed(0)} (load generator ${r.clientUs.toFixed(0)} more); ${r.statementsPerCeremony.toFixed(2)} statements, ${r.roundTripsPerCeremony.toFixed(2)} round trips per ceremony`,
    );
    const others = r.otherCpu === undefined ? '' : `; other processes ${(r.otherCpu * 100).toFixed(0)} % of a core`;
    log(`    cores busy          ${((r.totalUs * r.ceremoniesPerSecond) / 1e6).toFixed(2)} (Latchkey, PostgreSQL, HAProxy)${others}`);
    if (r.otherCpu !== undefined && r.otherCpu > 0.2) log('    WARNING             other processes were busy during the window: compare CPU per ceremony, not ceremonies/s');
    for (const [what, count] of r.failures) log(`    FAILED ${count}× ${what}`);
  }
  log(`  two against one      ${(result.two.ceremoniesPerSecond / result.one.ceremoniesPerSecond).toFixed(2)}× the ceremonies/s`);
}

async function main(): Promise<void> {
  const env = process.env;
  const url = postgresConnectionString(env.BENCH_PG_URL ?? 'postgres://127.0.0.1:5432/test');
  const schema = 'latchkey_bench_two';
  const admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await admin.connect();
  } catch (err) {
    console.log(`PostgreSQL: skipped (${url} did not answer: ${err instanceof Error ? err.message : String(err)})`);
    return;
  }
  await admin.query(`drop schema if exists ${schema} cascade`);
  await admin.query(`create schema ${schema}`);
  try {
    const schemaUrl = postgresConnectionString(url, schema);
    const origin = `http://localhost:${await freePort()}`;
    const { users, rows } = makeUsers(Number(env.BENCH_USERS ?? 10_000), origin, 'localhost');
    const db = openDatabase(schemaUrl);
    await db.migrate();
    await insertUsers(db, rows);
    await db.close();
    console.log(`two Latchkey instances on one PostgreSQL database (${schema}), ${users.length.toLocaleString('en')} users, HAProxy at ${origin}`);
    const result = await runTwoInstances({
      databaseUrl: schemaUrl,
      users,
      origin,
      concurrency: Number(env.BENCH_CONCURRENCY ?? 32),
      warmupMs: Number(env.BENCH_WARMUP_SECONDS ?? 2) * 1000,
      durationMs: Number(env.BENCH_SECONDS ?? 10) * 1000,
    });
    printBalancedRuns(result);
    if (!('skipped' in result) && (result.one.failures.size || result.two.failures.size)) process.exitCode = 1;
  } finally {
    await admin.query(`drop schema if exists ${schema} cascade`).catch(() => {});
    await admin.end();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
