/**
 * The one Redis connection of a server process (LATCHKEY_REDIS_URL): the per-IP
 * request limits are counted there, and LATCHKEY_CHALLENGE_STORE=redis keeps
 * WebAuthn challenges there. buildApp opens it and closes it with the app.
 *
 * It fails fast rather than waits: while Redis does not answer, a command is
 * refused at once (no offline queue, no retry after a reconnect) or after
 * {@link REDIS_COMMAND_TIMEOUT_MS}, so a sign-in is never held up by Redis. The
 * rate limiter then lets the request through (plugins/rateLimited.ts); a
 * ceremony with challenges in Redis fails and can be started again.
 */
import type { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/index.js';

/**
 * The longest a command waits for Redis's answer. Redis answers in well under a millisecond; this bounds how long
 * a request waits on a Redis that accepts connections but does not answer (overloaded, paused, a dead link that
 * TCP has not noticed yet), with room for a busy event loop here.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 2_000;

/** The URL without its password (or user name), for logs and messages. */
export function describeRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(unparseable Redis URL)';
  }
}

/**
 * Connect to config.redisUrl with config.redisKeyPrefix before every key. Resolves once connected, or once the
 * first attempt failed (logged): the server starts without Redis and the client keeps reconnecting in the background.
 */
export async function openRedis(config: Pick<Config, 'redisUrl' | 'redisKeyPrefix'>, log: FastifyBaseLogger): Promise<Redis> {
  if (!config.redisUrl) throw new Error('openRedis needs LATCHKEY_REDIS_URL');
  const where = describeRedisUrl(config.redisUrl);
  // Loaded here rather than at start: about 2 MiB of heap that a server without Redis never needs.
  const { Redis } = await import('ioredis');
  const redis = new Redis(config.redisUrl, {
    keyPrefix: config.redisKeyPrefix,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    connectTimeout: 5_000,
  });
  // One warning per outage, not one per reconnection attempt; and a line when it is back.
  let down = false;
  redis.on('error', (error: Error) => {
    if (down) return;
    down = true;
    log.warn(
      { redis: where, reason: error.message },
      'Redis does not answer: per-IP request limits are not counted (requests pass) and challenges kept in Redis are unavailable until it does',
    );
  });
  let connected = false;
  redis.on('ready', () => {
    if (down) log.info({ redis: where }, 'Redis answers again: per-IP request limits are counted there again');
    else if (!connected) log.info({ redis: where, prefix: config.redisKeyPrefix }, 'Redis connected: per-IP request limits are counted there, shared by every instance using it');
    down = false;
    connected = true;
  });
  await redis.connect().catch(() => {
    // Logged by the error listener; ioredis keeps trying to connect.
  });
  return redis;
}

/** Close the connection: wait for commands in flight when connected, else stop reconnecting at once. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
  else redis.disconnect();
}
