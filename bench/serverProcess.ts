/**
 * The benchmark's server process, seen from the parent: fork bench/server.ts (one Latchkey process with its own
 * event loop, CPU and RSS) and talk to it over IPC. Shared by the benchmarks that run against a real server
 * (bench/tokens.ts; bench/signin.ts keeps its own copy for now).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
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
  /** SQLite: commits shared by transactions so far (src/db/groupCommit.ts). */
  groupCommits?: { commits: number; transactions: number };
}

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

export class ServerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  /** Fork bench/server.ts on `databaseUrl` (already migrated) and wait until it listens. */
  static async start(databaseUrl: string, port: number, origin: string, extraEnv: Record<string, string> = {}): Promise<ServerProcess> {
    const child = fork(join(here, 'server.ts'), [], {
      execArgv: ['--import', 'tsx'],
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

  stop(): Promise<void> {
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.send({ type: 'stop' });
    });
  }
}
