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
import { copyFileSync, rmSync } from 'node:fs';
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
  /**
   * Servers per variant (default 1). With more, a variant's cost is the mean of its servers' and its ratio's error
   * comes from their spread: each server process keeps an offset of its own for its lifetime (measured here: ±5 %
   * between three servers of the same code), which one server per variant folds into the difference unseen.
   */
  instances?: number;
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
  /** All CPU over all ceremonies (of all its servers), µs. */
  cpuUs: number;
  /**
   * Against the first variant (undefined for the first): with one server each, the mean of the rounds' ratios and its
   * standard error; with several, the ratio of the means of the servers' means, its error from their spread.
   */
  ratio?: { mean: number; standardError: number };
  /** With several servers per variant: each one's mean CPU per ceremony over the rounds, µs. */
  instanceCpuUs?: number[];
  /** RSS after the variant's last window (of the server measured last). */
  rssMiB: number;
  ceremoniesPerSecond: number;
  failures: number;
}

const cpuMs = (u: Usage) => u.cpuUserMs + u.cpuSystemMs;

export async function runInterleaved(options: InterleavedOptions): Promise<VariantSummary[]> {
  const { variants, users, origin, concurrency } = options;
  const instances = Math.max(1, Math.floor(options.instances ?? 1));
  /** Every server, instance by instance (A#1 B#1 A#2 B#2 …), so each variant's servers are spread over the round. */
  const slots = Array.from({ length: instances }, (_, k) => variants.map((variant, v) => ({ v, k, variant }))).flat();
  const servers: ServerProcess[] = [];
  const totals = variants.map(() => ({ cpuMs: 0, ceremonies: 0, seconds: 0, failures: 0, rssMiB: 0 }));
  /** Per round, each server's CPU per ceremony (by slot). */
  const rounds: number[][] = [];
  const loads: WindowLoad[] = [];
  const copies: string[] = [];
  const signIns = (server: ServerProcess): WindowLoad => ({
    run: async ({ settleMs, durationMs, onWindow }) => {
      const r = await runLoad({ port: server.port, origin, users, concurrency, path: 'cold', warmupMs: settleMs, durationMs, onWindow });
      return { count: r.ceremonies, seconds: r.seconds, failures: r.failures };
    },
  });
  try {
    // Every copy is taken before any server opens (and writes to) the database it is copied from.
    const databaseUrls = slots.map(({ v, k, variant }) => (k === 0 ? variant.databaseUrl : instanceCopy(variant.databaseUrl, `v${v}-${k}`, copies)));
    for (const [i, { variant }] of slots.entries()) {
      const databaseUrl = databaseUrls[i]!;
      const server = await ServerProcess.start(databaseUrl, await freePort(), origin, variant.env);
      servers.push(server);
      loads.push((await options.load?.(server, { ...variant, databaseUrl })) ?? signIns(server));
    }
    const window = async (i: number, settleMs: number, durationMs: number) => {
      const server = servers[i]!;
      let before: Usage | undefined;
      let after: Usage | undefined;
      let otherMs = 0;
      const otherCpuMs = slots[i]!.variant.otherCpuMs;
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
    for (let i = 0; i < slots.length; i++) await window(i, options.warmupMs, 1000);
    for (let round = 1; round <= options.rounds; round++) {
      const order = slots.map((_, i) => i);
      if (round % 2 === 0) order.reverse();
      const perCeremony: number[] = [];
      for (const i of order) {
        const { result, cpuMs: used, before, after } = await window(i, options.settleMs, options.windowMs);
        const { v, k } = slots[i]!;
        const t = totals[v]!;
        t.cpuMs += used;
        t.ceremonies += result.count;
        t.seconds += result.seconds;
        t.failures += [...result.failures.values()].reduce((a, b) => a + b, 0);
        t.rssMiB = after.rss / 2 ** 20;
        const cpuUs = (used * 1000) / Math.max(1, result.count);
        perCeremony[i] = cpuUs;
        options.onWindow?.({
          round,
          label: instances > 1 ? `${variants[v]!.label} #${k + 1}` : variants[v]!.label,
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
    for (const file of copies) for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
  }
  // Each server's mean over the rounds.
  const serverMeans = slots.map((_, i) => rounds.reduce((a, r) => a + r[i]!, 0) / rounds.length);
  const meansOf = (v: number) => serverMeans.filter((_, i) => slots[i]!.v === v);
  return variants.map((variant, v) => {
    const t = totals[v]!;
    let ratio: VariantSummary['ratio'];
    // With one instance, slot v is variant v.
    if (v > 0 && instances === 1) ratio = meanAndError(rounds.map((r) => r[v]! / r[0]!));
    else if (v > 0) {
      // Between instances: each server process keeps an offset of its own for its lifetime (A/A/A runs here: ±5 %),
      // which the rounds' ratios, taken between the same two servers every round, cannot show.
      const a = meanAndError(meansOf(0));
      const b = meanAndError(meansOf(v));
      const mean = b.mean / a.mean;
      ratio = { mean, standardError: mean * Math.hypot(a.standardError / a.mean, b.standardError / b.mean) };
    }
    return {
      label: variant.label,
      cpuUs: (t.cpuMs * 1000) / Math.max(1, t.ceremonies),
      ...(ratio ? { ratio } : {}),
      ...(instances > 1 ? { instanceCpuUs: meansOf(v) } : {}),
      rssMiB: t.rssMiB,
      ceremoniesPerSecond: t.ceremonies / Math.max(1e-9, t.seconds),
      failures: t.failures,
    };
  });
}

/** A SQLite database's copy for another instance of its variant (PostgreSQL's instances share the database). */
function instanceCopy(url: string, name: string, copies: string[]): string {
  if (!url.startsWith('sqlite:') || url === 'sqlite::memory:') return url;
  const file = url.slice('sqlite:'.length);
  const copy = `${file}.instance-${name}`;
  copyFileSync(file, copy);
  copies.push(copy);
  return `sqlite:${copy}`;
}

/** "+1.2 % ± 0.4" for a ratio's mean and standard error. */
export function formatCost(ratio: { mean: number; standardError: number }): string {
  const pct = (ratio.mean - 1) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(1)} % ± ${(ratio.standardError * 100).toFixed(1)}`;
}
