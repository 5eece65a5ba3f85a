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
 * e.g. `grow20:BENCH_NODE_ARGS=--heap-growing-percent=20`. A variant's BENCH_SQL is run on its copy of the database
 * before its server starts (statements separated by `;`), for a schema change measured against the schema as it is:
 * e.g. `full 'partial:BENCH_SQL=drop index oidc_models_uid;create index oidc_models_uid on oidc_models (kind, uid) where uid is not null'`.
 * A variant's BENCH_SOURCE is another checkout to build its server from (a git worktree of another commit, with
 * node_modules beside it), so two commits are measured interleaved: `base:BENCH_SOURCE=../wt-base head`. This
 * checkout still migrates and seeds the database (and registers the token bench's service), so the other commit's
 * server must work on this one's schema.
 * BENCH_LOAD=refresh measures refresh-token grants instead (bench/tokens.ts: a confidential service, one signed-in
 * client per connection, each grant rotating its token) and prints CPU per grant.
 * Each variant runs on BENCH_INSTANCES servers (3), each with its own copy of the database, all interleaved: a server
 * process keeps an offset of its own for its lifetime (three servers of the same code read −4.7 % to +1.0 % apart
 * here), which one server per variant would fold into the difference; the error is then taken from the servers'
 * spread. BENCH_INSTANCES=1 gives one server per variant and the rounds' ratios, as before 2026-12-07 afternoon.
 * Settings (environment): BENCH_USERS (10000), BENCH_SECONDS (3 per window), BENCH_ROUNDS (8),
 * BENCH_CONCURRENCY (16; 32 for refresh grants, as bench/tokens.ts), BENCH_WARMUP_SECONDS (2), BENCH_LOAD (signin).
 * BENCH_PG_URL (e.g. postgres://127.0.0.1:5432/test) runs the variants on PostgreSQL instead: each variant in a schema
 * of its own there (seeded alike; its BENCH_SQL run in it), its servers sharing it, and PostgreSQL's CPU over each
 * window counted with that window's variant, as goal 3 counts it (BENCH_PG_CPU=0 leaves it out: Latchkey's alone, as
 * goal 4 counts a grant).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { openDatabase, postgresConnectionString } from '../src/db/connect.js';
import { insertUsers, makeUsers } from './seed.js';
import { formatCost, runInterleaved, type WindowLoad } from './interleaved.js';
import { measureGrants, prepareTokenClients } from './tokens.js';
import { freePort, postgresCpuMs, type ServerProcess } from './serverProcess.js';

const env = process.env;
const USERS = Number(env.BENCH_USERS ?? 10_000);
const SECONDS = Number(env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 8);
const LOAD = env.BENCH_LOAD ?? 'signin';
if (LOAD !== 'signin' && LOAD !== 'refresh') throw new Error(`BENCH_LOAD: "signin" or "refresh", not "${LOAD}"`);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? (LOAD === 'refresh' ? 32 : 16));
const UNIT = LOAD === 'refresh' ? 'grant' : 'ceremony';
const WARMUP_SECONDS = Number(env.BENCH_WARMUP_SECONDS ?? 2);
/** Servers per variant: one server per variant hides a per-process offset of a few per cent (interleaved.ts). */
const INSTANCES = Math.max(1, Math.floor(Number(env.BENCH_INSTANCES ?? 3)) || 1);

/** "label:NAME=VALUE,NAME=VALUE" → the label and the server's extra environment. */
function parseVariant(arg: string): { label: string; env: Record<string, string> } {
  const [label, settings = ''] = arg.split(/:(.*)/s, 2) as [string, string?];
  const vars: Record<string, string> = {};
  // A comma starts the next setting only before NAME= (BENCH_SQL's column lists have commas of their own).
  for (const pair of settings.split(/,(?=[A-Z][A-Z0-9_]*=)/).filter(Boolean)) {
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
const PG_URL = env.BENCH_PG_URL && env.BENCH_PG_URL !== 'off' ? env.BENCH_PG_URL : undefined;
const PG_CPU = PG_URL !== undefined && env.BENCH_PG_CPU !== '0';
const database = PG_URL ? `PostgreSQL (${PG_CPU ? "its CPU counted with each window's variant" : "Latchkey's CPU alone"})` : 'SQLite';
console.log(`${LOAD === 'refresh' ? 'refresh grants' : 'cold sign-in'}, ${database}, ${USERS.toLocaleString('en')} users, c${CONCURRENCY}, ${ROUNDS} rounds of ${SECONDS} s windows; ${cpus().length} CPU (${cpus()[0]?.model}), Node ${process.version}`);
const port = await freePort();
const origin = `http://localhost:${port}`;
const { users, rows } = makeUsers(USERS, origin, 'localhost');
const dir = mkdtempSync(join(tmpdir(), 'latchkey-compare-'));

/** Each variant's database: a copy of one seeded SQLite file, or a schema of its own on PostgreSQL, seeded alike. */
const databaseUrls: string[] = [];
const schemas = variants.map((_, i) => `latchkey_compare_${process.pid}_${i}`);
const admin = PG_URL ? openDatabase(PG_URL) : undefined;
if (!admin) {
  const db = openDatabase(`sqlite:${join(dir, 'bench.db')}`);
  await db.migrate();
  await insertUsers(db, rows, { total: rows.length });
  await db.close();
}
for (const [i, v] of variants.entries()) {
  let url: string;
  if (admin) {
    await sql.raw(`create schema ${schemas[i]}`).execute(admin.kysely);
    url = postgresConnectionString(PG_URL!, schemas[i]);
  } else {
    copyFileSync(join(dir, 'bench.db'), join(dir, `variant-${i}.db`));
    url = `sqlite:${join(dir, `variant-${i}.db`)}`;
  }
  databaseUrls.push(url);
  if (!admin && !v.env.BENCH_SQL) continue;
  const db = openDatabase(url);
  if (admin) {
    await db.migrate();
    await insertUsers(db, rows, { total: rows.length });
  }
  for (const statement of (v.env.BENCH_SQL ?? '').split(';').filter((x) => x.trim())) await sql.raw(statement).execute(db.kysely);
  await db.close();
}

/** Refresh grants on one server (BENCH_LOAD=refresh): its clients signed in once, then each window rotating tokens. */
async function refreshGrants(server: ServerProcess, databaseUrl: string): Promise<WindowLoad> {
  const base = { port: server.port, origin, databaseUrl, users, concurrency: CONCURRENCY, usage: () => server.usage() };
  const prepared = await prepareTokenClients(base);
  return {
    run: async ({ settleMs, durationMs, onWindow }) => {
      const g = await measureGrants({ ...base, warmupMs: settleMs, durationMs, onWindow: (_grant, edge) => onWindow(edge) }, 'refresh_token', prepared.clients, prepared.refresh);
      return { count: g.grants, seconds: g.seconds, failures: g.failures };
    },
    close: prepared.close,
  };
}
try {
  const summaries = await runInterleaved({
    variants: variants.map((v, i) => ({ label: v.label, env: v.env, databaseUrl: databaseUrls[i]!, ...(PG_CPU ? { otherCpuMs: postgresCpuMs } : {}) })),
    users,
    origin,
    concurrency: CONCURRENCY,
    rounds: ROUNDS,
    windowMs: SECONDS * 1000,
    settleMs: 500,
    warmupMs: WARMUP_SECONDS * 1000,
    instances: INSTANCES,
    ...(LOAD === 'refresh' ? { load: (server, v) => refreshGrants(server, v.databaseUrl) } : {}),
    onWindow: (w) => {
      const loop = w.eventLoopUs !== undefined ? ` (event loop ${w.eventLoopUs.toFixed(0)})` : '';
      const failed = w.failures.size ? `, FAILED ${[...w.failures].map(([what, n]) => `${n}× ${what}`).join('; ')}` : '';
      console.log(`  round ${w.round} ${w.label.padEnd(16)} ${w.cpuUs.toFixed(0).padStart(5)} µs per ${UNIT}${loop}, ${w.ceremoniesPerSecond.toFixed(0)}/s, RSS ${w.rssMiB.toFixed(0)} MiB${failed}`);
    },
  });
  for (const s of summaries) {
    const how = INSTANCES > 1 ? `ratio of the ${INSTANCES} servers' means ± standard error from their spread` : "mean of the rounds' ratios ± standard error";
    const against = s.ratio ? `, ${formatCost(s.ratio)} against ${variants[0]!.label} (${how})` : '';
    const servers = s.instanceCpuUs ? `; servers ${s.instanceCpuUs.map((x) => x.toFixed(0)).join(', ')} µs` : '';
    console.log(`${s.label.padEnd(16)} ${s.cpuUs.toFixed(0)} µs per ${UNIT} over all windows${against}${servers}; ${s.ceremoniesPerSecond.toFixed(0)}/s, RSS ${s.rssMiB.toFixed(0)} MiB`);
    if (s.failures) process.exitCode = 1;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  if (admin) {
    for (const schema of schemas) await sql.raw(`drop schema if exists ${schema} cascade`).execute(admin.kysely);
    await admin.close();
  }
}
