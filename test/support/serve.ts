/**
 * Start the real `bin/latchkey.js serve` as a child process, as operators run it, on a port the kernel just handed
 * out. Between freeing that port and the child binding it another process may take it (a random port in the
 * kernel's ephemeral range is taken by outgoing connections of parallel test files), so when the child stops
 * saying `PORT: <port> is already in use` it starts again on another port.
 *
 * ```ts
 * const served = await spawnServe({ cwd: dir, env: { DATABASE_URL: `sqlite:${join(dir, 'latchkey.db')}` } });
 * try { await fetch(`http://127.0.0.1:${served.port}/signin`); } finally { served.child.kill('SIGTERM'); }
 * ```
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

export interface Served {
  child: ChildProcessWithoutNullStreams;
  port: number;
  /** stdout and stderr until it said it serves. */
  output: string;
}

export async function spawnServe(options: { cwd: string; env: Record<string, string>; attempts?: number }): Promise<Served> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(process.execPath, [join(root, 'bin/latchkey.js'), 'serve'], {
      cwd: options.cwd,
      env: { ...process.env, PORT: String(port), ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin.end();
    let output = '';
    const started = await new Promise<boolean>((resolve, reject) => {
      const onData = (d: Buffer) => {
        output += d.toString();
        if (output.includes('Latchkey is serving')) resolve(true);
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('exit', (code) => {
        if (code === 2 && output.includes(`PORT: ${port} is already in use`) && attempt < attempts) resolve(false);
        else reject(new Error(`exited ${code}: ${output}`));
      });
    });
    if (started) return { child, port, output };
  }
}
