import { defineConfig } from 'vitest/config';
import { asyncContextFrameFlag } from './bin/asyncContextFrame.js';

const frameFlag = asyncContextFrameFlag();

export default defineConfig({
  test: {
    include: ['src/**/*.test.{ts,tsx}', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // expect.poll waits on its condition for as long as a test may run (its own default is one second, a budget a
    // slow machine can miss); the test's timeout is the limit.
    expect: { poll: { timeout: 30_000 } },
    // Two cores: browser tests and PostgreSQL suites each get a worker.
    maxWorkers: 2,
    // AsyncLocalStorage as `latchkey serve` keeps it (bin/asyncContextFrame.js): on Node.js 22, with AsyncContextFrame.
    execArgv: frameFlag ? [frameFlag] : [],
    reporters: ['default', './test/support/summaryReporter.ts'],
  },
});
