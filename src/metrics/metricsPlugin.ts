/**
 * Wires this app's metrics (app.latchkey.metrics, src/metrics/metrics.ts) to what they watch: every HTTP answer's
 * latency by matched route, the database's commits and pool, the challenge store's size. And `/metrics` itself,
 * served by `app.metricsListener.listen()` on a listener of its own (LATCHKEY_METRICS_HOST and _PORT) that `serve`
 * starts: never on the public listener, where /metrics answers 404 like any unknown path.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Db } from '../db/connect.js';

export interface MetricsListener {
  /** Start serving /metrics on LATCHKEY_METRICS_HOST:LATCHKEY_METRICS_PORT; undefined (and nothing listens) when metrics are off. Closed with the app. */
  listen(): Promise<AddressInfo | undefined>;
}

declare module 'fastify' {
  interface FastifyInstance {
    metricsListener: MetricsListener;
  }
}

export const metricsPlugin = fp<{ db: Db }>(
  async (app: FastifyInstance, { db }) => {
    const { metrics, config, webauthn } = app.latchkey;
    let server: Server | undefined;
    app.decorate('metricsListener', {
      async listen() {
        if (!metrics.enabled || config.metricsPort === undefined || server) return server?.address() as AddressInfo | undefined;
        const listening = createServer((request, response) => {
          if ((request.method !== 'GET' && request.method !== 'HEAD') || request.url?.split('?')[0] !== '/metrics') {
            response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: metrics are at /metrics\n');
            return;
          }
          metrics.text().then(
            (text) => response.writeHead(200, { 'content-type': metrics.contentType }).end(request.method === 'HEAD' ? undefined : text),
            (err: unknown) => {
              app.log.error({ err }, 'collecting metrics failed');
              response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Collecting metrics failed: see the server log.\n');
            },
          );
        });
        await new Promise<void>((resolve, reject) => {
          listening.once('error', reject);
          listening.listen(config.metricsPort, config.metricsHost, () => {
            listening.off('error', reject);
            resolve();
          });
        });
        server = listening;
        return server.address() as AddressInfo;
      },
    });
    app.addHook('onClose', async () => {
      // closeAllConnections: a Prometheus server keeps its connection alive between scrapes.
      server?.closeAllConnections();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    });
    if (!metrics.enabled) return;

    // reply.elapsedTime is Fastify's own clock from onRequest: no timer of ours per request. A callback hook, not an
    // async one: no promise per request.
    app.addHook('onResponse', (request, reply, done) => {
      metrics.httpRequest(request.routeOptions.url, request.method, reply.statusCode, reply.elapsedTime / 1000);
      done();
    });
    const stopObserving = db.observeCommits((seconds) => metrics.commit(seconds));
    app.addHook('onClose', async () => stopObserving());

    const challenges = webauthn.challenges;
    metrics.gauge(
      'latchkey_challenge_store_size',
      `WebAuthn ceremonies begun and not yet finished or expired, in the ${challenges.kind} challenge store (LATCHKEY_CHALLENGE_STORE): this process's (memory) or every instance's (database, redis).`,
      () => challenges.size(app.latchkey.now()),
    );
    const pool = db.pool;
    if (pool) {
      metrics.gauge('latchkey_db_pool_connections', 'PostgreSQL connections in the pool, idle or in use.', () => pool.totalCount);
      metrics.gauge('latchkey_db_pool_idle_connections', 'PostgreSQL connections in the pool not in use.', () => pool.idleCount);
      metrics.gauge('latchkey_db_pool_waiting_requests', 'Queries waiting for a PostgreSQL connection from the pool.', () => pool.waitingCount);
    }
  },
  { name: 'latchkey-metrics' },
);
