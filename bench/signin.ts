/**
 * npm run bench: every figure of issue 16 in one run, each beside a floor measured in the same run.
 *
 *  floor  raw ES256 verify (CPU per verify) and a bare Fastify JSON route (server CPU per request);
 *         the floor of a ceremony is 3 bare requests + 1 raw verify.
 *  1      the cold sign-in path on SQLite (a new signed-out browser per ceremony: GET /signin, options, verify;
 *         discoverable and email-first alternating), CPU per ceremony, p50/p99, RSS; then (1i) the ceremony on
 *         copies of that database and the floor's requests in interleaved windows, three servers each, so their
 *         ratio is taken in the same seconds and no one server's offset decides it.
 *  4      the token endpoint on the same server (bench/tokens.ts): refresh and authorization-code grants.
 *  5      the same sign-in with /metrics on and off, three servers each kept running while the load moves
 *         between them in short interleaved windows (bench/interleaved.ts): what recording costs, ± the error
 *         from the servers' spread (with one server each, a second off server instead, A/A); and, measured in
 *         this process, what metrics on adds to one answer (two real apps answering in alternating batches,
 *         bench/metricsMarginal.ts) and the recorders' own CPU.
 *  2      memory: the same people signing in among BENCH_MILLION accounts (filler accounts, bench/seed.ts).
 *  3      PostgreSQL: the same path (Latchkey's CPU and PostgreSQL's), tokens again; then a server on PostgreSQL and
 *         one on SQLite in interleaved windows (bench/interleaved.ts), so their ratio is taken in the same seconds;
 *         the challenges in Redis instead of the challenges table, and two instances behind HAProxy against one
 *         (bench/twoInstances.ts).
 *
 * The server runs in a child process (bench/server.ts); this process seeds the database and drives the load
 * (bench/load.ts).
 *
 * Settings (environment): BENCH_USERS (10000), BENCH_SECONDS (10), BENCH_WARMUP_SECONDS (2),
 * BENCH_CONCURRENCY (16), BENCH_PATH (cold; warm loads /signin once per browser), BENCH_MILLION (1000000; 0
 * skips), BENCH_PG_URL (postgres://127.0.0.1:5432/test; "off" skips PostgreSQL), BENCH_REDIS_URL
 * (redis://127.0.0.1:6379; "off" skips), BENCH_SERVER_FLAGS (extra Node flags for the server), BENCH_SIGNIN_ONLY (1: only
 * sections 1 and 3, the cold sign-in on SQLite and on PostgreSQL, to compare the two), BENCH_FLOOR_ROUNDS (6; 0 skips
 * section 1i, the cold sign-in against its floor interleaved), BENCH_FLOOR_INSTANCES (3 servers on each side there), BENCH_PG_ROUNDS (6; 0 skips
 * the interleaved comparison of section 3), BENCH_PG_INSTANCES (3 servers on each database there), BENCH_METRICS_ROUNDS (6), BENCH_METRICS_INSTANCES (3 servers each) and BENCH_METRICS_WINDOW_SECONDS (3) for section 5.
 * Flags: --profile writes a V8 CPU profile of each server's measured window to
 * $TMPDIR/latchkey-bench-profiles/ (summarise with
 * `node --import tsx bench/profileSummary.ts <file>`).
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { openDatabase, postgresConnectionString } from '../src/db/connect.js';
import { PrometheusMetrics } from '../src/metrics/metrics.js';
import { insertUsers, makeUsers, type BenchUser } from './seed.js';
import { runBare, runLoad } from './load.js';
import { quantile } from './statistics.js';
import { measureVerifyAssertion } from './verifyRate.js';
import { measureRawVerify, measureRawVerifyCost } from './rawVerify.js';
import { freePort, machineBusyMs, postgresCpuMs, redisCpuMs, ServerProcess, type Usage } from './serverProcess.js';
import { printTokenFigures, runTokenBench, type TokenBenchResult } from './tokens.js';
import { printBalancedRuns, runTwoInstances, type TwoInstancesResult } from './twoInstances.js';
import { formatCost, runInterleaved, type VariantSummary, type WindowLoad } from './interleaved.js';
import { measureMetricsMarginalCost, type MarginalCost } from './metricsMarginal.js';

const env = process.env;
const USERS = Number(env.BENCH_USERS ?? 10_000);
const SECONDS = Number(env.BENCH_SECONDS ?? 10);
const WARMUP_SECONDS = Number(env.BENCH_WARMUP_SECONDS ?? 2);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 16);
/** cold: a new signed-out browser loads GET /signin before each ceremony (the path people take); warm: once per browser. */
const PATH = (env.BENCH_PATH ?? 'cold') as 'cold' | 'warm';
// 'off', or a URL that names a user (the operating system's when it names none, as libpq does: postgresConnectionString).
const PG_SETTING = env.BENCH_PG_URL ?? 'postgres://127.0.0.1:5432/test';
const PG_URL = PG_SETTING === 'off' ? 'off' : postgresConnectionString(PG_SETTING);
const PG_SCHEMA = 'latchkey_bench';
/** Accounts in the memory run (filler beyond the USERS who sign in); 0 skips it. */
const MILLION = Number(env.BENCH_MILLION ?? 1_000_000);
/** Redis for the challenge-store comparison on PostgreSQL; "off" skips it. */
const REDIS_URL = env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SIGNIN_ONLY = env.BENCH_SIGNIN_ONLY === '1';
/** Section 5: rounds of off and on windows, interleaved, and each window's length. */
const METRICS_ROUNDS = Number(env.BENCH_METRICS_ROUNDS ?? 6);
/**
 * Servers per variant in section 5 (off, on): each server process keeps an offset of its own (bench/interleaved.ts).
 * With one each, a second server with metrics off (A/A) shows how far two identical servers differ.
 */
const METRICS_INSTANCES = Math.max(1, Math.floor(Number(env.BENCH_METRICS_INSTANCES ?? 3)) || 1);
/** SQLite against PostgreSQL in interleaved windows (section 3, goal 3): rounds, and seconds per window. */
const PG_ROUNDS = Math.floor(Number(env.BENCH_PG_ROUNDS ?? 6)) || 0;
const PG_WINDOW_SECONDS = 3;
/** Servers per database in section 3i: each server process keeps an offset of its own (bench/interleaved.ts). */
const PG_INSTANCES = Math.max(1, Math.floor(Number(env.BENCH_PG_INSTANCES ?? 3)) || 1);
const METRICS_WINDOW_SECONDS = Number(env.BENCH_METRICS_WINDOW_SECONDS ?? 3);
/** The cold sign-in against its floor in interleaved windows (section 1i, goal 1): rounds (0 skips it), and seconds per window. */
const FLOOR_ROUNDS = Math.floor(Number(env.BENCH_FLOOR_ROUNDS ?? 6)) || 0;
const FLOOR_WINDOW_SECONDS = 2;
const FLOOR_INSTANCES = Math.max(1, Math.floor(Number(env.BENCH_FLOOR_INSTANCES ?? 3)) || 1);
const PROFILE = process.argv.includes('--profile');
const PROFILE_DIR = join(tmpdir(), 'latchkey-bench-profiles');

interface RunFigures {
  database: string;
  ceremoniesPerSecond: number;
  p50: number;
  p99: number;
  ceremonies: number;
  failures: Map<string, number>;
  rssMiB: number;
  maxRssMiB: number;
  serverCpu: number;
  /** The server's main thread, in cores; undefined where /proc is missing. */
  eventLoopCpu: number | undefined;
  clientCpu: number;
  /** CPU the PostgreSQL server used during the window, in cores (0 for SQLite). */
  databaseCpu: number;
  /** CPU other processes on the machine used during the window, in cores. */
  otherCpu: number | undefined;
  /** Node's raw ES256 verify rate measured right after the window. */
  rawVerifyAfter?: number;
  /** Sign-in transactions per group commit during the window, and (PostgreSQL) groups that failed and ran again alone. */
  transactionsPerCommit?: number;
  groupReruns?: number;
  /** PostgreSQL: autocommit statements per group on the shared connection during the window, and groups run again one by one. */
  autocommitPerGroup?: number;
  autocommitReruns?: number;
  /** PostgreSQL: statements (round trips) per ceremony during the window. */
  statementsPerCeremony?: number;
  roundTripsPerCeremony?: number;
}

interface RunOptions {
  /** Seed these rows first (a database the run made); absent: the database is already seeded. */
  rows?: Parameters<typeof insertUsers>[1];
  /** Users in all when seeding (the rest are filler accounts: bench/seed.ts). */
  total?: number;
  /** More environment for the server (metrics on, Redis challenge store …). */
  env?: Record<string, string>;
  /** Run against the same server after the sign-in window, before it stops (the token endpoint). */
  after?: (server: ServerProcess) => Promise<void>;
}

async function benchDatabase(label: string, databaseUrl: string, users: BenchUser[], origin: string, port: number, options: RunOptions = {}): Promise<RunFigures> {
  if (options.rows) {
    const db = openDatabase(databaseUrl);
    await db.migrate();
    const seedStart = performance.now();
    const total = options.total ?? options.rows.length;
    await insertUsers(db, options.rows, { total });
    console.log(`  seeded ${total.toLocaleString('en')} users with one ES256 passkey each in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);
    await db.close();
  }

  const server = await ServerProcess.start(databaseUrl, port, origin, options.env);
  let profileFile: string | undefined;
  if (PROFILE) {
    mkdirSync(PROFILE_DIR, { recursive: true });
    profileFile = join(PROFILE_DIR, `server-${label}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  }
  let before: Usage | undefined;
  let after: Usage | undefined;
  let busyBefore: number | undefined;
  let busyAfter: number | undefined;
  let pgBefore = 0;
  let pgAfter = 0;
  try {
    const result = await runLoad({
      port: server.port,
      origin,
      users,
      concurrency: CONCURRENCY,
      path: PATH,
      warmupMs: WARMUP_SECONDS * 1000,
      durationMs: SECONDS * 1000,
      onWindow: async (edge) => {
        if (edge === 'start') {
          if (profileFile) await server.ask({ type: 'profile-start' }, 'profile-started');
          before = await server.usage();
          busyBefore = machineBusyMs();
          pgBefore = postgresCpuMs() + redisCpuMs();
        } else {
          busyAfter = machineBusyMs();
          pgAfter = postgresCpuMs() + redisCpuMs();
          after = await server.usage();
          if (profileFile) {
            await server.ask({ type: 'profile-stop', file: profileFile }, 'profile-stopped');
            console.log(`  CPU profile of the measured window: ${profileFile}`);
          }
        }
      },
    });
    const sorted = result.latenciesMs.sort((a, b) => a - b);
    const serverCpuMs = after!.cpuUserMs + after!.cpuSystemMs - (before!.cpuUserMs + before!.cpuSystemMs);
    const windowMs = result.seconds * 1000;
    const databaseCpuMs = label.startsWith('postgres') ? pgAfter - pgBefore : 0;
    const otherCpu =
      busyBefore !== undefined && busyAfter !== undefined ? Math.max(0, busyAfter - busyBefore - serverCpuMs - result.clientCpuMs - databaseCpuMs) / windowMs : undefined;
    const figures: RunFigures = {
      database: label,
      ceremoniesPerSecond: result.ceremonies / result.seconds,
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      ceremonies: result.ceremonies,
      failures: result.failures,
      rssMiB: after!.rss / 2 ** 20,
      maxRssMiB: after!.maxRss / 2 ** 20,
      serverCpu: serverCpuMs / windowMs,
      eventLoopCpu: after!.eventLoopCpuMs !== undefined && before!.eventLoopCpuMs !== undefined ? (after!.eventLoopCpuMs - before!.eventLoopCpuMs) / windowMs : undefined,
      clientCpu: result.clientCpuMs / windowMs,
      databaseCpu: databaseCpuMs / windowMs,
      otherCpu,
      transactionsPerCommit: perCommit(before!.groupCommits, after!.groupCommits),
      groupReruns: after!.groupCommits && before!.groupCommits ? after!.groupCommits.reruns - before!.groupCommits.reruns : undefined,
      autocommitPerGroup: perGroup(before!.autocommitGroups, after!.autocommitGroups),
      autocommitReruns: after!.autocommitGroups && before!.autocommitGroups ? after!.autocommitGroups.reruns - before!.autocommitGroups.reruns : undefined,
      statementsPerCeremony: after!.pgStatements ? (after!.pgStatements - before!.pgStatements!) / result.ceremonies : undefined,
      roundTripsPerCeremony: after!.pgStatements ? (after!.pgStatements - before!.pgStatements! - (after!.pgDeferred! - before!.pgDeferred!)) / result.ceremonies : undefined,
    };
    await options.after?.(server);
    return figures;
  } finally {
    await server.stop();
  }
}

function cpuMs(u: Usage): number {
  return u.cpuUserMs + u.cpuSystemMs;
}

function perGroup(before: Usage['autocommitGroups'], after: Usage['autocommitGroups']): number | undefined {
  if (!before || !after || after.count === before.count) return undefined;
  return (after.statements - before.statements) / (after.count - before.count);
}

function perCommit(before: Usage['groupCommits'], after: Usage['groupCommits']): number | undefined {
  if (!before || !after || after.commits === before.commits) return undefined;
  return (after.transactions - before.transactions) / (after.commits - before.commits);
}

/**
 * The raw verify rate right after a window, beside the one at the start: this
 * machine's speed drifts (measured here: ±30 % between runs minutes apart, with
 * no other process busy), so the ratio uses the figure nearest in time.
 */
function rawVerifyAfterWindow(r: RunFigures, rawBefore: number): number {
  const after = measureRawVerify(1000);
  r.rawVerifyAfter = after;
  if (Math.abs(after - rawBefore) / rawBefore > 0.1) {
    console.log(`  NOTE                the machine's speed changed during the run (raw ES256 verify ${rawBefore.toFixed(0)}/s at the start, ${after.toFixed(0)}/s after this window): compare ratios`);
  }
  return after;
}

async function postgresReady(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('show server_version');
    await client.query(`drop schema if exists ${PG_SCHEMA} cascade`);
    await client.query(`create schema ${PG_SCHEMA}`);
    return rows[0]!.server_version;
  } catch (err) {
    console.log(`PostgreSQL: skipped (${url} did not answer: ${err instanceof Error ? err.message : String(err)})`);
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

async function dropPgSchema(url: string, schema = PG_SCHEMA): Promise<void> {
  const db = openDatabase(url);
  await sql.raw(`drop schema if exists ${schema} cascade`).execute(db.kysely).catch(() => {});
  await db.close();
}

function machine(): string {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  return `${cpus().length} CPU (${model}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Node ${process.version}, ${process.platform} ${process.arch}; load average ${loadavg()[0]!.toFixed(2)}`;
}

function printRun(r: RunFigures, rawVerify: number, floorUs: number): void {
  console.log(`  ceremonies/s        ${r.ceremoniesPerSecond.toFixed(0)}  (${r.ceremonies.toLocaleString('en')} in ${SECONDS} s, ${CONCURRENCY} browsers)`);
  console.log(`  latency p50 / p99   ${r.p50.toFixed(2)} ms / ${r.p99.toFixed(2)} ms  (options + verify)`);
  console.log(`  server RSS          ${r.rssMiB.toFixed(0)} MiB at the end (peak ${r.maxRssMiB.toFixed(0)} MiB)`);
  const others = r.otherCpu === undefined ? '' : `, other processes ${(r.otherCpu * 100).toFixed(0)} %`;
  const database = r.databaseCpu > 0 ? `, PostgreSQL ${(r.databaseCpu * 100).toFixed(0)} %` : '';
  console.log(`  CPU                 server ${(r.serverCpu * 100).toFixed(0)} % of a core, load generator ${(r.clientCpu * 100).toFixed(0)} %${database}${others}`);
  if (r.otherCpu !== undefined && r.otherCpu > 0.2) console.log('  WARNING             other processes were busy during the run: figures are low; run again on a quiet machine');
  const eventLoop = r.eventLoopCpu === undefined ? '' : ` (event-loop thread ${((r.eventLoopCpu * 1e6) / r.ceremoniesPerSecond).toFixed(0)} µs, ${(r.eventLoopCpu * 100).toFixed(0)} % of a core)`;
  const perCeremony = (r.serverCpu * 1e6) / r.ceremoniesPerSecond;
  console.log(`  server CPU          ${perCeremony.toFixed(0)} µs per ceremony, ${(perCeremony / floorUs).toFixed(2)}× the floor of ${floorUs.toFixed(0)} µs${eventLoop}`);
  if (r.databaseCpu > 0) console.log(`  with PostgreSQL's   ${(((r.serverCpu + r.databaseCpu) * 1e6) / r.ceremoniesPerSecond).toFixed(0)} µs per ceremony`);
  if (r.statementsPerCeremony !== undefined) console.log(`  PostgreSQL          ${r.statementsPerCeremony.toFixed(2)} statements, ${r.roundTripsPerCeremony!.toFixed(2)} round trips per ceremony; its own CPU ${((r.databaseCpu * 1e6) / r.ceremoniesPerSecond).toFixed(0)} µs per ceremony`);
  if (r.transactionsPerCommit !== undefined) console.log(`  group commit        ${r.transactionsPerCommit.toFixed(2)} sign-ins per commit on average${r.groupReruns ? `; ${r.groupReruns} groups failed and ran again one by one` : ''}`);
  if (r.autocommitPerGroup !== undefined) console.log(`  shared connection   ${r.autocommitPerGroup.toFixed(2)} statements per group of autocommit statements${r.autocommitReruns ? `; ${r.autocommitReruns} groups failed and ran again one by one` : ''}`);
  console.log(`  vs raw ES256 verify ${((r.ceremoniesPerSecond / rawVerify) * 100).toFixed(1)} %  (ceremonies/s ÷ ${rawVerify.toFixed(0)} verify/s, measured right after the window)`);
  if (r.failures.size) for (const [what, n] of r.failures) console.log(`  FAILED ${n}× ${what}`);
}

async function main(): Promise<void> {
  console.log(`Latchkey benchmark: ${machine()}`);
  // The token bench registers its service with the server's secret key: both read it from here, and no key file is written.
  env.LATCHKEY_SECRET_KEY ??= randomBytes(32).toString('base64url');
  const sqlitePort = await freePort();
  const origin = `http://localhost:${sqlitePort}`;
  const keysStart = performance.now();
  const { users, rows } = makeUsers(USERS, origin, 'localhost');
  console.log(`generated ${USERS.toLocaleString('en')} ES256 key pairs in ${((performance.now() - keysStart) / 1000).toFixed(1)} s`);

  const rawCost = measureRawVerifyCost(2000);
  const rawVerify = rawCost.perSecond;
  console.log(`${'raw ES256 verify (node:crypto, KeyObject):'.padEnd(44)}${rawVerify.toFixed(0).padStart(6)}/s, ${rawCost.cpuUs.toFixed(0)} µs CPU each`);
  for (const line of await measureVerifyAssertion(1000)) console.log(line);

  const bareServer = await ServerProcess.start('sqlite::memory:', await freePort(), origin, { BENCH_BARE: '1' });
  let bare: Awaited<ReturnType<typeof runBare>>;
  let bareBefore: Usage | undefined;
  let bareAfter: Usage | undefined;
  try {
    bare = await runBare({
      port: bareServer.port,
      concurrency: CONCURRENCY,
      warmupMs: 1000,
      durationMs: 3000,
      onWindow: async (edge) => {
        if (edge === 'start') bareBefore = await bareServer.usage();
        else bareAfter = await bareServer.usage();
      },
    });
  } finally {
    await bareServer.stop();
  }
  const bareCpuUs = (cpuMs(bareAfter!) - cpuMs(bareBefore!)) * 1000 / bare.requests;
  console.log(`bare Fastify JSON route, same client: ${bare.requestsPerSecond.toFixed(0)} requests/s, ${bareCpuUs.toFixed(0)} µs server CPU each (load generator ${(bare.clientCpu * 100).toFixed(0)} % of a core)`);
  const floorUs = 3 * bareCpuUs + rawCost.cpuUs;
  console.log(`floor per ceremony: 3 bare requests + 1 raw verify = ${floorUs.toFixed(0)} µs of CPU`);

  const results: RunFigures[] = [];
  const tokenResults: { database: string; result: TokenBenchResult }[] = [];
  const measureTokens = (database: string, url: string) => async (server: ServerProcess) => {
    console.log(`  token endpoint (${database}, same server, ${CONCURRENCY} clients)`);
    const result = await runTokenBench({ port: server.port, origin, usage: () => server.usage(), databaseUrl: url, users, concurrency: CONCURRENCY, warmupMs: Math.max(WARMUP_SECONDS, 4) * 1000, durationMs: SECONDS * 1000 });
    printTokenFigures(result, { rawVerify, bare: bare.requestsPerSecond }, CONCURRENCY);
    tokenResults.push({ database, result });
  };
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  let metricsCost: VariantSummary[] | undefined;
  let marginal: MarginalCost | undefined;
  let million: RunFigures | undefined;
  let againstFloor: VariantSummary[] | undefined;
  try {
    const url = `sqlite:${join(dir, 'bench.db')}`;
    console.log(`\n1. Cold sign-in path, SQLite (${join(dir, 'bench.db')}, WAL, synchronous=NORMAL), ${USERS.toLocaleString('en')} users`);
    const r = await benchDatabase('sqlite', url, users, origin, sqlitePort, { rows, ...(SIGNIN_ONLY ? {} : { after: measureTokens('sqlite', url) }) });
    printRun(r, rawVerifyAfterWindow(r, rawVerify), floorUs);
    results.push(r);
    if (FLOOR_ROUNDS > 0) {
      copyFileSync(join(dir, 'bench.db'), join(dir, 'floor.db'));
      againstFloor = await compareWithFloor(`sqlite:${join(dir, 'floor.db')}`, users, origin);
    }

    if (!SIGNIN_ONLY) {
      // Off and on, three servers each (METRICS_INSTANCES) kept running while the load moves between them in short
      // windows whose order turns round each round (bench/interleaved.ts): the machine drifts between long windows by
      // more than the 2 % looked for, and each server process keeps an offset of its own for its lifetime.
      console.log(`\n5. The same with /metrics on (LATCHKEY_METRICS_PORT) and off, ${METRICS_INSTANCES} server${METRICS_INSTANCES > 1 ? 's' : ''} each, ${METRICS_ROUNDS} rounds of ${METRICS_WINDOW_SECONDS} s windows interleaved, to see what recording costs`);
      const copies = METRICS_INSTANCES > 1 ? ['metrics-off', 'metrics-on'] : ['metrics-off', 'metrics-off-again', 'metrics-on'];
      for (const name of copies) copyFileSync(join(dir, 'bench.db'), join(dir, `${name}.db`));
      const off = { label: 'off', databaseUrl: `sqlite:${join(dir, 'metrics-off.db')}` };
      const on = { label: 'on', databaseUrl: `sqlite:${join(dir, 'metrics-on.db')}`, env: { LATCHKEY_METRICS_PORT: '0' } };
      metricsCost = await runInterleaved({
        // With one server each, a second server with metrics off (A/A): how far two identical servers differ in this
        // harness, the resolution against which the on/off figure is read. With several, their spread is the error.
        variants: METRICS_INSTANCES > 1 ? [off, on] : [off, { label: 'off again', databaseUrl: `sqlite:${join(dir, 'metrics-off-again.db')}` }, on],
        instances: METRICS_INSTANCES,
        users,
        origin,
        concurrency: CONCURRENCY,
        rounds: METRICS_ROUNDS,
        windowMs: METRICS_WINDOW_SECONDS * 1000,
        settleMs: 500,
        warmupMs: WARMUP_SECONDS * 1000,
        onWindow: (w) => console.log(`  round ${w.round} ${w.label.padEnd(9)} ${w.cpuUs.toFixed(0).padStart(5)} µs per ceremony, ${w.ceremoniesPerSecond.toFixed(0)}/s${w.failures.size ? `, FAILED ${[...w.failures].map(([what, n]) => `${n}× ${what}`).join('; ')}` : ''}`),
      });
      const [offCost, onCost] = [metricsCost[0]!, metricsCost.at(-1)!];
      const how =
        METRICS_INSTANCES > 1
          ? `ratio of the servers' means ± standard error from their spread; servers ${onCost.instanceCpuUs!.map((x) => x.toFixed(0)).join(', ')} µs on against ${offCost.instanceCpuUs!.map((x) => x.toFixed(0)).join(', ')} off`
          : `mean of ${METRICS_ROUNDS} rounds' on/off ratios ± standard error; two servers both off (A/A): ${formatCost(metricsCost[1]!.ratio!)}`;
      console.log(`  metrics on: ${formatCost(onCost.ratio!)} CPU per ceremony (${how}); ${offCost.cpuUs.toFixed(0)} µs off, ${onCost.cpuUs.toFixed(0)} µs on over all windows`);
      marginal = await measureMetricsMarginalCost();
      const m = marginal.addedUs;
      console.log(`  in this process, two apps answering GET /healthz in ${marginal.batches} alternating pairs of batches: metrics on adds ${m.median.toFixed(2)} µs per answer (median of the paired differences; 95 % interval ${m.low.toFixed(2)} to ${m.high.toFixed(2)}; median batch ${marginal.offUs.toFixed(1)} µs per answer off)`);

      if (MILLION > USERS) {
        const millionUrl = `sqlite:${join(dir, 'million.db')}`;
        console.log(`\n2. Memory: the same ${USERS.toLocaleString('en')} people signing in among ${MILLION.toLocaleString('en')} accounts (SQLite)`);
        million = await benchDatabase('sqlite-1M', millionUrl, users, origin, sqlitePort, { rows, total: MILLION });
        printRun(million, rawVerifyAfterWindow(million, rawVerify), floorUs);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  let redisRun: RunFigures | undefined;
  let balanced: TwoInstancesResult | undefined;
  let interleavedWithSqlite: VariantSummary[] | undefined;
  if (PG_URL !== 'off') {
    const version = await postgresReady(PG_URL);
    if (version) {
      const url = postgresConnectionString(PG_URL, PG_SCHEMA);
      console.log(`\n3. Cold sign-in path, PostgreSQL ${version} (${PG_URL}, schema ${PG_SCHEMA}, pool of 10, challenges in the challenges table)`);
      try {
        // Same origin and port as the SQLite run, so the seeded users' authenticators fit.
        const r = await benchDatabase('postgres', url, users, origin, sqlitePort, { rows, ...(SIGNIN_ONLY ? {} : { after: measureTokens('postgres', url) }) });
        printRun(r, rawVerifyAfterWindow(r, rawVerify), floorUs);
        results.push(r);
        if (PG_ROUNDS > 0) {
          try {
            interleavedWithSqlite = await compareWithSqlite(PG_URL, users, rows, origin);
          } catch (err) {
            console.log(`  FAILED: ${err instanceof Error ? err.message : String(err)}`);
            process.exitCode = 1;
          }
        }
        if (REDIS_URL !== 'off' && !SIGNIN_ONLY) {
          console.log(`\n3b. PostgreSQL with the WebAuthn challenges in Redis (${REDIS_URL}; Redis's CPU counted with PostgreSQL's)`);
          try {
            redisRun = await benchDatabase('postgres+redis', url, users, origin, sqlitePort, {
              env: { LATCHKEY_REDIS_URL: REDIS_URL, LATCHKEY_CHALLENGE_STORE: 'redis', LATCHKEY_REDIS_PREFIX: `latchkey-bench-${process.pid}:` },
            });
            printRun(redisRun, rawVerifyAfterWindow(redisRun, rawVerify), floorUs);
          } catch (err) {
            console.log(`  skipped: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        if (!SIGNIN_ONLY) {
          console.log('\n3c. Two Latchkey processes on this PostgreSQL database behind HAProxy, against one alone behind it');
          balanced = await runTwoInstances({ databaseUrl: url, users, origin, concurrency: CONCURRENCY * 2, warmupMs: WARMUP_SECONDS * 1000, durationMs: SECONDS * 1000 });
          printBalancedRuns(balanced);
        }
      } finally {
        await dropPgSchema(url);
      }
    }
  }

  printSummary({ results, againstFloor, metricsCost, marginal, recordingUs: measureRecordingCost(), million, redisRun, balanced, interleavedWithSqlite, tokenResults, floorUs, bareCpuUs, rawCpuUs: rawCost.cpuUs, bare: bare.requestsPerSecond, rawVerify });
  if ([...results, million, redisRun].some((r) => r?.failures.size) || [...(againstFloor ?? []), ...(metricsCost ?? []), ...(interleavedWithSqlite ?? [])].some((v) => v.failures)) process.exitCode = 1;
}

/**
 * Goal 1 again, the ceremony and its floor measured in the same seconds: bare-route servers and servers on copies of
 * section 1's database (FLOOR_INSTANCES of each), all kept running while the load moves between them in short windows
 * whose order turns round each round (bench/interleaved.ts). A server process keeps an offset of a few per cent of its
 * own for its life, so the ratio is that of the servers' means, its error from their spread. The floor's unit is three bare requests and one raw ES256 verify,
 * timed in this process right after each of its windows. The floor above is taken before section 1 and the window a
 * minute later; on a machine whose speed drifts, their ratio moves with it (the same code read 3.1× and 6.4× the floor
 * in two runs fifteen minutes apart).
 */
async function compareWithFloor(sqliteUrl: string, users: BenchUser[], origin: string): Promise<VariantSummary[]> {
  console.log(`\n1i. The same against its floor, ${FLOOR_INSTANCES} server${FLOOR_INSTANCES > 1 ? 's' : ''} on each side, in ${FLOOR_ROUNDS} rounds of ${FLOOR_WINDOW_SECONDS} s windows interleaved (the floor: 3 bare requests + 1 raw verify)`);
  const summary = await runInterleaved({
    variants: [
      { label: 'floor', databaseUrl: 'sqlite::memory:', env: { BENCH_BARE: '1' } },
      { label: 'sign-in', databaseUrl: sqliteUrl },
    ],
    users,
    origin,
    concurrency: CONCURRENCY,
    rounds: FLOOR_ROUNDS,
    windowMs: FLOOR_WINDOW_SECONDS * 1000,
    settleMs: 500,
    warmupMs: WARMUP_SECONDS * 1000,
    instances: FLOOR_INSTANCES,
    load: async (server, variant) => (variant.env?.BENCH_BARE ? floorLoad(server) : undefined),
    onWindow: (w) => console.log(`  round ${w.round} ${w.label.padEnd(10)} ${w.cpuUs.toFixed(0).padStart(5)} µs per ceremony${w.failures.size ? `, FAILED ${[...w.failures].map(([what, n]) => `${n}× ${what}`).join('; ')}` : ''}`),
  });
  const [floor, signIn] = summary as [VariantSummary, VariantSummary];
  const how = FLOOR_INSTANCES > 1 ? `ratio of the servers' means, ± standard error from their spread; servers ${signIn.instanceCpuUs!.map((x) => x.toFixed(0)).join(', ')} µs against ${floor.instanceCpuUs!.map((x) => x.toFixed(0)).join(', ')}` : `mean of ${FLOOR_ROUNDS} rounds' ratios ± standard error`;
  console.log(`  the cold sign-in against its floor: ${signIn.ratio!.mean.toFixed(2)}× ± ${signIn.ratio!.standardError.toFixed(2)} (${how}); ${signIn.cpuUs.toFixed(0)} µs against ${floor.cpuUs.toFixed(0)} over all windows`);
  return summary;
}

/** The floor as a window's load: the bare route's requests, three to a unit, then one raw verify per unit timed here. */
function floorLoad(server: ServerProcess): WindowLoad {
  return {
    run: async ({ settleMs, durationMs, onWindow }) => {
      const bare = await runBare({ port: server.port, concurrency: CONCURRENCY, warmupMs: settleMs, durationMs, onWindow });
      const units = bare.requests / 3;
      const verify = measureRawVerifyCost(200);
      return { count: units, seconds: bare.seconds, failures: new Map(), extraCpuMs: (units * verify.cpuUs) / 1000 };
    },
  };
}

/**
 * Goal 3 again, the two databases measured in the same seconds: servers on SQLite and on PostgreSQL, both kept
 * running while the load moves between them in short windows whose order turns round each round
 * (bench/interleaved.ts), PostgreSQL's CPU counted with its server's. The sequential windows above are taken a minute
 * or more apart, and on a machine whose speed drifts (a shared VM's does, by a quarter or more) their ratio moves
 * with it; here the drift falls on both alike. Both start from the same state: the users just seeded, in a fresh
 * SQLite file and a fresh PostgreSQL schema (`<PG_SCHEMA>_3i`), not the schema sections 3 and 4 filled with their
 * sessions, audit records, spent challenges and tokens.
 */
async function compareWithSqlite(baseUrl: string, users: BenchUser[], rows: ReturnType<typeof makeUsers>['rows'], origin: string): Promise<VariantSummary[]> {
  console.log(`\n3i. The same against SQLite, ${PG_INSTANCES} server${PG_INSTANCES > 1 ? 's' : ''} on each, in ${PG_ROUNDS} rounds of ${PG_WINDOW_SECONDS} s windows interleaved (PostgreSQL's CPU counted with its server's; both databases freshly seeded)`);
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-bench-'));
  const schema = `${PG_SCHEMA}_3i`;
  const sqliteUrl = `sqlite:${join(dir, 'bench.db')}`;
  const postgresUrl = postgresConnectionString(baseUrl, schema);
  try {
    await dropPgSchema(postgresUrl, schema);
    for (const url of [sqliteUrl, postgresUrl]) {
      const db = openDatabase(url);
      try {
        if (url === postgresUrl) await sql.raw(`create schema ${schema}`).execute(db.kysely);
        await db.migrate();
        await insertUsers(db, rows);
      } finally {
        await db.close();
      }
    }
    const summary = await runInterleaved({
      variants: [
        { label: 'SQLite', databaseUrl: sqliteUrl },
        { label: 'PostgreSQL', databaseUrl: postgresUrl, otherCpuMs: postgresCpuMs },
      ],
      users,
      origin,
      concurrency: CONCURRENCY,
      rounds: PG_ROUNDS,
      windowMs: PG_WINDOW_SECONDS * 1000,
      settleMs: 500,
      // Both servers are new: long enough for the JIT to settle before the first round.
      warmupMs: Math.max(WARMUP_SECONDS, 5) * 1000,
      instances: PG_INSTANCES,
      onWindow: (w) => console.log(`  round ${w.round} ${w.label.padEnd(10)} ${w.cpuUs.toFixed(0).padStart(5)} µs per ceremony, ${w.ceremoniesPerSecond.toFixed(0)}/s${w.failures.size ? `, FAILED ${[...w.failures].map(([what, n]) => `${n}× ${what}`).join('; ')}` : ''}`),
    });
    const [sqlite, postgres] = summary as [VariantSummary, VariantSummary];
    const how = PG_INSTANCES > 1 ? `ratio of the servers' means, ± standard error from their spread; servers ${postgres.instanceCpuUs!.map((x) => x.toFixed(0)).join(', ')} µs against ${sqlite.instanceCpuUs!.map((x) => x.toFixed(0)).join(', ')}` : `mean of ${PG_ROUNDS} rounds' ratios ± standard error`;
    console.log(`  PostgreSQL against SQLite: ${postgres.ratio!.mean.toFixed(2)}× ± ${postgres.ratio!.standardError.toFixed(2)} (${how}); ${postgres.cpuUs.toFixed(0)} µs against ${sqlite.cpuUs.toFixed(0)} over all windows`);
    return summary;
  } finally {
    await dropPgSchema(postgresUrl, schema);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * CPU of what one sign-in ceremony records with metrics on, in this process: three HTTP answers, one ceremony and a
 * quarter of a commit (the group commit's average). The window figures above include the rest (Fastify's onResponse
 * listeners, the scrape-time work) but drift by more than this between windows.
 */
function measureRecordingCost(rounds = 200_000): number {
  const metrics = new PrometheusMetrics();
  const routes = ['/signin', '/signin/options', '/signin/verify'];
  const start = process.cpuUsage();
  for (let i = 0; i < rounds; i++) {
    for (const route of routes) metrics.httpRequest(route, route === '/signin' ? 'GET' : 'POST', 200, 0.002 + (i % 7) * 0.001);
    metrics.ceremony('signin', 'passkey', 'success');
    if (i % 4 === 0) metrics.commit(0.0002);
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / rounds;
}

function perCeremonyUs(r: RunFigures, withDatabase = false): number {
  return ((r.serverCpu + (withDatabase ? r.databaseCpu : 0)) * 1e6) / r.ceremoniesPerSecond;
}

/** Every goal of the run in one table, each beside its floor or reference measured in the same run. */
function printSummary(s: {
  results: RunFigures[];
  /** The cold sign-in and its floor, interleaved (compareWithFloor). */
  againstFloor?: VariantSummary[];
  /** Metrics off and on, interleaved (bench/interleaved.ts). */
  metricsCost?: VariantSummary[];
  /** What metrics on adds to one HTTP answer, in this process (bench/metricsMarginal.ts). */
  marginal?: MarginalCost;
  /** What the recorders one ceremony calls cost in this process (measureRecordingCost). */
  recordingUs: number;
  million?: RunFigures;
  redisRun?: RunFigures;
  balanced?: TwoInstancesResult;
  /** SQLite and PostgreSQL interleaved (compareWithSqlite). */
  interleavedWithSqlite?: VariantSummary[];
  tokenResults: { database: string; result: TokenBenchResult }[];
  floorUs: number;
  bareCpuUs: number;
  rawCpuUs: number;
  bare: number;
  rawVerify: number;
}): void {
  const line = (what: string, figure: string, reference: string) => console.log(`  ${what.padEnd(50)} ${figure.padEnd(48)} ${reference}`);
  console.log(`\nsummary (floor: 3 bare Fastify requests at ${s.bareCpuUs.toFixed(0)} µs + 1 raw ES256 verify at ${s.rawCpuUs.toFixed(0)} µs = ${s.floorUs.toFixed(0)} µs of CPU)`);
  const sqlite = s.results.find((r) => r.database === 'sqlite');
  const postgres = s.results.find((r) => r.database === 'postgres');
  if (sqlite) {
    line('1. cold sign-in, SQLite: CPU per ceremony', `${perCeremonyUs(sqlite).toFixed(0)} µs, ${(perCeremonyUs(sqlite) / s.floorUs).toFixed(2)}× the floor`, 'goal ≤ 2×');
    const interleaved = s.againstFloor?.[1];
    if (interleaved?.ratio) {
      line('   the same, interleaved with its floor', `${interleaved.ratio.mean.toFixed(2)}× ± ${interleaved.ratio.standardError.toFixed(2)} (${interleaved.cpuUs.toFixed(0)} µs against ${s.againstFloor![0]!.cpuUs.toFixed(0)})`, `goal ≤ 2×; ${FLOOR_INSTANCES} servers each, ${FLOOR_ROUNDS} rounds of ${FLOOR_WINDOW_SECONDS} s windows`);
    }
    line('   ceremonies/s, p50 / p99', `${sqlite.ceremoniesPerSecond.toFixed(0)}/s, ${sqlite.p50.toFixed(1)} / ${sqlite.p99.toFixed(1)} ms at c${CONCURRENCY}`, 'goal p99 < 25 ms');
    line('2. server RSS after the run', `${sqlite.rssMiB.toFixed(0)} MiB with ${USERS.toLocaleString('en')} users`, 'goal < 200 MB');
    if (s.million) line(`   with ${MILLION.toLocaleString('en')} accounts`, `${s.million.rssMiB.toFixed(0)} MiB (${(s.million.rssMiB - sqlite.rssMiB >= 0 ? '+' : '') + (s.million.rssMiB - sqlite.rssMiB).toFixed(0)} MiB)`, 'goal: flat');
    if (s.metricsCost) {
      const [off, on] = [s.metricsCost[0]!, s.metricsCost.at(-1)!];
      const how = METRICS_INSTANCES > 1 ? `${METRICS_INSTANCES} servers each, ${METRICS_ROUNDS} interleaved rounds; ± from the servers' spread` : `${METRICS_ROUNDS} interleaved rounds, mean ± standard error`;
      line('5. /metrics on: CPU per ceremony', `${formatCost(on.ratio!)} (${on.cpuUs.toFixed(0)} µs against ${off.cpuUs.toFixed(0)} off)`, `goal < 2 %; ${how}`);
      if (METRICS_INSTANCES === 1) line('   two servers both off (A/A)', formatCost(s.metricsCost[1]!.ratio!), 'what this harness resolves on this machine');
      line('   the recorders alone, in process', `${s.recordingUs.toFixed(2)} µs per ceremony (${((s.recordingUs / off.cpuUs) * 100).toFixed(2)} %)`, '3 requests, 1 ceremony, ¼ commit');
      if (s.marginal) {
        // Three answers per ceremony, each with the hook and its request recorder; plus the ceremony and commit
        // recorders (the figure above, which counts the three request recorders a second time: an upper side).
        const m = s.marginal.addedUs;
        const share = (us: number) => `${((us / off.cpuUs) * 100).toFixed(1)} %`;
        const perCeremony = (us: number) => 3 * us + s.recordingUs;
        line('   metrics on, what it adds, in process', `${perCeremony(m.median).toFixed(1)} µs per ceremony, ${share(perCeremony(m.median))} (${share(perCeremony(m.low))} to ${share(perCeremony(m.high))})`, 'goal < 2 %; 3 answers + recorders, of the off figure; the per-answer figure\'s 95 % interval');
      }
    }
  }
  if (postgres && sqlite) {
    const pgUs = perCeremonyUs(postgres, true);
    line('3. PostgreSQL: Latchkey + PostgreSQL per ceremony', `${pgUs.toFixed(0)} µs (${perCeremonyUs(postgres).toFixed(0)} + ${(pgUs - perCeremonyUs(postgres)).toFixed(0)}), ${(pgUs / perCeremonyUs(sqlite)).toFixed(2)}× SQLite`, 'goal ≤ 1.5×');
    const interleaved = s.interleavedWithSqlite?.[1];
    if (interleaved?.ratio) {
      line('   the same, interleaved with SQLite', `${interleaved.ratio.mean.toFixed(2)}× ± ${interleaved.ratio.standardError.toFixed(2)} (${interleaved.cpuUs.toFixed(0)} µs against ${s.interleavedWithSqlite![0]!.cpuUs.toFixed(0)})`, `goal ≤ 1.5×; ${PG_INSTANCES} servers each, ${PG_ROUNDS} rounds of ${PG_WINDOW_SECONDS} s windows`);
    }
    if (s.redisRun) {
      const redisUs = perCeremonyUs(s.redisRun, true);
      line('   challenges in Redis instead of the table', `${redisUs.toFixed(0)} µs, ${(redisUs / perCeremonyUs(sqlite)).toFixed(2)}× SQLite`, `challenges table ${pgUs.toFixed(0)} µs`);
    }
  }
  if (s.balanced && !('skipped' in s.balanced)) {
    const { one, two } = s.balanced;
    line('   behind HAProxy: 1 instance / 2 instances', `${one.ceremoniesPerSecond.toFixed(0)}/s / ${two.ceremoniesPerSecond.toFixed(0)}/s (${(two.ceremoniesPerSecond / one.ceremoniesPerSecond).toFixed(2)}×)`, `${cpus().length} cores; CPU per ceremony ${one.totalUs.toFixed(0)} / ${two.totalUs.toFixed(0)} µs`);
  } else if (s.balanced) line('   behind HAProxy', s.balanced.skipped, '');
  for (const { database, result } of s.tokenResults) {
    for (const g of [result.refresh, result.authorizationCode]) {
      const perVcpu = 1e6 / g.serverCpuUsPerGrant;
      line(`4. ${database} ${g.grant} grants`, `${g.grantsPerSecond.toFixed(0)}/s, ${g.serverCpuUsPerGrant.toFixed(0)} µs CPU each = ${perVcpu.toFixed(0)}/s per vCPU`, g.grant === 'refresh_token' ? `${(perVcpu / 120).toFixed(1)}× Keycloak's 120/s per vCPU (goal ≥ 10×)` : '');
    }
  }
  console.log(`  raw ES256 verify ${s.rawVerify.toFixed(0)}/s at the start (${s.results.map((r) => `${r.rawVerifyAfter?.toFixed(0)}/s after ${r.database}`).join(', ')}); bare Fastify route ${s.bare.toFixed(0)} requests/s`);
}

await main();
