/**
 * npm run bench:compare -- LABEL[:NAME=VALUE,...] LABEL[:NAME=VALUE,...] …: the cold sign-in path (bench/load.ts)
 * against servers started with different environments, each started once and kept running while the load moves
 * between them in short windows whose order turns round each round (bench/interleaved.ts), so the machine's drift
 * falls on each alike. Prints server CPU per ceremony (and the event loop's), ceremonies/s and RSS per window, then
 * each variant's CPU over all its windows and its cost against the first (mean of the rounds' ratios ± standard
 * error). For settings that change the sign-in
 * path's cost (LATCHKEY_SIGNATURE_WORKERS, LATCHKEY_METRICS_PORT, …): what a change buys, measured in one run.
 *
 * Example: npm run bench:compare -- workers inline:LATCHKEY_SIGNATURE_WORKERS=0
 * A variant's BENCH_NODE_ARGS are Node.js or V8 flags for its server (space-separated; V8's are refused in NODE_OPTIONS),
 * e.g. `grow20:BENCH_NODE_ARGS=--heap-growing-percent=20`.
 * Settings (environment): BENCH_USERS (10000), BENCH_SECONDS (3 per window), BENCH_ROUNDS (8),
 * BENCH_CONCURRENCY (16), BENCH_WARMUP_SECONDS (2).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openDatabase } from '../src/db/connect.js';
import { insertUsers, makeUsers } from './seed.js';
import { formatCost, runInterleaved } from './interleaved.js';
import { freePort } from './serverProcess.js';

const env = process.env;
const USERS = Number(env.BENCH_USERS ?? 10_000);
const SECONDS = Number(env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 8);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 16);
const WARMUP_SECONDS = Number(env.BENCH_WARMUP_SECONDS ?? 2);

/** "label:NAME=VALUE,NAME=VALUE" → the label and the server's extra environment. */
function parseVariant(arg: string): { label: string; env: Record<string, string> } {
  const [label, settings = ''] = arg.split(/:(.*)/s, 2) as [string, string?];
  const vars: Record<string, string> = {};
  for (const pair of settings.split(',').filter(Boolean)) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`"${pair}" in "${arg}" is not NAME=VALUE`);
    vars[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return { label, env: vars };
}

const variants = process.argv.slice(2).map(parseVariant);
if (variants.length < 2) {
  console.error('usage: npm run bench:compare -- LABEL[:NAME=VALUE,...] LABEL[:NAME=VALUE,...] ...');
  process.exit(2);
}
env.LATCHKEY_SECRET_KEY ??= randomBytes(32).toString('base64url');
console.log(`cold sign-in, SQLite, ${USERS.toLocaleString('en')} users, c${CONCURRENCY}, ${ROUNDS} rounds of ${SECONDS} s windows; ${cpus().length} CPU (${cpus()[0]?.model}), Node ${process.version}`);
const port = await freePort();
const origin = `http://localhost:${port}`;
const { users, rows } = makeUsers(USERS, origin, 'localhost');
const dir = mkdtempSync(join(tmpdir(), 'latchkey-compare-'));
const url = `sqlite:${join(dir, 'bench.db')}`;
const db = openDatabase(url);
await db.migrate();
await insertUsers(db, rows, { total: rows.length });
await db.close();

variants.forEach((_, i) => copyFileSync(join(dir, 'bench.db'), join(dir, `variant-${i}.db`)));
try {
  const summaries = await runInterleaved({
    variants: variants.map((v, i) => ({ label: v.label, env: v.env, databaseUrl: `sqlite:${join(dir, `variant-${i}.db`)}` })),
    users,
    origin,
    concurrency: CONCURRENCY,
    rounds: ROUNDS,
    windowMs: SECONDS * 1000,
    settleMs: 500,
    warmupMs: WARMUP_SECONDS * 1000,
    onWindow: (w) => {
      const loop = w.eventLoopUs !== undefined ? ` (event loop ${w.eventLoopUs.toFixed(0)})` : '';
      const failed = w.failures.size ? `, FAILED ${[...w.failures].map(([what, n]) => `${n}× ${what}`).join('; ')}` : '';
      console.log(`  round ${w.round} ${w.label.padEnd(16)} ${w.cpuUs.toFixed(0).padStart(5)} µs per ceremony${loop}, ${w.ceremoniesPerSecond.toFixed(0)}/s, RSS ${w.rssMiB.toFixed(0)} MiB${failed}`);
    },
  });
  for (const s of summaries) {
    const against = s.ratio ? `, ${formatCost(s.ratio)} against ${variants[0]!.label} (mean of the rounds' ratios ± standard error)` : '';
    console.log(`${s.label.padEnd(16)} ${s.cpuUs.toFixed(0)} µs per ceremony over all windows${against}; ${s.ceremoniesPerSecond.toFixed(0)}/s, RSS ${s.rssMiB.toFixed(0)} MiB`);
    if (s.failures) process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
