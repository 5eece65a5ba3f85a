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
    type Line = { level: number; msg: string; reqId?: string; code?: string; err?: { message?: string }; req?: { method: string; url: string }; res?: { statusCode: number }; responseTime?: number };
    const [DEBUG, INFO, ERROR] = [20, 30, 50];
    /** Every line a request wrote with LATCHKEY_ACCESS_LOG=`mode` at `level`, through the app's own logger settings. */
    async function requestLines(
      level: string,
      mode: string | undefined,
      run: (app: Awaited<ReturnType<typeof buildApp>>) => Promise<unknown>,
      prepare?: (app: Awaited<ReturnType<typeof buildApp>>) => void,
    ): Promise<Line[]> {
      const lines: Line[] = [];
      const config = testConfig({ LOG_LEVEL: level, ...(mode ? { LATCHKEY_ACCESS_LOG: mode } : {}) });
      const db = openDatabase(config.databaseUrl);
      await db.migrate();
      const app = await buildApp(config, { db, logStream: { write: (line: string) => void lines.push(JSON.parse(line)) } });
      try {
        prepare?.(app);
        await app.ready();
        await run(app);
        return lines.filter((l) => l.reqId);
      } finally {
        await app.close();
        await db.close();
      }
    }
    const threeRequests = async (app: Awaited<ReturnType<typeof buildApp>>) => {
      await app.inject({ method: 'GET', url: '/healthz' });
      await app.inject({ method: 'GET', url: '/no-such-page' });
      // Answered by oidc-provider on the raw response (reply.hijack): still one line.
      await app.inject({ method: 'GET', url: '/.well-known/openid-configuration' });
    };
    const summary = (lines: Line[]) => lines.map((l) => [l.level, l.msg, l.req?.method, l.req?.url, l.res?.statusCode]);

    it('writes a line at info for each answer of 400 and above by default, with the method, URL, status and time', async () => {
      const lines = await requestLines('info', undefined, threeRequests);
      expect(summary(lines)).toEqual([[INFO, 'request completed', 'GET', '/no-such-page', 404]]);
      expect(lines[0]!.responseTime).toBeGreaterThan(0);
    });

    it('writes one for every answer with LATCHKEY_ACCESS_LOG=all, and none with off', async () => {
      expect(summary(await requestLines('info', 'all', threeRequests))).toEqual([
        [INFO, 'request completed', 'GET', '/healthz', 200],
        [INFO, 'request completed', 'GET', '/no-such-page', 404],
        [INFO, 'request completed', 'GET', '/.well-known/openid-configuration', 200],
      ]);
      expect(await requestLines('info', 'off', threeRequests)).toEqual([]);
    });

    it('writes every request at debug, as it arrives and when it is answered', async () => {
      expect((await requestLines('debug', 'off', threeRequests)).map((l) => [l.level, l.msg, l.req?.url])).toEqual([
        [DEBUG, 'incoming request', '/healthz'],
        [DEBUG, 'request completed', '/healthz'],
        [DEBUG, 'incoming request', '/no-such-page'],
        [DEBUG, 'request completed', '/no-such-page'],
        [DEBUG, 'incoming request', '/.well-known/openid-configuration'],
        [DEBUG, 'request completed', '/.well-known/openid-configuration'],
      ]);
    });

    it('counts a server failure among the errors, and the failure itself has a line at error with its cause', async () => {
      const lines = await requestLines(
        'info',
        undefined,
        async (app) => expect((await app.inject({ method: 'GET', url: '/test-broken' })).statusCode).toBe(500),
        (app) => app.get('/test-broken', () => Promise.reject(new Error('broken on purpose'))),
      );
      expect(lines.map((l) => [l.level, l.msg, l.res?.statusCode, l.err?.message])).toEqual([
        [ERROR, 'request failed', undefined, 'broken on purpose'],
        [INFO, 'request completed', 500, undefined],
      ]);
    });

    it('logs a failure inside the OpenID Connect provider, which answers it itself, at error with its cause', async () => {
      const lines = await requestLines('info', 'off', async (app) => {
        app.latchkey.store.services.find = () => Promise.reject(new Error('database gone'));
        const res = await app.inject({ method: 'POST', url: '/oidc/token', headers: { authorization: `Basic ${Buffer.from('svc:secret').toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'grant_type=refresh_token&refresh_token=x' });
        expect(res.statusCode).toBe(500);
      });
      expect(lines.map((l) => [l.level, l.msg, l.err?.message])).toEqual([[ERROR, 'OpenID Connect request failed', 'database gone']]);
    });

    it('says so at info when a request is refused before routing, which the access log never sees', async () => {
      const lines = await requestLines('info', 'off', (app) => app.inject({ method: 'GET', url: '/settings/passkeys/%ff/remove' }));
      expect(lines.map((l) => [l.level, l.msg, l.code, l.req?.url])).toEqual([[INFO, 'request refused', 'bad_request', '/settings/passkeys/%ff/remove']]);
    });

    it('shows URLs with an invitation token and query values other than OAuth parameters redacted', async () => {
      const lines = await requestLines('info', 'all', (app) => app.inject({ method: 'GET', url: '/enrol/abcDEF123_-x?email=ann%40example.org&client_id=svc' }));
      expect(lines.filter((l) => l.msg === 'request completed').map((l) => l.req?.url)).toEqual(['/enrol/[redacted]?email=[redacted]&client_id=svc']);
    });
  });
});
