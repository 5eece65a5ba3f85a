/**
 * npm run bench:requests: where a cold sign-in's server CPU goes, request by request. One server on SQLite and the
 * bare route's server, both kept running while the load moves between kinds of request in short windows whose order
 * turns round each round (as bench/interleaved.ts does for variants), so the machine's drift falls on every kind
 * alike. Each window drives one kind only, from CONCURRENCY connections, and reads the server's CPU (every thread)
 * and its event-loop thread's per request:
 *
 *   bare        POST /bare on the bare Fastify server (the floor's request)
 *   health      GET /healthz on Latchkey: what every request pays for the app's hooks
 *   page        GET /signin with no cookie (a new binding cookie and CSRF token: the cold path's first request)
 *   options     POST /signin/options, discoverable (no email) and email-first (the account and its passkeys looked
 *               up, the decoy drawn), each alone
 *   sign-in     POST /signin/options then /signin/verify, the two modes alternating, from a page loaded once per
 *               connection: a sign-in's second and third requests
 *
 * and derives verify (sign-in less the two options' mean) and a cold ceremony (page + sign-in), each against the
 * floor's share: a bare request, and for verify a raw ES256 verify too (timed in this process after each round).
 *
 * Settings (environment): BENCH_USERS (2000), BENCH_SECONDS (2 per window), BENCH_ROUNDS (4), BENCH_CONCURRENCY
 * (16), BENCH_PROFILE (a kind: a V8 CPU profile of its window in the first round, in
 * $TMPDIR/latchkey-bench-profiles/, summarised by bench/profileSummary.ts), BENCH_SQL_STATEMENTS=1 (each kind's
 * SQLite statements on the event loop, by their SQL: calls and µs per request over every round, from bench/server.ts;
 * the timing's own cost, two clock reads and a map update per statement, lands in the CPU figures).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { openDatabase } from '../src/db/connect.js';
import { Connection, loadSignInPage } from './load.js';
import { measureRawVerifyCost } from './rawVerify.js';
import { insertUsers, makeUsers, type BenchUser } from './seed.js';
import { freePort, ServerProcess, type Usage } from './serverProcess.js';
import { meanAndError } from './statistics.js';

const env = process.env;
const USERS = Number(env.BENCH_USERS ?? 2000);
const SECONDS = Number(env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 4);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 16);
const KINDS = ['bare', 'health', 'page', 'options discoverable', 'options email', 'sign-in'] as const;
type Kind = (typeof KINDS)[number];
if (!(USERS >= CONCURRENCY)) throw new Error(`BENCH_USERS (${USERS}) must be at least BENCH_CONCURRENCY (${CONCURRENCY}): each connection signs in people of its own`);
const PROFILE = env.BENCH_PROFILE as Kind | undefined;
if (PROFILE && !KINDS.includes(PROFILE)) throw new Error(`BENCH_PROFILE: one of ${KINDS.join(', ')}`);

interface Figures {
  /** Server CPU (user + system, every thread) per request, µs; per sign-in (two requests) for 'sign-in'. */
  cpuUs: number;
  eventLoopUs?: number;
  /** Requests (sign-ins for 'sign-in') counted in the window. */
  count: number;
  /** BENCH_SQL_STATEMENTS=1: the SQLite statements the server ran in the window. */
  statements?: Statement[];
}

interface Statement {
  sql: string;
  calls: number;
  us: number;
}

const SQL_STATEMENTS = env.BENCH_SQL_STATEMENTS === '1';
const askStatements = async (server: ServerProcess) => (await server.ask<{ statements: Statement[] }>({ type: 'sql-statements' }, 'sql-statements')).statements;

const cpuMs = (u: Usage) => u.cpuUserMs + u.cpuSystemMs;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One request (or, for 'sign-in', one options and verify pair) of `kind`; throws on an unexpected answer. */
async function once(kind: Kind, connection: Connection, headers: string, user: BenchUser, n: number, origin: string): Promise<void> {
  const expect = (what: string, status: number, body: string) => {
    if (status !== 200) throw new Error(`${what}: ${status} ${body.slice(0, 160)}`);
  };
  if (kind === 'bare') {
    const r = await connection.request('POST', '/bare', 'accept: application/json\r\ncontent-type: application/json\r\n', '{}');
    return expect('POST /bare', r.status, r.body);
  }
  if (kind === 'health') {
    const r = await connection.request('GET', '/healthz', 'accept: application/json\r\nuser-agent: latchkey-bench\r\n');
    return expect('GET /healthz', r.status, r.body);
  }
  if (kind === 'page') {
    await loadSignInPage(connection, origin);
    return;
  }
  const email = kind === 'options email' || (kind === 'sign-in' && n % 2 === 1);
  const options = await connection.request('POST', '/signin/options', headers, JSON.stringify(email ? { mode: 'email', email: user.email } : { mode: 'discoverable' }));
  expect('POST /signin/options', options.status, options.body);
  if (kind !== 'sign-in') return;
  const challenge = (JSON.parse(options.body) as { options: PublicKeyCredentialRequestOptionsJSON }).options;
  const response = user.authenticator.getAssertion(challenge, { credentialId: user.credentialId });
  const verify = await connection.request('POST', '/signin/verify', headers, JSON.stringify({ response }));
  expect('POST /signin/verify', verify.status, verify.body);
}

async function window(kind: Kind, server: ServerProcess, users: BenchUser[], origin: string, profile?: string): Promise<Figures> {
  let stopped = false;
  let counting = false;
  let count = 0;
  const loop = async (slot: number) => {
    const connection = await Connection.open(server.port);
    try {
      const mine = users.filter((_, i) => i % CONCURRENCY === slot);
      const headers = kind === 'bare' || kind === 'health' ? '' : await loadSignInPage(connection, origin);
      for (let n = 0; !stopped; n++) {
        await once(kind, connection, headers, mine[n % mine.length]!, n, origin);
        if (counting) count++;
      }
    } finally {
      connection.close();
    }
  };
  const loops = Promise.all(Array.from({ length: CONCURRENCY }, (_, slot) => loop(slot)));
  loops.catch(() => (stopped = true));
  await sleep(500);
  if (profile) await server.ask({ type: 'profile-start' }, 'profile-started');
  if (SQL_STATEMENTS) await askStatements(server);
  const before = await server.usage();
  counting = true;
  await sleep(SECONDS * 1000);
  counting = false;
  const after = await server.usage();
  const statements = SQL_STATEMENTS ? await askStatements(server) : undefined;
  if (profile) {
    await server.ask({ type: 'profile-stop', file: profile }, 'profile-stopped');
    console.log(`  CPU profile of the ${kind} window: ${profile}`);
  }
  stopped = true;
  await loops;
  const n = Math.max(1, count);
  return {
    cpuUs: ((cpuMs(after) - cpuMs(before)) * 1000) / n,
    eventLoopUs: after.eventLoopCpuMs !== undefined && before.eventLoopCpuMs !== undefined ? ((after.eventLoopCpuMs - before.eventLoopCpuMs) * 1000) / n : undefined,
    count: n,
    ...(statements ? { statements } : {}),
  };
}

/** Each kind's statements over every round: calls and µs per request (per sign-in for 'sign-in'), costliest first. */
function printStatements(figures: Map<Kind, Figures[]>): void {
  console.log(`\nSQLite statements on the event loop (BENCH_SQL_STATEMENTS=1), per request over every round; the sign-in kind per sign-in (options + verify)`);
  for (const [kind, windows] of figures) {
    if (kind === 'bare') continue;
    const requests = windows.reduce((sum, w) => sum + w.count, 0);
    const bySql = new Map<string, { calls: number; us: number }>();
    for (const statement of windows.flatMap((w) => w.statements ?? [])) {
      const entry = bySql.get(statement.sql) ?? { calls: 0, us: 0 };
      entry.calls += statement.calls;
      entry.us += statement.us;
      bySql.set(statement.sql, entry);
    }
    const rows = [...bySql].map(([sql, e]) => ({ sql, calls: e.calls / requests, us: e.us / requests })).filter((r) => r.calls >= 0.01);
    const total = rows.reduce((sum, r) => sum + r.us, 0);
    console.log(`  ${kind}: ${total.toFixed(1)} µs in ${rows.reduce((sum, r) => sum + r.calls, 0).toFixed(2)} statements`);
    for (const r of rows.sort((a, b) => b.us - a.us)) {
      console.log(`    ${r.us.toFixed(1).padStart(6)} µs ${r.calls.toFixed(2).padStart(5)}×  ${r.sql.replace(/\s+/g, ' ').slice(0, 110)}`);
    }
  }
}

async function main(): Promise<void> {
  console.log(`Latchkey per-request benchmark: ${cpus().length} CPU (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}; ${ROUNDS} rounds of ${SECONDS} s windows, ${CONCURRENCY} connections`);
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const { users, rows } = makeUsers(USERS, origin, 'localhost');
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-requests-'));
  const url = `sqlite:${join(dir, 'bench.db')}`;
  try {
    const db = openDatabase(url);
    await db.migrate();
    await insertUsers(db, rows);
    await db.close();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const figures = new Map<Kind, Figures[]>(KINDS.map((k) => [k, []]));
  const verifies: number[] = [];
  let latchkey: ServerProcess | undefined;
  let bare: ServerProcess | undefined;
  try {
    latchkey = await ServerProcess.start(url, port, origin);
    bare = await ServerProcess.start('sqlite::memory:', await freePort(), origin, { BENCH_BARE: '1' });
    // Warm both servers' JIT on every kind before the first measured round.
    for (const kind of KINDS) await window(kind, kind === 'bare' ? bare : latchkey, users, origin);
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 ? [...KINDS] : [...KINDS].reverse();
      for (const kind of order) {
        let profile: string | undefined;
        if (round === 1 && kind === PROFILE) {
          mkdirSync(join(tmpdir(), 'latchkey-bench-profiles'), { recursive: true });
          profile = join(tmpdir(), 'latchkey-bench-profiles', `requests-${kind.replace(' ', '-')}-${new Date().toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
        }
        figures.get(kind)!.push(await window(kind, kind === 'bare' ? bare : latchkey, users, origin, profile));
      }
      verifies.push(measureRawVerifyCost(200).cpuUs);
      console.log(`  round ${round}: ${KINDS.map((k) => `${k} ${figures.get(k)!.at(-1)!.cpuUs.toFixed(0)}`).join(', ')} µs; raw verify ${verifies.at(-1)!.toFixed(0)} µs`);
    }
  } finally {
    await Promise.all([latchkey?.stop(), bare?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }

  // Per round, so that each derived figure and ratio is taken from windows seconds apart.
  const perRound = (f: (r: number) => number) => meanAndError(Array.from({ length: ROUNDS }, (_, r) => f(r)));
  const cpu = (kind: Kind, r: number) => figures.get(kind)![r]!.cpuUs;
  const verify = (r: number) => cpu('sign-in', r) - (cpu('options discoverable', r) + cpu('options email', r)) / 2;
  const lines: [string, (r: number) => number, (r: number) => number, string][] = [
    ['bare route', (r) => cpu('bare', r), (r) => cpu('bare', r), 'a bare request'],
    ['GET /healthz', (r) => cpu('health', r), (r) => cpu('bare', r), 'a bare request'],
    ['GET /signin', (r) => cpu('page', r), (r) => cpu('bare', r), 'a bare request'],
    ['POST /signin/options, discoverable', (r) => cpu('options discoverable', r), (r) => cpu('bare', r), 'a bare request'],
    ['POST /signin/options, email-first', (r) => cpu('options email', r), (r) => cpu('bare', r), 'a bare request'],
    ['POST /signin/verify (derived)', verify, (r) => cpu('bare', r) + verifies[r]!, 'a bare request + a raw verify'],
    ['cold ceremony: page + options + verify', (r) => cpu('page', r) + cpu('sign-in', r), (r) => 3 * cpu('bare', r) + verifies[r]!, 'the floor (3 bare + 1 verify)'],
  ];
  console.log(`\nserver CPU per request, every thread (mean of ${ROUNDS} rounds ± standard error), against its share of the floor in the same round`);
  for (const [what, value, floor, floorName] of lines) {
    const v = perRound(value);
    const ratio = perRound((r) => value(r) / floor(r));
    console.log(`  ${what.padEnd(40)} ${v.mean.toFixed(0).padStart(5)} µs ± ${v.standardError.toFixed(0).padEnd(4)} ${ratio.mean.toFixed(2)}× ± ${ratio.standardError.toFixed(2)} ${floorName}`);
  }
  const loop = (kind: Kind) => meanAndError(figures.get(kind)!.map((f) => f.eventLoopUs ?? NaN));
  if (!Number.isNaN(loop('bare').mean)) {
    console.log(`  event-loop thread alone: ${KINDS.map((k) => `${k} ${loop(k).mean.toFixed(0)} µs`).join(', ')} (sign-in: two requests)`);
  }
  if (SQL_STATEMENTS) printStatements(figures);
}

await main();
