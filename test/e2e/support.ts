/**
 * Browser-test support: a real Latchkey server on a random localhost port over
 * a temporary SQLite file, Debian's Chromium driven by playwright-core, CDP
 * virtual authenticators, and an axe-core check for every page.
 *
 * One browser per test file, one context per test: contexts are cheap and keep
 * cookies and virtual authenticators apart.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, expect, onTestFailed } from 'vitest';
import { buildApp } from '../../src/app.js';
import { hashToken } from '../../src/crypto.js';
import type { Config } from '../../src/config/index.js';
import { openDatabase, type Db } from '../../src/db/connect.js';
import type { User } from '../../src/db/schema.js';
import { issueInvite } from '../../src/flows/enrolment/invites.js';
import { createUser } from '../../src/users/createUser.js';
import { testConfig } from '../support/app.js';
import { freePort } from '../support/serve.js';

/**
 * A free port on 127.0.0.1 for a server a test starts later (an upstream work-account provider), held until
 * released, so a server that picks its own free port meanwhile can't take it.
 */
export async function reservePort(): Promise<{ port: number; release(): Promise<void> }> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const { port } = probe.address() as AddressInfo;
  return { port, release: () => new Promise<void>((resolve) => probe.close(() => resolve())) };
}

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// ---------------------------------------------------------------- server

/** A clock the test can move forward, e.g. past LATCHKEY_REAUTH_MINUTES. */
export class FakeClock {
  offset = 0;
  readonly now = (): number => Date.now() + this.offset;
  advanceMinutes(minutes: number): void {
    this.offset += minutes * 60_000;
  }
}

/** A JSON request the app answered, as the server saw it. */
export interface Exchange {
  path: string;
  /** Which browser sent it (hash of its binding cookie). */
  bindingHash: string;
  body: Record<string, unknown>;
  status: number;
  answer: Record<string, unknown>;
}

export interface E2EServer {
  app: FastifyInstance;
  /** Every JSON POST the app answered, in order. */
  exchanges: Exchange[];
  config: Config;
  db: Db;
  clock: FakeClock;
  /** http://localhost:<port> */
  origin: string;
  url(path: string): string;
  /** A Pending user with an invite link, as `latchkey users invite` makes them. */
  invite(email: string, displayName: string, opts?: { issuedAt?: number }): Promise<{ user: User; url: string }>;
  close(): Promise<void>;
}

/**
 * Start Latchkey the way `latchkey serve` does, in this process. The origin
 * must be known before buildApp (it is the RP ID's origin), so pick a free port
 * first and retry if another process takes it in between.
 */
export async function startServer(env: Record<string, string> = {}): Promise<E2EServer> {
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-e2e-'));
  const clock = new FakeClock();
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const origin = `http://localhost:${port}`;
    const config = testConfig({ LATCHKEY_ORIGIN: origin, DATABASE_URL: `sqlite:${join(dir, `e2e-${attempt}.db`)}`, ...env });
    const db = openDatabase(config.databaseUrl);
    await db.migrate();
    // Rate limits are per IP and every test request comes from 127.0.0.1.
    const app = await buildApp(config, { db, logger: false, now: clock.now, rateLimitPerMinute: 0 });
    const exchanges: Exchange[] = [];
    // Read answers here rather than in the page: a ceremony with a virtual authenticator can
    // finish and navigate away before the browser hands a response body to the test.
    app.addHook('onSend', async (request, reply, payload) => {
      if (request.method === 'POST' && typeof payload === 'string' && String(reply.getHeader('content-type') ?? '').includes('json')) {
        let answer: Record<string, unknown> = {};
        try {
          answer = JSON.parse(payload) as Record<string, unknown>;
        } catch {
          /* not JSON after all */
        }
        const body = request.body && typeof request.body === 'object' ? (request.body as Record<string, unknown>) : {};
        exchanges.push({ path: request.url.split('?')[0]!, bindingHash: request.bindingHash, body, status: reply.statusCode, answer });
      }
      return payload;
    });
    try {
      await app.listen({ host: '127.0.0.1', port });
    } catch (err) {
      await app.close();
      await db.close();
      if ((err as { code?: string }).code === 'EADDRINUSE' && attempt < 5) continue;
      throw err;
    }
    return {
      app,
      exchanges,
      config,
      db,
      clock,
      origin,
      url: (path) => origin + path,
      async invite(email, displayName, opts = {}) {
        const store = app.latchkey.store;
        const user = await createUser(store, { email, displayName }, clock.now());
        const { url } = await issueInvite(store, config, user, opts.issuedAt ?? clock.now());
        return { user, url };
      },
      async close() {
        await app.close();
        await db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

// ---------------------------------------------------------------- browser

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
}

export type AuthenticatorKind = 'platform' | 'security-key' | 'no-uv';

export interface VirtualAuthenticatorOptions {
  protocol: 'ctap2' | 'u2f';
  transport: 'usb' | 'nfc' | 'ble' | 'internal' | 'hybrid' | 'cable';
  hasResidentKey: boolean;
  hasUserVerification: boolean;
  isUserVerified: boolean;
  automaticPresenceSimulation: boolean;
  /** New credentials report backup eligible / backed up (a passkey that syncs, as in a password manager). */
  defaultBackupEligibility?: boolean;
  defaultBackupState?: boolean;
}

const KINDS: Record<AuthenticatorKind, VirtualAuthenticatorOptions> = {
  // Windows Hello, Touch ID, Android screen lock.
  platform: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  // A FIDO2 key with a PIN (YubiKey 5, Titan).
  'security-key': { protocol: 'ctap2', transport: 'usb', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  // A key with no PIN set: touch only, so UV is never reported.
  'no-uv': { protocol: 'ctap2', transport: 'usb', hasResidentKey: true, hasUserVerification: false, isUserVerified: false, automaticPresenceSimulation: true },
};

export interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  privateKey: string;
  userHandle?: string;
  signCount: number;
  backupEligibility?: boolean;
  backupState?: boolean;
}

/** One Chromium tab's virtual authenticators (WebAuthn domain of the Chrome DevTools Protocol). */
export class Authenticators {
  private constructor(readonly cdp: CDPSession) {}

  static async enable(page: Page): Promise<Authenticators> {
    const cdp = await page.context().newCDPSession(page);
    // enableUI: false: no account chooser, so a ceremony with one matching credential completes on its own.
    await cdp.send('WebAuthn.enable', { enableUI: false });
    return new Authenticators(cdp);
  }

  async add(kind: AuthenticatorKind, overrides: Partial<VirtualAuthenticatorOptions> = {}): Promise<string> {
    const { authenticatorId } = await this.cdp.send('WebAuthn.addVirtualAuthenticator', { options: { ...KINDS[kind], ...overrides } });
    return authenticatorId;
  }

  async remove(authenticatorId: string): Promise<void> {
    await this.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
  }

  async credentials(authenticatorId: string): Promise<VirtualCredential[]> {
    const { credentials } = await this.cdp.send('WebAuthn.getCredentials', { authenticatorId });
    return credentials as VirtualCredential[];
  }

  async addCredential(authenticatorId: string, credential: VirtualCredential): Promise<void> {
    await this.cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
  }

  /**
   * Take an authenticator away (the person unplugs the key or goes to another
   * computer) and return its credentials, with their current counters, so the
   * same passkey can come back later with {@link addCredential}.
   */
  async detach(authenticatorId: string): Promise<VirtualCredential[]> {
    const credentials = await this.credentials(authenticatorId);
    await this.remove(authenticatorId);
    return credentials;
  }

  /** A new authenticator of `kind` holding these credentials. */
  async attach(kind: AuthenticatorKind, credentials: VirtualCredential[], overrides: Partial<VirtualAuthenticatorOptions> = {}): Promise<string> {
    const id = await this.add(kind, overrides);
    for (const c of credentials) await this.addCredential(id, c);
    return id;
  }

  /** The next UV check this authenticator does fails (the person could not unlock the device). */
  async setUserVerified(authenticatorId: string, isUserVerified: boolean): Promise<void> {
    await this.cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified });
  }
}

export interface TestPage {
  context: BrowserContext;
  page: Page;
  authenticators: Authenticators;
  /** Console errors, uncaught exceptions and CSP violations seen so far. */
  problems: string[];
  /** The JSON requests this context's pages sent to `path` and the answers, in order. */
  postsTo(path: string): Promise<Exchange[]>;
  close(): Promise<void>;
}

/**
 * For files with several actors per test (agent and user): every context a
 * test opens is closed after it, and the test fails on any console error or
 * CSP violation in any of them.
 */
export function closeContextsAfterEach(): (browser: Browser, server: E2EServer) => Promise<TestPage> {
  const opened: TestPage[] = [];
  afterEach(async () => {
    const problems = opened.flatMap((t) => t.problems);
    await Promise.all(opened.splice(0).map((t) => t.close()));
    expect(problems).toEqual([]);
  });
  return async (browser, server) => {
    const t = await openPage(browser, server);
    opened.push(t);
    return t;
  };
}

/** A fresh context (no cookies, no authenticators) with one tab under the app's strict CSP. */
export async function openPage(browser: Browser, server: E2EServer): Promise<TestPage> {
  const context = await browser.newContext();
  // No budget per action: every click and wait waits on its condition, and the test's own timeout is the one limit
  // (a 15-second budget per action failed runs on a slower machine that would have passed).
  context.setDefaultTimeout(0);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (msg) => {
    // A 4xx answer to fetch is logged as "Failed to load resource"; the page handles those itself.
    if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) problems.push(msg.text());
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  const authenticators = await Authenticators.enable(page);
  // With no budget per action, a wait that never ends shows up as the test's timeout: say where the page was
  // (it may be closed by then, so the address is kept as the page goes).
  let lastUrl = 'about:blank';
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) lastUrl = frame.url();
  });
  onTestFailed(() => console.error(`The page was at ${lastUrl} when the test failed.`));
  const postsTo = async (path: string) => {
    const binding = (await context.cookies()).find((c) => c.name === 'latchkey_binding')?.value;
    const bindingHash = binding ? hashToken(binding) : '';
    return server.exchanges.filter((e) => e.path === path && e.bindingHash === bindingHash);
  };
  return { context, page, authenticators, problems, postsTo, close: () => context.close() };
}

/** Go to a page and wait until the bundle has attached its behaviour. */
export async function visit(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await waitReady(page);
}

export async function waitReady(page: Page): Promise<void> {
  await page.waitForSelector('body[data-ready="true"]', { state: 'attached' });
}

/** Visible text of the error summary, once it is shown. */
export async function errorSummaryText(page: Page): Promise<string> {
  const summary = page.locator('#error-summary');
  await summary.waitFor({ state: 'visible' });
  return (await summary.innerText()).replace(/\s+/g, ' ');
}

// ---------------------------------------------------------------- accessibility

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; failureSummary?: string }[];
}

/**
 * Run axe-core on the page as it is now and fail on any serious or critical
 * violation. axe is evaluated over CDP (like DevTools), not added as a
 * <script>, so the page keeps its strict CSP.
 */
export async function expectAccessible(page: Page, label: string): Promise<void> {
  const loaded = await page.evaluate('typeof window.axe === "object"');
  if (!loaded) await page.evaluate(axeSource);
  const violations = (await page.evaluate(`
    window.axe.run(document, { resultTypes: ['violations'] }).then((r) =>
      r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) })))
  `)) as AxeViolation[];
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (process.env.LATCHKEY_E2E_AXE_VERBOSE) {
    console.log(`axe ${label}: ${violations.length} violations`);
    for (const v of violations) console.log(`axe ${label}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  }
  const report = serious.map((v) => `${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.map((n) => n.target.join(' ')).join('\n    ')}`).join('\n');
  expect(report, `axe on ${label} (${page.url()})`).toBe('');
}

// ---------------------------------------------------------------- common journeys

export const PERSON = { displayName: 'Ada Lovelace', email: 'ada@example.com' };

/** Sign up through /signup with whatever authenticator is attached; ends on /settings. */
export async function signUpInBrowser(
  server: E2EServer,
  page: Page,
  person: { displayName: string; email: string } = PERSON,
  placement: 'this-device' | 'another-device' | 'security-key' = 'this-device',
): Promise<void> {
  await visit(page, server.url('/signup'));
  await page.getByLabel('Your name').fill(person.displayName);
  await page.getByLabel('Email address').fill(person.email);
  await page.locator(`#placement-${placement}`).check();
  await page.getByRole('button', { name: 'Create account and set up a passkey' }).click();
  await page.waitForURL('**/settings?created=1');
  await waitReady(page);
}

export async function signOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Sign out' }).first().click();
  await page.waitForURL('**/signin');
  await waitReady(page);
}

/** Names of the passkeys listed on /settings, in order. */
export async function passkeyNames(page: Page): Promise<string[]> {
  return page.locator('tr[data-passkey-id] .passkey-name').allInnerTexts();
}

/** The signal after a rename or removal: sent with the Signals API, or the fallback advice shown. */
export async function expectSignalled(page: Page): Promise<'signals-api' | 'fallback'> {
  await page.waitForFunction(() => document.body.dataset.signalSent === 'true' || !document.getElementById('signal-fallback')?.hidden);
  return (await page.evaluate(() => document.body.dataset.signalSent === 'true')) ? 'signals-api' : 'fallback';
}

/** CDP gives credential ids in base64; WebAuthn JSON and Latchkey use base64url. */
export function toBase64Url(b64: string): string {
  return Buffer.from(b64, 'base64').toString('base64url');
}


/**
 * One server and one Chromium for a test file, a fresh page per test. After
 * each test the page is closed and the test fails on any console error,
 * uncaught exception or CSP violation it saw: the bundle must work under the
 * strict CSP.
 */
export function useE2E(env: Record<string, string> = {}) {
  let server: E2EServer | undefined;
  let browser: Browser | undefined;
  let current: TestPage | undefined;
  beforeAll(async () => {
    [server, browser] = await Promise.all([startServer(env), launchBrowser()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });
  afterEach(async () => {
    const problems = current?.problems ?? [];
    await current?.close();
    current = undefined;
    expect(problems).toEqual([]);
  });
  return {
    get server(): E2EServer {
      return server!;
    },
    /** A new page (fresh context) for this test. */
    async open(): Promise<TestPage> {
      current = await openPage(browser!, server!);
      return current;
    },
  };
}
