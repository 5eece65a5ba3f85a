/**
 * /metrics as an operator scrapes it: real ceremonies through app.inject, then the text read over HTTP from the
 * metrics listener (port 0), never from the public app.
 */
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as client from 'openid-client';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TEST_ORIGIN, TestBrowser, type TestApp } from '../../test/support/app.js';
import { follow, injectFetch } from '../../test/support/relyingParty.js';
import { testDatabases } from '../../test/support/databases.js';
import { createApiToken } from '../api/apiTokens.js';
import { createUser } from '../users/createUser.js';
import { addService } from '../oidc/services.js';
import { reportExpiredEnrolments } from '../flows/enrolment/reportExpiredEnrolments.js';
import { failureReason, FAILURE_REASONS, NO_METRICS, PrometheusMetrics } from './metrics.js';
import { createServer } from 'node:net';
import { loadConfig, unsafeSettings } from '../config/index.js';
import { runCli } from '../main.js';
import { startSmtpSink } from '../../test/support/smtpSink.js';
import { freePort, spawnServe } from '../../test/support/serve.js';

const METRICS_ON = { LATCHKEY_METRICS_PORT: '0' };

/** The metrics text, fetched from the app's metrics listener as Prometheus would. */
async function scrape(t: TestApp): Promise<string> {
  const address = await t.app.metricsListener.listen();
  expect(address).toBeDefined();
  const res = await fetch(`http://127.0.0.1:${address!.port}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
}

/** The value of one sample, e.g. sample(text, 'latchkey_ceremonies_total{flow="signin",method="passkey",outcome="success"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics', () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('are off unless LATCHKEY_METRICS_PORT is set: nothing recorded, nothing listens; /metrics is never on the public listener', async () => {
    t = await createTestApp();
    expect(t.app.latchkey.metrics).toBe(NO_METRICS);
    expect(await t.app.metricsListener.listen()).toBeUndefined();
    expect((await t.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
    await t.close();

    t = await createTestApp(METRICS_ON);
    const publicAnswer = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(publicAnswer.statusCode).toBe(404);
    expect(publicAnswer.body).not.toContain('latchkey_');
    // The metrics listener serves /metrics and nothing else.
    const address = (await t.app.metricsListener.listen())!;
    expect(address.address).toBe('127.0.0.1');
    expect((await fetch(`http://127.0.0.1:${address.port}/signin`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${address.port}/metrics`, { method: 'POST' })).status).toBe(404);
    // Closing the app closes it.
    await t.close();
    t = undefined;
    await expect(fetch(`http://127.0.0.1:${address.port}/metrics`)).rejects.toThrow();
  });

  it('count a passkey sign-up and sign-in by flow, method and outcome, with latency by route, challenge store, commits and the event loop', async () => {
    t = await createTestApp(METRICS_ON);
    // A sign-up whose authenticator did not verify the person is refused, and counted with its reason.
    const refused = new TestBrowser(t.app);
    await refused.get('/signup');
    const signupOptions = (await refused.postJson('/signup/options', { displayName: 'Mary Seacole', email: 'mary@example.com', placement: 'this-device' })).json().options;
    expect((await refused.postJson('/signup/verify', { response: authenticator({ userVerification: false }).createCredential(signupOptions) })).statusCode).toBe(400);
    const auth = authenticator();
    await signUp(t.app, auth);
    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    const options = (await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options;
    const assertion = auth.getAssertion(options);
    expect((await browser.postJson('/signin/verify', { response: assertion })).statusCode).toBe(200);
    // The same response again: its challenge was used up.
    expect((await browser.postJson('/signin/verify', { response: assertion })).statusCode).toBe(400);
    // A ceremony begun and not finished waits in the challenge store.
    await browser.postJson('/signin/options', { mode: 'discoverable' });
    await t.app.inject({ method: 'GET', url: '/no/such/page/12345' });

    const text = await scrape(t);
    expect(text).toContain('# HELP latchkey_ceremonies_total ');
    expect(sample(text, 'latchkey_ceremonies_total{flow="signup",method="passkey",outcome="success"}')).toBe(1);
    expect(sample(text, 'latchkey_ceremonies_total{flow="signup",method="passkey",outcome="user_verification"}')).toBe(1);
    expect(sample(text, 'latchkey_ceremonies_total{flow="signin",method="passkey",outcome="success"}')).toBe(1);
    expect(sample(text, 'latchkey_ceremonies_total{flow="signin",method="passkey",outcome="challenge"}')).toBe(1);
    // Latency by the route pattern; the unknown path under one label, not its own.
    expect(sample(text, 'latchkey_http_request_duration_seconds_count{route="/signin/verify",method="POST",status_class="2xx"}')).toBe(1);
    expect(sample(text, 'latchkey_http_request_duration_seconds_count{route="/signin/verify",method="POST",status_class="4xx"}')).toBe(1);
    expect(sample(text, 'latchkey_http_request_duration_seconds_bucket{le="10",route="/signin/verify",method="POST",status_class="2xx"}')).toBe(1);
    expect(sample(text, 'latchkey_http_request_duration_seconds_count{route="unmatched",method="GET",status_class="4xx"}')).toBe(1);
    expect(text).not.toContain('/no/such/page');
    expect(sample(text, 'latchkey_challenge_store_size')).toBe(1);
    // Sign-up, the sign-in's group commit and sessions: every transaction committed was timed.
    expect(sample(text, 'latchkey_db_commit_duration_seconds_count')).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/^latchkey_nodejs_eventloop_lag_p99_seconds \d/m);
    expect(text).toMatch(/^latchkey_process_cpu_seconds_total \d/m);
    // prom-client's other default metrics are all there (each loaded by its module path: an upgrade that moves one
    // fails here); its GC histogram, which observes every collection, is left out.
    for (const name of ['process_start_time_seconds', 'process_resident_memory_bytes', 'process_open_fds', 'process_max_fds', 'nodejs_active_resources_total', 'nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_heap_size_used_bytes', 'nodejs_heap_space_size_used_bytes', 'nodejs_version_info']) {
      expect(text, name).toMatch(new RegExp(`^# TYPE latchkey_${name} `, 'm'));
    }
    expect(text).not.toContain('gc_duration');
    // SQLite: no pool to report.
    expect(text).not.toContain('latchkey_db_pool');
  });

  it('count token grants by grant type and outcome', async () => {
    t = await createTestApp(METRICS_ON);
    const app = t.app;
    const REDIRECT = 'https://rp.example/callback';
    const added = await addService(app.latchkey.store, app.latchkey.secretBox, { name: 'Rota', redirectUris: [REDIRECT], clientType: 'confidential', aal: 2, firstParty: true }, Date.now());
    const rp = await client.discovery(new URL(TEST_ORIGIN), added.service.client_id, undefined, client.ClientSecretBasic(added.clientSecret!), {
      execute: [client.allowInsecureRequests],
      [client.customFetch]: injectFetch(app),
    });
    const browser = await signUp(app, authenticator(), 'mary@example.com', 'Mary Seacole');
    const verifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(rp, {
      redirect_uri: REDIRECT,
      scope: 'openid offline_access',
      prompt: 'consent',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      nonce,
    });
    const { url: callback } = await follow(browser, url.toString());
    const tokens = await client.authorizationCodeGrant(rp, new URL(callback), { pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true });
    await client.refreshTokenGrant(rp, tokens.refresh_token!);
    await expect(client.refreshTokenGrant(rp, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

    const text = await scrape(t);
    expect(sample(text, 'latchkey_oidc_token_grants_total{grant_type="authorization_code",outcome="success"}')).toBe(1);
    expect(sample(text, 'latchkey_oidc_token_grants_total{grant_type="refresh_token",outcome="success"}')).toBe(1);
    expect(sample(text, 'latchkey_oidc_token_grants_total{grant_type="refresh_token",outcome="invalid_grant"}')).toBe(1);
    // The provider's answers are timed too (it answers on the raw response), under its route pattern.
    expect(sample(text, 'latchkey_http_request_duration_seconds_count{route="/oidc/*",method="POST",status_class="2xx"}')).toBe(2);
    expect(sample(text, 'latchkey_oidc_server_errors_total')).toBe(0);
  });

  it('count enrolments issued, completed and expired, and the enrolment ceremony', async () => {
    let clock = Date.now();
    t = await createTestApp(METRICS_ON, { now: () => clock });
    const { store } = t.app.latchkey;
    const { token } = await createApiToken(store, { name: 'ra', role: 'ra_manager', days: 30, createdBy: null }, clock);
    const issue = async (email: string, method: 'link' | 'code') => {
      const user = await createUser(store, { email, displayName: 'Mary Seacole' }, clock);
      const res = await t!.app.inject({ method: 'POST', url: `/api/v1/users/${user.id}/enrolments`, headers: { authorization: `Bearer ${token}` }, payload: { method } });
      expect(res.statusCode).toBe(201);
      return res.json() as { url?: string };
    };
    // The first sweep only sets its mark.
    await reportExpiredEnrolments(t.app);
    const { url } = await issue('mary@example.com', 'link');
    await issue('ada@example.com', 'code');

    const browser = new TestBrowser(t.app);
    const path = new URL(url!).pathname;
    await browser.get(path);
    const options = (await browser.postJson(`${path}/options`, { name: 'Phone', placement: 'this-device' })).json().options;
    const auth = authenticator();
    const bad = await browser.postJson(`${path}/verify`, { response: authenticator({ userVerification: false }).createCredential(options) });
    expect(bad.statusCode).toBe(400);
    const retry = (await browser.postJson(`${path}/options`, { name: 'Phone', placement: 'this-device' })).json().options;
    expect((await browser.postJson(`${path}/verify`, { response: auth.createCredential(retry), name: 'Phone' })).statusCode).toBe(200);

    // The code runs out unused.
    clock += 2 * 3600_000;
    expect(await reportExpiredEnrolments(t.app)).toBe(1);

    const text = await scrape(t);
    expect(sample(text, 'latchkey_enrolments_total{event="issued",method="link"}')).toBe(1);
    expect(sample(text, 'latchkey_enrolments_total{event="issued",method="code"}')).toBe(1);
    expect(sample(text, 'latchkey_enrolments_total{event="completed",method="link"}')).toBe(1);
    expect(sample(text, 'latchkey_enrolments_total{event="expired",method="code"}')).toBe(1);
    expect(sample(text, 'latchkey_ceremonies_total{flow="enrolment",method="passkey",outcome="success"}')).toBe(1);
    expect(sample(text, 'latchkey_ceremonies_total{flow="enrolment",method="passkey",outcome="user_verification"}')).toBe(1);
  });

  it('count the enrolment emails a bulk import sends through the server', async () => {
    const sink = await startSmtpSink();
    try {
      t = await createTestApp({ ...METRICS_ON, LATCHKEY_SMTP_URL: sink.url });
      const { token } = await createApiToken(t.app.latchkey.store, { name: 'HR feed', role: 'ra_agent_advanced', days: 30, createdBy: null }, Date.now());
      const csv = 'name,email\nEdith Cavell,edith.metrics@example.org\nMary Seacole,mary.metrics@example.org\n';
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/users/import?sendEnrolmentEmail=true', payload: csv, headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' } });
      expect(res.json()).toMatchObject({ written: true, created: 2, mailed: 2 });
      const text = await scrape(t);
      expect(sample(text, 'latchkey_enrolments_total{event="issued",method="email"}')).toBe(2);
    } finally {
      await t?.close();
      t = undefined;
      await sink.close();
    }
  });

  it('count password and code sign-ins and their failures', async () => {
    t = await createTestApp({ ...METRICS_ON, LATCHKEY_PASSWORD_SIGNIN: 'alone' });
    const browser = new TestBrowser(t.app);
    await browser.get('/signin/password');
    const res = await browser.postForm('/signin/password', { email: 'nobody@example.com', password: 'not the password' });
    expect(res.statusCode).toBe(400);
    const text = await scrape(t);
    expect(sample(text, 'latchkey_ceremonies_total{flow="signin",method="password",outcome="wrong_secret"}')).toBe(1);
  });

  it('write histograms as Prometheus expects: cumulative buckets by upper bound, +Inf, sum and count per label set', async () => {
    const metrics = new PrometheusMetrics();
    metrics.httpRequest('/signin', 'GET', 200, 0.0005);
    metrics.httpRequest('/signin', 'GET', 204, 0.003);
    metrics.httpRequest('/signin', 'GET', 200, 20);
    metrics.httpRequest('/signin', 'GET', 503, 0.001);
    metrics.commit(0.0001);
    const text = await metrics.text();
    const series = (le: string) => `latchkey_http_request_duration_seconds_bucket{le="${le}",route="/signin",method="GET",status_class="2xx"}`;
    expect(sample(text, series('0.001'))).toBe(1);
    expect(sample(text, series('0.0025'))).toBe(1);
    expect(sample(text, series('0.005'))).toBe(2);
    expect(sample(text, series('10'))).toBe(2);
    expect(sample(text, series('+Inf'))).toBe(3);
    expect(sample(text, 'latchkey_http_request_duration_seconds_count{route="/signin",method="GET",status_class="2xx"}')).toBe(3);
    expect(sample(text, 'latchkey_http_request_duration_seconds_sum{route="/signin",method="GET",status_class="2xx"}')).toBeCloseTo(20.0035, 6);
    // A value on a bound falls in that bucket (le: less than or equal).
    expect(sample(text, 'latchkey_http_request_duration_seconds_bucket{le="0.001",route="/signin",method="GET",status_class="5xx"}')).toBe(1);
    expect(sample(text, 'latchkey_db_commit_duration_seconds_bucket{le="0.0001"}')).toBe(1);
    expect(sample(text, 'latchkey_db_commit_duration_seconds_bucket{le="0.00005"}')).toBe(0);
    expect(text).toContain('# TYPE latchkey_http_request_duration_seconds histogram');
    expect(text).toContain('# TYPE latchkey_ceremonies_total counter');
  });

  it('keep a gauge whose read fails or hangs at its last value, and still answer the scrape', async () => {
    const metrics = new PrometheusMetrics();
    let next: () => Promise<number> = async () => 7;
    metrics.gauge('latchkey_test_gauge', 'A gauge for this test.', () => next());
    expect(sample(await metrics.text(), 'latchkey_test_gauge')).toBe(7);
    next = async () => {
      throw new Error('database unavailable');
    };
    expect(sample(await metrics.text(), 'latchkey_test_gauge')).toBe(7);
    next = () => new Promise(() => {});
    const started = Date.now();
    const text = await metrics.text();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(sample(text, 'latchkey_test_gauge')).toBe(7);
    expect(text).toContain('latchkey_ceremonies_total');
  });

  it('keep failure reasons to a fixed set', () => {
    expect(failureReason('challenge_invalid')).toBe('challenge');
    expect(failureReason('user_verification_required')).toBe('user_verification');
    expect(failureReason('counter_regressed')).toBe('counter_regressed');
    expect(failureReason('anything new')).toBe('other');
    expect(FAILURE_REASONS).toContain(failureReason('signin_throttled'));
  });
});

describe.each(await testDatabases())('metrics on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    afterAll(() => target.cleanup());
    it('time commits, and report the PostgreSQL pool', async () => {
      const db = await target.open();
      await db.migrate();
      const t = await createTestApp(METRICS_ON, { db });
      try {
        await signUp(t.app, authenticator());
        const text = await scrape(t);
        expect(sample(text, 'latchkey_db_commit_duration_seconds_count')).toBeGreaterThanOrEqual(1);
        if (target.name === 'postgres') {
          expect(sample(text, 'latchkey_db_pool_connections')).toBeGreaterThanOrEqual(1);
          expect(sample(text, 'latchkey_db_pool_idle_connections')).toBeGreaterThanOrEqual(0);
          expect(sample(text, 'latchkey_db_pool_waiting_requests')).toBe(0);
        } else {
          expect(text).not.toContain('latchkey_db_pool');
        }
      } finally {
        await t.close();
      }
    });
  });
});

describe('metrics configuration', () => {
  it('reads LATCHKEY_METRICS_PORT and _HOST, and warns when /metrics is reachable from other machines', () => {
    const base = { LATCHKEY_ORIGIN: TEST_ORIGIN, DATABASE_URL: 'sqlite::memory:' };
    expect(loadConfig(base).metricsPort).toBeUndefined();
    expect(loadConfig({ ...base, LATCHKEY_METRICS_PORT: '9464' })).toMatchObject({ metricsPort: 9464, metricsHost: '127.0.0.1' });
    expect(() => loadConfig({ ...base, LATCHKEY_METRICS_PORT: 'on' })).toThrow(/^LATCHKEY_METRICS_PORT: expected a whole number/);
    expect(() => loadConfig({ ...base, LATCHKEY_METRICS_PORT: '70000' })).toThrow(/^LATCHKEY_METRICS_PORT: must be between 0 and 65535/);
    expect(unsafeSettings(loadConfig({ ...base, LATCHKEY_METRICS_PORT: '9464' })).join('\n')).not.toContain('METRICS');
    expect(unsafeSettings(loadConfig({ ...base, LATCHKEY_METRICS_PORT: '9464', LATCHKEY_METRICS_HOST: '0.0.0.0' })).join('\n')).toContain('LATCHKEY_METRICS_HOST=0.0.0.0: /metrics has no authentication');
  });
});

describe('latchkey serve', () => {
  it('stops with exit code 2 naming LATCHKEY_METRICS_PORT when that port is taken', { timeout: 60_000 }, async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const metricsPort = (taken.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-metrics-'));
    try {
      // PORT is free when picked; should another process take it before serve binds it, pick again.
      for (let attempt = 1; ; attempt++) {
        const port = await freePort();
        let stderr = '';
        const code = await runCli(['serve'], {
          stdout: { write: () => true },
          stderr: { write: (text: string) => ((stderr += text), true) },
          env: { ...process.env, PORT: String(port), DATABASE_URL: `sqlite:${join(dir, 'latchkey.db')}`, LATCHKEY_SECRET_KEY_FILE: join(dir, 'secret.key'), LOG_LEVEL: 'silent', LATCHKEY_METRICS_PORT: String(metricsPort), LATCHKEY_WEBHOOK_POLL_SECONDS: '0' },
        } as Parameters<typeof runCli>[1]);
        if (stderr.includes(`PORT: ${port} is already in use`) && attempt < 5) continue;
        expect(code).toBe(2);
        expect(stderr).toContain(`LATCHKEY_METRICS_PORT: ${metricsPort} is already in use on 127.0.0.1`);
        break;
      }
    } finally {
      taken.close();
    }
  });

  // A real process, as operators run it: the metrics listener starts with it on LATCHKEY_METRICS_PORT and says where.
  it('serves /metrics on its own port when LATCHKEY_METRICS_PORT is set', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-metrics-'));
    const { child, port, output } = await spawnServe({
      cwd: dir,
      env: { DATABASE_URL: `sqlite:${join(dir, 'latchkey.db')}`, LOG_LEVEL: 'info', LATCHKEY_METRICS_PORT: '0', LATCHKEY_WEBHOOK_POLL_SECONDS: '0' },
    });
    try {
      const metricsUrl = /Metrics are at (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(output)?.[1];
      expect(metricsUrl).toBeDefined();
      expect(new URL(metricsUrl!).port).not.toBe(String(port));
      expect((await fetch(`http://127.0.0.1:${port}/signin`)).status).toBe(200);
      const text = await (await fetch(metricsUrl!)).text();
      expect(sample(text, 'latchkey_http_request_duration_seconds_count{route="/signin",method="GET",status_class="2xx"}')).toBe(1);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
