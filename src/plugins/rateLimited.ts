/**
 * Per-route rate limiting. Route modules import it from here, not from app.ts: a route
 * module that imports the app that registers it is a cycle, and ties the route to every plugin.
 */
import type { FastifyInstance } from 'fastify';

/** The window every per-IP limit counts in (app.ts registers @fastify/rate-limit with it; errors.ts states it). */
export const RATE_LIMIT_WINDOW_SECONDS = 60;

/** Route options that rate-limit an unauthenticated endpoint per IP; empty when limiting is off. */
export function rateLimited(app: FastifyInstance): { config?: { rateLimit: { max: number; timeWindow: number } } } {
  const max = app.latchkey.rateLimitPerMinute;
  return max > 0 ? { config: { rateLimit: { max, timeWindow: RATE_LIMIT_WINDOW_SECONDS * 1000 } } } : {};
}
