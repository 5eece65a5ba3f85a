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

  describe('the access log', () => {
    type Line = { level: number; msg: string; req?: { method: string; url: string }; res?: { statusCode: number }; responseTime?: number };
    const INFO = 30;
    const requests = async (app: Awaited<ReturnType<typeof buildApp>>) => {
      await app.inject({ method: 'GET', url: '/healthz' });
      await app.inject({ method: 'GET', url: '/no-such-page' });
      // Answered by oidc-provider on the raw response (reply.hijack): still one line.
      await app.inject({ method: 'GET', url: '/.well-known/openid-configuration' });
    };
    /** The request lines written at `level` with LATCHKEY_ACCESS_LOG=`mode` (those written while the app starts are left out). */
    async function requestLines(level: string, mode?: string): Promise<Line[]> {
      const lines: Line[] = [];
      const config = testConfig(mode ? { LATCHKEY_ACCESS_LOG: mode } : {});
      const db = openDatabase(config.databaseUrl);
      await db.migrate();
      const app = await buildApp(config, { db, logger: { level, stream: { write: (line: string) => void lines.push(JSON.parse(line)) } } });
      try {
        await app.ready();
        lines.length = 0;
        await requests(app);
        return lines.filter((l) => l.req);
      } finally {
        await app.close();
        await db.close();
      }
    }
    const summary = (lines: Line[]) => lines.map((l) => [l.level, l.msg, l.req!.method, l.req!.url, l.res?.statusCode]);

    it('writes a line at info for each answer of 400 and above by default, with the method, URL, status and time', async () => {
      const lines = await requestLines('info');
      expect(summary(lines)).toEqual([[INFO, 'request completed', 'GET', '/no-such-page', 404]]);
      expect(lines[0]!.responseTime).toBeGreaterThan(0);
    });

    it('writes one for every answer with LATCHKEY_ACCESS_LOG=all, and none with off', async () => {
      expect(summary(await requestLines('info', 'all'))).toEqual([
        [INFO, 'request completed', 'GET', '/healthz', 200],
        [INFO, 'request completed', 'GET', '/no-such-page', 404],
        [INFO, 'request completed', 'GET', '/.well-known/openid-configuration', 200],
      ]);
      expect(await requestLines('info', 'off')).toEqual([]);
    });

    it('writes every request at debug, as it arrives and when it is answered', async () => {
      expect((await requestLines('debug', 'off')).map((l) => [l.msg, l.req!.url])).toEqual([
        ['incoming request', '/healthz'],
        ['request completed', '/healthz'],
        ['incoming request', '/no-such-page'],
        ['request completed', '/no-such-page'],
        ['incoming request', '/.well-known/openid-configuration'],
        ['request completed', '/.well-known/openid-configuration'],
      ]);
    });
  });
});
