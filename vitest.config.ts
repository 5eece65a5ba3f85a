import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.{ts,tsx}', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: browser tests and PostgreSQL suites each get a worker.
    maxWorkers: 2,
    reporters: ['default', './test/support/summaryReporter.ts'],
  },
});
