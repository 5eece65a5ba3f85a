import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildApp } from './app.js';
import { openDatabase } from './db/connect.js';
import { testConfig } from '../test/support/app.js';

describe('buildApp', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('starts however long a plugin takes to start (no plugin timeout: start must not depend on how fast the machine is)', async () => {
    const config = testConfig();
    const db = openDatabase(config.databaseUrl);
    await db.migrate();
    const app = await buildApp(config, { db });
    try {
      expect(app.initialConfig.pluginTimeout).toBe(0);
      // A plugin that is still starting after a minute (as the provider's first RSA key can be on a loaded host):
      // the clock is moved on rather than waited for.
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      let finish!: () => void;
      const started = new Promise<void>((resolve) => (finish = resolve));
      let reached!: () => void;
      const loading = new Promise<void>((resolve) => (reached = resolve));
      app.register(async function slowToStart() {
        reached();
        await started;
      });
      const ready = app.ready();
      await loading;
      vi.advanceTimersByTime(60_000);
      vi.useRealTimers();
      finish();
      await expect(ready).resolves.toBe(app);
    } finally {
      vi.useRealTimers();
      await app.close();
      await db.close();
    }
  });
});
