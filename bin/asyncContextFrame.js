// When Latchkey's server runs with --experimental-async-context-frame: the one rule, read by bin/latchkey.js (which
// restarts `serve` in place with the flag), src/runtime.ts (the benchmarks' servers) and vitest.config.ts (the tests),
// so all three run as a server in service does. Plain JavaScript: bin/latchkey.js reads it before anything is built.
// Why: src/runtime.ts, asyncContextFrameFlag.

export const ASYNC_CONTEXT_FRAME_FLAG = '--experimental-async-context-frame';

/**
 * The flag on Node.js 22 from 22.15 (the first with process.execve, which the restart needs; the flag itself came in
 * 22.7), on a system with execve (not Windows); otherwise undefined. Node.js 24 and later keep AsyncLocalStorage this
 * way by default and refuse the flag.
 * @param {string} [version] Node.js's version, `process.versions.node` by default
 * @param {string} [platform] `process.platform` by default
 * @returns {string | undefined}
 */
export function asyncContextFrameFlag(version = process.versions.node, platform = process.platform) {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return major === 22 && minor >= 15 && platform !== 'win32' ? ASYNC_CONTEXT_FRAME_FLAG : undefined;
}
