/**
 * LATCHKEY_REDIS_URL's checks, and what an instance does while Redis does not answer: it starts, lets limited
 * requests through with one warning per outage (never the password), and counts again once Redis is back.
 */
import { createServer, Socket, type Server } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../config/index.js';
import { createTestApp, TestBrowser, type TestApp } from '../../test/support/app.js';
import { deleteRedisKeys, redisUnavailableReason, testRedisUrl, uniqueRedisPrefix } from '../../test/support/redis.js';
import { describeRedisUrl } from './openRedis.js';

describe('LATCHKEY_REDIS_URL and LATCHKEY_REDIS_PREFIX', () => {
  it('take redis:// and rediss:// URLs and refuse others without repeating the password', () => {
    expect(loadConfig({}).redisUrl).toBeUndefined();
    expect(loadConfig({ LATCHKEY_REDIS_URL: 'redis://127.0.0.1:6379' }).redisUrl).toBe('redis://127.0.0.1:6379');
    expect(loadConfig({ LATCHKEY_REDIS_URL: ' rediss://:s3cret@cache.example.org:6380/2 ' }).redisUrl).toBe('rediss://:s3cret@cache.example.org:6380/2');
    for (const [value, message] of [
      ['http://:s3cret@cache.example.org:6379', /^LATCHKEY_REDIS_URL: must start with redis:\/\/ or rediss:\/\/, got "http:\/\/"$/],
      ['cache.example.org:6379', /^LATCHKEY_REDIS_URL: must start with redis:\/\/ or rediss:\/\//],
      ['redis://:s3cret@', /^LATCHKEY_REDIS_URL: /],
      ['not a url s3cret', /^LATCHKEY_REDIS_URL: not a URL/],
    ] as const) {
      let error: unknown;
      try {
        loadConfig({ LATCHKEY_REDIS_URL: value });
      } catch (e) {
        error = e;
      }
      expect((error as Error | undefined)?.message, value).toMatch(message);
      expect((error as Error).message).not.toContain('s3cret');
    }
  });

  it('puts latchkey: before every key unless another prefix is set', () => {
    expect(loadConfig({}).redisKeyPrefix).toBe('latchkey:');
    expect(loadConfig({ LATCHKEY_REDIS_PREFIX: 'latchkey-staging:' }).redisKeyPrefix).toBe('latchkey-staging:');
    expect(() => loadConfig({ LATCHKEY_REDIS_PREFIX: 'two words' })).toThrow(/^LATCHKEY_REDIS_PREFIX: /);
  });

  it('is described in logs without its password or user name', () => {
    expect(describeRedisUrl('rediss://latchkey:s3cret@cache.example.org:6380/2')).toBe('rediss://cache.example.org:6380/2');
    expect(describeRedisUrl('redis://:s3cret@127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
  });
});

/** A TCP relay in front of the test Redis that can be cut and restored on the same port: an outage on demand. */
class RedisRelay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  async start(): Promise<void> {
    const target = new URL(testRedisUrl());
    this.server = createServer((client) => {
      const upstream = new Socket();
      upstream.connect(Number(target.port || 6379), target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}

const redisSkip = await redisUnavailableReason();

describe('while Redis does not answer', () => {
  const apps: TestApp[] = [];
  const relays: RedisRelay[] = [];
  const prefixes: string[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((t) => t.close()));
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    if (!redisSkip) await Promise.all(prefixes.splice(0).map((p) => deleteRedisKeys(p)));
  });

  async function appLogging(env: Record<string, string>) {
    const lines: { level: number; msg: string; [field: string]: unknown }[] = [];
    const raw: string[] = [];
    const prefix = uniqueRedisPrefix();
    prefixes.push(prefix);
    const t = await createTestApp(
      { LATCHKEY_REDIS_PREFIX: prefix, ...env },
      { logger: { level: 'info', stream: { write: (line: string) => void (raw.push(line), lines.push(JSON.parse(line))) } } },
    );
    apps.push(t);
    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    const ask = async (count: number) => {
      const codes: number[] = [];
      for (let i = 0; i < count; i++) codes.push((await browser.postJson('/signin/options', { mode: 'discoverable' })).statusCode);
      return codes;
    };
    return { lines, raw, ask, said: (start: string) => lines.filter((l) => l.msg.startsWith(start)) };
  }

  it('an instance starts, lets limited requests through, and warns once without the password', async () => {
    // A port nothing listens on.
    const closed = new RedisRelay();
    await closed.start();
    await closed.stop();
    const { ask, said, raw } = await appLogging({ LATCHKEY_REDIS_URL: `redis://:hunter2-s3cret@127.0.0.1:${closed.port}`, LATCHKEY_RATE_LIMIT_PER_MINUTE: '2' });
    expect(await ask(4)).toEqual([200, 200, 200, 200]);
    const warnings = said('Redis does not answer');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, redis: `redis://127.0.0.1:${closed.port}` });
    expect(raw.join('')).not.toContain('hunter2-s3cret');
  });

  it('a passkey ceremony with its challenge kept in Redis fails as a server error, not as a wrong passkey', async () => {
    const closed = new RedisRelay();
    await closed.start();
    await closed.stop();
    const { ask, said } = await appLogging({ LATCHKEY_REDIS_URL: `redis://127.0.0.1:${closed.port}`, LATCHKEY_CHALLENGE_STORE: 'redis' });
    expect(await ask(1)).toEqual([500]);
    expect(said('request failed')).toHaveLength(1);
  });

  it.skipIf(redisSkip !== undefined)('counts are not kept during an outage, and are again once Redis answers', async () => {
    const relay = new RedisRelay();
    relays.push(relay);
    await relay.start();
    const { ask, said } = await appLogging({ LATCHKEY_REDIS_URL: `redis://127.0.0.1:${relay.port}`, LATCHKEY_RATE_LIMIT_PER_MINUTE: '3' });
    expect(await ask(1)).toEqual([200]);
    await relay.stop();
    await vi.waitFor(() => expect(said('Redis does not answer')).toHaveLength(1), { timeout: 10_000, interval: 50 });
    // Past the limit of 3, all through: nothing is counted while Redis is away.
    expect(await ask(5)).toEqual([200, 200, 200, 200, 200]);
    await relay.start();
    await vi.waitFor(() => expect(said('Redis answers again')).toHaveLength(1), { timeout: 10_000, interval: 50 });
    // The count Redis kept (1) goes on: two more, then refused.
    expect(await ask(3)).toEqual([200, 200, 429]);
    expect(said('Redis does not answer')).toHaveLength(1);
  });
});
