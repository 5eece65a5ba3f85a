/**
 * The load generator: N virtual browsers over one keep-alive HTTP/1.1 connection each on loopback, each
 * doing full passkey sign-in ceremonies one after another:
 *
 *   POST /signin/options  → PublicKeyCredentialRequestOptionsJSON
 *   software authenticator signs (ES256, Node crypto)
 *   POST /signin/verify   → 200 and a session cookie
 *
 * On the cold path (the default, the path people take) every ceremony is a new
 * signed-out browser: GET /signin with no cookie (a new binding cookie and CSRF
 * token), then options and verify. On the warm path each browser loads /signin
 * once and keeps its binding cookie. Neither keeps the session cookie, so every
 * ceremony is a sign-in from a signed-out browser. Ceremonies alternate
 * between discoverable (no username) and email-first (allowCredentials). Every
 * browser has its own slice of the users, so no two ceremonies for one passkey
 * run at once (which the server would rightly refuse as a counter regression).
 */
import net from 'node:net';
import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import type { BenchUser } from './seed.js';

export interface LoadOptions {
  port: number;
  origin: string;
  users: BenchUser[];
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Called when the measured window opens and closes (to sample the server's CPU). */
  onWindow?: (edge: 'start' | 'end') => Promise<void> | void;
  /**
   * 'cold' (the default): every ceremony is a new signed-out browser that loads GET /signin first (new binding
   * cookie and CSRF token), as people do. 'warm': each browser loads /signin once and then only signs in.
   */
  path?: 'cold' | 'warm';
}

export interface LoadResult {
  ceremonies: number;
  seconds: number;
  latenciesMs: number[];
  failures: Map<string, number>;
  clientCpuMs: number;
}

export interface Reply {
  status: number;
  setCookie: string[];
  /** The Location header, on redirects (bench/tokens.ts follows the authorization request's). */
  location?: string;
  body: string;
}

/**
 * One keep-alive HTTP/1.1 connection, one request at a time. Hand-written on
 * `net` because node:http's client costs the load generator more CPU per
 * request than the server's routing does, and both share this machine.
 * Enough of HTTP/1.1 for Fastify's answers: Content-Length bodies only.
 */
export class Connection {
  private buffer: Buffer = Buffer.alloc(0);
  private pending?: { resolve: (r: Reply) => void; reject: (e: Error) => void };

  private constructor(
    private readonly socket: net.Socket,
    private readonly host: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
      this.parse();
    });
    const fail = (err: Error) => {
      const p = this.pending;
      this.pending = undefined;
      p?.reject(err);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static open(port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(new Connection(socket, `127.0.0.1:${port}`)));
      socket.once('error', reject);
    });
  }

  request(method: string, path: string, headers: string, body?: string): Promise<Reply> {
    if (this.pending) throw new Error('one request at a time per connection');
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      const length = body === undefined ? '' : `content-length: ${Buffer.byteLength(body)}\r\n`;
      this.socket.write(`${method} ${path} HTTP/1.1\r\nhost: ${this.host}\r\n${headers}${length}\r\n${body ?? ''}`);
    });
  }

  private parse(): void {
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0 || !this.pending) return;
    const head = this.buffer.toString('latin1', 0, end).split('\r\n');
    let length = -1;
    const setCookie: string[] = [];
    let location: string | undefined;
    for (let i = 1; i < head.length; i++) {
      const line = head[i]!;
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      if (name === 'content-length') length = Number(line.slice(colon + 1));
      else if (name === 'set-cookie') setCookie.push(line.slice(colon + 1).trim());
      else if (name === 'location') location = line.slice(colon + 1).trim();
      else if (name === 'transfer-encoding') throw new Error('chunked responses are not supported by the bench client');
    }
    if (length < 0) throw new Error(`no content-length in: ${head[0]}`);
    if (this.buffer.length < end + 4 + length) return;
    const body = this.buffer.toString('utf8', end + 4, end + 4 + length);
    this.buffer = this.buffer.subarray(end + 4 + length);
    const p = this.pending;
    this.pending = undefined;
    p.resolve({ status: Number(head[0]!.slice(9, 12)), setCookie, location, body });
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * GET /signin as a browser with no cookies; the headers its script then sends with options and verify: the binding
 * cookie and CSRF token the page load gave.
 */
export async function loadSignInPage(connection: Connection, origin: string): Promise<string> {
  const page = await connection.request('GET', '/signin', 'accept: text/html\r\nuser-agent: latchkey-bench\r\n');
  const binding = page.setCookie.map((c) => /^latchkey_binding=([^;]+)/.exec(c)?.[1]).find(Boolean);
  const csrf = /<meta name="csrf-token" content="([^"]+)"/.exec(page.body)?.[1];
  if (page.status !== 200 || !binding || !csrf) throw new Error(`GET /signin: ${page.status}, no binding cookie or CSRF token`);
  return [
    'accept: application/json',
    'content-type: application/json',
    `cookie: latchkey_binding=${binding}`,
    `x-csrf-token: ${csrf}`,
    `origin: ${origin}`,
    'user-agent: latchkey-bench',
  ].join('\r\n') + '\r\n';
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { port, origin, users, concurrency } = options;
  const failures = new Map<string, number>();
  const fail = (what: string) => failures.set(what, (failures.get(what) ?? 0) + 1);
  const latencies: number[] = [];
  let ceremonies = 0;
  let measuring = false;
  let stopped = false;

  async function browser(slot: number): Promise<void> {
    const connection = await Connection.open(port);
    try {
      await runCeremonies(slot, connection);
    } finally {
      connection.close();
    }
  }

  async function runCeremonies(slot: number, connection: Connection): Promise<void> {
    const cold = (options.path ?? 'cold') === 'cold';
    let headers = cold ? '' : await loadSignInPage(connection, origin);
    const mine = users.filter((_, i) => i % concurrency === slot);
    for (let n = 0; !stopped; n++) {
      const user = mine[n % mine.length]!;
      const body = n % 2 === 0 ? { mode: 'discoverable' } : { mode: 'email', email: user.email };
      const started = performance.now();
      if (cold) headers = await loadSignInPage(connection, origin);
      const opts = await connection.request('POST', '/signin/options', headers, JSON.stringify(body));
      if (opts.status !== 200) {
        fail(`options ${opts.status} ${opts.body.slice(0, 120)}`);
        continue;
      }
      const challenge = (JSON.parse(opts.body) as { options: PublicKeyCredentialRequestOptionsJSON }).options;
      const response = user.authenticator.getAssertion(challenge, { credentialId: user.credentialId });
      const verify = await connection.request('POST', '/signin/verify', headers, JSON.stringify({ response }));
      const elapsed = performance.now() - started;
      if (verify.status !== 200 || !verify.setCookie.some((c) => c.startsWith('latchkey_session='))) {
        fail(`verify ${verify.status} ${verify.body.slice(0, 120)}`);
        continue;
      }
      if (measuring && !stopped) {
        ceremonies++;
        latencies.push(elapsed);
      }
    }
  }

  const running = Array.from({ length: concurrency }, (_, slot) => browser(slot));
  const settled = Promise.all(running);
  let crashed: unknown;
  settled.catch((err) => {
    crashed = err;
    stopped = true;
  });
  await sleep(options.warmupMs);
  if (crashed) throw crashed;
  await options.onWindow?.('start');
  const { seconds, cpuMs } = await measureWindow(options.durationMs, (on) => (measuring = on));
  await options.onWindow?.('end');
  stopped = true;
  await settled;
  return { ceremonies, seconds, latenciesMs: latencies, failures, clientCpuMs: cpuMs };
}

/** Count only inside a window of `durationMs`; returns its length and this process's CPU time in it. */
async function measureWindow(durationMs: number, setMeasuring: (on: boolean) => void): Promise<{ seconds: number; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  setMeasuring(true);
  await sleep(durationMs);
  setMeasuring(false);
  const cpu = process.cpuUsage(cpu0);
  return { seconds: (performance.now() - t0) / 1000, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/**
 * Requests per second on the bare route (BENCH_BARE server) with the same
 * client and connection count: the ceiling this machine and load generator
 * allow right now, to read the ceremony figures against.
 */
export async function runBare(options: {
  port: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  onWindow?: (edge: 'start' | 'end') => Promise<void> | void;
}): Promise<{ requestsPerSecond: number; requests: number; seconds: number; clientCpu: number }> {
  const headers = 'accept: application/json\r\ncontent-type: application/json\r\n';
  let measuring = false;
  let stopped = false;
  let requests = 0;
  const loop = async () => {
    const connection = await Connection.open(options.port);
    try {
      while (!stopped) {
        const r = await connection.request('POST', '/bare', headers, '{}');
        if (r.status !== 200) throw new Error(`bare route answered ${r.status}`);
        if (measuring) requests++;
      }
    } finally {
      connection.close();
    }
  };
  const settled = Promise.all(Array.from({ length: options.concurrency }, loop));
  settled.catch(() => (stopped = true));
  await sleep(options.warmupMs);
  await options.onWindow?.('start');
  const { seconds, cpuMs } = await measureWindow(options.durationMs, (on) => (measuring = on));
  await options.onWindow?.('end');
  stopped = true;
  await settled;
  return { requestsPerSecond: requests / seconds, requests, seconds, clientCpu: cpuMs / (seconds * 1000) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
