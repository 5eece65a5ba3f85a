/**
 * The benchmark's server process, seen from the parent: fork bench/server.ts (one Latchkey process with its own
 * event loop, CPU and RSS) and talk to it over IPC. Shared by the benchmarks that run against a real server
 * (bench/tokens.ts; bench/signin.ts keeps its own copy for now).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { build } from 'esbuild';
import { createServer } from 'node:net';
import { serverNodeFlags } from '../src/runtime.js';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

/** What bench/server.ts answers to { type: 'usage' }. */
export interface Usage {
  rss: number;
  maxRss: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  /** The main thread's alone (Linux). */
  eventLoopCpuMs?: number;
  /** Commits shared by transactions so far, and (PostgreSQL) groups run again one by one (src/db/groupCommit.ts). */
  groupCommits?: { commits: number; transactions: number; reruns: number };
  autocommitGroups?: { count: number; statements: number; reruns: number; durable: number };
  /** PostgreSQL: statements sent so far, and of them deferred (src/db/pgClient.ts). */
  pgStatements?: number;
  pgDeferred?: number;
}

export type ServerUsage = Usage;

/** A free TCP port on loopback (to know the origin before the server starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/**
 * One request to the OpenID provider (discovery), as a real server has answered before its sign-ins: oidc-provider runs
 * each request in an AsyncLocalStorage, and on Node.js 22 without AsyncContextFrame (src/runtime.ts) its first request
 * turns promise hooks on for every later promise of the process. A server that had answered none would be measured in
 * a state no server in service is in.
 */
export async function askOpenIdProvider(port: number): Promise<void> {
  const answer = await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`);
  if (answer.status !== 200) throw new Error(`discovery answered ${answer.status}`);
  await answer.arrayBuffer();
}

/** BENCH_TSX=1: the server runs its TypeScript through tsx instead of bundled, as `latchkey` ran before it bundled. */
const THROUGH_TSX = process.env.BENCH_TSX === '1';
const bundled = new Map<string, Promise<string>>();

/**
 * bench/server.ts bundled by esbuild as bin/latchkey.js bundles src/main.ts (packages external, chunks), into a
 * directory one level below src/ so the paths modules take from import.meta.url hold; made once per run and removed
 * when it ends. The servers measured run what `latchkey serve` runs: JavaScript, no TypeScript loader.
 * `source`: another checkout's root (a git worktree of another commit, its node_modules in place) to bundle instead
 * of this one's: a bench:compare variant's BENCH_SOURCE, so two commits are measured interleaved.
 */
export function serverEntry(source?: string): Promise<{ file: string; execArgv: string[] }> {
  const root = source ? resolve(source) : join(here, '..');
  if (THROUGH_TSX) return Promise.resolve({ file: join(root, 'bench', 'server.ts'), execArgv: ['--import', 'tsx'] });
  let file = bundled.get(root);
  if (!file) {
    file = (async () => {
      const outdir = mkdtempSync(join(root, 'src', '.bench-built-'));
      process.once('exit', () => rmSync(outdir, { recursive: true, force: true }));
      await build({ entryPoints: [join(root, 'bench', 'server.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', splitting: true, outdir, tsconfig: join(root, 'tsconfig.json'), logLevel: 'warning' });
      return join(outdir, 'server.js');
    })();
    bundled.set(root, file);
  }
  return file.then((f) => ({ file: f, execArgv: [] }));
}

export class ServerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  /** Fork bench/server.ts (bundled: {@link serverEntry}) on `databaseUrl` (already migrated) and wait until it listens. */
  static async start(databaseUrl: string, port: number, origin: string, extraEnv: Record<string, string> = {}): Promise<ServerProcess> {
    const entry = await serverEntry(extraEnv.BENCH_SOURCE);
    const child = fork(entry.file, [], {
      // BENCH_SERVER_FLAGS (the parent's) for every server; BENCH_NODE_ARGS in extraEnv for this one (a bench:compare variant).
      execArgv: [...entry.execArgv, ...serverNodeFlags(), ...`${process.env.BENCH_SERVER_FLAGS ?? ''} ${extraEnv.BENCH_NODE_ARGS ?? ''}`.split(' ').filter(Boolean)],
      env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), LATCHKEY_ORIGIN: origin, NODE_ENV: 'production', ...extraEnv },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const listening = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`server exited early with code ${code}`)));
      child.on('message', (m: { type?: string; port?: number }) => {
        if (m?.type === 'listening') resolve(m.port!);
      });
    });
    child.removeAllListeners('exit');
    // The bare Fastify route's server (bench/server.ts, BENCH_BARE) has no provider.
    if ((extraEnv.BENCH_BARE ?? process.env.BENCH_BARE) !== '1') await askOpenIdProvider(listening);
    return new ServerProcess(child, listening);
  }

  /** Send a message and wait for the answer of type `answer`. */
  ask<T>(message: { type: string; file?: string }, answer: string): Promise<T> {
    return new Promise((resolve) => {
      const onMessage = (m: { type?: string }) => {
        if (m?.type !== answer) return;
        this.child.off('message', onMessage);
        resolve(m as T);
      };
      this.child.on('message', onMessage);
      this.child.send(message);
    });
  }

  usage(): Promise<Usage> {
    return this.ask<Usage>({ type: 'usage' }, 'usage');
  }

  /** CPU time (user + system) used so far, in ms. */
  async cpuMs(): Promise<number> {
    const u = await this.usage();
    return u.cpuUserMs + u.cpuSystemMs;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.send({ type: 'stop' });
    });
  }
}

/** CPU time of the PostgreSQL server processes on this machine, in ms (Linux); 0 elsewhere. */
export function postgresCpuMs(): number {
  return namedProcessesCpuMs('postgres');
}

/** CPU time of the Redis server on this machine, in ms (Linux); 0 elsewhere. */
export function redisCpuMs(): number {
  return namedProcessesCpuMs('redis-server');
}

/**
 * CPU time of the processes whose name starts with `name`, in ms (Linux); 0 elsewhere. Each process's own time and
 * that of its children which have ended (cutime, cstime): PostgreSQL's postmaster collects an ended backend's time
 * (a pool closing an idle connection, an autovacuum worker finishing), which would otherwise drop out of the total
 * and make the window it ended in look cheaper by all that backend ever used.
 */
function namedProcessesCpuMs(name: string): number {
  let total = 0;
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const close = stat.lastIndexOf(')');
        if (!stat.slice(stat.indexOf('(') + 1, close).startsWith(name)) continue;
        const fields = stat.slice(close + 2).split(' ');
        // utime + stime + cutime + cstime, USER_HZ 100
        total += ((Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * 1000) / 100;
      } catch {
        // the process ended while we looked
      }
    }
  } catch {
    return 0;
  }
  return total;
}

/** Busy CPU time of the whole machine, in ms, from /proc/stat (Linux); undefined elsewhere. */
export function machineBusyMs(): number | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const busy = fields.slice(0, 8).reduce((a, b) => a + b, 0) - fields[3]! - fields[4]!;
    return (busy * 1000) / 100;
  } catch {
    return undefined;
  }
}
