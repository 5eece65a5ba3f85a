/**
 * The Node.js versions Latchkey supports: 22 LTS and later LTS releases (24; CI runs on 22). oidc-provider 9, the
 * OpenID Connect engine, supports only LTS releases from 22 ("Jod") on, and Node.js 20 reached its end of life in
 * April 2026. On anything else `serve` still starts, with one warning of its own in place of oidc-provider's.
 */

import v8 from 'node:v8';
import { asyncContextFrameFlag } from '../bin/asyncContextFrame.js';

export const SUPPORTED_NODE = 'Node.js 22 or a later LTS release';

/** A warning for a Node.js release Latchkey does not support, or undefined; the same releases oidc-provider warns about. */
export function unsupportedRuntime({ version, lts }: { version: string; lts?: string } = { version: process.version, lts: process.release.lts }): string | undefined {
  const major = Number(/^v(\d+)\./.exec(version)?.[1] ?? 0);
  if (major >= 22 && lts) return undefined;
  const why = major < 22 ? 'too old' : 'not a long-term-support release';
  return `Node.js ${version} is ${why}: Latchkey supports ${SUPPORTED_NODE}, and oidc-provider, its OpenID Connect engine, supports nothing older; upgrade Node.js`;
}

/**
 * Let each worker thread's own young-generation limit (`resourceLimits.maxYoungGenerationSizeMb`) apply: call before
 * starting a worker, and give every worker its limit. V8 sizes an isolate's heap once, when the isolate starts, and a
 * `--max-semi-space-size` flag (SERVER_NODE_FLAGS) wins over the limit a worker asks for: the signature worker asked
 * for 2 MiB and got the main thread's 8. The main isolate has read the flag already, so clearing it changes only
 * isolates started later, the workers (a worker without a limit would get V8's default, two 16 MiB semi-spaces).
 */
export function letWorkersSizeTheirYoungGeneration(): void {
  v8.setFlagsFromString('--max-semi-space-size=0');
}

const PROVIDER_RUNTIME_WARNING = 'oidc-provider WARNING: Unsupported runtime.';

/**
 * Run `load` (which imports oidc-provider) without the provider's own runtime warning, printed with console.warn
 * when the module is first evaluated: the caller reports unsupportedRuntime() instead, naming what Latchkey supports.
 */
export async function withoutProviderRuntimeWarning<T>(load: () => Promise<T>): Promise<T> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes(PROVIDER_RUNTIME_WARNING)) return;
    warn.apply(console, args);
  };
  try {
    return await load();
  } finally {
    console.warn = warn;
  }
}

/**
 * Node.js flags the server runs with: bin/latchkey.js's first line and `npm start` pass them (runtime.test.ts checks
 * both), and the benchmarks' server too. V8 grows its young generation to two 16 MiB semi-spaces under load, 32 MiB
 * that stays resident; the server's requests allocate little that lives past one, so 4 MiB semi-spaces keep 24 MiB
 * off RSS and measured no slower (BENCHMARKS.md, server memory). Flags must be given at start: V8 sizes the heap once.
 * `--v8-pool-size=2`: V8's helper threads (parallel and concurrent GC, background compiles) are 2, not Node's 4: each
 * keeps a glibc malloc arena whose freed memory stays resident, 3–7 MiB for the two fewer; the server's JavaScript
 * runs on one thread, and a GC of its ~60 MiB heap has no use for more helpers.
 * `--heap-growing-percent=40`: after a full GC, V8 lets the old generation grow by 40 % of what survived before the
 * next one, instead of a factor it picks (here up to ~2×: no full GC at all in 30 s of sign-ins, the heap and RSS
 * growing all along: 207 MiB after 35,000 ceremonies). What the server promotes is mostly short-lived (requests in
 * flight through two scavenges), so RSS stays flat however long the run. Token grants promote ~20 KiB each (32 in
 * flight through two scavenges), and every full GC marks the ~47 MiB live heap on V8's helper threads: at 20 % one
 * every ~0.5 s of refresh grants, a quarter of a grant's CPU; at 40 % half as many: −19 % ± 6 and −8 % ± 5 CPU per
 * grant in two runs, 7–13 MiB more resident while grants run, and RSS after 10 or 30 s of sign-ins no higher
 * (BENCHMARKS.md, 2026-12-07 18:30 UTC).
 * `--no-minor-gc-task`: V8 scavenges the young generation when it is full, not early from a task at 80 % of it. A
 * token grant is in flight across scavenges (at 32 concurrent grants, one every ~25 ms), and what is live at one is
 * copied, then promoted at the next, for the full GCs to mark: scavenging less often. Refresh grants read 3–4 % less
 * CPU with one server per side, −1.7 % ± 3.2 with three (not resolved); sign-ins and RSS the same (BENCHMARKS.md,
 * 2026-12-07 13:00 and 14:30 UTC).
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--v8-pool-size=2', '--heap-growing-percent=40', '--no-minor-gc-task'];

/**
 * Why `latchkey serve` runs with `--experimental-async-context-frame` on Node.js 22 (where: asyncContextFrameFlag,
 * bin/asyncContextFrame.js, the one rule). oidc-provider runs every request inside an AsyncLocalStorage. Node.js 22
 * keeps that storage with promise hooks, and their first use turns them on for the whole process, for good: from the
 * first OpenID Connect request on, every promise of every request then calls a hook and allocates (9 % of what a
 * refresh grant allocates). With the flag, V8's continuation data carries the context instead (AsyncContextFrame, the
 * default from Node.js 24, which refuses the flag): refresh grants measured 12 % less CPU and code grants 10 % less
 * on the means of three pairs (BENCHMARKS.md). bin/latchkey.js restarts `serve` in place with it; the benchmarks'
 * servers get it from serverNodeFlags(), and the tests' workers from vitest.config.ts.
 */
export { asyncContextFrameFlag };

/** SERVER_NODE_FLAGS and, where `latchkey serve` adds it, asyncContextFrameFlag(): how the server ends up running. */
export function serverNodeFlags(version: string = process.versions.node, platform: string = process.platform): string[] {
  const frame = asyncContextFrameFlag(version, platform);
  return frame ? [...SERVER_NODE_FLAGS, frame] : [...SERVER_NODE_FLAGS];
}
