/**
 * Per-route rate limiting. Route modules import it from here, not from app.ts: a route
 * module that imports the app that registers it is a cycle, and ties the route to every plugin.
 */
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';

/** The window every per-IP limit counts in (app.ts registers @fastify/rate-limit with it; errors.ts states it). */
export const RATE_LIMIT_WINDOW_SECONDS = 60;

/** Route options that rate-limit an unauthenticated endpoint per IP; empty when limiting is off. */
export function rateLimited(app: FastifyInstance): { config?: { rateLimit: { max: number; timeWindow: number } } } {
  const max = app.latchkey.rateLimitPerMinute;
  return max > 0 ? { config: { rateLimit: { max, timeWindow: RATE_LIMIT_WINDOW_SECONDS * 1000 } } } : {};
}

/**
 * Where @fastify/rate-limit counts: in this process (its default), or in Redis shared by every instance, under
 * `<LATCHKEY_REDIS_PREFIX>rate-limit:<method><route>-<ip>`. With Redis a failed count lets the request through
 * (`skipOnError`): refusing every sign-in while Redis is down would lock everyone out to stop a few guesses.
 * src/redis/openRedis.ts logs the outage.
 */
export function rateLimitStore(redis: Redis | undefined): { redis?: Redis; nameSpace?: string; skipOnError?: boolean } {
  return redis ? { redis, nameSpace: 'rate-limit:', skipOnError: true } : {};
}
