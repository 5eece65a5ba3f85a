import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HAPROXY, startHaproxy, type Balancer } from '../../bench/balancer.js';

/** A backend that answers /healthz and names itself on every other path. */
function backend(name: string, seen: string[]): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === '/healthz') return res.end('{"status":"ok"}');
    seen.push(name);
    res.setHeader('content-type', 'text/plain');
    res.end(name);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port })));
}

/** `n` GET requests one after another on one keep-alive connection; the bodies, in order. */
async function requestsOnOneConnection(port: number, n: number): Promise<string[]> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const bodies: string[] = [];
  let buffer = '';
  try {
    for (let i = 0; i < n; i++) {
      const body = new Promise<string>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          buffer += chunk.toString('latin1');
          const end = buffer.indexOf('\r\n\r\n');
          const length = /content-length: (\d+)/i.exec(buffer.slice(0, end))?.[1];
          if (end < 0 || length === undefined || buffer.length < end + 4 + Number(length)) return;
          socket.off('data', onData);
          const text = buffer.slice(end + 4, end + 4 + Number(length));
          buffer = buffer.slice(end + 4 + Number(length));
          resolve(text);
        };
        socket.on('data', onData);
        socket.once('error', reject);
      });
      socket.write(`GET /who HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`);
      bodies.push(await body);
    }
  } finally {
    socket.destroy();
  }
  return bodies;
}

describe.skipIf(!existsSync(HAPROXY))('bench/balancer.ts: HAProxy in front of the benchmark servers', () => {
  const servers: Server[] = [];
  let balancer: Balancer | undefined;
  afterEach(async () => {
    await balancer?.stop();
    balancer = undefined;
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('balances each request of one keep-alive connection round robin across the servers', async () => {
    const seen: string[] = [];
    const a = await backend('a', seen);
    const b = await backend('b', seen);
    servers.push(a.server, b.server);
    balancer = await startHaproxy([a.port, b.port]);
    const bodies = await requestsOnOneConnection(balancer.port, 6);
    expect(bodies.filter((x) => x === 'a')).toHaveLength(3);
    expect(bodies.filter((x) => x === 'b')).toHaveLength(3);
    // Round robin: never the same server twice in a row.
    for (let i = 1; i < bodies.length; i++) expect(bodies[i]).not.toBe(bodies[i - 1]);
    expect(balancer.cpuMs()).toBeGreaterThanOrEqual(0);
  });

  it('listens on the port it is given, and stops', async () => {
    const seen: string[] = [];
    const a = await backend('a', seen);
    servers.push(a.server);
    const probe = net.createServer();
    const port = await new Promise<number>((resolve) => probe.listen(0, '127.0.0.1', () => resolve((probe.address() as net.AddressInfo).port)));
    await new Promise((resolve) => probe.close(resolve));
    balancer = await startHaproxy([a.port], { port });
    expect(balancer.port).toBe(port);
    expect(await requestsOnOneConnection(port, 2)).toEqual(['a', 'a']);
    await balancer.stop();
    balancer = undefined;
    await expect(requestsOnOneConnection(port, 1)).rejects.toThrow();
  });
});
