/**
 * Two or more server variants measured in short interleaved windows: every variant's server is started once, warmed
 * up, and kept running; then the load (bench/load.ts, the cold sign-in path) moves from one to the next every few
 * seconds, in an order that turns round each round (A B, B A, A B …), so the machine's drift and another process's
 * bursts fall on every variant alike. No server restarts between windows, so no variant is measured on a JIT state
 * of its own. What a setting costs is read from each round's ratio to the first variant (mean ± standard error
 * across rounds) and from the totals (all CPU over all ceremonies).
 *
 * Used by `npm run bench` (section 3: SQLite against PostgreSQL; section 5: /metrics on against off) and
 * `npm run bench:compare`. A "ceremony" below is one unit of the window's load: a sign-in by default, a refresh grant
 * where `load` says so.
 */
import { runLoad } from './load.js';
import { meanAndError } from './statistics.js';
import { freePort, ServerProcess, type Usage } from './serverProcess.js';
import type { BenchUser } from './seed.js';

export interface Variant {
  label: string;
  /** The server's database (each variant its own copy, so no two servers share a SQLite file's write lock). */
  databaseUrl: string;
  env?: Record<string, string>;
  /** CPU time other processes have used so far that this variant's windows count as its own (PostgreSQL's), ms. */
  otherCpuMs?: () => number;
}

export interface InterleavedOptions {
  variants: Variant[];
  users: BenchUser[];
  /** LATCHKEY_ORIGIN of every server (the users' passkeys are bound to it); each server listens on a port of its own. */
  origin: string;
  concurrency: number;
  rounds: number;
  windowMs: number;
  /** Load before each window, not measured (connections opened, the server back at speed). */
  settleMs: number;
  /** Load on each server once, before the first round. */
  warmupMs: number;
  /** Called with each window's figures as it ends. */
  onWindow?: (w: InterleavedWindow) => void;
  /**
   * What a window's load is, set up once per server after it starts: by default (or where it gives undefined) the
   * cold sign-in path (bench/load.ts) for `users`; `npm run bench:compare` with BENCH_LOAD=refresh gives refresh
   * grants (bench/tokens.ts), `npm run bench` the floor's bare requests for its floor variant (bench/signin.ts, 1i).
   */
  load?: (server: ServerProcess, variant: Variant) => Promise<WindowLoad | undefined>;
}

/** Load on one server: a settling stretch, then a measured window whose edges `onWindow` is told of. */
export interface WindowLoad {
  run(o: { settleMs: number; durationMs: number; onWindow: (edge: 'start' | 'end') => Promise<void> }): Promise<{
    count: number;
    seconds: number;
    failures: Map<string, number>;
    /** CPU outside the server that the window's units count as their own, ms (the floor's raw verifies, timed in this process). */
    extraCpuMs?: number;
  }>;
  close?(): void;
}

export interface InterleavedWindow {
  round: number;
  label: string;
  /** Server CPU (user + system) per ceremony, with the variant's otherCpuMs, µs. */
  cpuUs: number;
  /** The event-loop thread's CPU per ceremony, µs (Linux). */
  eventLoopUs?: number;
  ceremoniesPerSecond: number;
  rssMiB: number;
  failures: Map<string, number>;
}

export interface VariantSummary {
  label: string;
  /** All CPU over all ceremonies, µs. */
  cpuUs: number;
  /** Mean of the rounds' ratios to the first variant, and its standard error (undefined for the first). */
  ratio?: { mean: number; standardError: number };
  rssMiB: number;
  ceremoniesPerSecond: number;
  failures: number;
}

const cpuMs = (u: Usage) => u.cpuUserMs + u.cpuSystemMs;

export async function runInterleaved(options: InterleavedOptions): Promise<VariantSummary[]> {
  const { variants, users, origin, concurrency } = options;
  const servers: ServerProcess[] = [];
  const totals = variants.map(() => ({ cpuMs: 0, ceremonies: 0, seconds: 0, failures: 0, rssMiB: 0 }));
  /** Per round, each variant's CPU per ceremony. */
  const rounds: number[][] = [];
  const loads: WindowLoad[] = [];
  const signIns = (server: ServerProcess): WindowLoad => ({
    run: async ({ settleMs, durationMs, onWindow }) => {
      const r = await runLoad({ port: server.port, origin, users, concurrency, path: 'cold', warmupMs: settleMs, durationMs, onWindow });
      return { count: r.ceremonies, seconds: r.seconds, failures: r.failures };
    },
  });
  try {
    for (const v of variants) {
      const server = await ServerProcess.start(v.databaseUrl, await freePort(), origin, v.env);
      servers.push(server);
      loads.push((await options.load?.(server, v)) ?? signIns(server));
    }
    const window = async (i: number, settleMs: number, durationMs: number) => {
      const server = servers[i]!;
      let before: Usage | undefined;
      let after: Usage | undefined;
      let otherMs = 0;
      const otherCpuMs = variants[i]!.otherCpuMs;
      const result = await loads[i]!.run({
        settleMs,
        durationMs,
        onWindow: async (edge) => {
          if (edge === 'start') {
            before = await server.usage();
            otherMs = -(otherCpuMs?.() ?? 0);
          } else {
            after = await server.usage();
            otherMs += otherCpuMs?.() ?? 0;
          }
        },
      });
      return { result, cpuMs: cpuMs(after!) - cpuMs(before!) + otherMs + (result.extraCpuMs ?? 0), before: before!, after: after! };
    };
    for (let i = 0; i < variants.length; i++) await window(i, options.warmupMs, 1000);
    for (let round = 1; round <= options.rounds; round++) {
      const order = variants.map((_, i) => i);
      if (round % 2 === 0) order.reverse();
      const perCeremony: number[] = [];
      for (const i of order) {
        const { result, cpuMs: used, before, after } = await window(i, options.settleMs, options.windowMs);
        const t = totals[i]!;
        t.cpuMs += used;
        t.ceremonies += result.count;
        t.seconds += result.seconds;
        t.failures += [...result.failures.values()].reduce((a, b) => a + b, 0);
        t.rssMiB = after.rss / 2 ** 20;
        const cpuUs = (used * 1000) / Math.max(1, result.count);
        perCeremony[i] = cpuUs;
        options.onWindow?.({
          round,
          label: variants[i]!.label,
          cpuUs,
          eventLoopUs: after.eventLoopCpuMs !== undefined && before.eventLoopCpuMs !== undefined ? ((after.eventLoopCpuMs - before.eventLoopCpuMs) * 1000) / Math.max(1, result.count) : undefined,
          ceremoniesPerSecond: result.count / result.seconds,
          rssMiB: t.rssMiB,
          failures: result.failures,
        });
      }
      rounds.push(perCeremony);
    }
  } finally {
    for (const l of loads) l.close?.();
    await Promise.all(servers.map((s) => s.stop()));
  }
  return variants.map((v, i) => {
    const t = totals[i]!;
    const ratios = rounds.map((r) => r[i]! / r[0]!);
    return {
      label: v.label,
      cpuUs: (t.cpuMs * 1000) / Math.max(1, t.ceremonies),
      ...(i === 0 ? {} : { ratio: meanAndError(ratios) }),
      rssMiB: t.rssMiB,
      ceremoniesPerSecond: t.ceremonies / Math.max(1e-9, t.seconds),
      failures: t.failures,
    };
  });
}

/** "+1.2 % ± 0.4" for a ratio's mean and standard error. */
export function formatCost(ratio: { mean: number; standardError: number }): string {
  const pct = (ratio.mean - 1) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(1)} % ± ${(ratio.standardError * 100).toFixed(1)}`;
}
