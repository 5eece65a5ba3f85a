/**
 * A real load balancer in front of the benchmark's servers: Debian's HAProxy
 * (`apt-get install haproxy`), started with a configuration written to a
 * temporary directory and run in the foreground (`-db`) as a child process.
 *
 * HTTP mode, so each request is balanced on its own (round robin) even when
 * the client keeps one connection open: a ceremony's options and verify
 * requests from one browser usually reach different servers, which the
 * database challenge store must then handle. Servers are health-checked on
 * GET /healthz and reused across requests (`http-reuse always`), the way a
 * deployment would run it. One thread: on a small machine the proxy should not
 * compete with the servers for cores (it handles tens of thousands of
 * requests per second on one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const HAPROXY = process.env.BENCH_HAPROXY ?? '/usr/sbin/haproxy';

/** Thrown when HAProxy is not installed; its message is what the bench prints. */
export class HaproxyMissing extends Error {
  constructor() {
    super(`skipped: apt-get install haproxy (no ${HAPROXY})`);
  }
}

export interface Balancer {
  /** The port HAProxy listens on (127.0.0.1). */
  port: number;
  /** HAProxy's process id (its CPU time is read from /proc). */
  pid: number;
  /** CPU time HAProxy has used so far, in ms (Linux; 0 elsewhere). */
  cpuMs(): number;
  stop(): Promise<void>;
}

/** The configuration for `backendPorts` on 127.0.0.1, listening on `port`. */
export function haproxyConfig(backendPorts: number[], port: number): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend latchkey',
    `  bind 127.0.0.1:${port}`,
    '  default_backend servers',
    'backend servers',
    '  balance roundrobin',
    '  http-reuse always',
    '  option httpchk GET /healthz',
    '  http-check expect status 200',
    ...backendPorts.map((p, i) => `  server latchkey${i + 1} 127.0.0.1:${p} check inter 1s`),
    '',
  ].join('\n');
}

/**
 * Start HAProxy in front of `backendPorts` and resolve once it answers GET /healthz. `options.port` is the port to
 * listen on (the benchmark's origin names it); a free one when left out. Rejects with HaproxyMissing when HAProxy is
 * not installed.
 */
export async function startHaproxy(backendPorts: number[], options: { port?: number } = {}): Promise<Balancer> {
  if (!existsSync(HAPROXY)) throw new HaproxyMissing();
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-haproxy-'));
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, haproxyConfig(backendPorts, port));
  const child = spawn(HAPROXY, ['-f', file, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const cleanUp = () => rmSync(dir, { recursive: true, force: true });
  try {
    await waitForHealthy(port, child, () => stderr);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    cleanUp();
    throw error;
  }
  return {
    port,
    pid: child.pid!,
    cpuMs: () => processCpuMs(child.pid!),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGTERM: HAProxy's hard stop (closes every connection now).
        child.kill('SIGTERM');
        await exited;
      }
      cleanUp();
    },
  };
}

async function waitForHealthy(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with code ${child.exitCode}: ${stderr().trim()}`);
    if ((await healthStatus(port)) === 200) return;
    if (Date.now() > deadline) throw new Error(`haproxy on port ${port} did not answer GET /healthz with 200 within 10 s: ${stderr().trim()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The status of GET /healthz on 127.0.0.1:port, or undefined when nothing answers. */
function healthStatus(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(`GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nconnection: close\r\n\r\n`));
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (status) {
        socket.destroy();
        resolve(Number(status[1]));
      }
    });
    socket.on('error', () => resolve(undefined));
    socket.on('close', () => resolve(undefined));
  });
}

/** utime + stime of a process, in ms (Linux, USER_HZ 100); 0 where /proc is missing or the process ended. */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}
