/**
 * Security headers on every answer (CSP, frame-ancestors, Referrer-Policy,
 * nosniff, HSTS on https …), as `helmet` computes them from our options.
 *
 * Helmet's headers depend on its options only, never on the request, so they
 * are computed once at start and set from that list. `@fastify/helmet` builds
 * a new helmet middleware for every request instead, which parsed the CSP
 * directives anew each time: about 5 % of the sign-in path's event-loop time
 * (BENCHMARKS.md). A route that needs another policy (a form that ends at a
 * linked account's provider) still sets its own header after this one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';

/** The headers helmet sets for `options`, lower-cased, in the order it sets them. */
export function helmetHeaders(options: Readonly<HelmetOptions>): [string, string][] {
  const headers = new Map<string, string>();
  const response = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers.set(name.toLowerCase(), Array.isArray(value) ? value.join(', ') : String(value));
      return response;
    },
    removeHeader(name: string) {
      headers.delete(name.toLowerCase());
    },
  };
  let failure: unknown;
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (err?: unknown) => {
    failure = err;
  });
  if (failure) throw failure;
  return [...headers];
}

export const securityHeadersPlugin = fp(
  async (app: FastifyInstance, options: HelmetOptions) => {
    const headers = Object.fromEntries(helmetHeaders(options));
    app.addHook('onRequest', (_request, reply, done) => {
      reply.headers(headers);
      done();
    });
  },
  { name: 'security-headers' },
);
