/**
 * npm run bench:compare -- LABEL[:NAME=VALUE,...] LABEL[:NAME=VALUE,...] …: the cold sign-in path (bench/load.ts)
 * against servers started with different environments, their windows alternating (A B A B …) so the machine's
 * drift between windows falls on each alike. Prints server CPU per ceremony (and the event loop's), ceremonies/s
 * and RSS per window, then each variant's mean and its ratio to the first's. For settings that change the sign-in
 * path's cost (LATCHKEY_SIGNATURE_WORKERS, LATCHKEY_METRICS_PORT, …): what a change buys, measured in one run.
 *
 * Example: npm run bench:compare -- workers inline:LATCHKEY_SIGNATURE_WORKERS=0
 * A variant's BENCH_NODE_ARGS are Node.js or V8 flags for its server (space-separated; V8's are refused in NODE_OPTIONS),
 * e.g. `grow20:BENCH_NODE_ARGS=--heap-growing-percent=20`.
 * Settings (environment): BENCH_USERS (10000), BENCH_SECONDS (6 per window), BENCH_ROUNDS (3),
 * BENCH_CONCURRENCY (16), BENCH_WARMUP_SECONDS (2).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openDatabase } from '../src/db/connect.js';
import { insertUsers, makeUsers } from './seed.js';
import { runLoad } from './load.js';
import { freePort, ServerProcess, type Usage } from './serverProcess.js';

const env = process.env;
const USERS = Number(env.BENCH_USERS ?? 10_000);
const SECONDS = Number(env.BENCH_SECONDS ?? 6);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3);
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

const cpu = (u: Usage) => u.cpuUserMs + u.cpuSystemMs;
const perCeremony = new Map<string, number[]>();
try {
  for (let round = 1; round <= ROUNDS; round++) {
    for (const { label, env: extra } of variants) {
      const server = await ServerProcess.start(url, port, origin, extra);
      let before: Usage | undefined;
      let after: Usage | undefined;
      try {
        const result = await runLoad({
          port,
          origin,
          users,
          concurrency: CONCURRENCY,
          path: 'cold',
          warmupMs: WARMUP_SECONDS * 1000,
          durationMs: SECONDS * 1000,
          onWindow: async (edge) => {
            if (edge === 'start') before = await server.usage();
            else after = await server.usage();
          },
        });
        const us = ((cpu(after!) - cpu(before!)) * 1000) / result.ceremonies;
        const loop = after!.eventLoopCpuMs !== undefined ? ` (event loop ${(((after!.eventLoopCpuMs - before!.eventLoopCpuMs!) * 1000) / result.ceremonies).toFixed(0)})` : '';
        perCeremony.set(label, [...(perCeremony.get(label) ?? []), us]);
        const failed = result.failures.size ? `, FAILED ${[...result.failures].map(([w, n]) => `${n}× ${w}`).join('; ')}` : '';
        console.log(`  round ${round} ${label.padEnd(16)} ${us.toFixed(0).padStart(5)} µs per ceremony${loop}, ${(result.ceremonies / result.seconds).toFixed(0)}/s, RSS ${(after!.rss / 2 ** 20).toFixed(0)} MiB${failed}`);
        if (result.failures.size) process.exitCode = 1;
      } finally {
        await server.stop();
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
const base = mean(perCeremony.get(variants[0]!.label)!);
for (const { label } of variants) {
  const m = mean(perCeremony.get(label)!);
  console.log(`${label.padEnd(16)} mean ${m.toFixed(0)} µs per ceremony, ${(m / base).toFixed(3)}× ${variants[0]!.label}`);
}
