/**
 * What metrics on adds to one HTTP answer, measured in this process on two real apps (buildApp), one with metrics off
 * and one with them on, answering the same request through Fastify (`app.inject`) in alternating batches.
 *
 * Between two server processes (bench/interleaved.ts) one window's CPU per ceremony moves by 3–5 % on this kind of
 * VM, so a cost under 2 % takes hundreds of windows to resolve. Here both apps share one process, one JIT and the
 * same seconds of the machine: what differs is only what metrics on adds to every answer (Fastify's onResponse hook
 * and the request recorder). The ceremony and commit recorders are measured apart (bench/signin.ts).
 * Inject skips the socket, which metrics do not touch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/index.js';

export interface MarginalCost {
  /** CPU per answer with metrics off and on, µs. */
  offUs: number;
  onUs: number;
  /**
   * On minus off per answer, µs: the median of the pairs' differences and its 95 % interval (order statistics, no
   * assumption about the distribution). A median, not a mean: a batch that V8's incremental marking slows runs up to
   * twice as long whichever app it was, and one such batch would move a mean by more than the cost looked for.
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
    // Warm both until the JIT has settled on Fastify's paths.
    for (let i = 0; i < 40; i++) {
      await batch(off);
      await batch(on);
    }
    const differences: number[] = [];
    let offTotal = 0;
    let onTotal = 0;
    for (let b = 0; b < batches; b++) {
      // Which goes first turns round each batch, so a drift within the pair falls on each alike.
      const [offUs, onUs] = b % 2 === 0 ? [await batch(off), await batch(on)] : (([o, f]) => [f, o])([await batch(on), await batch(off)]);
      offTotal += offUs;
      onTotal += onUs;
      differences.push(onUs - offUs);
    }
    return { offUs: offTotal / batches, onUs: onTotal / batches, addedUs: medianWithInterval(differences), batches, requestsPerBatch };
  } finally {
    await Promise.all(apps.map((app) => app.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The median and the ranks n/2 ± 1.96·√n/2 of the sorted values around it: a 95 % interval for the median. */
function medianWithInterval(values: number[]): { median: number; low: number; high: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const at = (rank: number) => sorted[Math.min(n - 1, Math.max(0, Math.round(rank)))]!;
  const half = (1.96 * Math.sqrt(n)) / 2;
  const mid = n >> 1;
  return { median: n % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2, low: at(n / 2 - half - 1), high: at(n / 2 + half) };
}

// npm run bench:metrics: this measurement alone.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.env.LATCHKEY_SECRET_KEY ??= (await import('node:crypto')).randomBytes(32).toString('base64url');
  const r = await measureMetricsMarginalCost();
  console.log(`metrics off ${r.offUs.toFixed(2)} µs, on ${r.onUs.toFixed(2)} µs per answer; on adds ${r.addedUs.median.toFixed(2)} µs (95 % interval ${r.addedUs.low.toFixed(2)} to ${r.addedUs.high.toFixed(2)}; median of ${r.batches} pairs of batches of ${r.requestsPerBatch})`);
}
