/**
 * The benchmark's server: one Latchkey process, started by bench/signin.ts with
 * `child_process.fork` so its event loop, CPU and RSS are its own. It listens on
 * loopback and answers the parent over the IPC channel only (no extra routes).
 *
 * Environment: the usual Latchkey variables (DATABASE_URL, LATCHKEY_ORIGIN, PORT).
 * Messages in: { type: 'usage' } → { type: 'usage', rss, maxRss, cpuUserMs, cpuSystemMs, eventLoopCpuMs,
 *              groupCommits: { commits, transactions, reruns }, pgStatements, pgDeferred (statements sent to PostgreSQL; of them, deferred),
 *              autocommitGroups: { count, statements, reruns, durable } (the shared connection's groups: src/db/pgClient.ts) };
 *              { type: 'profile-start' } / { type: 'profile-stop', file } → a V8 CPU
 *              profile of just the measured window, written to `file`;
 *              { type: 'memory', snapshot?: file } → where the RSS goes (memoryBreakdown.ts), after a full GC;
 *              with `snapshot`, a V8 heap snapshot written to that file first;
 *              { type: 'sql-statements' } → { type: 'sql-statements', statements: [{ sql, calls, us }] }: with
 *              BENCH_SQL_STATEMENTS=1 on SQLite, every statement the event loop ran since the last ask, by its SQL,
 *              with its calls and the time spent in better-sqlite3 (run, get, all: SQLite's work and the rows
 *              made into objects), then counted afresh;
 *              { type: 'stop' } → closes the server and exits.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import Fastify from 'fastify';
import type pg from 'pg';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/index.js';
import { memoryBreakdown } from './memoryBreakdown.js';
import { autocommitGroups, deferredStatements, implicitTransactions } from '../src/db/pgClient.js';
import { openDatabase } from '../src/db/connect.js';


// The server logs as `latchkey serve` does by default (a pino logger, which also makes Fastify time every answer, at
// info, with the access log's lines for answers of 400 and above only), or at BENCH_LOG_LEVEL (silent: nothing is
// written); LATCHKEY_ACCESS_LOG=all writes a line per request. BENCH_NO_LOGGER=1 builds the app without a logger at
// all, which serve never does, to measure what the logger's per-request work costs.
const config = loadConfig({ ...process.env, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info' });
const noLogger = process.env.BENCH_NO_LOGGER === '1';

// Every statement sent to PostgreSQL (Kysely's BEGIN and COMMIT too, where they are sent), deferred or awaited
// (src/db/pgClient.ts): each query handed to pg, where an implicit transaction's statements count one each.
// pg is loaded only for PostgreSQL, as the server loads it (src/db/connect.ts), so bench:memory on SQLite sees no pg.
let pgStatements = 0;
const groupedStatements = () => implicitTransactions.statements - implicitTransactions.count + autocommitGroups.statements - autocommitGroups.count;
if (config.databaseUrl.startsWith('postgres')) {
  const { default: pgModule } = await import('pg');
  const pgQuery = pgModule.Client.prototype.query;
  pgModule.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    pgStatements++;
    return (pgQuery as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof pgQuery;
}
// BENCH_SQL_STATEMENTS=1: time each SQLite statement on the event loop by its SQL (the checkpoint worker has its own
// copy of better-sqlite3's classes, so its checkpoints are not counted), for { type: 'sql-statements' }.
const sqlStatements = new Map<string, { calls: number; ns: bigint }>();
if (process.env.BENCH_SQL_STATEMENTS === '1') await timeSqliteStatements();

// BENCH_BARE=1: a bare Fastify JSON route instead of Latchkey, to calibrate the machine and the load generator.
// BENCH_PLAIN_PG=1: pg's own client on PostgreSQL (every statement unnamed and awaited), to measure what PgClient saves.
const plainDb = process.env.BENCH_PLAIN_PG === '1' && config.databaseUrl.startsWith('postgres') ? openDatabase(config.databaseUrl, { plainPostgresClient: true }) : undefined;
const app = process.env.BENCH_BARE === '1' ? bareApp() : await buildApp(config, { rateLimitPerMinute: 0, ...(noLogger ? { logger: false } : {}), ...(plainDb ? { db: plainDb } : {}) });
await app.listen({ host: '127.0.0.1', port: config.port });
// LATCHKEY_METRICS_PORT set: metrics recorded and served, as in production, to measure what they cost.
if ('metricsListener' in app) await app.metricsListener.listen();
const address = app.server.address();
const port = typeof address === 'object' && address ? address.port : config.port;

function send(message: object): void {
  process.send?.(message);
}

let inspector: Session | undefined;
// BENCH_ALLOCATIONS=1: beside each CPU profile, a sampling heap profile of everything allocated in the window (also
// what the GC has since collected), as `<file>.heapprofile` (summarised by bench/profileSummary.ts).
const ALLOCATIONS = process.env.BENCH_ALLOCATIONS === '1';

function post(method: string, params?: object): Promise<any> {
  return new Promise((resolve, reject) => inspector!.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))));
}

process.on('message', async (message: { type?: string; file?: string; snapshot?: string }) => {
  if (message?.type === 'profile-start') {
    inspector = new Session();
    inspector.connect();
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 200 });
    await post('Profiler.start');
    if (ALLOCATIONS) {
      await post('HeapProfiler.enable');
      await post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    }
    send({ type: 'profile-started' });
  } else if (message?.type === 'profile-stop' && inspector) {
    const { profile } = await post('Profiler.stop');
    writeFileSync(message.file!, JSON.stringify(profile));
    if (ALLOCATIONS) {
      const { profile: allocations } = await post('HeapProfiler.stopSampling');
      writeFileSync(message.file!.replace(/\.cpuprofile$/, '') + '.heapprofile', JSON.stringify(allocations));
    }
    inspector.disconnect();
    inspector = undefined;
    send({ type: 'profile-stopped' });
  } else if (message?.type === 'usage') {
    const usage = process.resourceUsage();
    send({
      type: 'usage',
      rss: process.memoryUsage().rss,
      maxRss: peakRssBytes() ?? usage.maxRSS * 1024,
      cpuUserMs: usage.userCPUTime / 1000,
      cpuSystemMs: usage.systemCPUTime / 1000,
      eventLoopCpuMs: eventLoopThreadCpuMs(),
      // An implicit transaction, or a group of autocommit statements, is one query handed to pg: one round trip.
      pgStatements: pgStatements + groupedStatements(),
      pgDeferred: deferredStatements.count + groupedStatements(),
      autocommitGroups: { ...autocommitGroups },
      groupCommits: 'latchkey' in app ? app.latchkey.store.groupCommitStats : undefined,
    });
  } else if (message?.type === 'sql-statements') {
    const statements = [...sqlStatements].map(([sql, { calls, ns }]) => ({ sql, calls, us: Number(ns) / 1000 }));
    sqlStatements.clear();
    send({ type: 'sql-statements', statements });
  } else if (message?.type === 'memory') {
    send({ type: 'memory', ...(await memoryBreakdown(message.snapshot)) });
  } else if (message?.type === 'stop') {
    void app.close().then(() => {
      process.disconnect?.();
      process.exit(0);
    });
  }
});
// The parent going away (Ctrl-C, crash) must not leave a server behind.
process.on('disconnect', () => process.exit(0));

send({ type: 'listening', port });

/**
 * This process's own peak RSS (VmHWM). Not getrusage's maxRSS: Linux carries that across exec from the process that
 * forked us, so a server forked by a bench grown to 300 MB after seeding a million accounts read 300 MB at once.
 */
function peakRssBytes(): number | undefined {
  try {
    const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return kib === undefined ? undefined : Number(kib) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * CPU time of the main (event-loop) thread alone, in ms, from /proc (Linux; undefined elsewhere): the process
 * figure also counts libuv's thread pool (signature checks) and worker threads (WAL checkpoints).
 */
function eventLoopThreadCpuMs(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, USER_HZ 100
  } catch {
    return undefined;
  }
}

async function timeSqliteStatements(): Promise<void> {
  const { default: SQLite } = await import('better-sqlite3');
  const probe = new SQLite(':memory:');
  const statement = Object.getPrototypeOf(probe.prepare('select 1')) as Record<string, (...args: unknown[]) => unknown>;
  probe.close();
  for (const method of ['run', 'get', 'all']) {
    const original = statement[method]!;
    statement[method] = function (this: { source: string }, ...args: unknown[]) {
      const start = process.hrtime.bigint();
      try {
        return original.apply(this, args);
      } finally {
        const entry = sqlStatements.get(this.source) ?? { calls: 0, ns: 0n };
        entry.calls++;
        entry.ns += process.hrtime.bigint() - start;
        sqlStatements.set(this.source, entry);
      }
    };
  }
}

function bareApp() {
  const bare = Fastify({ logger: false });
  bare.post('/bare', async () => ({ status: 'ok' }));
  return bare;
}
