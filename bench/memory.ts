/**
 * npm run bench:memory: the server's resident memory after a window of sign-ins, and where it goes
 * (bench/memoryBreakdown.ts), with BENCH_USERS accounts seeded of which the first BENCH_ACTIVE_USERS sign in.
 * Run it with 10,000 and with 1,000,000 users to see whether memory grows with the number of accounts.
 *
 * Settings (environment): BENCH_USERS (10000), BENCH_ACTIVE_USERS (10000, at most BENCH_USERS),
 * BENCH_SECONDS (10), BENCH_WARMUP_SECONDS (2), BENCH_CONCURRENCY (32), BENCH_DATABASE (sqlite; or a
 * postgres:// URL, whose schema latchkey_memory is dropped and made anew). The server inherits the
 * environment, so NODE_OPTIONS or MALLOC_ARENA_MAX reach it; BENCH_NODE_ARGS adds Node.js flags to the server's
 * (e.g. `--max-semi-space-size=16`, V8's default, to compare).
 * When the window held fewer ceremonies than there are active users (a busy machine), sign-ins go on after it until
 * every active user has signed in, so the figures after the window do not depend on the machine's speed.
 * Flags: --snapshot writes a V8 heap snapshot of the server after the window to $TMPDIR.
 * The server runs bundled, as `latchkey serve` does (bench/serverProcess.ts serverEntry); BENCH_TSX=1 runs its
 * TypeScript through tsx instead, to see what that costs: tsx transforms each module on Node's module-hooks thread, a
 * V8 isolate of its own that keeps every transformed source.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { askOpenIdProvider, freePort, serverEntry } from './serverProcess.js';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { openDatabase, postgresConnectionString } from '../src/db/connect.js';
import { serverNodeFlags } from '../src/runtime.js';
import { runLoad } from './load.js';
import type { MemoryBreakdown } from './memoryBreakdown.js';
import { insertUsers, makeUsers } from './seed.js';

const env = process.env;
const USERS = Number(env.BENCH_USERS ?? 10_000);
const ACTIVE = Math.min(USERS, Number(env.BENCH_ACTIVE_USERS ?? 10_000));
const SECONDS = Number(env.BENCH_SECONDS ?? 10);
const WARMUP_SECONDS = Number(env.BENCH_WARMUP_SECONDS ?? 2);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 32);
const DATABASE = env.BENCH_DATABASE ?? 'sqlite';
const PG_SCHEMA = 'latchkey_memory';
/** Ceremonies to run (window first, then outside it) before the figures after the window; at least the active users. */
const MIN_CEREMONIES = Math.max(ACTIVE, Number(env.BENCH_MIN_CEREMONIES ?? 0));
const SNAPSHOT = process.argv.includes('--snapshot');
const here = fileURLToPath(new URL('.', import.meta.url));
const MiB = (n: number) => `${(n / 2 ** 20).toFixed(1).padStart(6)} MiB`;

function print(label: string, m: MemoryBreakdown): void {
  console.log(`\n${label}: RSS ${MiB(m.rssBeforeGc)} (${MiB(m.usage.rss)} after a full GC)`);
  console.log(`  memoryUsage      heapUsed ${MiB(m.usage.heapUsed)}  heapTotal ${MiB(m.usage.heapTotal)}  external ${MiB(m.usage.external)}  arrayBuffers ${MiB(m.usage.arrayBuffers)}`);
  console.log(`  V8 spaces        ${m.spaces.filter((s) => s.committed > 0).map((s) => `${s.name} ${(s.committed / 2 ** 20).toFixed(1)}/${(s.used / 2 ** 20).toFixed(1)}`).join(', ')} (MiB committed/used)`);
  console.log(`  before the GC    heapTotal ${MiB(m.heapTotalBeforeGc)}; ${m.mappingsBeforeGc.slice(0, 5).map((row) => `${row.name} ${MiB(row.rss).trim()}`).join(', ')}`);
  console.log(`  threads          ${Object.entries(m.threads).map(([n, c]) => (c > 1 ? `${n} ×${c}` : n)).join(', ')}`);
  console.log('  resident by mapping');
  for (const row of m.mappings.slice(0, 14)) console.log(`    ${MiB(row.rss)}  ${row.name} (${row.count})`);
  if (m.snapshot) console.log(`  heap snapshot    ${m.snapshot}`);
}

async function main(): Promise<void> {
  console.log(`Latchkey server memory: ${cpus().length} CPU (${cpus()[0]?.model}), Node ${process.version}; ${USERS.toLocaleString('en')} users, ${ACTIVE.toLocaleString('en')} signing in`);
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const { users, rows } = makeUsers(ACTIVE, origin, 'localhost');
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-memory-'));
  let databaseUrl = `sqlite:${join(dir, 'bench.db')}`;
  if (DATABASE.startsWith('postgres')) databaseUrl = postgresConnectionString(DATABASE, PG_SCHEMA);
  const db = openDatabase(databaseUrl);
  try {
    if (DATABASE.startsWith('postgres')) {
      await sql.raw(`drop schema if exists ${PG_SCHEMA} cascade; create schema ${PG_SCHEMA}`).execute(db.kysely);
    }
    await db.migrate();
    const start = performance.now();
    await insertUsers(db, rows, {
      total: USERS,
      onProgress: (done, total) => console.log(`  seeded ${done.toLocaleString('en')} of ${total.toLocaleString('en')} users (${((performance.now() - start) / 1000).toFixed(1)} s)`),
    });
  } finally {
    await db.close();
  }

  const entry = await serverEntry();
  const child = fork(entry.file, [], {
    // As `latchkey serve` runs (serverNodeFlags()), then any BENCH_NODE_ARGS (later flags win).
    execArgv: [...entry.execArgv, ...serverNodeFlags(), ...(env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])],
    env: { ...env, DATABASE_URL: databaseUrl, PORT: String(port), LATCHKEY_ORIGIN: origin, NODE_ENV: 'production' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ask = <T>(message: object, answer: string) =>
    new Promise<T>((resolve) => {
      const on = (m: { type?: string }) => {
        if (m?.type !== answer) return;
        child.off('message', on);
        resolve(m as T);
      };
      child.on('message', on);
      child.send(message);
    });
  try {
    const listening = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`server exited early with code ${code}`)));
      child.on('message', (m: { type?: string; port?: number }) => m?.type === 'listening' && resolve(m.port!));
    });
    child.removeAllListeners('exit');
    await askOpenIdProvider(listening);
    print('after start', await ask<MemoryBreakdown>({ type: 'memory' }, 'memory'));
    let cpuBefore = 0;
    let cpuAfter = 0;
    let rssAtEnd = 0;
    const result = await runLoad({
      port: listening,
      origin,
      users,
      concurrency: CONCURRENCY,
      warmupMs: WARMUP_SECONDS * 1000,
      durationMs: SECONDS * 1000,
      onWindow: async (edge) => {
        const u = await ask<{ rss: number; cpuUserMs: number; cpuSystemMs: number }>({ type: 'usage' }, 'usage');
        if (edge === 'start') cpuBefore = u.cpuUserMs + u.cpuSystemMs;
        else {
          cpuAfter = u.cpuUserMs + u.cpuSystemMs;
          rssAtEnd = u.rss;
        }
      },
    });
    const perSecond = result.ceremonies / result.seconds;
    console.log(
      `\nload: ${perSecond.toFixed(0)} ceremonies/s, server CPU ${(((cpuAfter - cpuBefore) * 1000) / result.ceremonies).toFixed(0)} µs per ceremony, RSS at the end of the window ${MiB(rssAtEnd)}` +
        (result.failures.size ? `, FAILED: ${[...result.failures].map(([w, n]) => `${n}× ${w}`).join('; ')}` : ''),
    );
    // On a busy machine the window may end before every active user signed in, which would understate the caches:
    // keep signing in (outside the measured window) until as many ceremonies as active users have run since it opened.
    let done = result.ceremonies;
    while (done < MIN_CEREMONIES) {
      const shift = (done - (done % CONCURRENCY)) % users.length;
      const more = await runLoad({ port: listening, origin, users: users.slice(shift).concat(users.slice(0, shift)), concurrency: CONCURRENCY, warmupMs: 0, durationMs: 3000 });
      done += more.ceremonies;
      for (const [w, n] of more.failures) result.failures.set(w, (result.failures.get(w) ?? 0) + n);
    }
    if (done > result.ceremonies) console.log(`topped up to ${done.toLocaleString('en')} ceremonies after the window (every active user signed in at least once)`);
    const snapshot = SNAPSHOT ? join(tmpdir(), `latchkey-server-${Date.now()}.heapsnapshot`) : undefined;
    print('after the window', await ask<MemoryBreakdown>({ type: 'memory', snapshot }, 'memory'));
    if (result.failures.size) process.exitCode = 1;
  } finally {
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.send({ type: 'stop' });
    });
    if (DATABASE.startsWith('postgres')) {
      const cleanup = openDatabase(databaseUrl);
      await sql.raw(`drop schema if exists ${PG_SCHEMA} cascade`).execute(cleanup.kysely).catch(() => {});
      await cleanup.close();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
