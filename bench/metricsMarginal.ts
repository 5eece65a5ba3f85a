/**
 * What metrics on adds to one HTTP answer, measured in this process on two real apps (buildApp), one with metrics off
 * and one with them on, answering the same request through Fastify (`app.inject`) in alternating batches.
 *
 * Between two server processes (bench/interleaved.ts) one window's CPU per ceremony moves by 3–5 % on this kind of
 * VM, so a cost under 2 % takes hundreds of windows to resolve. Here both apps share one process, one JIT and the
 * same seconds of the machine: what differs is only what metrics on adds to every answer (Fastify's onResponse hook
 * and the request recorder). The ceremony and commit recorders are measured apart (bench/signin.ts).
 *
 * Each batch is timed by the clock, not by CPU time: the batches keep this thread busy throughout, and the process's
 * CPU time would also count V8's helper threads, while Linux counts one thread's CPU only to the scheduler's tick
 * (4 ms here, a third of a batch). The apps run through tsx, not bundled as the servers do, at LOG_LEVEL=silent.
 * Inject skips the socket, which metrics do not touch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/index.js';
import { medianWithInterval } from './statistics.js';

export interface MarginalCost {
  /** The median batch's time per answer with metrics off and on, µs. */
  offUs: number;
  onUs: number;
  /**
   * On minus off per answer, µs: the median of the pairs' differences and its 95 % interval. A median, not a mean: a
   * batch that V8's incremental marking slows runs up to twice as long whichever app it was, and one such batch
   * would move a mean by more than the cost looked for.
   */
  addedUs: { median: number; low: number; high: number };
  batches: number;
  requestsPerBatch: number;
}

export async function measureMetricsMarginalCost(options: { batches?: number; requestsPerBatch?: number; url?: string } = {}): Promise<MarginalCost> {
  const batches = options.batches ?? 400;
  const requestsPerBatch = options.requestsPerBatch ?? 250;
  const url = options.url ?? '/healthz';
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-metrics-marginal-'));
  const apps: FastifyInstance[] = [];
  try {
    for (const [name, metricsPort] of [['off', undefined], ['on', '0']] as const) {
      const config = loadConfig({
        ...process.env,
        DATABASE_URL: `sqlite:${join(dir, `${name}.db`)}`,
        LOG_LEVEL: 'silent',
        LATCHKEY_METRICS_PORT: metricsPort,
      });
      apps.push(await buildApp(config, { rateLimitPerMinute: 0 }));
    }
    const [off, on] = apps as [FastifyInstance, FastifyInstance];
    const batch = async (app: FastifyInstance): Promise<number> => {
      const start = performance.now();
      for (let i = 0; i < requestsPerBatch; i++) {
        const reply = await app.inject({ method: 'GET', url });
        if (reply.statusCode !== 200) throw new Error(`GET ${url} answered ${reply.statusCode}`);
      }
      return ((performance.now() - start) * 1000) / requestsPerBatch;
    };
    // 40 pairs first, not measured: the JIT settles on Fastify's paths.
    for (let i = 0; i < 40; i++) {
      await batch(off);
      await batch(on);
    }
    const offTimes: number[] = [];
    const onTimes: number[] = [];
    const differences: number[] = [];
    for (let b = 0; b < batches; b++) {
      // Which goes first turns round each pair, so a drift within the pair falls on each alike.
      let offUs: number;
      let onUs: number;
      if (b % 2 === 0) {
        offUs = await batch(off);
        onUs = await batch(on);
      } else {
        onUs = await batch(on);
        offUs = await batch(off);
      }
      offTimes.push(offUs);
      onTimes.push(onUs);
      differences.push(onUs - offUs);
    }
    return { offUs: medianWithInterval(offTimes).median, onUs: medianWithInterval(onTimes).median, addedUs: medianWithInterval(differences), batches, requestsPerBatch };
  } finally {
    await Promise.all(apps.map((app) => app.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}

// npm run bench:metrics: this measurement alone.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.env.LATCHKEY_SECRET_KEY ??= (await import('node:crypto')).randomBytes(32).toString('base64url');
  const r = await measureMetricsMarginalCost();
  const added = r.addedUs;
  console.log(
    `GET /healthz, median batch: ${r.offUs.toFixed(2)} µs per answer with metrics off, ${r.onUs.toFixed(2)} µs on; on adds ${added.median.toFixed(2)} µs ` +
      `(median of ${r.batches} paired differences, 95 % interval ${added.low.toFixed(2)} to ${added.high.toFixed(2)}; batches of ${r.requestsPerBatch})`,
  );
}
